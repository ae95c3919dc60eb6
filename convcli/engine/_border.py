"""Border modes: canonical names, the other tools' names, and filling padded regions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

#: canonical name -> (pattern shown to users, the numpy.pad mode that matches it)
BORDER_MODES: dict[str, tuple[str, str]] = {
    "zero": ("000|abcd|000", "constant"),
    "constant": ("vvv|abcd|vvv", "constant"),
    "replicate": ("aaa|abcd|ddd", "edge"),
    "reflect": ("cba|abcd|dcb", "symmetric"),
    "reflect101": ("dcb|abcd|cba", "reflect"),
    "wrap": ("bcd|abcd|abc", "wrap"),
}

#: Other tools' names for the same modes. "mirror" is deliberately absent: it
#: means `reflect` in ImageMagick and `reflect101` in SciPy.
BORDER_ALIASES: dict[str, str] = {
    "zeros": "zero",
    "black": "zero",
    "dirichlet": "zero",
    "edge": "replicate",
    "nearest": "replicate",
    "clamp": "replicate",
    "neumann": "replicate",
    "extend": "replicate",
    "border_replicate": "replicate",
    "symmetric": "reflect",
    "grid-mirror": "reflect",
    "half-sample": "reflect",
    "border_reflect": "reflect",
    "reflect-101": "reflect101",
    "reflect_101": "reflect101",
    "border_reflect_101": "reflect101",
    "border_default": "reflect101",
    "whole-sample": "reflect101",
    "tile": "wrap",
    "periodic": "wrap",
    "loop": "wrap",
    "circular": "wrap",
    "grid-wrap": "wrap",
    "border_wrap": "wrap",
}

_AMBIGUOUS = {
    "mirror": "'mirror' means different things: ImageMagick's Mirror is 'reflect' (cba|abcd|dcb), "
    "SciPy's mirror is 'reflect101' (dcb|abcd|cba); say which",
}


@dataclass(frozen=True)
class Border:
    """A border mode with its fill value (used by ``constant`` only)."""

    mode: str = "reflect"
    cval: float = 0.0

    @classmethod
    def parse(cls, text: str | Border) -> Border:
        """Parse ``reflect``, ``edge``, ``constant=128``, ``zero``, ...

        >>> Border.parse("nearest")
        Border(mode='replicate', cval=0.0)
        >>> Border.parse("constant=128")
        Border(mode='constant', cval=128.0)
        """
        if isinstance(text, Border):
            return text
        raw = text.strip()
        name, sep, value = raw.partition("=")
        name = name.strip().lower().replace(" ", "")
        if name in _AMBIGUOUS:
            raise ParameterError(f"border: {_AMBIGUOUS[name]}")
        name = BORDER_ALIASES.get(name, name)
        if name not in BORDER_MODES:
            import difflib

            known = sorted([*BORDER_MODES, *BORDER_ALIASES])
            near = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ParameterError(
                f"border: unknown mode {raw!r}{hint}; use one of {', '.join(BORDER_MODES)}"
            )
        if sep:
            if name != "constant":
                raise ParameterError(f"border: only 'constant' takes a value (constant=V), not {raw!r}")
            try:
                cval = float(value)
            except ValueError:
                raise ParameterError(f"border: constant value {value!r} is not a number") from None
            if not np.isfinite(cval):
                raise ParameterError(f"border: constant value must be finite, got {value!r}")
            return cls("constant", cval)
        if name == "zero":
            return cls("constant", 0.0)
        return cls(name, 0.0)

    def __str__(self) -> str:
        if self.mode == "constant":
            return "zero" if self.cval == 0 else f"constant={self.cval:g}"
        return self.mode


def map_index(idx: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Source index in ``0..n-1`` for virtual indices ``idx`` (any integers) under a border mode.

    ``constant`` has no source outside the image; those entries are returned as -1.
    """
    if mode == "constant":
        return np.where((idx >= 0) & (idx < n), idx, -1)
    if mode == "replicate":
        return np.clip(idx, 0, n - 1)
    if mode == "wrap":
        return np.mod(idx, n)
    if mode == "reflect":
        m = np.mod(idx, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if mode == "reflect101":
        if n == 1:
            return np.zeros_like(idx)
        m = np.mod(idx, 2 * n - 2)
        return np.where(m < n, m, 2 * n - 2 - m)
    raise ValueError(f"unknown border mode {mode!r}")


def fill_region(buf: np.ndarray, x: np.ndarray, row0: int, col0: int, border: Border) -> None:
    """Fill ``buf`` (h, w, C) with rows ``row0..row0+h-1`` and columns ``col0..col0+w-1`` of the
    image ``x`` (H, W, C) extended past its edges by ``border``; converts to ``buf``'s dtype.

    This is how every engine path pads: one small region at a time, never the whole image.
    """
    h, w = buf.shape[:2]
    H, W = x.shape[:2]
    row1, col1 = row0 + h, col0 + w
    a, b = min(max(row0, 0), H), min(max(row1, 0), H)
    c, d = min(max(col0, 0), W), min(max(col1, 0), W)
    inside_rows = a == row0 and b == row1
    inside_cols = c == col0 and d == col1
    if inside_rows and inside_cols:
        np.copyto(buf, x[a:b, c:d], casting="unsafe")
        return
    if border.mode == "constant":
        if a < b and c < d:
            np.copyto(buf[a - row0 : b - row0, c - col0 : d - col0], x[a:b, c:d], casting="unsafe")
        fill = buf.dtype.type(border.cval)
        buf[: max(a - row0, 0)] = fill
        buf[max(b - row0, 0) :] = fill
        buf[:, : max(c - col0, 0)] = fill
        buf[:, max(d - col0, 0) :] = fill
        return
    rows = map_index(np.arange(row0, row1), H, border.mode)
    cols = map_index(np.arange(col0, col1), W, border.mode)
    if col0 <= 0 and col1 >= W:
        # whole width present: copy real columns row by row, then mirror columns inside buf
        left = -col0
        if a < b:
            np.copyto(buf[a - row0 : b - row0, left : left + W], x[a:b], casting="unsafe")
        for t in [*range(0, min(max(a - row0, 0), h)), *range(max(b - row0, a - row0, 0), h)]:
            np.copyto(buf[t, left : left + W], x[rows[t]], casting="unsafe")
        if left:
            buf[:, :left] = buf[:, cols[:left] + left]
        if col1 > W:
            buf[:, left + W :] = buf[:, cols[left + W :] + left]
        return
    np.copyto(buf, x[np.ix_(rows, cols)], casting="unsafe")
