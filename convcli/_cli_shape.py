"""Rendering for ``convcli shape``: the one-layer text, the per-layer Rich table, the unit region.

Only :mod:`convcli.cli` imports this, and only inside the ``shape`` command;
Rich is imported only when the table is drawn.
"""

from __future__ import annotations

from typing import IO, Any

from .geometry import LayerGeometry, NetworkGeometry, Pair, UnitRegion

__all__ = ["layer_text", "table_rows", "print_table", "unit_text", "unit_dict"]


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _pads(net: NetworkGeometry, g: LayerGeometry) -> str:
    """``before/after``; both axes when they differ (``2/3 x 1/1``)."""
    axes = [f"{b}/{a}" for b, a in g.padding[2 - net.ndim :]]
    return axes[0] if len(set(axes)) == 1 else " x ".join(axes)


def _kind(net: NetworkGeometry, g: LayerGeometry) -> str:
    extra = " ceil" if g.layer.ceil_mode else ""
    if g.layer.kind == "convtranspose" and g.layer.output_padding != (0, 0):
        extra = f" op {net.show(g.layer.output_padding)}"
    return g.layer.kind + extra


def _maybe(net: NetworkGeometry, pair: Pair | None) -> str:
    return "-" if pair is None else net.show(pair)


def layer_text(net: NetworkGeometry) -> str:
    """The detailed report of a one-layer stack, with the output formula of each axis."""
    g = net.layers[0]
    layer = g.layer
    show = net.show
    rule = f" ({layer.padding.rule})" if layer.padding.rule else ""
    if net.ndim == 1:
        pad_text = f"before {g.padding[1][0]}, after {g.padding[1][1]}"
    else:
        (t, b), (l, r) = g.padding
        pad_text = f"top {t}, bottom {b}, left {l}, right {r}"
    lines = [f"input            {show(g.input)}"]
    if layer.kind != "conv":
        kind = layer.kind + (", ceil_mode" if layer.ceil_mode else "")
        if layer.kind == "convtranspose":
            kind += f", output padding {show(layer.output_padding)}"
        lines.append(f"layer            {kind}")
    lines += [
        f"kernel           {show(layer.kernel)}, stride {show(layer.stride)}, "
        f"dilation {show(layer.dilation)} (effective kernel {show(g.effective_kernel)})",
        f"padding{rule:<10}{pad_text}",
        f"output           {show(g.output)}",
    ]
    formulas = g.formulas()
    names = ("length",) if net.ndim == 1 else ("height", "width")
    for axis, formula in zip(names, formulas[2 - net.ndim :]):
        lines.append(f"  {axis + ':':<15}{formula}")
    if g.receptive_field is None:
        lines.append("receptive field  - (a transposed convolution's units see a varying number of inputs)")
    else:
        lines.append(f"receptive field  {show(g.receptive_field)}")
        lines.append(f"jump             {_maybe(net, g.jump)}")
    if g.params is not None:
        if g.channels_in is not None:
            groups = f", groups {layer.groups}" if not layer.is_pool else ""
            lines.append(f"channels         {g.channels_in} -> {g.channels_out}{groups}")
        lines.append(f"params           {g.params:,}")
        lines.append(f"MACs             {g.macs:,}")
    return "\n".join(lines) + "\n"


_HEADER = ("#", "name", "type", "k", "s", "p", "d", "output", "channels",
           "receptive field", "jump", "eff. padding", "params", "MACs")


def table_rows(net: NetworkGeometry) -> list[tuple[str, ...]]:
    """The table's rows: the input, one per layer, then the totals."""
    show = net.show

    def ch(channels: int | None) -> str:
        return "-" if channels is None else str(channels)

    one, zero = show((1, 1)), show((0, 0))
    rows = [("", "input", "", "", "", "", "", show(net.input), ch(net.channels_in), one, one, zero, "", "")]
    for i, g in enumerate(net.layers, start=1):
        layer = g.layer
        rows.append((
            str(i), layer.name, _kind(net, g), show(layer.kernel), show(layer.stride), _pads(net, g),
            show(layer.dilation), show(g.output), ch(g.channels_out), _maybe(net, g.receptive_field),
            _maybe(net, g.jump), _maybe(net, g.effective_padding), _num(g.params), _num(g.macs),
        ))
    rows.append(("", "total", "", "", "", "", "", show(net.output), ch(net.channels_out),
                 _maybe(net, net.receptive_field), _maybe(net, net.jump), _maybe(net, net.effective_padding),
                 _num(net.params), _num(net.macs)))
    return rows


def print_table(net: NetworkGeometry, file: IO[str]) -> None:
    """Draw the per-layer table with Rich on ``file``."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.HORIZONTALS, show_edge=False, pad_edge=False)
    for i, name in enumerate(_HEADER):
        table.add_column(name, justify="left" if i in (1, 2) else "right", no_wrap=True)
    rows = table_rows(net)
    for row in rows[:-1]:
        table.add_row(*row)
    table.add_section()
    table.add_row(*rows[-1], style="bold")
    # as wide as the table needs: a narrow terminal wraps the lines instead of cutting the cells
    Console(file=file, highlight=False, width=10_000).print(table)


def unit_text(net: NetworkGeometry, region: UnitRegion) -> str:
    """Where one output unit of the last layer looks, in lines of ``key  value``."""
    name = net.layers[-1].layer.name

    def span(spans: Any) -> str:
        (r0, r1), (c0, c1) = spans
        return f"positions {c0}..{c1}" if net.ndim == 1 else f"rows {r0}..{r1}, cols {c0}..{c1}"

    at = str(region.unit[1]) if net.ndim == 1 else f"({region.unit[0]}, {region.unit[1]})"
    image = "signal" if net.ndim == 1 else "image"
    lines = [f"unit             {at} of {name} ({net.show(net.output)})"]
    if region.unclipped is None:
        lines.append("  reads          no input position: every tap of the transposed convolution misses it")
        return "\n".join(lines) + "\n"
    size = region.size
    assert size is not None
    lines.append(f"  reads          {span(region.unclipped)} "
                 f"({net.show(size)}, unclipped)")
    if region.clipped is None:
        lines.append(f"  {'in the ' + image:<15}nothing: the unit sees padding only")
    elif region.clipped != region.unclipped:
        (r0, r1), (c0, c1) = region.clipped
        lines.append(f"  {'in the ' + image:<15}{span(region.clipped)} "
                     f"({net.show((r1 - r0 + 1, c1 - c0 + 1))}, clipped; the rest is padding)")
    else:
        lines.append(f"  {'in the ' + image:<15}all of it")
    for big, axis, r, n in zip(region.exceeds_input, net.axis_names, size, net.input):
        if big and (net.ndim == 2 or axis == "length"):
            lines.append(f"  note           the receptive field ({r}) is larger than the input {axis} ({n})")
    return "\n".join(lines) + "\n"


def unit_dict(net: NetworkGeometry, region: UnitRegion) -> dict[str, Any]:
    """The ``unit`` entry of the JSON document (present only with ``--unit``)."""
    axes = net.axes

    def spans(value: Any) -> list | None:
        return None if value is None else [list(s) for s in value[2 - net.ndim :]]

    return {
        "index": axes(region.unit),
        "unclipped": spans(region.unclipped),
        "clipped": spans(region.clipped),
        "exceeds_input": list(region.exceeds_input[2 - net.ndim :]),
    }
