"""What can be said about a kernel: the facts behind ``convcli kernels show``, as data.

:func:`describe` returns the *effective* matrix, the one ``convcli apply``
correlates each patch with: the matrix times its scale, rotated by 180
degrees when ``convolve`` is set. Everything else (sum, rank, 1-D factors,
response range) is computed from that matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .banks import Bank
from .kernelfiles import imagemagick_string
from .kernels import Kernel, matrix_rank, rank1_factors
from .output import auto_map

__all__ = ["BankInfo", "KernelInfo", "describe", "response_range"]

_RTOL = 1e-9


def response_range(weights: np.ndarray, offset: float = 0.0, *, bits: int = 8) -> tuple[float, float]:
    """The smallest and largest output for input values in ``0 .. 2**bits - 1``.

    The minimum puts the brightest value under every negative weight and 0
    under the positive ones; the maximum the other way round.

    >>> response_range(np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]))
    (-1020.0, 1020.0)
    >>> response_range(np.full((3, 3), 1 / 9), bits=16)
    (0.0, 65535.0)
    """
    w = np.asarray(weights, dtype=np.float64)
    hi = float(2**bits - 1)
    # rounded to 9 decimals: 9 weights of 1/9 give 255, not 254.99999999999997
    low = float(np.round(float(w[w < 0].sum()) * hi + offset, 9))
    high = float(np.round(float(w[w > 0].sum()) * hi + offset, 9))
    return low + 0.0, high + 0.0


@dataclass(frozen=True, eq=False)
class KernelInfo:
    """The effective kernel and its properties."""

    kernel: Kernel
    convolve: bool
    #: what apply correlates with: weights, rotated 180 degrees under convolve
    matrix: np.ndarray
    total: float
    normalized: bool
    zero_sum: bool
    rank: int
    #: (column, row) with outer(column, row) == matrix, when rank is 1
    factors: tuple[np.ndarray, np.ndarray] | None
    #: the tap that sits over the output pixel (row, column)
    anchor: tuple[int, int]
    #: bits -> (min, max) output for integer input of that depth
    response: dict[int, tuple[float, float]]
    #: the map `apply` uses for image output unless --map says otherwise
    map: str

    @property
    def separable(self) -> bool:
        return self.rank == 1

    @property
    def imagemagick(self) -> str:
        """The effective matrix as an ImageMagick kernel string (for ``-morphology Correlate``)."""
        return imagemagick_string(self.matrix)

    def to_dict(self) -> dict:
        k = self.kernel
        written = k.matrix[::-1, ::-1] if self.convolve else k.matrix
        return {
            "kind": "kernel",
            "name": k.name,
            "spec": k.spec,
            "description": k.description,
            "source": k.source,
            "operation": "convolve" if self.convolve else "correlate",
            "shape": list(k.shape),
            "anchor": list(self.anchor),
            "matrix": self.matrix.tolist(),
            "as_written": written.tolist(),
            "scale": k.scale,
            "scale_text": k.scale_text,
            "offset": k.offset,
            "sum": self.total,
            "normalized": self.normalized,
            "zero_sum": self.zero_sum,
            "rank": self.rank,
            "separable": self.separable,
            "factors": None
            if self.factors is None
            else {"column": self.factors[0].tolist(), "row": self.factors[1].tolist()},
            "response": {f"{b}-bit": {"min": lo, "max": hi} for b, (lo, hi) in self.response.items()},
            "map": self.map,
            "tags": list(k.tags),
            "aliases": list(k.aliases),
            "imagemagick": self.imagemagick,
            "notes": list(k.notes),
        }


@dataclass(frozen=True, eq=False)
class BankInfo:
    """A bank: its members' :class:`KernelInfo` and the range of the combined map."""

    bank: Bank
    convolve: bool
    members: tuple[KernelInfo, ...]
    #: bits -> (min, max) of the combined map (an upper bound: the members' extremes
    #: need not occur at one pixel); None for stack, where each member keeps its own
    response: dict[int, tuple[float, float]] | None
    map: str

    def to_dict(self) -> dict:
        b = self.bank
        return {
            "kind": "bank",
            "name": b.name,
            "spec": b.spec,
            "description": b.description,
            "source": b.source,
            "operation": "convolve" if self.convolve else "correlate",
            "combine": b.combine,
            "summary": b.summary(),
            "shape": list(b.shape),
            "offset": b.offset,
            "response": None
            if self.response is None
            else {f"{bits}-bit": {"min": lo, "max": hi} for bits, (lo, hi) in self.response.items()},
            "map": self.map,
            "tags": list(b.tags),
            "aliases": list(b.aliases),
            "kernels": [m.to_dict() for m in self.members],
        }


def _describe_kernel(kernel: Kernel, convolve: bool) -> KernelInfo:
    matrix = kernel.weights[::-1, ::-1] if convolve else kernel.weights
    matrix = np.ascontiguousarray(matrix)
    matrix.setflags(write=False)
    scale = float(np.abs(matrix).sum())
    raw_total = float(matrix.sum())
    zero_sum = abs(raw_total) <= _RTOL * scale
    total = 0.0 if zero_sum else raw_total
    rank = matrix_rank(matrix)
    kh, kw = matrix.shape
    return KernelInfo(
        kernel=kernel,
        convolve=convolve,
        matrix=matrix,
        total=total,
        normalized=abs(total - 1.0) <= _RTOL,
        zero_sum=zero_sum,
        rank=rank,
        factors=rank1_factors(matrix) if rank == 1 else None,
        anchor=((kh - 1) // 2, (kw - 1) // 2),
        response={bits: response_range(matrix, kernel.offset, bits=bits) for bits in (8, 16)},
        map=auto_map(matrix, kernel.map),
    )


def describe(item: Kernel | Bank, *, convolve: bool = False) -> KernelInfo | BankInfo:
    """Describe a kernel (or every member of a bank) as ``convcli apply`` would use it.

    >>> from convcli.kernels import resolve_spec
    >>> info = describe(resolve_spec("sobel-x"), convolve=True)
    >>> info.matrix[0].tolist(), info.zero_sum, info.rank
    ([1.0, 0.0, -1.0], True, 1)
    >>> lo, hi = describe(resolve_spec("sobel")).response[8]     # sqrt(1020^2 + 1020^2)
    >>> lo, round(hi, 2)
    (0.0, 1442.5)
    """
    if isinstance(item, Kernel):
        return _describe_kernel(item, convolve)
    members = tuple(_describe_kernel(k, convolve) for k in item.kernels)
    response = None
    if item.combine != "stack":
        out = {}
        for bits in (8, 16):
            peaks = [max(abs(m.response[bits][0]), abs(m.response[bits][1])) for m in members]
            if item.combine == "magnitude":
                top = float(np.sqrt(np.sum(np.square(peaks))))
            elif item.combine == "max":
                top = max(peaks)
            else:
                top = float(np.sum(peaks))
            out[bits] = (item.offset + 0.0, top + item.offset)
        response = out
    return BankInfo(
        bank=item,
        convolve=convolve,
        members=members,
        response=response,
        map=item.map or ("clip" if item.combine != "stack" else members[0].map),
    )
