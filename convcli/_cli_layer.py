"""``convcli apply --weights``: parse the layer's options, run the core, render the reports.

Imported only when ``--weights`` is given; NumPy and Pillow load here, not at start-up.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from . import __version__
from .errors import ConvcliError, ExitCode, ParameterError


def render_layer_run(run: Any) -> str:
    """The human report of one layer run: aligned ``key  value`` lines, as ``apply -k`` prints."""
    from .cli import _size

    g = run.geometry
    (t, b), (l, r) = g.padding
    rule = f"{g.layer.padding.rule}: " if g.layer.padding.rule else ""
    bits = f"{run.input_bits}-bit" if run.input_bits else "float"
    c_out, cig, kh, kw = run.weight_shape
    stored = "" if tuple(run.stored_shape) == tuple(run.weight_shape) else f", stored {_size(run.stored_shape)}"
    bias = f", bias {run.bias}" if run.bias else ", no bias"
    op = "convolve (kernels flipped)" if run.convolve else "correlate"
    groups = g.layer.groups
    per = f" in {groups} groups ({cig} channel(s) each)" if groups > 1 else ""
    outs = run.outputs
    shown = [f"{outs['maps']}  {_size(run.output_shape)} float32"] if "maps" in outs else []
    shown += [f"{kind} {outs[kind]}" for kind in ("grid", "filters") if kind in outs]
    (r0, r1), (c0, c1) = g.input_region(0, 0)
    rf = g.receptive_field
    rows = [
        ("input", f"{run.input}  {_size(run.input_shape)} {run.input_mode} {bits}"),
        ("weights", f"{run.weights}  {_size(run.weight_shape)} (C_out x C_in/groups x kh x kw, "
                    f"{run.layout}{stored}){bias}"),
        ("layer", f"{c_out} maps from {g.channels_in} channel(s){per}, {op}"),
    ]
    if run.normalisation is not None:
        from .layer import describe_normalisation

        rows.append(("norm", describe_normalisation(run.normalisation)))
    rows += [
        ("stride", f"{_size(g.layer.stride)}   dilation {_size(g.layer.dilation)}   border {run.border}"),
        ("padding", f"{rule}top {t}, bottom {b}, left {l}, right {r}"),
        ("output", "; ".join(shown) if shown else "(nothing written)"),
        ("engine", run.engine),
        ("params", f"{run.params_formula}   MACs {g.macs:,}"),
        ("field", f"one output value reads {_size(rf)} pixels x {cig} channel(s), {run.inputs_per_value:,} "
                  f"weights (receptive field {_size(rf)}, jump {_size(g.jump)}); value (0, 0) reads rows "
                  f"{r0}..{r1}, cols {c0}..{c1}"),
        ("values", f"min {run.minimum:.6g}, max {run.maximum:.6g}, mean {run.mean:.6g} (all maps)"),
    ]
    if run.maps:
        order = sorted(range(len(run.maps)), key=lambda i: -run.maps[i].std)[:3]
        strongest = ", ".join(f"#{i} {run.maps[i].std:.4g}" for i in order)
        rows.append(("maps", f"strongest response (std): {strongest}"))
    rows += [("note", n) for n in run.notes]
    return "".join(f"  {key:<8} {value}\n" for key, value in rows)


def run_layer_command(
    inputs: list[str],
    *,
    weights: str,
    bias: str | None,
    layout: str | None,
    groups: str | None,
    input_scale: str | None,
    mean: str | None,
    std: str | None,
    grid: str | None,
    show_filters: str | None,
    output: str | None,
    stride: str,
    padding: str,
    dilation: str,
    border: str | None,
    convolve: bool,
    map_: str,
    engine: str,
    threads: str | None,
    json_: bool,
    quiet: bool,
    gray: bool = False,
    channels: str | None = None,
    max_pixels: int | None = None,
    report: str | None = None,
) -> None:
    """The ``--weights`` branch of ``apply``: every usage error is raised before any output."""
    from .cli import _choice, print_error
    from .engine import ENGINES, Border
    from .geometry import PaddingSpec, parse_count, parse_pair
    from .layer import LayerSpec, Normalisation, plan_layer_outputs, run_layer_files, write_filters
    from .weights import load_weights, split_spec

    if "-" in inputs:
        raise ParameterError("--weights reads image files; standard input (-) is not supported here, "
                             "save the image to a file first")
    if gray and channels:
        raise ParameterError("--gray and --channels: a luminance image has one channel; give one of them")
    layer_weights = load_weights(weights, layout=layout or "oihw", bias=bias)
    spec = LayerSpec(
        weights=layer_weights,
        stride=parse_pair("stride", stride),
        padding=PaddingSpec.parse(padding),
        dilation=parse_pair("dilation", dilation),
        groups=parse_count("--groups", groups) if groups is not None else 1,
        border=Border.parse(border if border is not None else "zero"),
        convolve=convolve,
        normalisation=Normalisation.parse(input_scale, mean, std),
        engine=_choice("--engine", engine, ENGINES),
        threads=parse_count("--threads", threads) if threads is not None else None,
        map=map_.strip().lower(),
        gray=gray,
        channels=tuple(c for c in channels.split(",") if c.strip()) if channels is not None else None,
        max_pixels=max_pixels,
    )
    c_out, cig = layer_weights.weight.shape[:2]
    if spec.engine.startswith("separable") and cig == 1 and c_out == spec.groups:
        import numpy as np

        from .engine import separable_rank_limit

        limit = separable_rank_limit()
        for o in range(c_out):
            rank = int(np.linalg.matrix_rank(layer_weights.weight[o, 0]))
            if rank > limit:
                raise ParameterError(
                    f"engine: filter {o} of {weights} has rank {rank}; the separable path runs kernels of "
                    f"rank 1 to {limit} (use --engine auto)"
                )
    protected = [split_spec(weights)[0]] + ([split_spec(bias)[0]] if bias is not None else [])
    try:
        plans = plan_layer_outputs([Path(p) for p in inputs], layer_weights.name, output, grid, show_filters,
                                   protected=protected, c_out=layer_weights.c_out)
    except ConvcliError as exc:
        exc.usage = True
        raise
    if report is not None:
        from .cli import check_side_output

        written = [p for plan in plans for p in (plan.maps, plan.grid) if p is not None]
        if show_filters is not None:
            written.append(Path(show_filters))
        check_side_output(report, "--report", (".json",), [*inputs, *protected], written)
    filters = Path(show_filters) if show_filters is not None else None

    def on_result(result: Any) -> None:
        for message in result.errors:
            print_error(message)
        if not quiet and not json_:
            sys.stderr.write("".join(render_layer_run(r) for r in result.runs))

    results = run_layer_files(plans, spec, filters, on_result=on_result)
    if filters is not None:
        write_filters(spec.kernel_weights, filters)
    failed = sum(not r.ok for r in results)
    doc = {
        "version": __version__,
        "results": [r.to_dict() for r in results],
        "files": len(results),
        "failed": failed,
    }
    if json_:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    if report is not None:
        from .files import atomic_write

        text = (json.dumps(doc, indent=2) + "\n").encode()
        atomic_write(Path(report), lambda fh: fh.write(text))
    if len(results) > 1 and not quiet:
        sys.stderr.write(f"{len(results)} files: {len(results) - failed} done, {failed} failed\n")
    if failed:
        raise typer.Exit(ExitCode.FAILURE)
