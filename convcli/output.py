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

from ._parallel import parallel_map, row_chunks
from .errors import ParameterError

__all__ = ["MAP_NAMES", "MappedValues", "map_values", "auto_map", "channel_stats"]

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
    per_channel: bool = True,
    threads: int | None = None,
) -> MappedValues:
    """Map float ``values`` to ``dtype`` (uint8 or uint16) with the map ``how``.

    The work runs in row chunks of about a megabyte on ``threads`` threads (default: the
    usable cores); ``values`` is never modified.

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
    if x.ndim == 0:
        x = x.reshape(1)
    out = np.empty(x.shape, dtype)
    work = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    shift = work.type((hi + 1) / 2)

    def one(rows: slice) -> int:
        part = x[rows]
        if how == "abs":
            y = np.abs(part, dtype=work)
        elif how == "offset":
            y = np.add(part, shift, dtype=work)
        else:
            y = part.astype(work)  # a copy: the caller's values stay as they were
        np.rint(y, out=y)
        # count what falls outside 0..hi; the full counts only when the extremes say there is any
        clipped = 0
        if y.size and float(y.min()) < 0:
            clipped += int(np.count_nonzero(y < 0))
        if y.size and float(y.max()) > hi:
            clipped += int(np.count_nonzero(y > hi))
        if clipped:
            np.clip(y, 0, hi, out=y)
        out[rows] = y
        return clipped

    per_row = x.size // max(len(x), 1)
    clipped = sum(parallel_map(one, row_chunks(len(x), per_row), threads))
    return MappedValues(out.reshape(np.shape(values)), how, clipped, x.size)


def channel_stats(values: np.ndarray, threads: int | None = None) -> list[tuple[float, float, float]]:
    """``(min, max, mean)`` of each channel (the third axis; the whole array when it has
    fewer than three axes), in one pass of row chunks on ``threads`` threads. NaN anywhere
    in a channel makes all three NaN.

    Each chunk is first reduced row against row (whole rows at a time, which vectorises),
    then per channel; sums of a chunk's rows are float32 (a few dozen values), the rest
    float64, so the mean keeps float32's precision.

    >>> channel_stats(np.array([[[1.0, -2.0], [3.0, 4.0]]]))
    [(1.0, 3.0, 2.0), (-2.0, 4.0, 1.0)]
    """
    x = np.asarray(values)
    if x.ndim < 3:
        x = x.reshape(*x.shape, *[1] * (3 - x.ndim))
    channels = x.shape[2]
    count = x.size // channels if channels else 0
    if count == 0:
        nan = float("nan")
        return [(nan, nan, nan)] * channels

    def per_channel(rows_reduced: np.ndarray, how) -> np.ndarray:  # noqa: ANN001
        # (W, C, ...) -> (C,)
        # (a contiguous copy: NumPy reduces a strided 2-D view ten times slower)
        return how(np.ascontiguousarray(np.moveaxis(rows_reduced, 1, 0)).reshape(channels, -1), axis=1)

    def one(rows: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        part = x[rows]
        total = part.sum(axis=0, dtype=np.float64 if part.dtype.kind != "f" else None)
        return (per_channel(part.min(axis=0), np.min), per_channel(part.max(axis=0), np.max),
                per_channel(total.astype(np.float64), np.sum))

    parts = parallel_map(one, row_chunks(len(x), x.size // len(x)), threads)
    lows, highs, sums = (np.array([p[i] for p in parts]) for i in range(3))
    means = sums.sum(axis=0) / count
    return [(float(lo), float(hi), float(m)) for lo, hi, m in zip(lows.min(axis=0), highs.max(axis=0), means)]


def _rescale(x: np.ndarray, hi: float, per_channel: bool = True) -> np.ndarray:
    axes = (0, 1) if x.ndim == 3 and per_channel else None
    lo = np.min(x, axis=axes, keepdims=axes is not None)
    top = np.max(x, axis=axes, keepdims=axes is not None)
    span = np.asarray(top - lo, dtype=np.float64)
    safe = np.where(span > 0, span, 1.0)
    y = (x - lo) / safe * hi
    y = np.where(span > 0, y, 0.0)
    return np.clip(np.rint(y), 0, hi)
