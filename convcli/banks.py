"""Kernel banks: several kernels applied to the same image, their maps combined.

A bank such as ``sobel`` holds ``sobel-x`` and ``sobel-y``. Every member is
correlated with the image (same stride, padding, dilation and border), giving
one float map each, and the maps are combined pixel by pixel:

``magnitude``
    ``sqrt(m1**2 + m2**2 + ...)``: the gradient magnitude (L2 norm).
``max``
    ``max(|m1|, |m2|, ...)``: the strongest response of either sign (L-infinity
    norm); what compass banks use.
``sum``
    ``|m1| + |m2| + ...``: the L1 norm, the classic fast stand-in for the
    magnitude. (The plain signed sum would equal one kernel, the sum of the
    members, so it is never what a bank is for.)
``stack``
    nothing is combined: the maps are kept side by side on a new last axis,
    ``(H, W, K)`` for a single-channel input and ``(H, W, C, K)`` for ``C``
    channels.

Members must share one shape, so that their maps line up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from .errors import KernelError

if TYPE_CHECKING:  # pragma: no cover - typing only; kernels.py imports this module
    from .engine import Border
    from .geometry import PaddingLike, PairLike
    from .kernels import Kernel

__all__ = ["Bank", "COMBINE_MODES", "apply_bank", "combine_maps"]

COMBINE_MODES = ("magnitude", "max", "sum", "stack")


@dataclass(frozen=True, eq=False)
class Bank:
    """A validated, named group of kernels and how to combine their maps."""

    name: str
    kernels: tuple["Kernel", ...]
    combine: str = "magnitude"
    description: str = ""
    #: output map for image files unless --map says otherwise (None: clip, as the
    #: combined maps are never negative; stacked maps use each member's own)
    map: str | None = None
    tags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    #: added to the combined map (after combining)
    offset: float = 0.0
    source: str = "built-in"
    spec: str = ""

    def __post_init__(self) -> None:
        where = f"bank {self.name!r}"
        if self.combine not in COMBINE_MODES:
            raise KernelError(
                f"{where}: combine {self.combine!r} is not one of {', '.join(COMBINE_MODES)}"
            )
        if not self.kernels:
            raise KernelError(f"{where}: needs at least one kernel")
        shapes = {k.shape for k in self.kernels}
        if len(shapes) > 1:
            listed = ", ".join(f"{k.name} {k.shape[0]}x{k.shape[1]}" for k in self.kernels)
            raise KernelError(
                f"{where}: its kernels must share one shape so that their maps line up ({listed})"
            )
        names = [k.name for k in self.kernels]
        if len(set(names)) != len(names):
            raise KernelError(f"{where}: a kernel is listed twice ({', '.join(names)})")
        if not np.isfinite(self.offset):
            raise KernelError(f"{where}: offset must be a finite number")
        if not self.spec:
            object.__setattr__(self, "spec", self.name)

    @property
    def shape(self) -> tuple[int, int]:
        """The members' common kernel shape."""
        return self.kernels[0].shape

    @property
    def member_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.kernels)

    def summary(self) -> str:
        """One line: how the members are combined.

        >>> from convcli.kernels import builtin_registry
        >>> builtin_registry().banks["sobel"].summary()
        'magnitude sqrt(a^2 + b^2) of sobel-x, sobel-y'
        """
        how = {
            "magnitude": "magnitude sqrt(a^2 + b^2)",
            "max": "largest |response| of",
            "sum": "sum of |responses| of",
            "stack": "maps kept side by side:",
        }[self.combine]
        if self.combine == "magnitude" and len(self.kernels) != 2:
            how = "magnitude sqrt(sum of squares)"
        joiner = " of " if self.combine == "magnitude" else " "
        return f"{how}{joiner}{', '.join(self.member_names)}"

    def with_combine(self, combine: str) -> "Bank":
        """The same bank with another combine mode, named ``NAME-MODE``."""
        mode = combine.strip().lower()
        if mode not in COMBINE_MODES:
            raise KernelError(
                f"bank {self.name!r}: combine {combine!r} is not one of {', '.join(COMBINE_MODES)}"
            )
        if mode == self.combine:
            return self
        return replace(self, name=f"{self.name}-{mode}", combine=mode, spec=f"{self.spec}:combine={mode}")

    def to_dict(self) -> dict:
        return {
            "kind": "bank",
            "name": self.name,
            "spec": self.spec,
            "kernels": list(self.member_names),
            "combine": self.combine,
            "shape": list(self.shape),
            "offset": self.offset,
            "map": self.map,
            "tags": list(self.tags),
            "aliases": list(self.aliases),
            "description": self.description,
            "source": self.source,
        }


def combine_maps(maps: list[np.ndarray], how: str) -> np.ndarray:
    """Combine same-shaped float maps; see the module docstring for the modes.

    >>> a, b = np.array([3.0, -1.0]), np.array([-4.0, 0.5])
    >>> combine_maps([a, b], "magnitude"), combine_maps([a, b], "max"), combine_maps([a, b], "sum")
    (array([5.        , 1.11803399]), array([4., 1.]), array([7. , 1.5]))
    >>> combine_maps([a, b], "stack").shape
    (2, 2)
    """
    if how not in COMBINE_MODES:
        raise KernelError(f"combine {how!r} is not one of {', '.join(COMBINE_MODES)}")
    if not maps:
        raise KernelError("no maps to combine")
    if how == "stack":
        return np.stack(maps, axis=-1)
    if how == "magnitude":
        total = np.square(maps[0])
        for m in maps[1:]:
            total += np.square(m)
        return np.sqrt(total, out=total)
    out = np.abs(maps[0])
    for m in maps[1:]:
        if how == "max":
            np.maximum(out, np.abs(m), out=out)
        else:
            out += np.abs(m)
    return out


def apply_bank(
    image: np.ndarray,
    bank: Bank,
    *,
    stride: PairLike = 1,
    padding: PaddingLike = "same",
    dilation: PairLike = 1,
    border: str | Border = "reflect",
    convolve: bool = False,
    engine: str = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """Correlate ``image`` with every member of ``bank`` and combine the maps.

    Each member's own offset is added to its map before combining; the bank's
    offset is added after.

    Returns ``(H', W'[, C])`` for the combining modes, ``(H', W'[, C], K)`` for
    ``stack``, in the engine's float type.

    >>> from convcli.kernels import builtin_registry
    >>> ramp = np.tile(np.arange(6.0) * 10, (6, 1))        # rises by 10 to the right
    >>> float(apply_bank(ramp, builtin_registry().banks["sobel"], padding="valid")[0, 0])
    80.0
    """
    from .engine import correlate

    maps = []
    for kernel in bank.kernels:
        m = correlate(
            image,
            kernel.weights,
            stride=stride,
            padding=padding,
            dilation=dilation,
            border=border,
            convolve=convolve,
            engine=engine,
            threads=threads,
        )
        if kernel.offset:
            m += m.dtype.type(kernel.offset)
        maps.append(m)
    out = combine_maps(maps, bank.combine)
    if bank.offset:
        out += out.dtype.type(bank.offset)
    return out
