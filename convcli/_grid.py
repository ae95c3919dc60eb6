"""Pictures of a layer: every feature map as a labelled tile, and the filters themselves.

Pure: arrays in, an RGB ``uint8`` array out (Pillow draws the labels; nothing is written).

Feature maps (:func:`feature_grid`): each map is normalised on its own. A map with values of
both signs uses a diverging colour map, blue for negative, white for zero, red for
positive, scaled by the map's largest ``|value|`` (so zero is always white); a map of one
sign is grey, black at its minimum and white at its maximum; a constant map is mid-grey.
Tiles are the map's size, shrunk (area average) so that the long side is at most
``max_tile`` pixels (less when there are so many maps that the picture would be wider than
:data:`MAX_WIDTH`), or enlarged (nearest neighbour) to at least ``min_tile``.

Filters (:func:`filter_picture`): a filter over 3 input channels is one RGB tile (the
weights of the R, G and B inputs as the tile's colours, mid-grey for zero, scaled by the
filter's largest ``|weight|``); a filter over one channel (depthwise) is one diverging tile;
other filters are a row of diverging tiles, one per input channel. Each label is the output
channel's index.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["DIVERGING", "diverging_lut", "feature_grid", "filter_picture"]

#: the diverging colour map's ends and middle (ColorBrewer RdBu's blue and red, white at zero)
DIVERGING = ((33, 102, 172), (255, 255, 255), (178, 24, 43))
_BACKGROUND = (48, 48, 48)
_TEXT = (235, 235, 235)
_LABEL = 14
_GAP = 4
_MARGIN = 6
#: the grid of feature maps is kept about this wide, whatever the number of maps
MAX_WIDTH = 4096


def diverging_lut() -> np.ndarray:
    """255 RGB colours for -1..1: index 0 is -1 (blue), 127 is 0 (white), 254 is +1 (red).

    >>> lut = diverging_lut()
    >>> lut[0].tolist(), lut[127].tolist(), lut[254].tolist()
    ([33, 102, 172], [255, 255, 255], [178, 24, 43])
    """
    t = np.linspace(-1.0, 1.0, 255)[:, None]
    lo, mid, hi = (np.array(c, dtype=np.float64) for c in DIVERGING)
    rgb = np.where(t < 0, mid + (lo - mid) * -t, mid + (hi - mid) * t)
    return np.rint(rgb).astype(np.uint8)


def _normalise(m: np.ndarray) -> tuple[np.ndarray, bool]:
    """(values in -1..1 for a signed map or 0..1 otherwise, signed?)"""
    m = m.astype(np.float64, copy=False)
    lo, hi = float(m.min()), float(m.max())
    if lo < 0 < hi:
        return m / max(-lo, hi), True
    if hi == lo:
        return np.full(m.shape, 0.5), False
    return (m - lo) / (hi - lo), False


def _tile_size(h: int, w: int, max_tile: int, min_tile: int) -> tuple[int, int]:
    long = max(h, w)
    if long > max_tile:
        f = max_tile / long
        return max(1, round(h * f)), max(1, round(w * f))
    if long < min_tile:
        f = math.ceil(min_tile / long)
        return h * f, w * f
    return h, w


def _resize(t: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if t.shape == size:
        return t
    img = Image.fromarray(np.ascontiguousarray(t, dtype=np.float32))  # mode F
    shrink = size[0] < t.shape[0]
    method = Image.Resampling.BOX if shrink else Image.Resampling.NEAREST
    return np.asarray(img.resize((size[1], size[0]), method), dtype=np.float64)


def _lut_index(t: np.ndarray) -> np.ndarray:
    """-1..1 -> 0..254 (0 exactly at 127)."""
    return np.clip(np.rint((t + 1.0) * 127.0), 0, 254).astype(np.uint8)


def _colour(t: np.ndarray, signed: bool) -> np.ndarray:
    if signed:
        return diverging_lut()[_lut_index(t)]
    g = np.clip(np.rint(t * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def _canvas(tiles: list[np.ndarray], labels: list[str], columns: int, legend: list[str]) -> np.ndarray:
    """Tiles (all the same size) in a grid under their labels, with legend lines below."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    th, tw = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    cell_w, cell_h = tw + _GAP, th + _LABEL + _GAP
    legend_h = 13 * len(legend) + (_GAP if legend else 0)
    text_w = max((int(font.getlength(line)) for line in legend), default=0)
    width = max(columns * cell_w - _GAP, text_w) + 2 * _MARGIN
    height = rows * cell_h - _GAP + legend_h + 2 * _MARGIN
    img = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(img)
    for n, (tile, label) in enumerate(zip(tiles, labels)):
        r, c = divmod(n, columns)
        x, y = _MARGIN + c * cell_w, _MARGIN + r * cell_h
        draw.text((x + 1, y), label, fill=_TEXT, font=font)
        img.paste(Image.fromarray(tile), (x, y + _LABEL))
    y = _MARGIN + rows * cell_h
    for line in legend:
        draw.text((_MARGIN, y), line, fill=_TEXT, font=font)
        y += 13
    return np.asarray(img)


def feature_grid(maps: np.ndarray, *, max_tile: int = 256, min_tile: int = 64, columns: int | None = None) -> np.ndarray:
    """Every map of ``maps`` (H, W, C) as a labelled tile in one RGB picture (uint8).

    >>> maps = np.zeros((5, 6, 3)); maps[..., 1] = np.arange(6) - 2.0
    >>> pic = feature_grid(maps)
    >>> pic.dtype, pic.shape[2]
    (dtype('uint8'), 3)
    """
    x = np.asarray(maps)
    if x.ndim == 2:
        x = x[:, :, None]
    h, w, n = x.shape
    cols = columns or max(1, math.ceil(math.sqrt(n)))
    # many maps: smaller tiles, so that the picture stays about 4096 pixels wide at most
    max_tile = max(16, min(max_tile, MAX_WIDTH // cols - _GAP))
    size = _tile_size(h, w, max_tile, min(min_tile, max_tile))
    tiles, labels, signed_any, plain_any = [], [], False, False
    for c in range(n):
        t, signed = _normalise(x[:, :, c])
        tiles.append(_colour(_resize(t, size), signed))
        labels.append(str(c))
        signed_any |= signed
        plain_any |= not signed
    legend = [f"{n} feature map(s), {h}x{w}" + (f", shown at {size[0]}x{size[1]}" if size != (h, w) else "")
              + "; each scaled on its own"]
    if signed_any:
        legend.append("blue negative, white zero, red positive: maps of both signs, scaled by their largest |value|")
    if plain_any:
        legend.append("grey: maps of one sign, black at the map's minimum, white at its maximum")
    return _canvas(tiles, labels, cols, legend)


def filter_picture(weights: np.ndarray, *, min_tile: int = 48, max_inputs: int = 32) -> np.ndarray:
    """A picture of a layer's filters, ``weights`` (C_out, C_in/groups, kh, kw): RGB uint8.

    >>> w = np.zeros((2, 3, 3, 3)); w[0, 0, 1, 1] = 1.0; w[1, 2] = -1.0
    >>> pic = filter_picture(w)
    >>> pic.dtype, pic.shape[2]
    (dtype('uint8'), 3)
    """
    w = np.asarray(weights, dtype=np.float64)
    c_out, cig, kh, kw = w.shape
    f = max(1, math.ceil(min_tile / max(kh, kw)))
    tiles, labels = [], []
    shown_inputs = min(cig, max_inputs)
    legend = [f"{c_out} filter(s), {cig}x{kh}x{kw} each (input channels x rows x cols)"]
    if cig == 3:
        for o in range(c_out):
            peak = float(np.max(np.abs(w[o]))) or 1.0
            rgb = np.clip(np.rint((0.5 + 0.5 * w[o] / peak) * 255), 0, 255).astype(np.uint8)
            tiles.append(np.kron(rgb.transpose(1, 2, 0), np.ones((f, f, 1), np.uint8)))
            labels.append(str(o))
        legend.append("colour: the weights on the R, G and B inputs; mid-grey is 0, each filter scaled by its largest |weight|")
        cols = max(1, math.ceil(math.sqrt(c_out)))
        return _canvas(tiles, labels, cols, legend)
    lut = diverging_lut()
    if cig == 1:  # depthwise: one tile per filter, in a square grid
        for o in range(c_out):
            peak = float(np.max(np.abs(w[o]))) or 1.0
            tiles.append(np.kron(lut[_lut_index(w[o, 0] / peak)], np.ones((f, f, 1), np.uint8)))
            labels.append(str(o))
        legend.append("one tile per filter; blue negative, white zero, red positive; each filter scaled by its "
                      "largest |weight|")
        return _canvas(tiles, labels, max(1, math.ceil(math.sqrt(c_out))), legend)
    for o in range(c_out):
        peak = float(np.max(np.abs(w[o]))) or 1.0
        for c in range(shown_inputs):
            tiles.append(np.kron(lut[_lut_index(w[o, c] / peak)], np.ones((f, f, 1), np.uint8)))
            labels.append(f"{o}" if c == 0 else f"{o}.{c}")
    legend.append("one row per filter, one tile per input channel (label filter.channel); "
                  "blue negative, white zero, red positive; each filter scaled by its largest |weight|")
    if shown_inputs < cig:
        legend.append(f"the first {shown_inputs} of {cig} input channels are shown")
    return _canvas(tiles, labels, shown_inputs, legend)
