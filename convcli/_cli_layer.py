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


def _size(shape: Any) -> str:
    return "x".join(str(v) for v in shape)


def render_layer_run(run: Any) -> str:
    """The human report of one layer run: aligned ``key  value`` lines, as ``apply -k`` prints."""
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
) -> None:
    """The ``--weights`` branch of ``apply``: every usage error is raised before any output."""
    from .cli import _choice, print_error
    from .engine import ENGINES, Border
    from .geometry import PaddingSpec, parse_count, parse_pair
    from .layer import LayerSpec, Normalisation, plan_layer_outputs, run_layer_files, write_filters
    from .weights import load_weights, split_spec

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
    )
    c_out, cig = layer_weights.weight.shape[:2]
    if spec.engine == "separable" and cig == 1 and c_out == spec.groups:
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
    filters = Path(show_filters) if show_filters is not None else None

    def on_result(result: Any) -> None:
        if result.error is not None:
            print_error(result.error)
        if not quiet and not json_:
            sys.stderr.write("".join(render_layer_run(r) for r in result.runs))

    results = run_layer_files(plans, spec, filters, on_result=on_result)
    if filters is not None:
        write_filters(spec.kernel_weights, filters)
    failed = sum(not r.ok for r in results)
    if json_:
        doc = {
            "version": __version__,
            "results": [r.to_dict() for r in results],
            "files": len(results),
            "failed": failed,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    if len(results) > 1 and not quiet:
        sys.stderr.write(f"{len(results)} files: {len(results) - failed} done, {failed} failed\n")
    if failed:
        raise typer.Exit(ExitCode.FAILURE)
