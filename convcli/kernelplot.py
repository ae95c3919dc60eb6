"""A kernel as a small picture: a heat map with the values written in the cells (Pillow only).

Colours are diverging around 0: red for positive weights, blue for negative
ones, white for 0, with the same scale (the largest ``|weight|``) for every
cell, so a non-negative kernel (a blur) is white to red and a signed one
(an edge detector) shows both. The tap that sits over the output pixel (the
anchor) is outlined. A bank is drawn as its members side by side, on one
colour scale.

:func:`plot` returns a ``PIL.Image.Image``; it writes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .banks import Bank
from .kernelinfo import BankInfo, KernelInfo, describe
from .kernels import Kernel

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image as PILImage

__all__ = ["NEGATIVE", "POSITIVE", "ZERO", "colour", "plot"]

#: the ends and the middle of the diverging scale (ColorBrewer RdBu)
NEGATIVE = (33, 102, 172)
ZERO = (255, 255, 255)
POSITIVE = (178, 24, 43)
_GRID = (200, 200, 200)
_INK = (30, 30, 30)
_MAX_GRID_PX = 640


def colour(value: float, span: float) -> tuple[int, int, int]:
    """The cell colour of ``value`` on a scale running from ``-span`` to ``+span``.

    >>> colour(0, 1), colour(1, 1), colour(-1, 1)
    ((255, 255, 255), (178, 24, 43), (33, 102, 172))
    """
    t = 0.0 if span <= 0 else max(-1.0, min(1.0, value / span))
    end = POSITIVE if t >= 0 else NEGATIVE
    a = abs(t)
    return tuple(int(round(z + (e - z) * a)) for z, e in zip(ZERO, end, strict=True))  # type: ignore[return-value]


def _font(size: int):  # noqa: ANN202 - a Pillow font
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _text_width(draw, text: str, font) -> float:  # noqa: ANN001
    return draw.textlength(text, font=font)


def _cell_text(value: float, room: float, draw, font) -> str | None:  # noqa: ANN001
    if value == 0:
        candidates = ["0"]
    elif float(value).is_integer() and abs(value) < 1e6:
        candidates = [str(int(value))]
    else:
        candidates = [f"{value:.{d}g}" for d in (4, 3, 2, 1)] + [f"{value:.1e}", f"{value:.0e}"]
        candidates = [c.replace("e-0", "e-").replace("e+0", "e") for c in candidates]
    for text in candidates:
        if _text_width(draw, text, font) <= room:
            return text
    return None


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e9 else f"{v:.4g}"


def _panel_size(info: KernelInfo, cell: int) -> tuple[int, int]:
    h, w = info.matrix.shape
    return w * cell, h * cell


def _draw_panel(draw, x0: int, top: int, info: KernelInfo, cell: int, span: float, font) -> None:  # noqa: ANN001
    h, w = info.matrix.shape
    for r in range(h):
        for c in range(w):
            v = float(info.matrix[r, c])
            fill = colour(v, span)
            box = (x0 + c * cell, top + r * cell, x0 + (c + 1) * cell - 1, top + (r + 1) * cell - 1)
            draw.rectangle(box, fill=fill, outline=_GRID if cell >= 6 else None)
            if cell >= 20:
                text = _cell_text(v, cell - 6, draw, font)
                if text is not None:
                    lum = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
                    ink = (255, 255, 255) if lum < 140 else _INK
                    draw.text(
                        ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), text, fill=ink, font=font, anchor="mm"
                    )
    ar, ac = info.anchor
    draw.rectangle(
        (x0 + ac * cell, top + ar * cell, x0 + (ac + 1) * cell - 1, top + (ar + 1) * cell - 1),
        outline=_INK,
        width=max(1, min(3, cell // 12)),
    )


def plot(item: Kernel | Bank | KernelInfo | BankInfo, *, convolve: bool = False) -> PILImage.Image:
    """Render the effective kernel (or every member of a bank) as an RGB heat map.

    >>> from convcli.kernels import resolve_spec
    >>> img = plot(resolve_spec("sobel-x"))
    >>> img.mode, img.size[0] >= 192
    ('RGB', True)
    """
    from PIL import Image, ImageDraw

    info = item if isinstance(item, (KernelInfo, BankInfo)) else describe(item, convolve=convolve)
    panels = list(info.members) if isinstance(info, BankInfo) else [info]
    span = max(float(np.max(np.abs(p.matrix))) for p in panels) or 1.0
    side = max(max(p.matrix.shape) for p in panels)
    cell = int(max(2, min(72, _MAX_GRID_PX // side)))
    font = _font(max(9, min(18, int(cell * 0.27))))
    title_font = _font(14)
    margin, gap = 14, 28
    sizes = [_panel_size(p, cell) for p in panels]
    grid_w = sum(w for w, _ in sizes) + gap * (len(panels) - 1)
    grid_h = max(h for _, h in sizes)
    width = max(grid_w, 260) + 2 * margin
    heading = 24
    height = margin + heading + (22 if len(panels) > 1 else 0) + grid_h + 16 + 12 + 18 + margin
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)

    # heading: what is drawn
    if isinstance(info, BankInfo):
        title = f"{info.bank.name}: {info.bank.summary()}"
    else:
        total = "0" if info.zero_sum else f"{info.total:.6g}"
        label = info.kernel.spec if info.kernel.source == "generated" else info.kernel.name
        title = f"{label}  {info.matrix.shape[0]}x{info.matrix.shape[1]}  sum {total}"
    title += "  (convolve: rotated 180 degrees)" if info.convolve else ""
    draw.text((margin, margin), title, fill=_INK, font=title_font)

    x = margin
    grid_top = margin + heading + (22 if len(panels) > 1 else 0)
    for p, (w, _) in zip(panels, sizes, strict=True):
        if len(panels) > 1:
            draw.text((x, margin + heading), p.kernel.name, fill=_INK, font=title_font)
        _draw_panel(draw, x, grid_top, p, cell, span, font)
        x += w + gap

    # colour bar: -span .. 0 .. +span
    bar_top = grid_top + grid_h + 16
    bar_w = width - 2 * margin
    for i in range(bar_w):
        v = (2.0 * i / max(1, bar_w - 1) - 1.0) * span
        draw.line((margin + i, bar_top, margin + i, bar_top + 11), fill=colour(v, span))
    small = _font(12)
    label_y = bar_top + 14
    draw.text((margin, label_y), _fmt(-span), fill=_INK, font=small)
    draw.text((margin + bar_w / 2, label_y), "0", fill=_INK, font=small, anchor="ma")
    draw.text((margin + bar_w, label_y), _fmt(span), fill=_INK, font=small, anchor="ra")
    return img
