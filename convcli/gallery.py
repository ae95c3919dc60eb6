"""The kernel gallery and the preview contact sheet (Pillow only; nothing is written here).

:func:`gallery` filters one image with several kernels and draws the results
as labelled tiles: the input first, then each kernel's map with the kernel's
name and matrix under it. Signed maps (edge and derivative kernels, emboss) use
the diverging colour scale of :mod:`convcli.kernelplot` (blue negative, white
0, red positive) so the sign stays visible; other maps are grey.

:func:`contact_sheet` draws rows of thumbnails (an input and its feature maps),
capped in size, for ``apply --preview``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .banks import Bank, apply_bank
from .engine import correlate
from .errors import ParameterError
from .explain import number_text
from .kernelplot import NEGATIVE, POSITIVE, ZERO, _INK, _font
from .kernels import Kernel
from .output import auto_map, map_values

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image as PILImage

__all__ = [
    "DEFAULT_KERNELS",
    "GALLERY_MAPS",
    "Tile",
    "Sheet",
    "diverging",
    "grey_input",
    "to_display",
    "gallery_tiles",
    "draw_tiles",
    "gallery",
    "contact_sheet",
]

#: the gallery's kernels when none are given (``sobel`` is the gradient-magnitude bank)
DEFAULT_KERNELS = (
    "identity",
    "sobel-x",
    "sobel-y",
    "sobel",
    "box-blur",
    "gaussian-blur",
    "sharpen",
    "laplacian",
    "emboss",
)
#: ``auto`` picks per tile: ``diverging`` for signed maps, ``clip`` (grey) for the rest
GALLERY_MAPS = ("auto", "diverging", "clip", "abs", "offset", "rescale")
_BACKGROUND = (255, 255, 255)
_LABEL_ROWS = 7


def diverging(values: np.ndarray, span: float | None = None) -> np.ndarray:
    """Signed values as RGB uint8: blue below 0, white at 0, red above, on ``-span..span``.

    ``span`` defaults to the 99.5th percentile of ``|values|`` (a few extreme
    pixels do not wash the rest out). The same colours as :func:`convcli.kernelplot.colour`.

    >>> diverging(np.array([[-1.0, 0.0, 1.0]]), 1.0)[0].tolist()
    [[33, 102, 172], [255, 255, 255], [178, 24, 43]]
    """
    v = np.asarray(values, dtype=np.float64)
    if span is None:
        span = float(np.percentile(np.abs(v), 99.5)) if v.size else 0.0
        span = span or float(np.max(np.abs(v), initial=0.0))
    t = np.clip(v / span, -1.0, 1.0) if span > 0 else np.zeros_like(v)
    zero = np.array(ZERO, dtype=np.float64)
    end = np.where(t[..., None] >= 0, np.array(POSITIVE, dtype=np.float64), np.array(NEGATIVE, dtype=np.float64))
    rgb = zero + (end - zero) * np.abs(t)[..., None]
    return np.rint(rgb).astype(np.uint8)


def grey_input(data: np.ndarray, bits: int | None) -> np.ndarray:
    """The image as one float32 channel on the 0-255 scale (luminance for colour, ITU-R 601)."""
    x = np.asarray(data, dtype=np.float32)
    if x.ndim == 3:
        if x.shape[2] >= 3:
            x = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
        else:
            x = x[..., 0]
    if bits == 16:
        x = x / np.float32(257.0)
    return np.ascontiguousarray(x, dtype=np.float32)


def _shrink(x: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale a float image so that its longer side is at most ``max_side`` (area average)."""
    from PIL import Image

    h, w = x.shape[:2]
    if max(h, w) <= max_side:
        return x
    f = max_side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    if x.ndim == 2:
        return np.asarray(Image.fromarray(np.ascontiguousarray(x, dtype=np.float32)).resize(size, Image.Resampling.BOX))
    return np.stack([_shrink(x[..., c], max_side) for c in range(x.shape[2])], axis=2)


def to_display(values: np.ndarray, how: str) -> np.ndarray:
    """A map as uint8 grey (H, W) or RGB (H, W, 3): ``diverging``, or an output map (clip, abs, ...)."""
    v = np.asarray(values)
    if how == "diverging":
        if v.ndim == 3:
            v = v.mean(axis=2)
        return diverging(v)
    return map_values(v.astype(np.float32), how, np.uint8).data


@dataclass(frozen=True, eq=False)
class Tile:
    """One labelled picture of a gallery or sheet."""

    title: str
    #: uint8 (H, W) grey or (H, W, 3) RGB
    pixels: np.ndarray
    #: lines drawn under the title (a kernel's matrix, a map's name)
    lines: tuple[str, ...] = ()
    #: how the values were turned into pixels
    map: str = ""


def _matrix_lines(item: Kernel | Bank) -> tuple[str, ...]:
    if isinstance(item, Bank):
        return (item.summary(),)
    m = item.matrix
    if max(m.shape) > _LABEL_ROWS:
        return (f"{m.shape[0]}x{m.shape[1]} matrix",)
    cells = [[number_text(v) for v in row] for row in m]
    w = max(len(c) for row in cells for c in row)
    lines = ["  ".join(c.rjust(w) for c in row) for row in cells]
    if item.scale_text != "1":
        lines[-1] += f"   x {item.scale_text}"
    if item.offset:
        lines[-1] += f"   + {number_text(item.offset)}"
    return tuple(lines)


def _tile_map(item: Kernel | Bank, values: np.ndarray, requested: str) -> str:
    if requested != "auto":
        return requested
    if isinstance(item, Bank):
        return "rescale" if item.combine != "stack" else "diverging"
    if item.offset or auto_map(item.weights, item.map) in ("abs", "offset"):
        return "diverging"
    return "clip"


def gallery_tiles(
    data: np.ndarray,
    items: list[Kernel | Bank],
    *,
    bits: int | None = 8,
    map_: str = "auto",
    max_side: int = 256,
    border: str = "reflect",
) -> list[Tile]:
    """The input (shrunk to ``max_side``), then each kernel's map of its grey version."""
    if map_ not in GALLERY_MAPS:
        raise ParameterError(f"--map: {map_!r} is not one of {', '.join(GALLERY_MAPS)}")
    if not items:
        raise ParameterError("the gallery needs at least one kernel")
    colour_in = np.asarray(data, dtype=np.float32)
    if bits == 16:
        colour_in = colour_in / np.float32(257.0)
    small = _shrink(colour_in, max_side)
    grey = grey_input(small, None)
    shown = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    if shown.ndim == 3 and shown.shape[2] not in (3,):
        shown = shown[..., 0]
    h, w = grey.shape
    tiles = [Tile("input", shown, (f"{h}x{w}, filtered as grey",), "")]
    for item in items:
        if isinstance(item, Bank):
            values = apply_bank(grey, item, padding="same", border=border)
            if values.ndim == 3:  # a stacked bank: show the first member's sign
                values = values[..., 0]
        else:
            values = correlate(grey, item.weights, padding="same", border=border)
        how = _tile_map(item, values, map_)
        if isinstance(item, Kernel) and item.offset and how != "diverging":
            values = values + np.float32(item.offset)  # a diverging map shows the sign around 0 instead
        tiles.append(Tile(item.name, to_display(values, how), _matrix_lines(item), how))
    return tiles


@dataclass(frozen=True, eq=False)
class Sheet:
    """A drawn gallery or contact sheet, with where each tile went (for tests)."""

    image: PILImage.Image
    #: (x0, y0, x1, y1) of each tile's picture, in order
    boxes: tuple[tuple[int, int, int, int], ...]
    #: (x0, y0, x1, y1) of each tile's label area
    label_boxes: tuple[tuple[int, int, int, int], ...]


def draw_tiles(tiles: list[Tile], *, columns: int | None = None, title: str = "", footer: str = "") -> Sheet:
    """Tiles in a grid, each picture with its title and lines under it."""
    from PIL import Image, ImageDraw

    n = len(tiles)
    cols = columns or max(1, min(n, int(np.ceil(np.sqrt(n)))))
    rows = -(-n // cols)
    tw = max(t.pixels.shape[1] for t in tiles)
    th = max(t.pixels.shape[0] for t in tiles)
    name_font, line_font = _font(14), _font(11)
    line_h = 14
    label_h = 20 + line_h * max(len(t.lines) for t in tiles) + 6
    gap, margin = 14, 16
    head = 26 if title else 0
    foot = 22 if footer else 0
    cell_w = max(tw, 150)
    width = margin * 2 + cols * cell_w + (cols - 1) * gap
    height = margin * 2 + head + rows * (th + label_h) + (rows - 1) * gap + foot
    img = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((margin, margin), title, fill=_INK, font=name_font)
    boxes, label_boxes = [], []
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        x0 = margin + c * (cell_w + gap)
        y0 = margin + head + r * (th + label_h + gap)
        pic = Image.fromarray(np.ascontiguousarray(t.pixels)).convert("RGB")
        img.paste(pic, (x0, y0))
        boxes.append((x0, y0, x0 + pic.width - 1, y0 + pic.height - 1))
        ly = y0 + th + 4
        label = t.title + (f"  ({t.map})" if t.map else "")
        draw.text((x0, ly), _fit(label, cell_w, draw, name_font), fill=_INK, font=name_font)
        for k, line in enumerate(t.lines):
            draw.text((x0, ly + 20 + k * line_h), _fit(line, cell_w, draw, line_font), fill=_INK, font=line_font)
        label_boxes.append((x0, ly, x0 + cell_w - 1, ly + label_h - 5))
    if footer:
        draw.text((margin, height - margin - 14), footer, fill=_INK, font=line_font)
    return Sheet(img, tuple(boxes), tuple(label_boxes))


def _fit(text: str, room: float, draw, font) -> str:  # noqa: ANN001
    if draw.textlength(text, font=font) <= room:
        return text
    while len(text) > 1 and draw.textlength(text + "...", font=font) > room:
        text = text[:-1]
    return text + "..."


def gallery(
    data: np.ndarray,
    items: list[Kernel | Bank],
    *,
    bits: int | None = 8,
    map_: str = "auto",
    max_side: int = 256,
    title: str = "",
) -> Sheet:
    """The input and its map through every kernel, as one labelled picture."""
    tiles = gallery_tiles(data, items, bits=bits, map_=map_, max_side=max_side)
    footer = "signed maps: blue negative, white 0, red positive" if any(t.map == "diverging" for t in tiles) else ""
    return draw_tiles(tiles, title=title, footer=footer)


def contact_sheet(
    rows: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray]]]],
    *,
    thumb: int = 160,
    max_rows: int = 12,
    max_maps: int = 8,
) -> Sheet:
    """One row per input: its thumbnail, then its feature maps' thumbnails (already uint8).

    At most ``max_rows`` inputs and ``max_maps`` maps each are drawn; the rest are counted
    in the footer, so the sheet stays small however large the batch.
    """
    tiles: list[Tile] = []
    shown_rows = rows[:max_rows]
    cols = 1 + max((min(len(maps), max_maps) for _, _, maps in shown_rows), default=0)
    left_out = len(rows) - len(shown_rows)
    hidden_maps = sum(max(0, len(maps) - max_maps) for _, _, maps in shown_rows)
    blank = np.full((thumb, thumb), 255, dtype=np.uint8)
    for name, pixels, maps in shown_rows:
        tiles.append(Tile(name, _thumb(pixels, thumb)))
        for label, m in maps[:max_maps]:
            tiles.append(Tile(label, _thumb(m, thumb)))
        tiles += [Tile("", blank)] * (cols - 1 - min(len(maps), max_maps))
    notes = []
    if left_out:
        notes.append(f"{left_out} more input{'s' if left_out > 1 else ''} not shown")
    if hidden_maps:
        notes.append(f"{hidden_maps} more map{'s' if hidden_maps > 1 else ''} not shown")
    return draw_tiles(tiles, columns=cols, footer="; ".join(notes))


def _thumb(pixels: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(pixels))
    img.thumbnail((side, side), Image.Resampling.BOX)
    factor = side // max(img.size)
    if factor > 1:  # a small array: show its cells as blocks
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    return np.asarray(img)
