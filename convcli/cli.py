"""The ``convcli`` command line: parse, call the core, render.

Data goes to stdout (``--json``, the shape calculator's answer); reports,
progress and errors go to stderr. Errors are one line each. Exit codes:
0 success, 1 a failure while processing (any file), 2 a usage error,
130 interrupted.

NumPy, Pillow and Rich are imported inside the commands that need them, so
``convcli --help`` and ``convcli shape`` start quickly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from . import __version__
from .errors import ConvcliError, ExitCode

# Click ships inside Typer (or beside it, in older Typer); find its base classes
# through a public Typer name instead of importing a private module.
_CLICK = {c.__name__: c for c in typer.BadParameter.__mro__}
_ClickException = _CLICK["ClickException"]
_UsageError = _CLICK["UsageError"]


def _use_color(stream: Any) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def print_error(message: str) -> None:
    """One line on stderr: ``convcli: error: ...``."""
    label = "\x1b[1;31merror:\x1b[0m" if _use_color(sys.stderr) else "error:"
    sys.stderr.write(f"convcli: {label} {' '.join(message.split())}\n")
    sys.stderr.flush()


class _ConvcliGroup(TyperGroup):
    """Typer group whose errors are single lines on stderr with our exit codes."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name or "convcli",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = rv if isinstance(rv, int) else ExitCode.OK
        except _UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                sys.stderr.write(exc.format_message() + "\n")
            else:
                ctx = getattr(exc, "ctx", None)
                where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                print_error(exc.format_message() + where)
            code = ExitCode.USAGE
        except _ClickException as exc:
            print_error(exc.format_message())
            code = exc.exit_code
        except ConvcliError as exc:
            print_error(str(exc))
            code = ExitCode.USAGE if exc.usage else ExitCode.FAILURE
        except (KeyboardInterrupt, typer.Abort):
            print_error("interrupted")
            code = ExitCode.INTERRUPTED
        if standalone_mode:
            sys.exit(int(code))
        return int(code)


app = typer.Typer(
    cls=_ConvcliGroup,
    name="convcli",
    help="2-D convolution for images and arrays: named or custom kernels, stride, padding, "
    "dilation and border modes, with a shape and receptive-field report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
kernels_app = typer.Typer(
    cls=_ConvcliGroup,
    help="List the built-in kernels.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(kernels_app, name="kernels")


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"convcli {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """convcli: image convolution from the command line."""


# ----------------------------------------------------------------------------- apply


@app.command()
def apply(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help="Image files (PNG, JPEG, TIFF, BMP, WebP, GIF; 8/16-bit) or arrays (.npy, .txt, .csv).",
            show_default=False,
        ),
    ],
    kernel: Annotated[
        list[str],
        typer.Option(
            "-k",
            "--kernel",
            metavar="SPEC",
            help="A kernel name (sobel-x, gaussian-blur, ...), an inline matrix such as "
            "'1 0 -1; 2 0 -2; 1 0 -1', or @FILE (.npy, .txt, .csv). Repeat for several.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Optional[str],
        typer.Option(
            "-o",
            "--output",
            metavar="PATH",
            help="Output file (one input, one kernel) or folder. Default: beside each input, "
            "named STEM.KERNEL.png (.npy for array inputs). .npy output is the raw float32 map.",
        ),
    ] = None,
    stride: Annotated[str, typer.Option(metavar="N|RxC", help="Step between placements.")] = "1",
    padding: Annotated[
        str,
        typer.Option(metavar="PAD", help="same, valid, full, N, HxW, BEFORE,AFTER or TOP,BOTTOM,LEFT,RIGHT."),
    ] = "same",
    dilation: Annotated[str, typer.Option(metavar="N|RxC", help="Spacing between kernel taps.")] = "1",
    border: Annotated[
        str,
        typer.Option(
            metavar="MODE",
            help="Pixels beyond the edge: reflect, reflect101, replicate, wrap, zero or constant=V "
            "(aliases: edge, nearest, symmetric, tile, ...)."
        ),
    ] = "reflect",
    convolve: Annotated[
        bool, typer.Option("--convolve", help="True convolution: rotate the kernel 180 degrees first.")
    ] = False,
    map_: Annotated[
        str,
        typer.Option(
            "--map",
            metavar="MAP",
            help="Float to pixel values: auto (the kernel's choice), clip, abs, offset, rescale; "
            "raw for .npy.",
        ),
    ] = "auto",
    engine: Annotated[
        str,
        typer.Option(
            metavar="PATH",
            help="auto (a cost model picks), direct, separable, gemm or fft. Same numbers either way.",
        ),
    ] = "auto",
    threads: Annotated[
        Optional[str], typer.Option(metavar="N", help="Worker threads for the engine. Default: all cores.")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No report; errors only.")] = False,
) -> None:
    """Filter images with one or more kernels and write the feature maps."""
    from .engine import Border
    from .engine import ENGINES
    from .geometry import PaddingSpec, parse_count, parse_pair
    from .kernels import resolve_kernel
    from .pipeline import FilterSpec, plan_outputs, run

    kernels = []
    for spec in kernel:
        kern = resolve_kernel(spec)
        inline = sum(k.source == "inline" for k in kernels) + 1
        if kern.source == "inline" and inline > 1:
            kern = dataclasses.replace(kern, name=f"custom{inline}")
        kernels.append(kern)
    filter_spec = FilterSpec(
        kernels=tuple(kernels),
        stride=parse_pair("stride", stride),
        padding=PaddingSpec.parse(padding),
        dilation=parse_pair("dilation", dilation),
        border=Border.parse(border),
        convolve=convolve,
        map=map_.strip().lower(),
        engine=_choice("--engine", engine, ENGINES),
        threads=parse_count("--threads", threads) if threads is not None else None,
    )
    try:
        plans = plan_outputs(inputs, filter_spec.kernels, output)
    except ConvcliError as exc:
        exc.usage = True
        raise

    def on_result(result: Any) -> None:
        if result.error is not None:
            print_error(result.error)
        if not quiet and not json_:
            sys.stderr.write("".join(_render_run(r) for r in result.runs))

    results = run(plans, filter_spec, on_result=on_result)
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


def _choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    text = value.strip().lower()
    if text not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=option)
    return text


def _size(shape: tuple[int, ...] | list[int]) -> str:
    return "x".join(str(v) for v in shape)


def _render_run(run: Any) -> str:
    """The human report of one run: aligned ``key  value`` lines."""
    g = run.geometry
    (t, b), (l, r) = g.padding
    rule = f"{g.layer.padding.rule}: " if g.layer.padding.rule else ""
    bits = f"{run.input_bits}-bit" if run.input_bits else "float"
    out_bits = f"{run.output_bits}-bit" if run.output_bits else "float32"
    pct = 100.0 * run.clipped / run.values if run.values else 0.0
    scale = f" x {run.kernel_scale}" if run.kernel_scale != "1" else ""
    offset = f" + {run.kernel_offset:g}" if run.kernel_offset else ""
    op = "convolve (kernel flipped)" if run.convolve else "correlate"
    rows = [
        ("input", f"{run.input}  {_size(run.input_shape)} {run.input_mode} {bits}"),
        ("kernel", f"{run.kernel} {_size(run.kernel_shape)}{scale}{offset}, {op}"),
        ("stride", f"{_size(g.layer.stride)}   dilation {_size(g.layer.dilation)}   border {run.border}"),
        ("padding", f"{rule}top {t}, bottom {b}, left {l}, right {r}"),
        ("output", f"{run.output}  {_size(run.output_shape)} {out_bits}"),
        ("engine", run.engine),
        ("field", f"receptive field {_size(g.receptive_field)}, jump {_size(g.jump)}, MACs {g.macs:,}"),
        ("values", f"min {run.minimum:.6g}, max {run.maximum:.6g}, mean {run.mean:.6g}"),
        ("map", f"{run.map}: {run.clipped:,} of {run.values:,} values clipped ({pct:.2f}%)"),
    ]
    rows += [("note", n) for n in run.notes]
    return "".join(f"  {key:<8} {value}\n" for key, value in rows)


# ----------------------------------------------------------------------------- shape


@app.command()
def shape(
    in_: Annotated[str, typer.Option("--in", metavar="N|HxW", help="Input size.", show_default=False)],
    k: Annotated[str, typer.Option("--k", "--kernel", metavar="N|HxW", help="Kernel size.", show_default=False)],
    s: Annotated[str, typer.Option("--s", "--stride", metavar="N|HxW", help="Stride.")] = "1",
    p: Annotated[
        str,
        typer.Option(
            "--p",
            "--padding",
            metavar="PAD",
            help="N, HxW, BEFORE,AFTER, TOP,BOTTOM,LEFT,RIGHT, or same (tf-same), valid, full.",
        ),
    ] = "0",
    d: Annotated[str, typer.Option("--d", "--dilation", metavar="N|HxW", help="Dilation.")] = "1",
    cin: Annotated[Optional[str], typer.Option("--cin", metavar="C", help="Input channels (for params and MACs).")] = None,
    cout: Annotated[Optional[str], typer.Option("--cout", metavar="C", help="Output channels (default: --cin).")] = None,
    groups: Annotated[str, typer.Option("--groups", metavar="G", help="Groups; --cin and --cout must divide by it.")] = "1",
    no_bias: Annotated[bool, typer.Option("--no-bias", help="The layer has no bias terms.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Output size, receptive field, jump, parameters and MACs of a convolution layer."""
    from .geometry import conv_geometry, parse_count

    c_in = parse_count("--cin", cin) if cin is not None else None
    c_out = parse_count("--cout", cout) if cout is not None else None
    if c_out is not None and c_in is None:
        raise typer.BadParameter("needs --cin as well", param_hint="--cout")
    g = conv_geometry(
        in_, k, stride=s, dilation=d, padding=p,
        channels_in=c_in, channels_out=c_out, groups=parse_count("--groups", groups), bias=not no_bias,
    )
    if json_:
        doc = g.to_dict()
        doc.pop("name")
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    sys.stdout.write(_shape_text(g))


def _shape_text(g: Any) -> str:
    layer = g.layer
    (t, b), (l, r) = g.padding
    rule = f" ({layer.padding.rule})" if layer.padding.rule else ""
    lines = [
        f"input            {_size(g.input)}",
        f"kernel           {_size(layer.kernel)}, stride {_size(layer.stride)}, "
        f"dilation {_size(layer.dilation)} (effective kernel {_size(g.effective_kernel)})",
        f"padding{rule:<10}top {t}, bottom {b}, left {l}, right {r}",
        f"output           {_size(g.output)}",
    ]
    for axis, n, (pb, pa), ke, st, o in zip(
        ("height", "width"), g.input, g.padding, g.effective_kernel, layer.stride, g.output
    ):
        lines.append(f"  {axis + ':':<15}floor(({n} + {pb} + {pa} - {ke}) / {st}) + 1 = {o}")
    lines.append(f"receptive field  {_size(g.receptive_field)}")
    lines.append(f"jump             {_size(g.jump)}")
    if g.params is not None:
        lines.append(f"channels         {g.channels_in} -> {g.channels_out}, groups {layer.groups}")
        lines.append(f"params           {g.params:,}")
        lines.append(f"MACs             {g.macs:,}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- kernels


@kernels_app.command("list")
def kernels_list(
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the built-in kernels: name, size, sum, output map, tags, description."""
    from .kernels import builtin_registry

    registry = builtin_registry()
    if json_:
        sys.stdout.write(json.dumps([k.to_dict() for k in registry.kernels.values()], indent=2) + "\n")
        return
    rows = [("name", "size", "sum", "map", "tags", "description")]
    for kern in registry.kernels.values():
        also = f" (also: {', '.join(kern.aliases)})" if kern.aliases else ""
        rows.append((
            kern.name,
            _size(kern.shape),
            f"{float(kern.weights.sum()):.4g}",
            kern.map or "auto",
            ",".join(kern.tags),
            kern.description + also,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:5], widths)]
        sys.stdout.write("  ".join([*cells, row[5]]) + "\n")


def main(prog_name: str = "convcli") -> None:
    """Console-script entry point."""
    # The engine calls BLAS from its own worker threads; OpenBLAS's threads on top of those
    # stall runs 10-50x. NumPy is not imported yet, so this reaches the BLAS as it loads.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    app(prog_name=prog_name)
