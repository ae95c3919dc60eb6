"""Text rendering of :class:`convcli.explain.Explanation` for ``convcli explain``.

Plain text (no colour, no terminal codes), at most ``width`` columns per line:
wide matrices are printed in blocks of columns, long sums are wrapped.
"""

from __future__ import annotations

import numpy as np

from .explain import Explanation, Position, number_text, sum_terms

__all__ = ["explanation_text", "position_text", "all_positions_text"]


def _cells(m: np.ndarray, mask: np.ndarray | None) -> list[list[str]]:
    marked = mask is not None and bool(mask.any())
    rows = []
    for r in range(m.shape[0]):
        row = []
        for c in range(m.shape[1]):
            t = number_text(m[r, c])
            if marked:
                t = f"[{t}]" if mask[r, c] else f"{t} "
            row.append(t)
        rows.append(row)
    return rows


def _grid(m: np.ndarray, mask: np.ndarray | None = None) -> list[str]:
    """Right-aligned columns, unindented."""
    cells = _cells(m, mask)
    w = max(len(t) for row in cells for t in row)
    return ["  ".join(t.rjust(w) for t in row) for row in cells]


def _matrix(m: np.ndarray, indent: str, width: int, mask: np.ndarray | None = None) -> list[str]:
    """The matrix, in blocks of columns when it is wider than ``width``."""
    cells = _cells(m, mask)
    w = max(len(t) for row in cells for t in row)
    per = max(1, (width - len(indent) + 2) // (w + 2))
    cols = m.shape[1]
    if cols <= per:
        return [indent + "  ".join(t.rjust(w) for t in row).rstrip() for row in cells]
    lines = []
    for start in range(0, cols, per):
        stop = min(cols, start + per)
        lines.append(f"{indent}columns {start}..{stop - 1}:")
        lines += [indent + "  ".join(t.rjust(w) for t in row[start:stop]).rstrip() for row in cells]
    return lines


def _wrap(words: list[str], first: str, indent: str, width: int) -> list[str]:
    """Join ``words`` with spaces into lines of at most ``width`` columns."""
    lines, line = [], first
    for word in words:
        if line.strip() and len(line) + 1 + len(word) > width and line != first:
            lines.append(line.rstrip())
            line = indent + word
        else:
            line = f"{line} {word}" if line.strip() else line + word
    lines.append(line.rstrip())
    return lines


def _sum_words(terms: list[str], total: str, offset: float) -> list[str]:
    words = [terms[0]]
    for t in terms[1:]:
        words += ["+", t]
    if offset:
        off = number_text(offset)
        words += ["+", f"({off})" if off.startswith("-") else off, "(offset)"]
    return [*words, "=", total]


def _span(idx: tuple[int, ...]) -> str:
    if len(idx) == 1:
        return str(idx[0])
    step = idx[1] - idx[0]
    return f"{idx[0]}..{idx[-1]}" + (f" step {step}" if step != 1 else "")


def _vector(v: np.ndarray, mask: np.ndarray | None = None) -> str:
    items = []
    for i, x in enumerate(v):
        t = number_text(x)
        items.append(f"[{t}]" if mask is not None and mask[i] else t)
    return "[" + ", ".join(items) + "]"


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def _geometry_lines(e: Explanation) -> list[str]:
    g = e.geometry
    (t, b), (l, r) = g.padding
    rule = g.layer.padding.rule
    rule_text = f"{rule}: " if rule else ""
    if e.one_d:
        return [
            f"stride {g.layer.stride[1]}, dilation {g.layer.dilation[1]}, border {e.border}",
            f"padding {rule_text}before {l}, after {r}",
        ]
    return [
        f"stride {_size(g.layer.stride)}, dilation {_size(g.layer.dilation)}, border {e.border}",
        f"padding {rule_text}top {t}, bottom {b}, left {l}, right {r}",
    ]


def _formula_lines(e: Explanation) -> list[str]:
    g = e.geometry
    height, width_f = g.formulas()
    kh, kw = e.weights.shape
    (dr, dc) = g.layer.dilation
    lines = []
    if e.one_d:
        lines.append("output length  floor((L + before + after - k_eff) / stride) + 1")
        if dc != 1:
            lines.append(f"  k_eff = d*(k-1)+1 = {dc}*({kw}-1)+1 = {g.effective_kernel[1]}")
        lines.append(f"  {width_f}")
        return lines
    lines.append("output size  floor((n + before + after - k_eff) / stride) + 1, per axis")
    if dr != 1 or dc != 1:
        lines.append(f"  k_eff   rows {dr}*({kh}-1)+1 = {g.effective_kernel[0]}, "
                     f"columns {dc}*({kw}-1)+1 = {g.effective_kernel[1]}")
    lines.append(f"  height  {height}")
    lines.append(f"  width   {width_f}")
    return lines


def explanation_text(
    e: Explanation,
    *,
    kernel_name: str,
    written: np.ndarray | None = None,
    scale_text: str = "1",
    width: int = 80,
) -> str:
    """Input, kernel, geometry, padded input, output and the output-size formula.

    ``written`` is the kernel as written when its weights are that times ``scale_text``.
    """
    lines: list[str] = []
    op = "convolve" if e.convolve else "correlate"
    if e.one_d:
        x = e.input[0]
        lines.append(f"input   x = {_vector(x)}  (length {x.size})")
        k = e.kernel[0]
        if written is not None:
            lines.append(f"kernel  {_vector(written[0])} times {scale_text}  ({kernel_name}, length {k.size})")
            lines.append(f"        w = {_vector(k)}")
        else:
            lines.append(f"kernel  w = {_vector(k)}  ({kernel_name}, length {k.size})")
        if e.convolve:
            lines.append(f"flipped w = {_vector(e.weights[0])}  (--convolve: reversed, what each patch is "
                         "multiplied with)")
        else:
            lines.append("        correlate: each patch is multiplied by w as written")
        lines += _geometry_lines(e)
        if e.has_padding:
            lines.append(f"padded  {_vector(e.padded_input[0], e.padded_mask[0])}  "
                         f"([v]: padding from the border mode {e.border}, not in the input)")
        y = e.output[0]
        lines.append(f"output  y = {_vector(y)}  (length {y.size})")
        lines += _formula_lines(e)
        return "\n".join(_fit(lines, width)) + "\n"
    lines.append(f"input  {_size(e.input.shape)}")
    lines += _matrix(e.input, "  ", width)
    lines.append("")
    lines.append(f"kernel  {_size(e.kernel.shape)}  {kernel_name}")
    if written is not None:
        lines += _matrix(written, "  ", width)
        lines.append(f"  times {scale_text} gives the weights:")
    lines += _matrix(e.kernel, "  ", width)
    if e.convolve:
        lines.append("")
        lines.append("flipped  rotated 180 degrees (--convolve): what each patch is multiplied with")
        lines += _matrix(e.weights, "  ", width)
    else:
        lines.append(f"  {op}: each patch is multiplied by the kernel as written")
    lines.append("")
    lines += _geometry_lines(e)
    if e.has_padding:
        lines.append("")
        lines.append(f"padded input  {_size(e.padded_input.shape)}  "
                     f"([v]: padding from the border mode {e.border}, not in the input)")
        lines += _matrix(e.padded_input, "  ", width, e.padded_mask)
    lines.append("")
    lines.append(f"output  {_size(e.output.shape)}")
    lines += _matrix(e.output, "  ", width)
    lines.append("")
    lines += _formula_lines(e)
    return "\n".join(_fit(lines, width)) + "\n"


def _fit(lines: list[str], width: int) -> list[str]:
    """Wrap the odd long prose line at spaces (matrices are already fitted)."""
    out = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip())]
        out += _wrap(line.split(), lead, lead + "  ", width)
    return out


def position_text(e: Explanation, p: Position, *, width: int = 80) -> str:
    """One position: the patch, the kernel, the element-wise products and the sum."""
    row, col = p.index
    total = number_text(p.total)
    if e.one_d:
        where = f"position {col}: x[{_span(p.cols)}] = {_vector(p.patch[0], p.padded[0])}"
        lines = [where]
        if p.padded.any():
            lines.append("  ([v]: padding, not in the input)")
        pairs = [f"{_paren(w)}*{_paren(x)}" for w, x in zip(e.weights[0], p.patch[0], strict=True)]
        words = []
        for i, t in enumerate(pairs):
            words += ([t] if i == 0 else ["+", t])
        words += ["="]
        terms = sum_terms(p)
        words += _sum_words(terms, total, p.offset)
        lines += _wrap(words, f"  y[{col}] =", "      ", width)
        return "\n".join(_fit(lines, width)) + "\n"
    head = f"position ({row}, {col}): input rows {_span(p.rows)}, columns {_span(p.cols)}"
    lines = [head]
    if p.padded.any():
        lines.append(f"  ([v]: padding from the border mode {e.border}, not in the input)")
    patch = _grid(p.patch, p.padded)
    kern = _grid(e.weights)
    prod = _grid(p.products)
    pw, kw_, qw = (max(len(s) for s in g) for g in (patch, kern, prod))
    titles = ("patch", "kernel" if not e.convolve else "flipped kernel", "products")
    side = 2 + max(pw, len(titles[0])) + 5 + max(kw_, len(titles[1])) + 5 + max(qw, len(titles[2]))
    if side <= width:
        cw = [max(pw, len(titles[0])), max(kw_, len(titles[1])), max(qw, len(titles[2]))]
        lines.append("  " + "     ".join(t.ljust(w) for t, w in zip(titles, cw, strict=True)).rstrip())
        mid = len(patch) // 2
        for i, (a, b, c) in enumerate(zip(patch, kern, prod, strict=True)):
            x, eq = ("x", "=") if i == mid else (" ", " ")
            lines.append(f"  {a.rjust(pw).ljust(cw[0])}  {x}  {b.rjust(kw_).ljust(cw[1])}  {eq}  "
                         f"{c.rjust(qw)}".rstrip())
    else:
        for title, grid_m, mask in ((titles[0], p.patch, p.padded), (titles[1], e.weights, None),
                                    (titles[2], p.products, None)):
            lines.append(f"  {title}:")
            lines += _matrix(grid_m, "    ", width, mask)
    lines += _wrap(_sum_words(sum_terms(p), total, p.offset), "  sum =", "        ", width)
    lines.append(f"  output[{row}, {col}] = {total}")
    return "\n".join(_fit(lines, width)) + "\n"


def _paren(v: float) -> str:
    t = number_text(v)
    return f"({t})" if t.startswith("-") else t


def all_positions_text(e: Explanation, *, width: int = 80) -> str:
    """Every position, row by row: where the patch is, its products summed, the output."""
    count = e.output.size
    order = "in order" if e.one_d else "row by row"
    lines = [f"every position ({count}), {order}: the products summed give the output"]
    for p in e.positions():
        row, col = p.index
        if e.one_d:
            first = f"  y[{col}]  x[{_span(p.cols)}]:"
        else:
            first = f"  ({row}, {col})  rows {_span(p.rows)}, columns {_span(p.cols)}:"
        lines += _wrap(_sum_words(sum_terms(p), number_text(p.total), p.offset), first, "      ", width)
    return "\n".join(_fit(lines, width)) + "\n"
