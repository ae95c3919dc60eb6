"""A picture of a stack's geometry, drawn with Pillow.

One panel per layer (the input first), all at the same scale and in input
pixel coordinates: the input image (white) in its padding (grey), the layer's
grid of output units (blue lines, one cell per unit, ``jump`` pixels wide),
the units that one chosen unit of the last layer depends on (orange), and that
unit's receptive field (red outline, unclipped). Builds the image and returns
it; the caller saves it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from PIL import Image, ImageDraw, ImageFont

from .geometry import NetworkGeometry, Pair, effective_kernel

__all__ = ["COLOURS", "Layout", "layout", "draw_network"]

#: Plot area of one panel: the longer side, in image pixels.
PANEL = 280
#: Height of the strip a 1-D panel gets.
STRIP = 40
_TITLE = 16
_GAP = 10
_COLUMNS = 4
_LEGEND = 22
_MIN_CELL = 4  # draw a grid only when its cells are at least this many image pixels wide

COLOURS = {
    "background": (255, 255, 255),
    "padding": (225, 225, 225),
    "image": (255, 255, 255),
    "edge": (60, 60, 60),
    "pixels": (215, 215, 215),
    "grid": (58, 110, 165),
    "cone": (244, 162, 97),
    "cone_padding": (251, 213, 181),
    "field": (214, 39, 40),
    "text": (20, 20, 20),
}

Affine = tuple[Fraction, Fraction]  # unit u is centred at scale * u + offset


def _centre_maps(net: NetworkGeometry) -> list[tuple[Affine, Affine]]:
    """For the input (index 0) and each layer: where its unit ``u`` is centred, per axis,
    in input pixel coordinates (pixel ``p`` is centred at ``p``)."""
    maps = [((Fraction(1), Fraction(0)), (Fraction(1), Fraction(0)))]
    for lg in net.layers:
        axes = []
        for i in range(2):
            scale, offset = maps[-1][i]
            s = lg.layer.stride[i]
            before = lg.padding[i][0]
            half = Fraction(effective_kernel(lg.layer.kernel[i], lg.layer.dilation[i]) - 1, 2)
            if lg.layer.kind == "convtranspose":
                # output o is centred between the inputs i with i*s - before + t*d = o
                axes.append((scale / s, offset + scale * (before - half) / s))
            else:
                axes.append((scale * s, offset + scale * (half - before)))
        maps.append((axes[0], axes[1]))
    return maps


@dataclass(frozen=True)
class Layout:
    """Where things go in the picture; ``point`` maps input coordinates to image pixels."""

    net: NetworkGeometry
    unit: Pair
    maps: list[tuple[Affine, Affine]]
    cone: list
    lo: tuple[float, float]
    zoom: tuple[float, float]
    plot: tuple[int, int]
    columns: int
    size: tuple[int, int]

    @property
    def panels(self) -> int:
        return len(self.net.layers) + 1

    def origin(self, panel: int) -> tuple[int, int]:
        """Top-left image pixel of a panel's plot area."""
        row, col = divmod(panel, self.columns)
        return (col * (self.plot[0] + 2 * _GAP) + _GAP, row * (self.plot[1] + _TITLE + 2 * _GAP) + _GAP + _TITLE)

    def point(self, panel: int, y: float, x: float) -> tuple[float, float]:
        """Image ``(x, y)`` of input coordinate ``(row y, col x)`` in a panel."""
        ox, oy = self.origin(panel)
        return (ox + (x - self.lo[1]) * self.zoom[1], oy + (y - self.lo[0]) * self.zoom[0])

    def cells(
        self, panel: int, first: Pair, last: Pair, *, units_of: int | None = None
    ) -> tuple[float, float, float, float]:
        """Image box ``(x0, y0, x1, y1)`` in ``panel`` covering the units ``first..last`` of
        layer ``units_of`` (default: the panel's own layer; 0 is the input's pixels)."""
        (sy, oy), (sx, ox) = self.maps[panel if units_of is None else units_of]
        y0 = float(sy * first[0] + oy - sy / 2)
        y1 = float(sy * last[0] + oy + sy / 2)
        x0 = float(sx * first[1] + ox - sx / 2)
        x1 = float(sx * last[1] + ox + sx / 2)
        a, b = self.point(panel, y0, x0), self.point(panel, y1, x1)
        return (a[0], a[1], b[0], b[1])


def layout(net: NetworkGeometry, unit: Pair) -> Layout:
    """Compute the layout of :func:`draw_network`'s picture."""
    maps = _centre_maps(net)
    cone = net.cone(unit)
    sizes = [net.input] + [g.output for g in net.layers]
    lo, hi = [], []
    for i in range(2):
        ends = [-0.5, net.input[i] - 0.5]
        for (axes, n) in zip(maps, sizes):
            scale, offset = axes[i]
            ends += [float(offset - scale / 2), float(scale * (n[i] - 1) + offset + scale / 2)]
        if cone[0] is not None:
            ends += [cone[0][i][0] - 0.5, cone[0][i][1] + 0.5]
        lo.append(min(ends))
        hi.append(max(ends))
    span = (hi[0] - lo[0], hi[1] - lo[1])
    if net.ndim == 1:
        zoom = (STRIP / span[0], PANEL / span[1])
    else:
        z = PANEL / max(span)
        zoom = (z, z)
    plot = (math.ceil(span[1] * zoom[1]), math.ceil(span[0] * zoom[0]))
    columns = min(_COLUMNS, len(sizes))
    rows = -(-len(sizes) // columns)
    size = (columns * (plot[0] + 2 * _GAP), rows * (plot[1] + _TITLE + 2 * _GAP) + _LEGEND)
    return Layout(net, unit, maps, cone, (lo[0], lo[1]), zoom, plot, columns, size)


def _title(net: NetworkGeometry, panel: int) -> str:
    if panel == 0:
        return f"input {net.show(net.input)}"
    g = net.layers[panel - 1]
    text = f"{panel} {g.layer.name}: {net.show(g.output)}"
    if g.jump is not None and g.receptive_field is not None:
        text += f"  j {net.show(g.jump)}  r {net.show(g.receptive_field)}"
    return text


def draw_network(net: NetworkGeometry, unit: Pair) -> Image.Image:
    """The picture of ``net`` with unit ``unit`` of its last layer highlighted (RGB)."""
    lay = layout(net, unit)
    img = Image.new("RGB", lay.size, COLOURS["background"])
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    sizes = [net.input] + [g.output for g in net.layers]
    region = lay.cone[0]
    for panel, n in enumerate(sizes):
        ox, oy = lay.origin(panel)
        draw.text((ox, oy - _TITLE + 2), _title(net, panel), fill=COLOURS["text"], font=font)
        draw.rectangle((ox, oy, ox + lay.plot[0] - 1, oy + lay.plot[1] - 1), fill=COLOURS["padding"])
        image_box = lay.cells(panel, (0, 0), (net.input[0] - 1, net.input[1] - 1), units_of=0)
        draw.rectangle(_px(image_box), fill=COLOURS["image"])
        if panel == 0:
            if region is not None:
                draw.rectangle(_px(lay.cells(0, (region[0][0], region[1][0]), (region[0][1], region[1][1]))),
                               fill=COLOURS["cone_padding"])
        spans = lay.cone[panel]
        if spans is not None:
            first = (max(spans[0][0], 0), max(spans[1][0], 0))
            last = (min(spans[0][1], n[0] - 1), min(spans[1][1], n[1] - 1))
            if first[0] <= last[0] and first[1] <= last[1]:
                draw.rectangle(_px(lay.cells(panel, first, last)), fill=COLOURS["cone"])
        _grid(draw, lay, panel, n, COLOURS["pixels"] if panel == 0 else COLOURS["grid"])
        draw.rectangle(_px(image_box), outline=COLOURS["edge"])
        if region is not None:
            box = lay.cells(panel, (region[0][0], region[1][0]), (region[0][1], region[1][1]), units_of=0)
            draw.rectangle(_px(box), outline=COLOURS["field"], width=2)
    last = net.layers[-1].layer.name
    at = net.show(unit) if net.ndim == 1 else f"({unit[0]}, {unit[1]})"
    legend = (f"orange: what unit {at} of {last} depends on; red: its receptive field; "
              "grey: padding; lines: each layer's units")
    draw.text((_GAP, lay.size[1] - _LEGEND + 4), legend, fill=COLOURS["text"], font=font)
    return img


def _px(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return (round(x0), round(y0), max(round(x1) - 1, round(x0)), max(round(y1) - 1, round(y0)))


def _grid(draw: ImageDraw.ImageDraw, lay: Layout, panel: int, n: Pair, colour: tuple[int, int, int]) -> None:
    """Cell boundaries of a panel's units, where the cells are wide enough to see."""
    (sy, oy), (sx, ox) = lay.maps[panel]
    x0, y0, x1, y1 = lay.cells(panel, (0, 0), (n[0] - 1, n[1] - 1))
    if sx * lay.zoom[1] >= _MIN_CELL:
        for u in range(n[1] + 1):
            x = lay.point(panel, 0, float(sx * u + ox - sx / 2))[0]
            draw.line((round(x), round(y0), round(x), round(y1) - 1), fill=colour)
    if sy * lay.zoom[0] >= _MIN_CELL and lay.net.ndim == 2:
        for u in range(n[0] + 1):
            y = lay.point(panel, float(sy * u + oy - sy / 2), 0)[1]
            draw.line((round(x0), round(y), round(x1) - 1, round(y)), fill=colour)
    draw.rectangle((round(x0), round(y0), round(x1) - 1, round(y1) - 1), outline=colour)
