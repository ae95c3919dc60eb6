"""Read, filter, map, write: the work behind ``convcli apply``, without any terminal I/O.

Output naming (decided before any file is read, so that mistakes cost nothing):

* no output given: ``{stem}.{kernel}{ext}`` beside each input (a bank is named
  like a kernel: ``{stem}.sobel.png``);
* an existing folder, a path ending in ``/``, or a path without a suffix:
  ``{folder}/{stem}.{kernel}{ext}`` (the folder is created if needed);
* a file path (``out.png``, ``edges.npy``): exactly that file, which needs
  exactly one input and one kernel.

``ext`` is ``.png`` for image inputs and ``.npy`` for array inputs. An existing
output is replaced (atomically); an input is never written to.

A bank whose combine mode is ``stack`` keeps every member's map: written to
``.npy`` that is one ``(H, W, K)`` array (``(H, W, C, K)`` for ``C`` channels);
written to an image format it is one image per member, named after the member
(``{stem}.sobel-x.png``, ``{stem}.sobel-y.png``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .banks import Bank, apply_bank
from .engine import Border, correlate, plan, plan_geometry
from .errors import ConvcliError, ParameterError, ShapeError
from .files import atomic_write, same_file
from .geometry import Pair, PaddingSpec
from .images import ARRAY_SUFFIXES, IMAGE_FORMATS, LoadedImage, encode_image, format_for, npy_dtype, read_input, write_npy
from .kernels import Kernel
from .output import MAP_NAMES, auto_map, map_values
from .report import FileResult, KernelRun

__all__ = ["FilterSpec", "OutputPlan", "plan_outputs", "process_file", "run"]


@dataclass(frozen=True)
class FilterSpec:
    """How to filter: the kernels and the geometry, shared by every input."""

    #: kernels and banks, in the order their outputs are written
    kernels: tuple[Kernel | Bank, ...]
    stride: Pair = (1, 1)
    padding: PaddingSpec = field(default_factory=lambda: PaddingSpec(rule="same"))
    dilation: Pair = (1, 1)
    border: Border = field(default_factory=Border)
    convolve: bool = False
    #: "auto" or one of output.MAP_NAMES
    map: str = "auto"
    #: engine path ("auto" lets the planner choose) and worker threads (None: all cores)
    engine: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.map != "auto" and self.map not in MAP_NAMES:
            raise ParameterError(f"map: unknown map {self.map!r}; use auto or one of {', '.join(MAP_NAMES)}")
        if not self.kernels:
            raise ParameterError("give at least one kernel")
        if self.engine == "separable":
            from .engine import separable_rank_limit

            limit = separable_rank_limit()
            members = [m for k in self.kernels for m in (k.kernels if isinstance(k, Bank) else (k,))]
            for k in members:
                rank = int(np.linalg.matrix_rank(k.weights))
                if rank > limit:
                    raise ParameterError(
                        f"engine: kernel {k.name!r} has rank {rank}; the separable path runs kernels of "
                        f"rank 1 to {limit} (use --engine auto)"
                    )


@dataclass(frozen=True)
class OutputPlan:
    """Where each input's results go: one path per filter (kernel or bank), in order.

    ``filters[i]`` is written to ``outputs[i]``; a stacked bank written to
    images appears as its members, one output each.
    """

    input: Path
    outputs: tuple[Path, ...]
    filters: tuple[Kernel | Bank, ...] = ()


def _default_suffix(path: Path) -> str:
    return ".npy" if path.suffix.lower() in ARRAY_SUFFIXES else ".png"


def _jobs(kernels: tuple[Kernel | Bank, ...], suffix: str) -> list[Kernel | Bank]:
    """The filters as written: a stacked bank becomes its members unless the output is .npy."""
    jobs: list[Kernel | Bank] = []
    for item in kernels:
        if isinstance(item, Bank) and item.combine == "stack" and suffix.lower() != ".npy":
            jobs.extend(item.kernels)
        else:
            jobs.append(item)
    return jobs


def _kernel_files(kernels: tuple[Kernel | Bank, ...]) -> list[Path]:
    """Files the kernels were read from: inputs too, never to be overwritten."""
    found = []
    for item in kernels:
        for k in item.kernels if isinstance(item, Bank) else (item,):
            source = k.source.split("#", 1)[0]
            if source not in ("inline", "built-in", "generated") and Path(source).is_file():
                found.append(Path(source))
    return found


def plan_outputs(
    inputs: Iterable[Path], kernels: tuple[Kernel | Bank, ...], output: str | None, *, map_: str = "auto"
) -> list[OutputPlan]:
    """Decide every output path before any work, refusing (ParameterError) collisions, outputs
    that would overwrite an input (images, arrays or kernel files), and outputs that cannot
    hold what was asked for."""
    inputs = [Path(p) for p in inputs]
    protected = inputs + _kernel_files(tuple(kernels))
    folder: Path | None = None
    single: Path | None = None
    if output is not None:
        if output.strip() == "-":
            raise ParameterError("-o -: writing to standard output is not supported yet; give a file or a folder")
        out = Path(output)
        if out.exists() and not out.is_dir() and not out.suffix:
            raise ParameterError(
                f"-o {output!r} is an existing file without a suffix; give a folder or a file name "
                "such as out.png"
            )
        if output.endswith(("/", os.sep)) or out.is_dir() or not out.suffix:
            folder = out
        else:
            format_for(out)  # unknown suffix -> OutputError, raised as usage below
            single = out
    plans: list[OutputPlan] = []
    for path in inputs:
        suffix = single.suffix if single is not None else _default_suffix(path)
        jobs = _jobs(tuple(kernels), suffix)
        names = [k.name for k in jobs]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ParameterError(
                f"kernel {dup!r} is given twice (or also comes from a stacked bank); "
                "each kernel's output is named after it"
            )
        if single is not None:
            if len(inputs) * len(jobs) != 1:
                stacked = any(isinstance(k, Bank) and k.combine == "stack" for k in kernels)
                hint = "; a stacked bank fits in one .npy file" if stacked else ""
                raise ParameterError(
                    f"-o {output!r} names one file, but this run writes {len(inputs) * len(jobs)} "
                    f"outputs ({len(inputs)} input(s) x {len(jobs)} kernel(s)); give a folder "
                    f"instead, such as -o out/{hint}"
                )
            outs: tuple[Path, ...] = (single,)
        else:
            base = folder if folder is not None else path.parent
            outs = tuple(base / f"{path.stem}.{name}{suffix}" for name in names)
        plans.append(OutputPlan(path, outs, tuple(jobs)))
    seen: dict[str, Path] = {}
    for plan in plans:
        for out in plan.outputs:
            key = os.path.normcase(os.path.realpath(out))
            if key in seen:
                raise ParameterError(
                    f"{str(plan.input)!r} and {str(seen[key])!r} would both write {str(out)!r}; "
                    "send them to different folders"
                )
            seen[key] = plan.input
            for other in protected:
                if same_file(out, other):
                    raise ParameterError(
                        f"output {str(out)!r} is an input file; convcli never overwrites its inputs"
                    )
            if map_ == "raw" and format_for(out) != "NPY":
                raise ParameterError(
                    f"--map raw keeps float values, which {out.suffix or 'this output'} cannot hold; "
                    "write .npy or choose another map"
                )
    return plans


def _available_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 2**40


def _check_memory(image: LoadedImage, kernel: Kernel | Bank, spec: FilterSpec) -> None:
    """Refuse, before allocating, a result that cannot fit in memory (huge padding or dilation)."""
    shape = kernel.kernels[0].shape if isinstance(kernel, Bank) else kernel.shape
    g = plan_geometry(image.data.shape, shape, stride=spec.stride, padding=spec.padding, dilation=spec.dilation)
    count = len(kernel.kernels) if isinstance(kernel, Bank) else 1
    # the float map (per bank member), its mapped copy, and the encoded file
    need = g.output[0] * g.output[1] * image.channels * (8 * count + 10)
    free = _available_memory()
    if need > free:
        raise ShapeError(
            f"the {g.output[0]}x{g.output[1]} result would need about {need / 2**30:.1f} GiB, "
            f"but {free / 2**30:.1f} GiB is free; reduce the padding or dilation"
        )


def _output_bits(image: LoadedImage, fmt: str) -> int:
    holds_16 = next((v[1] for v in IMAGE_FORMATS.values() if v[0] == fmt), False)
    if image.bits == 16 and holds_16 and image.channels == 1:
        return 16
    return 8


def _sample_alpha(alpha: np.ndarray, kernel_shape: tuple[int, int], spec: FilterSpec) -> np.ndarray:
    """Alpha at the output geometry: the alpha under each placement's anchor tap."""
    impulse = np.zeros(kernel_shape)
    impulse[(kernel_shape[0] - 1) // 2, (kernel_shape[1] - 1) // 2] = 1.0
    sampled = correlate(
        alpha,
        impulse,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        border="replicate",
    )
    return sampled.astype(alpha.dtype)


def apply_kernel(image: LoadedImage, kernel: Kernel | Bank, spec: FilterSpec, output: Path) -> KernelRun:
    """Filter ``image`` with ``kernel`` (or a bank) and write the result to ``output``."""
    fmt = format_for(output)
    notes: list[str] = []
    _check_memory(image, kernel, spec)
    t0 = time.perf_counter()
    options = {
        "stride": spec.stride,
        "padding": spec.padding,
        "dilation": spec.dilation,
        "border": spec.border,
        "convolve": spec.convolve,
    }
    if isinstance(kernel, Bank):
        if kernel.combine == "stack" and fmt != "NPY":
            raise ParameterError(f"bank {kernel.name!r}: stacked maps go to .npy, or one image per member")
        values = apply_bank(image.data, kernel, **options, engine=spec.engine, threads=spec.threads)
        notes.append(
            f"bank {kernel.name}: {kernel.summary()}; the MACs above are per kernel "
            f"({len(kernel.kernels)} kernels)"
        )
        if kernel.combine == "stack":
            notes.append(f"stacked maps on the last axis, in this order: {', '.join(kernel.member_names)}")
        scale_text = _bank_scale(kernel)
        engine_text = f"per member kernel ({spec.engine})"
    else:
        chosen = plan(
            image.data.shape,
            kernel.weights,
            stride=spec.stride,
            padding=spec.padding,
            dilation=spec.dilation,
            convolve=spec.convolve,
            engine=spec.engine,
            threads=spec.threads,
            dtype=image.data.dtype,
        )
        values = correlate(image.data, kernel.weights, **options, engine=chosen.path, threads=chosen.threads)
        if kernel.offset:
            values += values.dtype.type(kernel.offset)
        scale_text = kernel.scale_text
        engine_text = chosen.describe()
    geometry = plan_geometry(
        image.data.shape, kernel.shape, stride=spec.stride, padding=spec.padding, dilation=spec.dilation
    )
    t1 = time.perf_counter()
    stats = (float(values.min()), float(values.max()), float(values.mean()))
    if not all(np.isfinite(stats)):
        raise ShapeError(
            f"kernel {kernel.name!r}: the result overflows {values.dtype} (values beyond "
            f"{np.finfo(values.dtype).max:.3g}); scale the kernel down"
        )
    if fmt == "NPY":
        if spec.map not in ("auto", "raw"):
            notes.append(f"--map {spec.map} ignored: .npy output holds the raw float32 values")
        if image.alpha is not None:
            notes.append("alpha not written: .npy output holds the filtered channels only")
        how, clipped, bits = "raw", 0, None
        if npy_dtype(values) == np.float64:
            notes.append("written as float64: the values exceed float32's range")
        out_shape = values.shape

        def write(fh):  # noqa: ANN001, ANN202
            write_npy(fh, values)

    else:
        if isinstance(kernel, Bank):
            how = spec.map if spec.map != "auto" else (kernel.map or "clip")
        else:
            how = spec.map if spec.map != "auto" else auto_map(kernel.weights, kernel.map)
        bits = _output_bits(image, fmt)
        if image.bits == 16 and bits == 8:
            notes.append(f"16-bit input written as 8-bit: {fmt} output here holds 8 bits per channel")
        if image.bits == 16 and bits == 8 and how != "rescale":
            values = values / np.float32(257.0)
        mapped = map_values(values, how, np.uint16 if bits == 16 else np.uint8, overwrite=True)
        clipped = mapped.clipped
        if clipped > 0.01 * values.size:
            notes.append(
                f"{100 * clipped / values.size:.1f}% of values fell outside 0..{2**bits - 1} "
                "and were clipped; --map rescale keeps them all, .npy output keeps the raw floats"
            )
        alpha = None
        if image.alpha is not None:
            if IMAGE_FORMATS[output.suffix.lower()][2] and image.bits != 16:
                alpha = _sample_alpha(image.alpha, kernel.shape, spec)
            else:
                notes.append(f"alpha dropped: {fmt} output cannot hold it here")
        out_shape = mapped.data.shape if alpha is None else (*mapped.data.shape[:2], image.channels + 1)

        encoded = encode_image(mapped.data, alpha, fmt)  # before the temporary file exists

        def write(fh):  # noqa: ANN001, ANN202
            fh.write(encoded)

    atomic_write(output, write)
    t2 = time.perf_counter()
    return KernelRun(
        input=image.path,
        input_mode=image.mode,
        input_shape=image.shape,
        input_bits=image.bits,
        kernel=kernel.name,
        kernel_shape=kernel.shape,
        kernel_scale=scale_text,
        kernel_offset=kernel.offset,
        border=str(spec.border),
        convolve=spec.convolve,
        engine=engine_text,
        geometry=geometry,
        output=str(output),
        output_shape=tuple(out_shape),
        output_bits=bits,
        map=how,
        clipped=clipped,
        values=int(values.size),
        minimum=stats[0],
        maximum=stats[1],
        mean=stats[2],
        notes=tuple(notes),
        seconds={"filter": t1 - t0, "write": t2 - t1},
    )


def _bank_scale(bank: Bank) -> str:
    scales = {k.scale_text for k in bank.kernels}
    return scales.pop() if len(scales) == 1 else "(per kernel)"


def process_file(plan: OutputPlan, spec: FilterSpec) -> FileResult:
    """Read one input and apply every kernel; failures are returned, not raised.

    A kernel that fails (its geometry does not fit this input, say) does not stop the
    others: each failure is one message naming the input and the kernel.
    """
    runs: list[KernelRun] = []
    errors: list[str] = []
    try:
        t0 = time.perf_counter()
        image = read_input(plan.input)
        read_s = time.perf_counter() - t0
    except ConvcliError as exc:
        return FileResult(str(plan.input), (), errors=(_located(plan.input, None, exc),))
    filters = plan.filters or spec.kernels
    for kernel, out in zip(filters, plan.outputs, strict=True):
        try:
            run_ = apply_kernel(image, kernel, spec, out)
        except ConvcliError as exc:
            errors.append(_located(plan.input, kernel.name if len(filters) > 1 else None, exc))
            continue
        except MemoryError:
            errors.append(f"{plan.input}: out of memory while filtering with {kernel.name!r}")
            continue
        run_.seconds["read"] = read_s
        runs.append(run_)
    return FileResult(str(plan.input), tuple(runs), errors=tuple(errors))


def _located(path: Path, kernel: str | None, exc: Exception) -> str:
    message = str(exc)
    if kernel is not None and kernel not in message:
        message = f"kernel {kernel!r}: {message}"
    if str(path) not in message:
        message = f"{path}: {message}"
    return message


def run(
    plans: list[OutputPlan],
    spec: FilterSpec,
    on_result: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Process every input in order; ``on_result`` is called as each one finishes."""
    results = []
    for plan in plans:
        result = process_file(plan, spec)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results

