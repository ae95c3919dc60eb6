"""Output mapping: from signed, unbounded feature maps to image values.

This is the only module that turns engine results back into integers. Every
map states what it does with values outside the target range, and every call
reports how many values it had to clip.

Maps (``hi`` is 255 for 8-bit output, 65535 for 16-bit):

``clip``
    round to nearest, then clip to ``0..hi``. Negative values become 0.
``abs``
    ``|x|``, rounded, then clipped to ``0..hi``. Keeps edges of both signs.
``offset``
    ``x + (hi + 1) / 2``, rounded, clipped: zero becomes mid-grey, so the
    sign stays visible (emboss, signed gradients).
``rescale``
    ``min..max`` of each channel stretched linearly to ``0..hi``; nothing is
    clipped. A constant channel becomes 0. ``per_channel=False`` (``--rescale-global``)
    uses one min..max over all channels, so their relative strengths stay comparable.
``raw``
    float32, unchanged; only for formats that hold floats (``.npy``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ParameterError

__all__ = ["MAP_NAMES", "MappedValues", "map_values", "auto_map"]

MAP_NAMES = ("clip", "abs", "offset", "rescale", "raw")


@dataclass(frozen=True, eq=False)
class MappedValues:
    """The mapped array, and what the mapping did."""

    data: np.ndarray
    map: str
    #: how many values fell outside the target range and were clipped
    clipped: int
    #: number of values in ``data``
    total: int


def auto_map(weights: np.ndarray, preferred: str | None = None) -> str:
    """The map used when the user asks for none: the kernel's own, else a rule.

    A kernel that sums to zero (an edge or derivative detector) gets ``abs``,
    so both signs of an edge show; any other kernel gets ``clip``.
    """
    if preferred is not None:
        return preferred
    total = float(np.sum(weights))
    scale = float(np.sum(np.abs(weights))) or 1.0
    return "abs" if abs(total) <= 1e-9 * scale else "clip"


def map_values(
    values: np.ndarray,
    how: str,
    dtype: np.dtype | type = np.uint8,
    *,
    overwrite: bool = False,
    per_channel: bool = True,
) -> MappedValues:
    """Map float ``values`` to ``dtype`` (uint8 or uint16) with the map ``how``.

    ``overwrite=True`` lets the map work in ``values``' own memory (the caller's array is
    then garbage), which saves a copy of the whole image.

    >>> m = map_values(np.array([-20.0, 10.4, 300.0]), "clip")
    >>> m.data, m.clipped
    (array([  0,  10, 255], dtype=uint8), 2)
    >>> map_values(np.array([-20.0, 10.4]), "abs").data
    array([20, 10], dtype=uint8)
    >>> map_values(np.array([-20.0, 10.4]), "offset").data
    array([108, 138], dtype=uint8)
    """
    if how not in MAP_NAMES:
        raise ParameterError(f"map: unknown map {how!r}; use one of {', '.join(MAP_NAMES)}")
    x = np.asarray(values)
    if how == "raw":
        return MappedValues(x.astype(np.float32, copy=False), how, 0, x.size)
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ParameterError(f"map: integer output must be uint8 or uint16, not {dtype}")
    hi = float(np.iinfo(dtype).max)
    if how == "rescale":
        return MappedValues(_rescale(x, hi, per_channel).astype(dtype), how, 0, x.size)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
        overwrite = True
    y = x if overwrite else np.empty_like(x)
    if how == "abs":
        np.abs(x, out=y)
    elif how == "offset":
        np.add(x, x.dtype.type((hi + 1) / 2), out=y)
    elif y is not x:
        np.copyto(y, x)
    np.rint(y, out=y)
    # count what falls outside 0..hi; the full counts only when the extremes say there is any
    low, top = (float(y.min()), float(y.max())) if y.size else (0.0, 0.0)
    clipped = 0
    if low < 0:
        clipped += int(np.count_nonzero(y < 0))
    if top > hi:
        clipped += int(np.count_nonzero(y > hi))
    if clipped:
        np.clip(y, 0, hi, out=y)
    return MappedValues(y.astype(dtype), how, clipped, x.size)


def _rescale(x: np.ndarray, hi: float, per_channel: bool = True) -> np.ndarray:
    axes = (0, 1) if x.ndim == 3 and per_channel else None
    lo = np.min(x, axis=axes, keepdims=axes is not None)
    top = np.max(x, axis=axes, keepdims=axes is not None)
    span = np.asarray(top - lo, dtype=np.float64)
    safe = np.where(span > 0, span, 1.0)
    y = (x - lo) / safe * hi
    y = np.where(span > 0, y, 0.0)
    return np.clip(np.rint(y), 0, hi)
