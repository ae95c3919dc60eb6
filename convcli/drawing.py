"""Pictures of a convolution at work (Pillow only): the sliding-window animation.

:func:`slide_frames` draws one frame per output position of an
:class:`~convcli.explain.Explanation`: the (padded) input grid with the current
patch highlighted and each tap's weight written in its corner, the output grid
filling in cell by cell, and the sum of the products written under it, as in
Dumoulin & Visin's convolution-arithmetic animations but with the numbers.
Each :class:`Frame` also carries the numbers it shows, so tests can check them.

Colours: input cells pale blue, padding grey, the patch orange; output cells on
the diverging scale of :mod:`convcli.kernelplot` (blue negative, white 0, red
positive). Nothing here writes files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .explain import Explanation, number_text, sum_text
from .kernelplot import _INK, _font, colour

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image as PILImage

__all__ = ["Frame", "slide_frames", "gif_bytes", "strip", "INPUT_FILL", "PAD_FILL", "PATCH_FILL", "PATCH_EDGE"]

INPUT_FILL = (222, 235, 247)
PAD_FILL = (225, 225, 225)
PATCH_FILL = (253, 208, 162)
PATCH_EDGE = (217, 72, 1)
_GRID = (150, 150, 150)
_PAD_INK = (120, 120, 120)
_WHITE = (255, 255, 255)


@dataclass(frozen=True, eq=False)
class Frame:
    """One frame: the picture and the numbers drawn in it."""

    image: PILImage.Image
    #: the output position this frame computes
    index: tuple[int, int]
    #: the output grid as drawn: values filled in so far, NaN where still empty
    shown: np.ndarray
    #: the text under the output grid
    text: tuple[str, ...]
    #: pixel boxes (x0, y0, x1, y1) of every input-grid cell and output cell, for tests
    input_boxes: dict[tuple[int, int], tuple[int, int, int, int]]
    output_boxes: dict[tuple[int, int], tuple[int, int, int, int]]


def _wrap(text: str, width_px: int, draw, font) -> list[str]:  # noqa: ANN001
    words = text.split(" ")
    lines, line = [], ""
    for word in words:
        trial = f"{line} {word}" if line else word
        if line and draw.textlength(trial, font=font) > width_px:
            lines.append(line)
            line = "    " + word
        else:
            line = trial
    lines.append(line)
    return lines


def _fit_text(text: str, room: float, draw, font) -> str:  # noqa: ANN001
    if draw.textlength(text, font=font) <= room:
        return text
    while len(text) > 1 and draw.textlength(text + "…", font=font) > room:
        text = text[:-1]
    return text + "…"


def slide_frames(e: Explanation, *, cell: int | None = None) -> list[Frame]:
    """One frame per output position, row by row; every frame has the same size."""
    from PIL import Image, ImageDraw

    grid = e.padded_input
    mask = e.padded_mask
    out = e.output
    gh, gw = grid.shape
    oh, ow = out.shape
    if cell is None:
        cell = int(max(22, min(44, 560 // max(gh, gw, 1))))
    font = _font(max(9, min(16, int(cell * 0.36))))
    small = _font(max(8, min(11, int(cell * 0.26))))
    title = _font(14)
    margin, gap, head = 16, 40, 26
    in_w, in_h = gw * cell, gh * cell
    out_w, out_h = ow * cell, oh * cell
    width = max(margin * 2 + in_w + gap + out_w, 420)
    span = float(np.max(np.abs(out))) or 1.0

    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    texts = []
    for p in e.positions():
        r, c = p.index
        where = f"y[{c}]" if e.one_d else f"output[{r}, {c}]"
        texts.append(_wrap(f"{where} = {sum_text(p)}", width - 2 * margin, probe, font))
    text_lines = max(len(t) for t in texts)
    line_h = int(font.size * 1.35) if hasattr(font, "size") else 14
    grids_h = max(in_h, out_h)
    height = margin + head + grids_h + 14 + text_lines * line_h + margin

    x_in, y0 = margin, margin + head
    x_out = margin + in_w + gap
    in_boxes = {
        (r, c): (x_in + c * cell, y0 + r * cell, x_in + (c + 1) * cell - 1, y0 + (r + 1) * cell - 1)
        for r in range(gh)
        for c in range(gw)
    }
    out_boxes = {
        (r, c): (x_out + c * cell, y0 + r * cell, x_out + (c + 1) * cell - 1, y0 + (r + 1) * cell - 1)
        for r in range(oh)
        for c in range(ow)
    }
    (top, _), (left, _) = e.pads
    shown = np.full(out.shape, np.nan)
    frames = []
    for p, lines in zip(e.positions(), texts, strict=True):
        r, c = p.index
        shown[r, c] = out[r, c]
        img = Image.new("RGB", (width, height), _WHITE)
        draw = ImageDraw.Draw(img)
        op = "convolve (kernel rotated 180 degrees)" if e.convolve else "correlate"
        draw.text((x_in, margin), f"input{' (padded)' if e.has_padding else ''}", fill=_INK, font=title)
        draw.text((x_out, margin), "output", fill=_INK, font=title)
        draw.text((width - margin, margin), op, fill=_PAD_INK, font=small, anchor="ra")
        taps = {(rr + top, cc + left): (i, j) for i, rr in enumerate(p.rows) for j, cc in enumerate(p.cols)}
        for (gr, gc), box in in_boxes.items():
            tap = taps.get((gr, gc))
            pad = bool(mask[gr, gc])
            fill = PATCH_FILL if tap is not None else (PAD_FILL if pad else INPUT_FILL)
            draw.rectangle(box, fill=fill, outline=_GRID)
            text = _fit_text(number_text(grid[gr, gc]), cell - 4, draw, font)
            draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2 + (3 if tap is not None else 0)), text,
                      fill=_PAD_INK if pad else _INK, font=font, anchor="mm")
            if tap is not None:
                weight = _fit_text("x" + number_text(e.weights[tap]), cell - 4, draw, small)
                draw.text((box[0] + 2, box[1] + 1), weight, fill=PATCH_EDGE, font=small)
        for (i, j) in taps.values():
            gr, gc = p.rows[i] + top, p.cols[j] + left
            draw.rectangle(in_boxes[(gr, gc)], outline=PATCH_EDGE, width=2)
        for (orow, ocol), box in out_boxes.items():
            v = shown[orow, ocol]
            if np.isnan(v):
                draw.rectangle(box, fill=_WHITE, outline=_GRID)
                continue
            fill = colour(float(v), span)
            draw.rectangle(box, fill=fill, outline=_GRID)
            lum = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
            text = _fit_text(number_text(v), cell - 4, draw, font)
            draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), text,
                      fill=_WHITE if lum < 140 else _INK, font=font, anchor="mm")
        draw.rectangle(out_boxes[(r, c)], outline=PATCH_EDGE, width=3)
        ty = y0 + grids_h + 14
        for k, line in enumerate(lines):
            draw.text((margin, ty + k * line_h), line, fill=_INK, font=font)
        frames.append(Frame(img, (r, c), shown.copy(), tuple(lines), in_boxes, out_boxes))
    return frames


def gif_bytes(frames: list[Frame], *, ms: int = 900, last_ms: int = 2500) -> bytes:
    """The frames as a looping GIF (one GIF frame per output position)."""
    images = [f.image.convert("P", palette=1, colors=255) for f in frames]  # 1: ADAPTIVE
    durations = [ms] * (len(images) - 1) + [last_ms]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                   optimize=False, disposal=1)
    return buf.getvalue()


def strip(frames: list[Frame], *, per_row: int = 4, gap: int = 8) -> PILImage.Image:
    """Every frame in one picture, row by row, ``per_row`` frames to a row."""
    from PIL import Image

    w, h = frames[0].image.size
    cols = min(per_row, len(frames))
    rows = -(-len(frames) // cols)
    sheet = Image.new("RGB", (cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap), (190, 190, 190))
    for i, f in enumerate(frames):
        sheet.paste(f.image, ((i % cols) * (w + gap), (i // cols) * (h + gap)))
    return sheet
