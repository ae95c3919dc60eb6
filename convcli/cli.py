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
        Optional[list[str]],
        typer.Option(
            "-k",
            "--kernel",
            metavar="SPEC",
            help="A kernel name (sobel-x, gaussian-blur, ...), an inline matrix such as "
            "'1 0 -1; 2 0 -2; 1 0 -1', or @FILE (.npy, .txt, .csv). Repeat for several. "
            "Either this or --weights.",
            show_default=False,
        ),
    ] = None,
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
        Optional[str],
        typer.Option(
            metavar="MODE",
            help="Pixels beyond the edge: reflect, reflect101, replicate, wrap, zero or constant=V "
            "(aliases: edge, nearest, symmetric, tile, ...). [default: reflect; zero with --weights]",
            show_default=False,
        ),
    ] = None,
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
    weights: Annotated[
        Optional[str],
        typer.Option(
            "--weights",
            metavar="FILE",
            help="Run a convolution layer instead of -k: FILE.npy (C_out, C_in, kh, kw), FILE.npz with "
            "'weight' (and 'bias'), or FILE.npz:KEY for one entry of a saved state dict.",
        ),
    ] = None,
    bias: Annotated[
        Optional[str],
        typer.Option(
            "--bias",
            metavar="FILE",
            help="The layer's bias, C_out values: FILE.npy or FILE.npz[:KEY]. Default: the .npz's own.",
        ),
    ] = None,
    layout: Annotated[
        Optional[str],
        typer.Option(
            "--layout",
            metavar="oihw|hwio",
            help="Axis order of the weights: oihw (PyTorch: C_out, C_in, kh, kw) or hwio (TensorFlow: "
            "kh, kw, C_in, C_out). [default: oihw]",
            show_default=False,
        ),
    ] = None,
    groups: Annotated[
        Optional[str],
        typer.Option(
            "--groups",
            metavar="G",
            help="Groups: C_in and C_out divide by G; G = C_in = C_out is depthwise. [default: 1]",
            show_default=False,
        ),
    ] = None,
    input_scale: Annotated[
        Optional[str],
        typer.Option(
            "--input-scale",
            metavar="S",
            help="Multiply the input by S before the layer, such as 1/255 for 8-bit images.",
        ),
    ] = None,
    mean: Annotated[
        Optional[str],
        typer.Option(
            "--mean",
            metavar="M[,M...]",
            help="Subtract per channel after --input-scale (ImageNet's: 0.485,0.456,0.406).",
        ),
    ] = None,
    std: Annotated[
        Optional[str],
        typer.Option(
            "--std",
            metavar="S[,S...]",
            help="Then divide per channel (ImageNet's: 0.229,0.224,0.225).",
        ),
    ] = None,
    grid: Annotated[
        Optional[str],
        typer.Option(
            "--grid",
            metavar="PNG",
            help="Also draw every feature map as a labelled tile in one PNG (or a folder for several inputs).",
        ),
    ] = None,
    show_filters: Annotated[
        Optional[str],
        typer.Option(
            "--show-filters",
            metavar="PNG",
            help="Draw the layer's filters themselves in a PNG.",
        ),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No report; errors only.")] = False,
) -> None:
    """Filter images with one or more kernels, or run a convolution layer's weights (--weights),
    and write the feature maps."""
    layer_options = {
        "--bias": bias, "--layout": layout, "--groups": groups, "--input-scale": input_scale, "--mean": mean,
        "--std": std, "--grid": grid, "--show-filters": show_filters,
    }
    if weights is not None:
        if kernel:
            raise typer.BadParameter("give -k/--kernel or --weights, not both", param_hint="--weights")
        from ._cli_layer import run_layer_command

        run_layer_command(
            inputs, weights=weights, output=output, stride=stride, padding=padding, dilation=dilation,
            border=border, convolve=convolve, map_=map_, engine=engine, threads=threads, json_=json_,
            quiet=quiet, **{name.lstrip("-").replace("-", "_"): value for name, value in layer_options.items()},
        )
        return
    if not kernel:
        raise typer.BadParameter("give a kernel with -k/--kernel, or a layer's weights with --weights",
                                 param_hint="--kernel")
    given = [name for name, value in layer_options.items() if value is not None]
    if given:
        raise typer.BadParameter(f"{given[0]} applies to a convolution layer; give its --weights too",
                                 param_hint=given[0])
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
        border=Border.parse(border if border is not None else "reflect"),
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
    in_: Annotated[
        Optional[str],
        typer.Option("--in", metavar="N|HxW", help="Input size (N in 1-D). An --arch file may set it.",
                     show_default=False),
    ] = None,
    k: Annotated[
        Optional[str],
        typer.Option("--k", "--kernel", metavar="K[,K...]",
                     help="Kernel size (N or HxW); a comma list makes a stack: 3,3,3.", show_default=False),
    ] = None,
    s: Annotated[
        Optional[str], typer.Option("--s", "--stride", metavar="S[,S...]", help="Stride, or a list. [default: 1]")
    ] = None,
    p: Annotated[
        Optional[str],
        typer.Option(
            "--p",
            "--padding",
            metavar="PAD",
            help="N, HxW, BEFORE,AFTER, TOP,BOTTOM,LEFT,RIGHT, or same (tf-same), valid, full. "
            "With a --k list: one item per layer. [default: 0]",
        ),
    ] = None,
    d: Annotated[
        Optional[str], typer.Option("--d", "--dilation", metavar="D[,D...]", help="Dilation, or a list. [default: 1]")
    ] = None,
    cin: Annotated[Optional[str], typer.Option("--cin", metavar="C", help="Input channels (for params and MACs).")] = None,
    cout: Annotated[
        Optional[str], typer.Option("--cout", metavar="C[,C...]", help="Output channels (default: --cin), or a list.")
    ] = None,
    groups: Annotated[
        Optional[str], typer.Option("--groups", metavar="G", help="Groups; the channels must divide by it. [default: 1]")
    ] = None,
    no_bias: Annotated[bool, typer.Option("--no-bias", help="The layers have no bias terms.")] = False,
    transposed: Annotated[
        bool, typer.Option("--transposed", help="Transposed convolution (PyTorch's ConvTranspose2d).")
    ] = False,
    output_padding: Annotated[
        Optional[str],
        typer.Option("--output-padding", metavar="N|HxW", help="Extra rows/cols after a transposed convolution."),
    ] = None,
    one_d: Annotated[bool, typer.Option("--1d", help="Every layer is 1-D: sizes are single numbers.")] = False,
    layers: Annotated[
        Optional[str],
        typer.Option(
            "--layers",
            metavar="SPEC",
            help="A stack: 'conv k7 s2 p3 c64; maxpool k3 s2 p1; conv k3 p1'. Words: kN sN pPAD dN cN gN opN "
            "ceil nobias; types conv, convtranspose, maxpool, avgpool.",
        ),
    ] = None,
    arch: Annotated[
        Optional[str],
        typer.Option("--arch", metavar="FILE.toml", help="A stack from a TOML file of [[layer]] tables "
                     "(see samples/arch/)."),
    ] = None,
    unit: Annotated[
        Optional[str],
        typer.Option("--unit", metavar="ROW,COL", help="Show the input region this unit of the last layer reads "
                     "(0-based; N in 1-D)."),
    ] = None,
    plot: Annotated[
        Optional[str],
        typer.Option("--plot", metavar="FILE.png", help="Draw each layer's grid over the input, with the unit's "
                     "receptive field (--unit, default the centre unit)."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Output size, receptive field, jump, parameters and MACs of a layer or a stack of layers."""
    from .errors import ParameterError
    from .geometry import (
        layers_from_lists, network_geometry, parse_count, parse_layer_spec, parse_size, parse_unit,
    )

    ndim = 1 if one_d else 2
    given = [name for name, value in (("--k", k), ("--layers", layers), ("--arch", arch)) if value is not None]
    if not given:
        raise ParameterError("give the layer with --k, or a stack with --k lists, --layers or --arch")
    if len(given) > 1:
        raise ParameterError(f"{given[0]} and {given[1]} both give the layers; use one of them")
    c_in = parse_count("--cin", cin) if cin is not None else None
    size = None
    if k is not None:
        if cout is not None and c_in is None:
            raise typer.BadParameter("needs --cin as well", param_hint="--cout")
        stack = layers_from_lists(k=k, s=s, p=p, d=d, channels=cout, groups=groups, bias=not no_bias,
                                  transposed=transposed, output_padding=output_padding, ndim=ndim)
    else:
        per_layer = {"--s": s, "--p": p, "--d": d, "--cout": cout, "--groups": groups,
                     "--output-padding": output_padding, "--no-bias": no_bias or None,
                     "--transposed": transposed or None}
        for name, value in per_layer.items():
            if value is not None:
                raise ParameterError(f"{name} applies to --k; with {given[0]} give it in each layer")
        if layers is not None:
            stack = parse_layer_spec(layers, ndim=ndim)
        else:
            assert arch is not None
            spec = _read_arch(arch, ndim)
            stack, size = list(spec.layers), spec.input
            c_in = c_in if c_in is not None else spec.channels_in
    if in_ is not None:
        size = parse_size("input size", in_, ndim=ndim)
    if size is None:
        raise ParameterError("--in is missing: give the input size (N or HxW)")
    net = network_geometry(size, stack, channels_in=c_in, ndim=ndim)
    chosen = parse_unit(unit, ndim=ndim) if unit is not None else None
    region = None
    if chosen is not None:
        net.check_unit(chosen)
        region = net.unit_region(chosen)
    if plot is not None:
        _write_plot(net, chosen, plot)

    from . import _cli_shape as render

    if json_:
        doc = net.to_dict()
        if region is not None:
            doc["unit"] = render.unit_dict(net, region)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    if len(net.layers) == 1:
        sys.stdout.write(render.layer_text(net))
    else:
        render.print_table(net, sys.stdout)
    if region is not None:
        sys.stdout.write(render.unit_text(net, region))


def _read_arch(path: str, ndim: int) -> Any:
    """Read and check an architecture file; every problem is a usage error naming the file."""
    import tomllib

    from .errors import ParameterError
    from .geometry import parse_arch

    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise ParameterError(f"--arch: cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"--arch: {path} is not valid TOML: {exc}") from None
    try:
        return parse_arch(doc, ndim=ndim)
    except ConvcliError as exc:
        raise ParameterError(f"{path}: {exc}") from None


def _write_plot(net: Any, unit: Any, path: str) -> None:
    """Draw the stack with Pillow and save it; the format follows the file name."""
    from PIL import Image

    from .errors import OutputError, ParameterError
    from .shapeplot import draw_network

    ext = os.path.splitext(path)[1].lower()
    if ext not in Image.registered_extensions():
        raise ParameterError(f"--plot: unknown image type {ext or '(none)'!r} in {path}; use .png")
    if unit is None:
        unit = (net.output[0] // 2, net.output[1] // 2)
    picture = draw_network(net, unit)
    try:
        picture.save(path)
    except OSError as exc:
        raise OutputError(f"--plot: cannot write {path}: {exc.strerror or exc}") from None
    sys.stderr.write(f"plot: {path} ({picture.width}x{picture.height})\n")


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
