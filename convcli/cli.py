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


def print_note(message: str) -> None:
    """One line on stderr: ``convcli: note: ...``."""
    label = "\x1b[1;33mnote:\x1b[0m" if _use_color(sys.stderr) else "note:"
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
            if code == ExitCode.INTERRUPTED:
                print_error("interrupted")
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
    help="List the kernels, banks and parametric kernels, or show one in detail.",
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


# ----------------------------------------------------------------------------- kernel options

KernelsOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--kernels",
        metavar="FILE",
        help="A kernel registry (TOML, the schema of kernels.toml) merged over the built-in one; "
        "its entries win over built-in ones of the same name. Repeat for several. "
        "Default: the files listed in CONVCLI_KERNELS.",
        show_default=False,
    ),
]
MaxSizeOption = Annotated[
    int,
    typer.Option("--max-kernel-size", metavar="N", min=1, help="Largest kernel side accepted."),
]


def _registry(files: Optional[list[str]], *, max_side: int, quiet: bool = False) -> Any:
    """The built-in registry with --kernels FILE (or CONVCLI_KERNELS) merged over it."""
    from .errors import KernelError
    from .kernels import builtin_registry, load_registry_files

    paths = list(files or [])
    from_env = not paths
    if from_env:
        paths = [p for p in os.environ.get("CONVCLI_KERNELS", "").split(os.pathsep) if p.strip()]
    if not paths:
        return builtin_registry()
    try:
        registry = load_registry_files(paths, max_side=max_side)
    except KernelError as exc:
        if from_env:
            raise KernelError(f"CONVCLI_KERNELS: {exc}") from None
        raise
    if not quiet:
        for note in registry.notes:
            print_note(note)
    return registry


def _resolve_all(
    specs: list[str],
    *,
    kernels_file: Optional[list[str]],
    max_side: int,
    scale: Optional[str] = None,
    offset: Optional[str] = None,
    normalize: bool = False,
    quiet: bool = False,
) -> list[Any]:
    """Resolve -k specs into kernels and banks, apply --normalize/--scale/--offset, print their notes."""
    from .errors import KernelError
    from .kernels import Kernel, adjust, parse_number, resolve_spec

    if scale is not None and parse_number(scale, what="--scale") == 0:
        raise KernelError("--scale 0 would make every output 0; give a non-zero scale such as 1/16")
    shift = parse_number(offset, what="--offset") if offset is not None else 0.0
    registry = _registry(kernels_file, max_side=max_side, quiet=quiet)
    items: list[Any] = []
    for spec in specs:
        item = resolve_spec(spec, registry, max_side=max_side)
        item = adjust(item, scale=scale, offset=shift, normalize=normalize)
        inline = sum(isinstance(k, Kernel) and k.source == "inline" for k in items) + 1
        if isinstance(item, Kernel) and item.source == "inline" and inline > 1:
            item = dataclasses.replace(item, name=f"custom{inline}")
        if not quiet:
            members = item.kernels if not isinstance(item, Kernel) else (item,)
            for member in members:
                for note in member.notes:
                    print_note(f"{member.name}: {note}")
        items.append(item)
    return items


# ----------------------------------------------------------------------------- apply


@app.command()
def apply(
    inputs: Annotated[
        Optional[list[str]],
        typer.Argument(
            metavar="INPUT...",
            help="Image files (PNG, JPEG, TIFF, BMP, WebP, GIF; 8/16-bit) or arrays (.npy, .npz, .txt, .csv), "
            "folders (their images; -r for subfolders too), glob patterns such as 'photos/**/*.jpg', "
            "or - for standard input.",
            show_default=False,
        ),
    ] = None,
    kernel: Annotated[
        Optional[list[str]],
        typer.Option(
            "-k",
            "--kernel",
            metavar="SPEC",
            help="A kernel name (sobel-x, gaussian-blur, ...), a bank (sobel, sobel:max, "
            "sobel:stack), a parametric kernel (gaussian:sigma=2, box:7, log:sigma=1.4, "
            "motion:length=9,angle=30, ...), an inline matrix such as '1 0 -1; 2 0 -2; 1 0 -1', "
            "an ImageMagick kernel string ('3x3: 1,0,-1 2,0,-2 1,0,-1') or a file "
            "(@FILE or FILE.txt/.csv/.npy/.toml/.mat). Repeat for several. "
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
            help="auto (a cost model picks), direct, separable, separable-gemm, gemm or fft. Same numbers either way.",
        ),
    ] = "auto",
    threads: Annotated[
        Optional[str], typer.Option(metavar="N", help="Worker threads for the engine. Default: all cores.")
    ] = None,
    scale: Annotated[
        Optional[str],
        typer.Option(metavar="S", help="Multiply every kernel's weights by S (2, 0.5, 1/16).", show_default=False),
    ] = None,
    offset: Annotated[
        Optional[str],
        typer.Option(metavar="V", help="Add V to every output value (after filtering).", show_default=False),
    ] = None,
    normalize: Annotated[
        bool,
        typer.Option(
            "--normalize",
            help="Divide each kernel by the sum of its weights, so that it sums to 1 "
            "(before --scale); a kernel that sums to 0 is an error.",
        ),
    ] = False,
    kernels_file: KernelsOption = None,
    max_kernel_size: MaxSizeOption = 1025,
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
    alpha: Annotated[
        str,
        typer.Option(
            metavar="POLICY",
            help="keep (alpha passed through, sampled at the output geometry), filter (alpha filtered "
            "like a channel) or premultiply (colour weighted by alpha before filtering, divided after).",
        ),
    ] = "keep",
    gray: Annotated[
        bool, typer.Option("--gray", help="Filter the luminance 0.299 R + 0.587 G + 0.114 B (BT.601).")
    ] = False,
    channels: Annotated[
        Optional[str],
        typer.Option(metavar="R,G,...", help="Filter only these channels (letters or 0-based numbers); "
                     "the others pass through unfiltered.", show_default=False),
    ] = None,
    frames: Annotated[
        str, typer.Option(metavar="WHICH", help="first, or all: one output per frame (GIF, TIFF pages, .npz arrays).")
    ] = "first",
    max_pixels: Annotated[
        Optional[int],
        typer.Option("--max-pixels", metavar="N", min=1, help="Refuse images with more pixels than N. "
                     "Default: Pillow's decompression-bomb limit (178,956,970).", show_default=False),
    ] = None,
    format_: Annotated[
        Optional[str],
        typer.Option("--format", metavar="FMT", help="png, png8, png16, tiff, tiff16, tiff-float, jpeg, webp, bmp, "
                     "gif, npy or npz. Default: by the output's suffix; bit depth as the input.",
                     show_default=False),
    ] = None,
    quality: Annotated[
        Optional[int], typer.Option(metavar="Q", min=1, max=100, help="JPEG/WebP quality. [default: 95]",
                                    show_default=False)
    ] = None,
    compress_level: Annotated[
        Optional[int], typer.Option(metavar="N", min=0, max=9,
                                    help="PNG compression: zlib level 0 (none, fastest) to 9 (smallest, slowest). "
                                    "Default: zlib's run-length mode, about level 1's speed and, on photos and "
                                    "feature maps, about level 6's size.", show_default=False)
    ] = None,
    rescale_global: Annotated[
        bool, typer.Option("--rescale-global", help="--map rescale with one min..max for all channels.")
    ] = False,
    combine: Annotated[
        Optional[str],
        typer.Option(metavar="MODE", help="Combine the -k kernels into one output: magnitude, max, sum or stack.",
                     show_default=False),
    ] = None,
    report: Annotated[
        Optional[str], typer.Option(metavar="FILE.json", help="Also write the report as JSON to this file.",
                                    show_default=False)
    ] = None,
    preview: Annotated[
        Optional[str],
        typer.Option("--preview", metavar="FILE.png", help="Also write a contact sheet: each input and its "
                     "feature maps as thumbnails (at most 12 inputs).", show_default=False),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("-r", "--recursive", help="Folders: take the images in every subfolder too.",
                           rich_help_panel="Batches")
    ] = False,
    include: Annotated[
        Optional[list[str]],
        typer.Option(metavar="PATTERN", help="Only inputs whose name or path below its folder matches, "
                     "such as '*.jpg' (repeatable).", show_default=False, rich_help_panel="Batches"),
    ] = None,
    exclude: Annotated[
        Optional[list[str]],
        typer.Option(metavar="PATTERN", help="Leave out inputs that match (repeatable).", show_default=False,
                     rich_help_panel="Batches"),
    ] = None,
    files_from: Annotated[
        Optional[str],
        typer.Option("--files-from", metavar="FILE", help="Also read input paths from FILE, one a line "
                     "(or NUL-separated), - for standard input: find ... | convcli apply --files-from - ...",
                     show_default=False, rich_help_panel="Batches"),
    ] = None,
    name: Annotated[
        Optional[str],
        typer.Option("--name", metavar="TEMPLATE", help="Output file names: fields {stem} {kernel} {ext} "
                     "{parent} {dir} {name}. [default: {stem}.{kernel}{ext}]", show_default=False,
                     rich_help_panel="Batches"),
    ] = None,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="Leave outputs that exist alone: rerun an interrupted "
                           "batch to finish only what is missing.", rich_help_panel="Batches")
    ] = False,
    jobs: Annotated[
        Optional[int],
        typer.Option("-j", "--jobs", metavar="N", min=1, help="Files processed at once, in worker processes. "
                     "[default: the number of cores]", show_default=False, rich_help_panel="Batches"),
    ] = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Start no new file after the first failure.",
                           rich_help_panel="Batches")
    ] = False,
    manifest: Annotated[
        Optional[str],
        typer.Option("--manifest", metavar="FILE.jsonl", help="Write one JSON line per input as it finishes: "
                     "input, outputs, shapes, min/max, clipped, seconds, status, error.", show_default=False,
                     rich_help_panel="Batches"),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Batches: one line per file as it finishes.",
                           rich_help_panel="Batches")
    ] = False,
) -> None:
    """Filter images with one or more kernels, or run a convolution layer's weights (--weights),
    and write the feature maps."""
    layer_options = {
        "--bias": bias, "--layout": layout, "--groups": groups, "--input-scale": input_scale, "--mean": mean,
        "--std": std, "--grid": grid, "--show-filters": show_filters,
    }
    listed = _read_files_from(files_from, inputs or [])
    batch = _BatchOptions(list(inputs or []), listed, recursive, tuple(include or ()), tuple(exclude or ()))
    if weights is not None:
        if kernel:
            raise typer.BadParameter("give -k/--kernel or --weights, not both", param_hint="--weights")
        kernel_only = {
            "--scale": scale is not None, "--offset": offset is not None, "--normalize": normalize,
            "--kernels": kernels_file is not None, "--combine": combine is not None,
            "--format": format_ is not None, "--quality": quality is not None,
            "--compress-level": compress_level is not None,
            "--rescale-global": rescale_global, "--preview": preview is not None,
            "--alpha": alpha.strip().lower() != "keep", "--frames": frames.strip().lower() != "first",
            "--name": name is not None, "--skip-existing": skip_existing, "--jobs": jobs is not None,
            "--fail-fast": fail_fast, "--manifest": manifest is not None,
        }
        for option, given_ in kernel_only.items():
            if given_:
                hint = " (to scale the input, --input-scale)" if option == "--scale" else ""
                raise typer.BadParameter(f"{option} applies to -k kernels, not to a layer's --weights{hint}",
                                         param_hint=option)
        from ._cli_layer import run_layer_command

        sources, _ = _gather_inputs(batch, output, (), quiet)
        run_layer_command(
            [str(src.path) for src in sources], weights=weights, output=output, stride=stride, padding=padding,
            dilation=dilation, border=border, convolve=convolve, map_=map_, engine=engine, threads=threads,
            json_=json_, quiet=quiet, gray=gray, channels=channels, max_pixels=max_pixels, report=report,
            **{key.lstrip("-").replace("-", "_"): value for key, value in layer_options.items()},
        )
        return
    if not kernel:
        raise typer.BadParameter("give a kernel with -k/--kernel, or a layer's weights with --weights",
                                 param_hint="--kernel")
    given = [key for key, value in layer_options.items() if value is not None]
    if given:
        raise typer.BadParameter(f"{given[0]} applies to a convolution layer; give its --weights too",
                                 param_hint=given[0])
    from .batch import check_name_template, default_jobs
    from .engine import Border
    from .engine import ENGINES
    from .geometry import PaddingSpec, parse_count, parse_pair
    from .errors import ParameterError
    from .pipeline import FilterSpec, combine_kernels, plan_outputs, run

    to_stdout = output is not None and output.strip() == "-"
    if to_stdout and json_:
        raise ParameterError("-o - sends the image to stdout, so --json cannot; use --report FILE.json")
    if batch.args.count("-") > 1:
        raise ParameterError("standard input (-) can be read only once")
    if name is not None:
        check_name_template(name)
    kernels = _resolve_all(
        kernel,
        kernels_file=kernels_file,
        max_side=max_kernel_size,
        scale=scale,
        offset=offset,
        normalize=normalize,
        quiet=quiet,
    )
    if combine is not None:
        kernels = [combine_kernels(tuple(kernels), combine)]
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
        alpha=_choice("--alpha", alpha, ("keep", "filter", "premultiply")),
        gray=gray,
        channels=tuple(c for c in channels.split(",") if c.strip()) if channels is not None else None,
        frames=_choice("--frames", frames, ("first", "all")),
        max_pixels=max_pixels,
        format=format_,
        quality=quality,
        compress_level=compress_level,
        rescale_global=rescale_global,
    )
    if filter_spec.gray and filter_spec.channels:
        raise ParameterError("--gray and --channels: a luminance image has one channel; give one of them")
    sources, expansion = _gather_inputs(batch, output, filter_spec.kernels, quiet)
    try:
        plans = plan_outputs([src.path for src in sources], filter_spec.kernels, output, map_=filter_spec.map,
                             fmt=filter_spec.format, name=name, subdirs=[src.subdir for src in sources])
    except ConvcliError as exc:
        exc.usage = True
        raise
    if preview is not None:
        _check_preview(preview, plans)
    plan_inputs = [p.input for p in plans]
    plan_outputs_ = [o for p in plans for o in p.outputs]
    kernel_files = [k.lstrip("@") for k in kernel if os.path.exists(k.lstrip("@"))]
    if report is not None:
        check_side_output(report, "--report", (".json",), [*plan_inputs, *kernel_files],
                          plan_outputs_ + ([preview] if preview is not None else []))
    if manifest is not None:
        check_side_output(manifest, "--manifest", (".jsonl", ".json", ".ndjson"), [*plan_inputs, *kernel_files],
                          plan_outputs_ + [x for x in (preview, report) if x is not None])
    if any(str(p.input) == "-" for p in plans):
        if files_from is not None and files_from.strip() == "-":
            raise ParameterError("--files-from - and the input - both read standard input; give one of them")
        data = sys.stdin.buffer.read()
        plans = [dataclasses.replace(p, data=data) if str(p.input) == "-" else p for p in plans]

    many = len(plans) > 1
    progress = _Progress(len(plans), enabled=many and not quiet and not verbose and sys.stderr.isatty())
    manifest_fh = _open_manifest(manifest) if manifest is not None else None

    def on_result(result: Any) -> None:
        for message in result.errors:
            print_error(message)
        if manifest_fh is not None:
            manifest_fh.write(json.dumps(result.manifest_record()) + "\n")
            manifest_fh.flush()
        if not quiet and not json_ and not many:
            sys.stderr.write("".join(_render_run(r) for r in result.runs))
            if result.status == "skipped":
                sys.stderr.write(f"skipped {result.input}: its outputs exist (--skip-existing)\n")
        elif verbose and not quiet:
            sys.stderr.write(_render_line(result))
        progress.advance(result)

    import time

    started = time.perf_counter()
    finished: list[Any] = []
    try:
        with progress:
            results = run(plans, filter_spec, on_result=lambda r: (finished.append(r), on_result(r)),
                          stream=sys.stdout.buffer if to_stdout else None,
                          jobs=jobs if jobs is not None else default_jobs(), skip_existing=skip_existing,
                          fail_fast=fail_fast)
    except KeyboardInterrupt:
        if manifest_fh is not None:
            manifest_fh.close()
        done = sum(r.status == "ok" for r in finished)
        sys.stderr.write(
            f"convcli: interrupted: {len(finished)} of {len(plans)} file(s) finished ({done} done, "
            f"{sum(not r.ok for r in finished)} failed); no partial file was left; rerun with --skip-existing "
            f"to finish the rest\n"
        )
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    finally:
        if manifest_fh is not None and not manifest_fh.closed:
            manifest_fh.close()
    seconds = time.perf_counter() - started
    if preview is not None:
        _write_preview(preview, results, quiet=quiet)
    failed = sum(not r.ok for r in results)
    doc = {
        "version": __version__,
        "results": [r.to_dict() for r in results],
        "files": len(results),
        "failed": failed,
        "skipped": sum(r.status == "skipped" for r in results),
        "seconds": round(seconds, 6),
    }
    if json_:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    if report is not None:
        from pathlib import Path

        from .files import atomic_write

        text = (json.dumps(doc, indent=2) + "\n").encode()
        atomic_write(Path(report), lambda fh: fh.write(text))
    if many and not quiet:
        sys.stderr.write(_summary(results, len(plans), seconds, expansion))
    if failed:
        raise typer.Exit(ExitCode.FAILURE)


@dataclasses.dataclass(frozen=True)
class _BatchOptions:
    args: list[str]
    listed: list[str]
    recursive: bool
    include: tuple[str, ...]
    exclude: tuple[str, ...]


def _read_files_from(files_from: str | None, inputs: list[str]) -> list[str]:
    """The paths of --files-from (a file, or - for standard input)."""
    if files_from is None:
        if not inputs:
            raise typer.BadParameter("give at least one INPUT (a file, folder or pattern), or --files-from FILE",
                                     param_hint="INPUT")
        return []
    from .batch import read_list

    if files_from.strip() == "-":
        text = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    else:
        try:
            with open(files_from, "rb") as fh:
                text = fh.read().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            raise typer.BadParameter(f"{files_from!r} does not exist", param_hint="--files-from") from None
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {files_from!r}: {exc.strerror}", param_hint="--files-from") \
                from None
    listed = read_list(text)
    if not listed and not inputs:
        raise typer.BadParameter(f"{files_from!r} lists no file", param_hint="--files-from")
    return listed


def _gather_inputs(batch: _BatchOptions, output: str | None, kernels: Any, quiet: bool) -> tuple[list[Any], Any]:
    """Expand the inputs; leave out outputs of earlier runs found in the folders (and the output
    folder itself); refuse a run with nothing to read."""
    import re
    from pathlib import Path

    from .batch import expand_inputs

    skip_dirs = [Path(output)] if output is not None and output.strip() != "-" and Path(output).is_dir() else []
    expansion = expand_inputs(batch.args, recursive=batch.recursive, include=batch.include,
                              exclude=batch.exclude, listed=batch.listed, skip_dirs=skip_dirs)
    names = [m.name for k in kernels for m in (k, *getattr(k, "kernels", ()))]
    earlier = 0
    sources = list(expansion.sources)
    if names:
        marker = re.compile(r"\.(?:" + "|".join(re.escape(n) for n in names) + r")(?:\.frame\w+)?$")
        kept = [src for src in sources if not (src.found and marker.search(src.path.stem))]
        earlier = len(sources) - len(kept)
        sources = kept
    for pattern in expansion.unmatched:
        if sources and not quiet:
            print_note(f"{pattern!r} matches no file")
    if not sources:
        what = []
        if expansion.unmatched:
            what.append(f"{', '.join(repr(p) for p in expansion.unmatched)} matches no file")
        if expansion.ignored:
            what.append(f"{expansion.ignored} file(s) that are not images were ignored")
        if expansion.excluded:
            what.append(f"{expansion.excluded} left out by --include/--exclude")
        if earlier:
            what.append(f"{earlier} output(s) of earlier runs were left out")
        detail = "; ".join(what) or "the folders are empty"
        hint = "; -r descends into subfolders" if not batch.recursive and any(Path(a).is_dir() for a in batch.args) else ""
        raise typer.BadParameter(f"no input image to process ({detail}){hint}", param_hint="INPUT")
    return sources, dataclasses.replace(expansion, notes=(f"{earlier} output(s) of earlier runs",) if earlier else ())


def _open_manifest(path: str) -> Any:
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {path!r}: {exc.strerror}", param_hint="--manifest") from None


def _render_line(result: Any) -> str:
    """--verbose: one line per input."""
    seconds = sum(sum(r.seconds.values()) for r in result.runs)
    if result.status == "failed":
        return f"failed   {result.input}\n"
    if result.status == "skipped":
        return f"skipped  {result.input} (outputs exist)\n"
    return f"done     {result.input} -> {', '.join(result.outputs)} ({seconds:.2f} s)\n"


def _summary(results: list[Any], planned: int, seconds: float, expansion: Any) -> str:
    done = sum(r.status == "ok" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    failed = sum(not r.ok for r in results)
    rate = len(results) / seconds if seconds > 0 else 0.0
    text = f"{planned} files: {done} done, {failed} failed, {skipped} skipped in {seconds:.2f} s ({rate:.1f} files/s)"
    if len(results) < planned:
        text += f"; {planned - len(results)} not started (--fail-fast)"
    extra = [f"{expansion.ignored} non-image file(s) ignored"] if expansion.ignored else []
    extra += [f"{expansion.excluded} excluded"] if expansion.excluded else []
    extra += [f"{n} left out" for n in expansion.notes]
    if extra:
        text += "; " + ", ".join(extra)
    return text + "\n"


class _Progress:
    """A Rich progress bar on stderr (files done/total, rate, ETA), only when asked for."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self._bar: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._task = self._bar.add_task("convcli", total=self.total, rate="")
            self._bar.start()
        return self

    def advance(self, result: Any) -> None:
        if self._bar is not None:
            task = self._bar.tasks[0]
            elapsed = task.elapsed or 0.0
            rate = f"{(task.completed + 1) / elapsed:.1f} files/s" if elapsed > 0 else ""
            self._bar.update(self._task, advance=1, rate=rate)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


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
        ("input", f"{run.input}  {_size(run.input_shape)} {run.input_mode} {bits}"
                  + (f"  frame {run.frame}" if run.frame is not None else "")),
        ("kernel", f"{run.kernel} {_size(run.kernel_shape)}{scale}{offset}, {op}"),
        ("stride", f"{_size(g.layer.stride)}   dilation {_size(g.layer.dilation)}   border {run.border}"),
        ("padding", f"{rule}top {t}, bottom {b}, left {l}, right {r}"),
        ("output", f"{run.output}  {_size(run.output_shape)} {out_bits}"),
        ("engine", run.engine),
        ("field", f"receptive field {_size(g.receptive_field)}, jump {_size(g.jump)}, MACs {g.macs:,}"),
        ("values", f"min {run.minimum:.6g}, max {run.maximum:.6g}, mean {run.mean:.6g}"),
        *[
            ("", f"  {c['channel']}: min {c['min']:.6g}, max {c['max']:.6g}, mean {c['mean']:.6g}")
            for c in (run.channels if len(run.channels) > 1 else ())
        ],
        ("map", f"{run.map}: {run.clipped:,} of {run.values:,} values clipped ({pct:.2f}%)"),
    ]
    if run.alpha not in ("none", "keep"):
        rows.append(("alpha", run.alpha))
    secs = run.seconds
    rows.append(("time", "   ".join(f"{k} {secs[k]:.3f} s" for k in ("read", "filter", "write") if k in secs)))
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
        if groups is not None and c_in is None:
            raise typer.BadParameter("needs --cin as well (groups split the input channels)", param_hint="--groups")
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
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON list of kernels, banks and parametric kernels.")] = False,
    tag: Annotated[
        Optional[str], typer.Option("--tag", metavar="TAG", help="Only entries with this tag (edge, blur, ...).")
    ] = None,
    kernels_file: KernelsOption = None,
) -> None:
    """List the kernels, banks and parametric kernels.

    Kernels are shown with their size, sum, whether they are separable (rank 1), tags and
    description; banks with their members and combine mode; parametric kernels with their syntax.
    """
    from .kernelgen import GENERATORS

    registry = _registry(kernels_file, max_side=1 << 30)
    want = tag.strip().lower() if tag else None
    kernels = [k for k in registry.kernels.values() if want is None or want in k.tags]
    banks = [b for b in registry.banks.values() if want is None or want in b.tags]
    gens = [g for g in GENERATORS.values() if want is None or want in g.tags]
    if json_:
        doc = [k.to_dict() for k in kernels] + [b.to_dict() for b in banks]
        doc += [
            {
                "kind": "parametric",
                "name": g.name,
                "syntax": g.syntax(),
                "parameters": [p.name for p in g.params],
                "example": g.example,
                "description": g.summary,
                "tags": list(g.tags),
            }
            for g in gens
        ]
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    if not (kernels or banks or gens):
        raise typer.BadParameter(f"no kernel has the tag {tag!r}", param_hint="--tag")
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .kernels import matrix_rank

    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 250)
    tables = []
    if kernels:
        table = Table(title="Kernels", title_justify="left", show_edge=False, pad_edge=False)
        for col in ("name", "size", "sum", "separable", "tags", "description"):
            table.add_column(col, no_wrap=col in ("name", "size"), overflow="fold")
        for k in kernels:
            also = f" (also: {', '.join(k.aliases)})" if k.aliases else ""
            where = f" [from {k.source}]" if k.source not in ("built-in",) else ""
            table.add_row(
                Text(k.name),
                _size(k.shape),
                "0" if k.zero_sum else f"{k.total:.4g}",
                "yes" if matrix_rank(k.weights) == 1 else "no",
                Text(",".join(k.tags)),
                Text(k.description + also + where),
            )
        tables.append(table)
    if banks:
        table = Table(title="Banks (-k NAME, or NAME:max, NAME:sum, NAME:stack)", title_justify="left",
                      show_edge=False, pad_edge=False)
        for col in ("name", "size", "combine", "kernels", "tags", "description"):
            table.add_column(col, no_wrap=col in ("name", "size"), overflow="fold")
        for b in banks:
            table.add_row(Text(b.name), _size(b.shape), b.combine, Text(", ".join(b.member_names)),
                          Text(",".join(b.tags)), Text(b.description))
        tables.append(table)
    if gens:
        table = Table(title="Parametric kernels", title_justify="left", show_edge=False, pad_edge=False)
        for col in ("syntax", "example", "description"):
            table.add_column(col, overflow="fold")
        for g in gens:
            table.add_row(Text(g.syntax()), Text(g.example), Text(g.summary))
        tables.append(table)
    with console.capture() as captured:
        for i, table in enumerate(tables):
            if i:
                console.print()
            console.print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


@kernels_app.command("show", context_settings={"ignore_unknown_options": True})
def kernels_show(
    spec: Annotated[
        str,
        typer.Argument(metavar="SPEC", help="Anything -k accepts: a name, bank, parametric kernel, matrix or file.",
                       show_default=False),
    ],
    convolve: Annotated[
        bool, typer.Option("--convolve", help="Show the kernel as apply --convolve uses it: rotated 180 degrees.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON object; its matrix is what apply correlates with.")] = False,
    plot: Annotated[
        Optional[str],
        typer.Option("--plot", metavar="IMAGE", help="Also draw the kernel as a heat map (PNG, ...).", show_default=False),
    ] = None,
    save: Annotated[
        Optional[str],
        typer.Option("--save", metavar="FILE", help="Also write the effective kernel as .txt, .csv, .npy, .toml or .mat.",
                     show_default=False),
    ] = None,
    scale: Annotated[Optional[str], typer.Option(metavar="S", help="As apply --scale.", show_default=False)] = None,
    offset: Annotated[Optional[str], typer.Option(metavar="V", help="As apply --offset.", show_default=False)] = None,
    normalize: Annotated[bool, typer.Option("--normalize", help="As apply --normalize.")] = False,
    kernels_file: KernelsOption = None,
    max_kernel_size: MaxSizeOption = 1025,
) -> None:
    """Show one kernel exactly as apply uses it.

    The effective matrix (times its scale, rotated under --convolve), its sum, whether it is
    normalised or zero-sum, its rank and 1-D factors, and the output range for 8- and 16-bit input.
    """
    from pathlib import Path

    from .files import atomic_write
    from .kernelinfo import BankInfo, describe

    item = _resolve_all(
        [spec], kernels_file=kernels_file, max_side=max_kernel_size, scale=scale, offset=offset,
        normalize=normalize,
    )[0]
    info = describe(item, convolve=convolve)
    writes = []
    if plot is not None:
        from .images import IMAGE_FORMATS

        target = Path(plot)
        suffix = target.suffix.lower()
        if suffix not in IMAGE_FORMATS:
            raise typer.BadParameter(
                f"{plot!r}: give an image file name such as kernel.png ({', '.join(IMAGE_FORMATS)})",
                param_hint="--plot",
            )
        from .kernelplot import plot as draw

        picture = draw(info)
        atomic_write(target, lambda fh: picture.save(fh, format=IMAGE_FORMATS[suffix][0]))
        writes.append(f"wrote {plot} ({picture.size[0]}x{picture.size[1]} heat map)")
    if save is not None:
        from .kernelfiles import SAVE_SUFFIXES, kernel_file_bytes

        target = Path(save)
        if isinstance(info, BankInfo):
            raise typer.BadParameter(
                f"{item.name!r} is a bank of {len(item.kernels)} kernels; save its kernels one by one",
                param_hint="--save",
            )
        if target.suffix.lower() not in SAVE_SUFFIXES:
            raise typer.BadParameter(f"{save!r}: use one of {', '.join(SAVE_SUFFIXES)}", param_hint="--save")
        data, notes = kernel_file_bytes(item.flipped() if convolve else item, target.suffix)
        atomic_write(target, lambda fh: fh.write(data))
        writes.append(f"wrote {save}")
        for note in notes:
            print_note(note)
    if json_:
        sys.stdout.write(json.dumps(info.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(_show_text(info))
    for line in writes:
        sys.stderr.write(line + "\n")


def _num(v: float) -> str:
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


def _matrix_lines(m: Any, indent: str) -> list[str]:
    """Right-aligned columns; very large matrices show their corners."""
    rows, cols = m.shape
    keep_r = list(range(rows)) if rows <= 31 else [*range(5), -1, *range(rows - 5, rows)]
    keep_c = list(range(cols)) if cols <= 31 else [*range(5), -1, *range(cols - 5, cols)]
    cells = [["..." if r < 0 or c < 0 else _num(m[r, c]) for c in keep_c] for r in keep_r]
    width = max(len(x) for row in cells for x in row)
    return [indent + "  ".join(x.rjust(width) for x in row) for row in cells]


def _show_kernel_lines(info: Any, indent: str = "  ") -> list[str]:
    k = info.kernel
    pad = indent + " " * 12
    shown = k.spec not in (k.name, f"@{k.source}")
    lines = [f"{indent}{'source':<11} {k.source}" + (f"  (spec {k.spec})" if shown else "")]
    if k.aliases:
        lines.append(f"{indent}{'aliases':<11} {', '.join(k.aliases)}")
    if info.convolve:
        lines.append(f"{indent}{'operation':<11} convolve: the kernel is rotated 180 degrees, then correlated")
    else:
        lines.append(f"{indent}{'operation':<11} correlate: each patch is multiplied by the weights as shown")
    if k.scale_text != "1":
        written = k.matrix[::-1, ::-1] if info.convolve else k.matrix
        lines.append(f"{indent}{'matrix':<11} as written, times {k.scale_text}:")
        lines += _matrix_lines(written, pad)
    lines.append(f"{indent}{'weights':<11} what apply multiplies each patch with:")
    lines += _matrix_lines(info.matrix, pad)
    ar, ac = info.anchor
    lines.append(f"{indent}{'anchor':<11} row {ar}, column {ac} (the tap over the output pixel)")
    if info.zero_sum:
        total = "0: zero-sum, so flat areas give 0 (an edge or derivative kernel); --normalize refuses it"
    elif info.normalized:
        total = "1: normalised, so flat areas keep their value"
    else:
        total = f"{_num(info.total)}: flat areas are multiplied by {_num(info.total)}"
    lines.append(f"{indent}{'sum':<11} {total}")
    if info.factors is not None:
        col, row = info.factors
        vec = lambda v: "[" + " ".join(_num(x) for x in v) + "]"  # noqa: E731
        lines.append(f"{indent}{'rank':<11} 1, separable: column {vec(col)} times row {vec(row)}")
    else:
        lines.append(f"{indent}{'rank':<11} {info.rank}, not separable")
    if k.offset:
        lines.append(f"{indent}{'offset':<11} {_num(k.offset)} added to every output value")
    lo8, hi8 = info.response[8]
    lo16, hi16 = info.response[16]
    lines.append(f"{indent}{'response':<11} 8-bit input: {_num(lo8)} .. {_num(hi8)};  "
                 f"16-bit input: {_num(lo16)} .. {_num(hi16)}")
    lines.append(f"{indent}{'map':<11} {info.map} for image output (--map changes it)")
    if k.tags:
        lines.append(f"{indent}{'tags':<11} {', '.join(k.tags)}")
    lines.append(f"{indent}{'imagemagick':<11} -morphology Correlate '{info.imagemagick}'")
    lines += [f"{indent}{'note':<11} {n}" for n in k.notes]
    return lines


def _show_text(info: Any) -> str:
    from .kernelinfo import BankInfo

    if not isinstance(info, BankInfo):
        k = info.kernel
        head = f"{k.name}  {_size(k.shape)}  {k.description}".rstrip()
        return "\n".join([head, *_show_kernel_lines(info)]) + "\n"
    b = info.bank
    lines = [f"{b.name}  bank of {len(b.kernels)} kernels, {_size(b.shape)}  {b.description}".rstrip()]
    lines.append(f"  {'combine':<11} {b.summary()}")
    if b.offset:
        lines.append(f"  {'offset':<11} {_num(b.offset)} added after combining")
    if info.response is not None:
        lo8, hi8 = info.response[8]
        lo16, hi16 = info.response[16]
        lines.append(f"  {'response':<11} 8-bit input: {_num(lo8)} .. {_num(hi8)} at most;  "
                     f"16-bit input: {_num(lo16)} .. {_num(hi16)} at most")
    else:
        lines.append(f"  {'response':<11} each map keeps its own range (below); .npy holds them as (H, W[, C], K)")
    lines.append(f"  {'map':<11} {info.map} for image output (--map changes it)")
    if b.tags:
        lines.append(f"  {'tags':<11} {', '.join(b.tags)}")
    for m in info.members:
        lines.append("")
        lines.append(f"  {m.kernel.name}  {_size(m.kernel.shape)}  {m.kernel.description}".rstrip())
        lines += _show_kernel_lines(m, indent="    ")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- explain


def _text_width() -> int:
    """Lines of explain text: at most 80 columns, fewer in a narrower terminal."""
    import shutil

    return max(40, min(80, shutil.get_terminal_size((80, 24)).columns))


def _explain_input(text: str, crop_box: Optional[str], channel: Optional[int]) -> Any:
    """The --input matrix: inline text, an array file, or (a crop of) an image."""
    from .errors import ParameterError
    from .explain import crop, parse_crop
    from .images import ARRAY_SUFFIXES, IMAGE_FORMATS, read_input
    from .kernels import parse_matrix

    looks_like_file = text.strip().lower().endswith((*ARRAY_SUFFIXES, *IMAGE_FORMATS, ".npy"))
    if os.path.exists(text) or looks_like_file:
        data = read_input(text).data
    else:
        if crop_box is not None:
            raise ParameterError("--crop applies to an image or array file, not to an inline --input matrix")
        data = parse_matrix(text, where="--input", max_side=None)
    if data.ndim == 3:
        if channel is None:
            channel = 0
            print_note(f"--input has {data.shape[2]} channels; explaining channel 0 (--channel N picks another)")
        if not 0 <= channel < data.shape[2]:
            raise ParameterError(f"--channel {channel}: the input has channels 0..{data.shape[2] - 1}")
        data = data[:, :, channel]
    elif channel not in (None, 0):
        raise ParameterError(f"--channel {channel}: the input has one channel (0)")
    if crop_box is not None:
        data = crop(data, parse_crop(crop_box))
    return data


def _parse_at(text: str, one_d: bool) -> tuple[int, int]:
    from .errors import ParameterError

    parts = [p.strip() for p in text.strip().strip("()").split(",")]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if one_d and len(nums) == 1:
        return 0, nums[0]
    if len(nums) != 2:
        want = "N (a 1-D output index) or ROW,COL" if one_d else "ROW,COL, such as 0,0"
        raise ParameterError(f"--at: {text!r} is not {want}")
    return nums[0], nums[1]


def _image_target(path: str, option: str, suffixes: tuple[str, ...]) -> Any:
    from pathlib import Path

    target = Path(path)
    if target.suffix.lower() not in suffixes:
        raise typer.BadParameter(f"{path!r}: give a file name ending in {' or '.join(suffixes)}", param_hint=option)
    return target


@app.command(context_settings={"ignore_unknown_options": True})
def explain(
    input_: Annotated[
        str,
        typer.Option(
            "--input",
            "-i",
            metavar="MATRIX|FILE",
            help="The input: an inline matrix ('10 20 30; 40 50 60', rows split by ';'; one row is a 1-D "
            "signal), an array file (.txt, .csv, .npy) or an image (with --crop for more than 16x16).",
            show_default=False,
        ),
    ],
    kernel: Annotated[
        str,
        typer.Option("-k", "--kernel", metavar="SPEC",
                     help="Any single kernel -k of apply takes: a name, an inline matrix, a file.",
                     show_default=False),
    ],
    at: Annotated[
        Optional[str],
        typer.Option("--at", metavar="ROW,COL",
                     help="Work out one output position: its patch, the element-wise products and the sum "
                     "(N for a 1-D input).", show_default=False),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Work out every output position, row by row.")] = False,
    stride: Annotated[str, typer.Option(metavar="N|RxC", help="Step between placements.")] = "1",
    padding: Annotated[
        str,
        typer.Option(metavar="PAD", help="valid (as in the worked examples), same, full, N, HxW, BEFORE,AFTER "
                     "or TOP,BOTTOM,LEFT,RIGHT."),
    ] = "valid",
    dilation: Annotated[str, typer.Option(metavar="N|RxC", help="Spacing between kernel taps.")] = "1",
    border: Annotated[
        str,
        typer.Option(metavar="MODE", help="What the padded cells hold: zero (as in CNNs), constant=V, "
                     "replicate, reflect, reflect101, wrap."),
    ] = "zero",
    convolve: Annotated[
        bool, typer.Option("--convolve", help="True convolution: show and use the kernel rotated 180 degrees.")
    ] = False,
    crop_box: Annotated[
        Optional[str],
        typer.Option("--crop", metavar="X,Y,W,H",
                     help="Explain this part of an image or array file: left column X, top row Y, width W, "
                     "height H (at most 16x16).", show_default=False),
    ] = None,
    channel: Annotated[
        Optional[int],
        typer.Option("--channel", metavar="C", min=0, help="Which channel of a colour input (default 0).",
                     show_default=False),
    ] = None,
    gif: Annotated[
        Optional[str],
        typer.Option("--gif", metavar="FILE.gif",
                     help="Also write an animation of the kernel sliding over the input, one frame per "
                     "output position.", show_default=False),
    ] = None,
    png: Annotated[
        Optional[str],
        typer.Option("--png", metavar="FILE.png", help="Also write every frame of the animation into one "
                     "picture.", show_default=False),
    ] = None,
    kernels_file: KernelsOption = None,
    max_kernel_size: MaxSizeOption = 1025,
) -> None:
    """Work a small convolution out by hand: input, kernel, output and the output-size formula.

    Every number shown is the engine's. Defaults follow the textbook examples: no padding
    (--padding valid) and zeros in the padding (--border zero) when there is some.
    """
    from pathlib import Path

    from . import _cli_explain as render
    from .banks import Bank
    from .errors import KernelError, ParameterError
    from .explain import explain as work_out

    item = _resolve_all([kernel], kernels_file=kernels_file, max_side=max_kernel_size)[0]
    if isinstance(item, Bank):
        raise KernelError(
            f"kernel: {item.name!r} is a bank of {len(item.kernels)} kernels ({', '.join(item.member_names)}); "
            "explain takes one kernel, so name one of them"
        )
    targets = []
    if gif is not None:
        targets.append(("gif", _image_target(gif, "--gif", (".gif",))))
    if png is not None:
        targets.append(("png", _image_target(png, "--png", (".png",))))
    data = _explain_input(input_, crop_box, channel)
    for _, target in targets:
        if os.path.exists(input_) and os.path.exists(target):
            from .files import same_file

            if same_file(Path(input_), target):
                raise ParameterError(f"{target} is the input; write the picture to another file")
    e = work_out(data, item.weights, stride=stride, padding=padding, dilation=dilation, border=border,
                 convolve=convolve, offset=item.offset)
    position = None
    if at is not None:
        row, col = _parse_at(at, e.one_d)
        e.check_position(row, col)
        position = e.position(row, col)
    width = _text_width()
    name = item.name if item.source != "inline" else "inline matrix"
    written = item.matrix if item.scale_text != "1" else None
    kernel_text = render.explanation_text(e, kernel_name=name, written=written, scale_text=item.scale_text,
                                          width=width)
    parts = [kernel_text]
    if position is not None:
        parts.append(render.position_text(e, position, width=width))
    if all_:
        parts.append(render.all_positions_text(e, width=width))
    sys.stdout.write("\n".join(parts))
    for kind, target in targets:
        from .drawing import slide_frames, strip

        frames = slide_frames(e)
        if kind == "gif":
            from .drawing import gif_bytes

            data_bytes = gif_bytes(frames)
            _atomic_bytes(target, data_bytes)
            sys.stderr.write(f"wrote {target} ({len(frames)} frames, {frames[0].image.width}x"
                             f"{frames[0].image.height})\n")
        else:
            picture = strip(frames)
            _atomic_bytes(target, _png_bytes(picture))
            sys.stderr.write(f"wrote {target} ({len(frames)} frames, {picture.width}x{picture.height})\n")


def _png_bytes(picture: Any) -> bytes:
    import io

    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return buf.getvalue()


def _atomic_bytes(target: Any, data: bytes) -> None:
    from .files import atomic_write

    atomic_write(target, lambda fh: fh.write(data))


# ----------------------------------------------------------------------------- gallery


def _gallery_items(specs: Optional[list[str]], tag: Optional[str], kernels_file: Optional[list[str]],
                   max_side: int) -> list[Any]:
    """-k specs (a comma list of registry names counts as several), a --tag, or the default list."""
    from .gallery import DEFAULT_KERNELS

    registry = _registry(kernels_file, max_side=max_side, quiet=True)
    if tag is not None:
        if specs:
            raise typer.BadParameter("give -k or --tag, not both", param_hint="--tag")
        want = tag.strip().lower()
        names = [k.name for k in registry.kernels.values() if want in k.tags]
        names += [b.name for b in registry.banks.values() if want in b.tags]
        if not names:
            raise typer.BadParameter(f"no kernel has the tag {tag!r}; `convcli kernels list` shows the tags",
                                     param_hint="--tag")
        return _resolve_all(names, kernels_file=kernels_file, max_side=max_side)
    wanted: list[str] = []
    for spec in specs or list(DEFAULT_KERNELS):
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) > 1 and all(p and registry.find(p) is not None for p in parts):
            wanted += parts
        else:
            wanted.append(spec)
    return _resolve_all(wanted, kernels_file=kernels_file, max_side=max_side)


@app.command()
def gallery(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="The image (or array file) to filter.",
                                         show_default=False)],
    output: Annotated[
        str, typer.Option("-o", "--output", metavar="FILE.png", help="Where to write the gallery.",
                          show_default=False)
    ],
    kernel: Annotated[
        Optional[list[str]],
        typer.Option("-k", "--kernel", metavar="SPEC",
                     help="A kernel or bank to show (repeat, or a comma list of names: -k sobel-x,sobel-y). "
                     "Default: identity, sobel-x, sobel-y, sobel (magnitude), box-blur, gaussian-blur, "
                     "sharpen, laplacian, emboss.", show_default=False),
    ] = None,
    tag: Annotated[
        Optional[str], typer.Option("--tag", metavar="TAG", help="Every kernel and bank with this tag (edge, "
                                    "blur, ...).", show_default=False)
    ] = None,
    map_: Annotated[
        str,
        typer.Option("--map", metavar="MAP", help="auto (diverging blue-white-red for signed maps, grey "
                     "otherwise), diverging, clip, abs, offset or rescale, for every tile."),
    ] = "auto",
    size: Annotated[int, typer.Option("--size", metavar="PX", min=16, max=1024,
                                      help="Longest side of each tile; the image is shrunk to it first, "
                                      "then filtered.")] = 256,
    kernels_file: KernelsOption = None,
    max_kernel_size: MaxSizeOption = 1025,
) -> None:
    """One picture: the image and its map through each of several kernels, labelled with the matrix."""
    from pathlib import Path

    from .files import same_file
    from .gallery import GALLERY_MAPS, gallery as draw
    from .images import read_input

    how = _choice("--map", map_, GALLERY_MAPS)
    target = _image_target(output, "--output", (".png",))
    if Path(image).exists() and target.exists() and same_file(Path(image), target):
        raise typer.BadParameter(f"{output!r} is the input; write the gallery to another file",
                                 param_hint="--output")
    items = _gallery_items(kernel, tag, kernels_file, max_kernel_size)
    loaded = read_input(image)
    sheet = draw(loaded.data, items, bits=loaded.bits, map_=how, max_side=size,
                 title=f"{os.path.basename(image)} through {len(items)} kernels")
    _atomic_bytes(target, _png_bytes(sheet.image))
    sys.stderr.write(f"wrote {output} ({len(items) + 1} tiles, {sheet.image.width}x{sheet.image.height})\n")


# ----------------------------------------------------------------------------- apply --preview


def check_side_output(path: str, option: str, suffixes: tuple[str, ...], inputs: list[Any], outputs: list[Any]) -> None:
    """A side file (--report, --preview) must not be an input, nor one of the run's own outputs."""
    from pathlib import Path

    from .files import same_file

    target = _image_target(path, option, suffixes)
    for other in (*inputs, *outputs):
        other = Path(other)
        if str(other) == "-":
            continue
        if os.path.abspath(other) == os.path.abspath(target) or (
            target.exists() and other.exists() and same_file(target, other)
        ):
            raise typer.BadParameter(f"{path!r} is also an input or output of this run; pick another name",
                                     param_hint=option)


def _check_preview(path: str, plans: list[Any]) -> None:
    """--preview names a .png that is neither an input nor an output of this run."""
    for plan in plans:
        if str(plan.input) == "-" or any(str(o) == "-" for o in plan.outputs):
            raise typer.BadParameter("a preview reads the input and the maps back from files; it cannot "
                                     "with standard input or output (-)", param_hint="--preview")
    check_side_output(path, "--preview", (".png",), [p.input for p in plans],
                      [o for p in plans for o in p.outputs])


def _preview_pixels(path: str) -> Any:
    from .gallery import to_display
    from .images import read_input

    loaded = read_input(path)
    data = loaded.data
    if data.ndim == 4 or (data.ndim == 3 and data.shape[2] not in (1, 3)):
        data = data[..., 0] if data.ndim == 4 else data.mean(axis=2)
    if loaded.bits == 8 and data.dtype.kind == "u":
        return data
    if loaded.bits == 16:
        return (data >> 8).astype("uint8")
    signed = float(data.min()) < 0
    return to_display(data, "diverging" if signed else "rescale")


def _write_preview(path: str, results: list[Any], *, quiet: bool) -> None:
    """Read back each input and the maps this run wrote, and draw them as one sheet."""
    from pathlib import Path

    from .gallery import contact_sheet

    rows = []
    for result in results:
        if not result.runs:
            continue
        try:
            maps = [(Path(r.output).name, _preview_pixels(r.output)) for r in result.runs]
            rows.append((Path(result.input).name, _preview_pixels(result.input), maps))
        except ConvcliError as exc:
            print_error(f"--preview: {exc}")
    if not rows:
        print_error(f"--preview: nothing was written, so {path} was not drawn")
        return
    sheet = contact_sheet(rows)
    _atomic_bytes(Path(path), _png_bytes(sheet.image))
    if not quiet:
        sys.stderr.write(f"preview: {path} ({len(rows)} inputs, {sheet.image.width}x{sheet.image.height})\n")


def main(prog_name: str = "convcli") -> None:
    """Console-script entry point."""
    # The engine calls BLAS from its own worker threads; OpenBLAS's threads on top of those
    # stall runs 10-50x. NumPy is not imported yet, so this reaches the BLAS as it loads.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    # SIGTERM (kill, timeout) unwinds like Ctrl-C, so no temporary file is left behind
    import signal

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        app(prog_name=prog_name)
    except SystemExit as exc:
        code = exc.code
    else:  # pragma: no cover - the group always exits
        code = 0
    if "multiprocessing" in sys.modules:
        # a batch on worker processes: multiprocessing stops its fork server at exit
        sys.exit(code)
    # Every output is written, renamed into place and closed: skip the interpreter's teardown
    # of every module and object (about 0.1 s, a tenth of a whole run on a 12-megapixel
    # photo) and leave at once.
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more to say
            pass
    os._exit(code or 0)
