"""Convolution worked out by hand: every patch, product and sum of a small example.

:func:`explain` runs the engine (:func:`convcli.engine.correlate`) on a small
input and returns an :class:`Explanation`: the input, the kernel as written and
as multiplied (rotated 180 degrees under ``convolve``), the geometry (padding
on each side, output size and its formula) and the engine's output. For any
output position, :meth:`Explanation.position` gives the patch under the kernel
(padded cells filled by the border mode through the engine's own
:func:`~convcli.engine._border.fill_region`, and flagged), the element-wise
products and the sum, which is the engine's output value.

Pure: nothing here prints, reads files or draws.

>>> ramp = [[10, 20, 30, 40, 50], [60, 70, 80, 90, 100], [110, 120, 130, 140, 150],
...         [160, 170, 180, 190, 200], [210, 220, 230, 240, 250]]
>>> e = explain(ramp, [[1, 0, -1]] * 3)
>>> e.output.tolist()
[[-60.0, -60.0, -60.0], [-60.0, -60.0, -60.0], [-60.0, -60.0, -60.0]]
>>> p = e.position(0, 0)
>>> p.products.tolist()
[[10.0, 0.0, -30.0], [60.0, 0.0, -80.0], [110.0, 0.0, -130.0]]
>>> number_text(p.total), sum_text(p)
('-60', '10 + 0 + (-30) + 60 + 0 + (-80) + 110 + 0 + (-130) = -60')
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .engine import Border, correlate, plan_geometry
from .engine._border import fill_region
from .errors import ParameterError
from .geometry import LayerGeometry, PaddingSpec, PairLike, parse_pair

__all__ = [
    "MAX_SIDE",
    "MAX_LENGTH",
    "Explanation",
    "Position",
    "explain",
    "number_text",
    "sum_text",
    "crop",
    "parse_crop",
]

#: Largest input side ``explain`` takes (it prints every number); 1-D signals may be longer.
MAX_SIDE = 16
MAX_LENGTH = 32


def number_text(v: float) -> str:
    """A number as a person writes it: whole numbers without ``.0``, others to 6 digits.

    >>> number_text(-60.0), number_text(-0.0), number_text(0.0625), number_text(83.77777862548828)
    ('-60', '0', '0.0625', '83.7778')
    """
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    text = f"{v:.6g}"
    return "0" if text in ("-0", "0") else text


@dataclass(frozen=True, eq=False)
class Position:
    """One output position worked out: ``total = sum(products) = sum(patch * weights)``."""

    #: output (row, col)
    index: tuple[int, int]
    #: input row and column of every kernel tap (may lie outside the input: padding)
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    #: the values under the taps, padded ones made up by the border mode
    patch: np.ndarray
    #: True where the tap lies in the padding, outside the input
    padded: np.ndarray
    products: np.ndarray
    #: the engine's output value at this position (offset included)
    total: float
    #: the kernel's offset, added after the sum
    offset: float = 0.0


@dataclass(frozen=True, eq=False)
class Explanation:
    """A small convolution, ready to be shown."""

    #: the input, (H, W) float; a 1-D signal is one row
    input: np.ndarray
    #: the kernel as written (times its scale)
    kernel: np.ndarray
    #: what each patch is multiplied with: ``kernel``, rotated 180 degrees under ``convolve``
    weights: np.ndarray
    convolve: bool
    geometry: LayerGeometry
    border: Border
    #: the engine's result, (H', W')
    output: np.ndarray
    one_d: bool = False
    offset: float = 0.0
    #: the padded input: rows -top .. H+bottom-1, columns -left .. W+right-1
    padded_input: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    #: True where ``padded_input`` is padding
    padded_mask: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]

    @property
    def pads(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((top, bottom), (left, right))``."""
        return self.geometry.padding

    @property
    def has_padding(self) -> bool:
        (t, b), (l, r) = self.pads
        return bool(t or b or l or r)

    def positions(self) -> Iterator[Position]:
        """Every output position, row by row."""
        rows, cols = self.output.shape
        for r in range(rows):
            for c in range(cols):
                yield self.position(r, c)

    def check_position(self, row: int, col: int) -> None:
        rows, cols = self.output.shape
        if not (0 <= row < rows and 0 <= col < cols):
            if self.one_d:
                raise ParameterError(f"--at: position {col} is outside the output (0..{cols - 1})")
            raise ParameterError(
                f"--at: position ({row}, {col}) is outside the {rows}x{cols} output "
                f"(rows 0..{rows - 1}, columns 0..{cols - 1})"
            )

    def taps(self, row: int, col: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Input rows and columns the kernel's taps cover at output (row, col)."""
        (sr, sc), (dr, dc) = self.geometry.layer.stride, self.geometry.layer.dilation
        (top, _), (left, _) = self.pads
        kh, kw = self.weights.shape
        rows = tuple(row * sr + i * dr - top for i in range(kh))
        cols = tuple(col * sc + j * dc - left for j in range(kw))
        return rows, cols

    def position(self, row: int, col: int) -> Position:
        """The patch, products and sum at output (row, col)."""
        self.check_position(row, col)
        rows, cols = self.taps(row, col)
        (top, _), (left, _) = self.pads
        ri = np.asarray(rows) + top
        ci = np.asarray(cols) + left
        patch = self.padded_input[np.ix_(ri, ci)]
        padded = self.padded_mask[np.ix_(ri, ci)]
        products = patch * self.weights
        return Position(
            index=(row, col),
            rows=rows,
            cols=cols,
            patch=patch,
            padded=padded,
            products=products,
            total=float(self.output[row, col]),
            offset=self.offset,
        )


def _as_matrix(values: np.ndarray | list, what: str) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be a matrix of numbers") from None
    if x.ndim == 1:
        x = x[np.newaxis, :]
    if x.ndim != 2 or x.size == 0:
        raise ParameterError(f"{what} must be a 1-D or 2-D matrix of numbers, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ParameterError(f"{what} contains NaN or infinite values")
    return x


def explain(
    image: np.ndarray | list,
    kernel: np.ndarray | list,
    *,
    stride: PairLike = 1,
    padding: str | int | PaddingSpec = "valid",
    dilation: PairLike = 1,
    border: str | Border = "zero",
    convolve: bool = False,
    offset: float = 0.0,
) -> Explanation:
    """Run the engine on a small ``image`` and keep everything needed to show how.

    ``image`` is (H, W), or 1-D (a signal); ``kernel`` likewise. With a 1-D input
    (one row) and a one-row kernel the example is 1-D: stride, dilation and
    padding act along the row only. Defaults follow the worked examples: no
    padding, zero border.
    """
    x = _as_matrix(image, "the input")
    k = _as_matrix(kernel, "the kernel")
    one_d = x.shape[0] == 1 and k.shape[0] == 1
    if one_d:
        if x.shape[1] > MAX_LENGTH:
            raise ParameterError(
                f"the input signal has {x.shape[1]} values; explain shows every number, so it takes "
                f"at most {MAX_LENGTH}: shorten it"
            )
    elif max(x.shape) > MAX_SIDE:
        raise ParameterError(
            f"the input is {x.shape[0]}x{x.shape[1]}; explain shows every number, so it takes at most "
            f"{MAX_SIDE}x{MAX_SIDE}: give a smaller matrix, or --crop X,Y,W,H for an image"
        )
    stride_pair = parse_pair("stride", stride)
    dilation_pair = parse_pair("dilation", dilation)
    pad = PaddingSpec.parse(padding)
    if one_d:
        stride_pair = (1, stride_pair[1])
        dilation_pair = (1, dilation_pair[1])
        if pad.explicit is not None:
            pad = PaddingSpec(explicit=((0, 0), pad.explicit[1]))
    border = Border.parse(border)
    weights = k[::-1, ::-1] if convolve else k
    out = correlate(
        x, k, stride=stride_pair, padding=pad, dilation=dilation_pair, border=border, convolve=convolve,
        engine="direct", threads=1,
    )
    if offset:
        out = out + offset
    geometry = plan_geometry(x.shape, k.shape, stride=stride_pair, padding=pad, dilation=dilation_pair)
    (t, b), (l, r) = geometry.padding
    H, W = x.shape
    buf = np.empty((H + t + b, W + l + r, 1), dtype=np.float64)
    fill_region(buf, x[:, :, np.newaxis], -t, -l, border)
    mask = np.ones((H + t + b, W + l + r), dtype=bool)
    mask[t : t + H, l : l + W] = False
    for a in (x, k, weights, out, buf, mask):
        a.setflags(write=False)
    return Explanation(
        input=x,
        kernel=k,
        weights=weights,
        convolve=convolve,
        geometry=geometry,
        border=border,
        output=out,
        one_d=one_d,
        offset=float(offset),
        padded_input=buf[:, :, 0],
        padded_mask=mask,
    )


def _term(v: float) -> str:
    text = number_text(v)
    return f"({text})" if text.startswith("-") else text


def sum_terms(position: Position) -> list[str]:
    """The products as terms of a sum, negative ones in parentheses (as written by hand)."""
    return [_term(v) for v in position.products.ravel()]


def sum_text(position: Position) -> str:
    """``a + b + (-c) ... = total`` (with ``+ offset`` when the kernel has one)."""
    terms = " + ".join(sum_terms(position))
    if position.offset:
        return f"{terms} + {_term(position.offset)} (offset) = {number_text(position.total)}"
    return f"{terms} = {number_text(position.total)}"


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """``X,Y,W,H`` (column, row, width, height) as four whole numbers.

    >>> parse_crop("100, 80, 5, 5")
    (100, 80, 5, 5)
    """
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise ParameterError(
            f"--crop: {text!r} is not X,Y,W,H (four whole numbers: left column, top row, width, height)"
        ) from None
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise ParameterError(f"--crop: {text!r}: X and Y must be at least 0, W and H at least 1")
    return x, y, w, h


def crop(data: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """``data[Y:Y+H, X:X+W]``, refused when the box does not lie inside the image."""
    x, y, w, h = box
    rows, cols = data.shape[:2]
    if x + w > cols or y + h > rows:
        raise ParameterError(
            f"--crop {x},{y},{w},{h} reaches past the {cols}x{rows} image (width x height); "
            f"X+W must be at most {cols} and Y+H at most {rows}"
        )
    if w > MAX_SIDE or h > MAX_SIDE:
        raise ParameterError(
            f"--crop {x},{y},{w},{h} is {w}x{h}; explain shows every number, so crops are at most "
            f"{MAX_SIDE}x{MAX_SIDE}"
        )
    return data[y : y + h, x : x + w]
