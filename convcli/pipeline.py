"""Read, filter, map, write: the work behind ``convcli apply``, without any terminal I/O.

Output naming (decided before any file is read, so that mistakes cost nothing):

* no output given: ``{stem}.{kernel}{ext}`` beside each input (a bank is named
  like a kernel: ``{stem}.sobel.png``);
* an existing folder, a path ending in ``/``, or a path without a suffix:
  ``{folder}/{stem}.{kernel}{ext}`` (the folder is created if needed);
* a file path (``out.png``, ``edges.npy``): exactly that file, which needs
  exactly one input and one kernel.

``--name`` replaces the ``{stem}.{kernel}{ext}`` template (fields ``{stem} {kernel}
{ext} {parent} {dir} {name}``, see :mod:`convcli.batch`); an input found below a folder
argument keeps its place below the output folder (the tree is mirrored).

``ext`` is ``.png`` for image inputs and ``.npy`` for array inputs (``--format``
changes it). An existing output is replaced (atomically); an input is never
written to. ``-`` as the output writes to standard output (one output only);
``-`` as the input is standard input, named ``stdin`` in outputs. A ``.npz``
output holds every kernel's map for one input, plus the report. With
``frames="all"`` a multi-frame input writes one output per frame,
``{name}.frame{N}{ext}``.

A bank whose combine mode is ``stack`` keeps every member's map: written to
``.npy`` that is one ``(H, W, K)`` array (``(H, W, C, K)`` for ``C`` channels);
written to an image format it is one image per member, named after the member
(``{stem}.sobel-x.png``, ``{stem}.sobel-y.png``).
"""

from __future__ import annotations

import io
import json
import os
import time
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .banks import Bank, apply_bank
from .batch import render_name, run_files
from .engine import Border, correlate, plan, plan_geometry
from .errors import ConvcliError, OutputError, ParameterError, ShapeError
from .files import atomic_write, same_file
from .geometry import Pair, PaddingSpec
from .images import (
    ARRAY_SUFFIXES, IMAGE_FORMATS, OUTPUT_FORMATS, LoadedImage, encode_image, format_for, npy_dtype, output_format,
    format_name, read_frames, read_input, select_channels, to_gray, write_npy, write_npz,
)
from .kernels import Kernel
from .output import MAP_NAMES, auto_map, channel_stats, map_values
from .report import FileResult, KernelRun

__all__ = ["FilterSpec", "OutputPlan", "plan_outputs", "process_file", "run", "combine_kernels", "ALPHA_POLICIES"]

ALPHA_POLICIES = ("keep", "filter", "premultiply")
STDIO = "-"


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
    #: alpha policy: "keep" (sampled, not filtered), "filter" (a channel), "premultiply"
    alpha: str = "keep"
    #: convert colour to BT.601 luminance first
    gray: bool = False
    #: channels to filter (letters or numbers); the others pass through unfiltered
    channels: tuple[str, ...] | None = None
    #: "first" or "all" frames of multi-frame inputs
    frames: str = "first"
    #: refuse images with more pixels (None: Pillow's limit)
    max_pixels: int | None = None
    #: a name from images.OUTPUT_FORMATS, or None (by the output's suffix)
    format: str | None = None
    #: JPEG/WebP quality 1-100 (None: 95)
    quality: int | None = None
    #: PNG zlib level 0-9 (None: zlib's fast run-length mode)
    compress_level: int | None = None
    #: --map rescale over all channels together instead of per channel
    rescale_global: bool = False

    def __post_init__(self) -> None:
        if self.alpha not in ALPHA_POLICIES:
            raise ParameterError(f"alpha: unknown policy {self.alpha!r}; use one of {', '.join(ALPHA_POLICIES)}")
        if self.frames not in ("first", "all"):
            raise ParameterError(f"frames: {self.frames!r} is not first or all")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ParameterError(f"quality: {self.quality} is not between 1 and 100")
        if self.compress_level is not None and not 0 <= self.compress_level <= 9:
            raise ParameterError(f"compress-level: {self.compress_level} is not between 0 and 9")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ParameterError("max-pixels must be at least 1")
        if self.format is not None:
            output_format("x", self.format)
        if self.alpha == "premultiply":
            for item in self.kernels:
                if isinstance(item, Bank):
                    raise ParameterError(
                        f"--alpha premultiply: {item.name!r} is a bank; premultiplied filtering needs one "
                        "kernel whose weights do not sum to 0 (use --alpha keep or filter)"
                    )
                if abs(float(np.sum(item.weights))) <= 1e-12 * (float(np.sum(np.abs(item.weights))) or 1.0):
                    raise ParameterError(
                        f"--alpha premultiply: kernel {item.name!r} sums to 0, so there is no alpha to "
                        "divide by; use --alpha keep or filter"
                    )
        if self.map != "auto" and self.map not in MAP_NAMES:
            raise ParameterError(f"map: unknown map {self.map!r}; use auto or one of {', '.join(MAP_NAMES)}")
        if not self.kernels:
            raise ParameterError("give at least one kernel")
        if self.engine.startswith("separable"):
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
    #: the input's bytes when it is standard input ("-")
    data: bytes | None = None


def _default_suffix(path: Path, fmt: str | None = None) -> str:
    if fmt is not None:
        return OUTPUT_FORMATS[format_name(fmt)][1]
    return ".npy" if path.suffix.lower() in ARRAY_SUFFIXES else ".png"


def combine_kernels(items: tuple[Kernel | Bank, ...], how: str) -> Bank:
    """The kernels of one run made into one bank (``--combine``): one output, named
    ``K1+K2+...`` (``+MODE`` after it for modes other than magnitude)."""
    from .banks import COMBINE_MODES

    mode = how.strip().lower()
    if mode not in COMBINE_MODES:
        raise ParameterError(f"--combine: {how!r} is not one of {', '.join(COMBINE_MODES)}")
    members: list[Kernel] = []
    for item in items:
        if isinstance(item, Bank):
            raise ParameterError(f"--combine: {item.name!r} is already a bank; give its kernels one by one")
        members.append(item)
    if len(members) < 2:
        raise ParameterError("--combine needs at least two kernels (-k A -k B)")
    shapes = {k.shape for k in members}
    if len(shapes) > 1:
        listed = ", ".join(f"{k.name} {k.shape[0]}x{k.shape[1]}" for k in members)
        raise ParameterError(f"--combine: the kernels must share one shape so that their maps line up ({listed})")
    name = "+".join(k.name for k in members) + ("" if mode == "magnitude" else f"+{mode}")
    return Bank(name=name, kernels=tuple(members), combine=mode, source="inline")


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
    inputs: Iterable[Path],
    kernels: tuple[Kernel | Bank, ...],
    output: str | None,
    *,
    map_: str = "auto",
    fmt: str | None = None,
    name: str | None = None,
    subdirs: Sequence[str] | None = None,
) -> list[OutputPlan]:
    """Decide every output path before any work, refusing (ParameterError) collisions, outputs
    that would overwrite an input (images, arrays or kernel files), and outputs that cannot
    hold what was asked for.

    ``name`` is a checked ``--name`` template (default ``{stem}.{kernel}{ext}``, and
    ``{stem}{ext}`` for one .npz per input); ``subdirs[i]`` is the folder below ``output``
    that input ``i`` mirrors (its place in the tree it was found in)."""
    inputs = [Path(p) for p in inputs]
    if subdirs is None:
        subdirs = [""] * len(inputs)
    protected = inputs + _kernel_files(tuple(kernels))
    folder: Path | None = None
    single: Path | None = None
    to_stdout = output is not None and output.strip() == STDIO
    if to_stdout:
        single = Path(STDIO)
    elif output is not None:
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
    if name is not None and single is not None:
        raise ParameterError(f"--name names outputs in a folder, but -o {output!r} is one file; give -o a folder")
    plans: list[OutputPlan] = []
    for path, subdir in zip(inputs, subdirs, strict=True):
        if to_stdout:
            suffix = _default_suffix(path, fmt)
        else:
            suffix = single.suffix if single is not None else _default_suffix(path, fmt)
        jobs = _jobs(tuple(kernels), suffix)
        npz = suffix.lower() == ".npz"
        names = [k.name for k in jobs]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ParameterError(
                f"kernel {dup!r} is given twice (or also comes from a stacked bank); "
                "each kernel's output is named after it"
            )
        if single is not None:
            if npz and len(inputs) == 1:
                plans.append(OutputPlan(path, (single,) * len(jobs), tuple(jobs)))
                continue
            if len(inputs) * len(jobs) != 1:
                stacked = any(isinstance(k, Bank) and k.combine == "stack" for k in kernels)
                hint = "; a stacked bank fits in one .npy file" if stacked else ""
                if to_stdout:
                    raise ParameterError(
                        f"-o - writes one output, but this run writes {len(inputs) * len(jobs)} "
                        f"({len(inputs)} input(s) x {len(jobs)} kernel(s)); give a folder, or --combine"
                    )
                raise ParameterError(
                    f"-o {output!r} names one file, but this run writes {len(inputs) * len(jobs)} "
                    f"outputs ({len(inputs)} input(s) x {len(jobs)} kernel(s)); give a folder "
                    f"instead, such as -o out/, a .npz file, or --combine{hint}"
                )
            outs: tuple[Path, ...] = (single,)
        else:
            stdin = str(path) == STDIO
            base = folder / subdir if folder is not None else (Path(".") if stdin else path.parent)
            stem = "stdin" if stdin else path.stem
            fields = {
                "stem": stem, "ext": suffix, "parent": "" if stdin else path.resolve().parent.name,
                "dir": "" if stdin or path.is_absolute() or ".." in path.parts else path.parent.as_posix(),
                "name": "stdin" if stdin else path.name,
            }
            if npz:
                template = name or "{stem}{ext}"
                outs = (base / render_name(template, kernel="+".join(names), **fields),) * len(jobs)
            else:
                template = name or "{stem}.{kernel}{ext}"
                outs = tuple(base / render_name(template, kernel=k, **fields) for k in names)
        plans.append(OutputPlan(path, outs, tuple(jobs)))
    seen: dict[str, Path] = {}
    for plan in plans:
        one_archive = plan.outputs and plan.outputs[0].suffix.lower() == ".npz" and len(set(plan.outputs)) == 1
        for out in plan.outputs[:1] if one_archive else plan.outputs:
            if str(out) == STDIO:
                continue
            key = os.path.normcase(os.path.realpath(out))
            if key in seen:
                if seen[key] == plan.input:
                    raise ParameterError(
                        f"--name {name!r} gives {str(out)!r} for two kernels of {str(plan.input)!r}; "
                        "put {kernel} in it"
                    )
                hint = " (or a --name with {parent} or {dir} in it)" if folder is not None else ""
                raise ParameterError(
                    f"{str(plan.input)!r} and {str(seen[key])!r} would both write {str(out)!r}; "
                    f"send them to different folders{hint}"
                )
            seen[key] = plan.input
            for other in protected:
                if same_file(out, other):
                    raise ParameterError(
                        f"output {str(out)!r} is an input file; convcli never overwrites its inputs"
                    )
            kind = output_format(out, fmt)[0]
            if map_ == "raw" and kind not in ("NPY", "NPZ", "TIFF"):
                raise ParameterError(
                    f"--map raw keeps float values, which {out.suffix or 'this output'} cannot hold; "
                    "write .npy, .npz or .tif, or choose another map"
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


def _output_bits(image: LoadedImage, fmt: str, forced: int | None) -> int | None:
    """8 or 16 bits per sample, or None for float output (.npy, .npz, float TIFF)."""
    if forced == 32:
        return None
    if forced in (8, 16):
        return forced
    holds_16 = next((v[1] for v in IMAGE_FORMATS.values() if v[0] == fmt), False)
    return 16 if image.bits == 16 and holds_16 else 8


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


def _to_depth(plane: np.ndarray, src_bits: int | None, dtype: np.dtype) -> np.ndarray:
    """An unfiltered plane (alpha, a channel not selected) at the output's bit depth."""
    x = plane.astype(np.float64)
    if src_bits == 16 and dtype == np.uint8:
        x = x / 257.0
    elif src_bits == 8 and dtype == np.uint16:
        x = x * 257.0
    hi = np.iinfo(dtype).max
    return np.clip(np.rint(x), 0, hi).astype(dtype)


def _channel_stats(values: np.ndarray, names: list[str], threads: int | None) -> tuple[dict, ...]:
    """min, max and mean of the float map per channel (the third axis), named."""
    stats = channel_stats(values, threads)
    if len(names) != len(stats):
        names = [str(i) for i in range(len(stats))]
    return tuple({"channel": n, "min": lo, "max": hi, "mean": mean} for n, (lo, hi, mean) in zip(names, stats))


def apply_kernel(
    image: LoadedImage,
    kernel: Kernel | Bank,
    spec: FilterSpec,
    output: Path,
    *,
    stream: BinaryIO | None = None,
    npz: dict[str, np.ndarray] | None = None,
) -> KernelRun:
    """Filter ``image`` with ``kernel`` (or a bank) and write the result to ``output``.

    ``output`` ``-`` writes the encoded bytes to ``stream``; a ``.npz`` output puts the
    raw map into ``npz`` (keyed by kernel name) for the caller to write once.
    """
    to_stream = str(output) == STDIO
    if to_stream:
        fmt, forced = output_format(output, spec.format or ("npy" if image.mode == "array" else "png"))
    else:
        fmt, forced = output_format(output, spec.format)
    notes: list[str] = []
    if spec.compress_level is not None and fmt != "PNG":
        notes.append(f"--compress-level ignored: it sets PNG compression, and this output is {fmt}")
    _check_memory(image, kernel, spec)
    t0 = time.perf_counter()
    options = {
        "stride": spec.stride,
        "padding": spec.padding,
        "dilation": spec.dilation,
        "border": spec.border,
        "convolve": spec.convolve,
    }
    # --- what to filter: gray, chosen channels, alpha by policy
    work = image
    if spec.gray:
        if image.channels == 3:
            work = to_gray(image)
        else:
            notes.append("--gray: the input has no colour channels; used as it is")
    names = list(work.channel_names)
    planes = work.data if work.data.ndim == 3 else work.data[..., np.newaxis]
    chosen_idx = select_channels(work, spec.channels) if spec.channels else tuple(range(work.channels))
    others = tuple(i for i in range(work.channels) if i not in chosen_idx)
    policy = spec.alpha if work.alpha is not None else "none"
    if work.alpha is None and spec.alpha != "keep":
        notes.append(f"--alpha {spec.alpha}: the input has no alpha channel")
    amax = 1.0
    if work.alpha is not None:
        amax = 65535.0 if work.alpha.dtype == np.uint16 else 255.0 if work.alpha.dtype == np.uint8 else 1.0
    src = planes if not others else planes[..., list(chosen_idx)]
    filtered_names = [names[i] for i in chosen_idx]
    if policy == "filter":
        src = np.concatenate([src, work.alpha[..., np.newaxis].astype(src.dtype)], axis=2)
        filtered_names.append("A")
    elif policy == "premultiply":
        weight = (work.alpha.astype(np.float32) / np.float32(amax))[..., np.newaxis]
        src = np.concatenate([src.astype(np.float32) * weight, weight], axis=2)
        filtered_names.append("A")
    if src.shape[2] == 1:
        src = src[..., 0]
    src = np.ascontiguousarray(src)
    if isinstance(kernel, Bank):
        if kernel.combine == "stack" and fmt not in ("NPY", "NPZ"):
            raise ParameterError(f"bank {kernel.name!r}: stacked maps go to .npy, or one image per member")
        values = apply_bank(src, kernel, **options, engine=spec.engine, threads=spec.threads)
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
            src.shape,
            kernel.weights,
            stride=spec.stride,
            padding=spec.padding,
            dilation=spec.dilation,
            convolve=spec.convolve,
            engine=spec.engine,
            threads=spec.threads,
            dtype=src.dtype,
        )
        values = correlate(src, kernel.weights, **options, engine=chosen.path, threads=chosen.threads)
        if policy == "premultiply":
            # divide the filtered colour by the filtered alpha (over the kernel's sum, so that a
            # constant colour keeps its value); transparent results get colour 0
            total = values.dtype.type(float(np.sum(kernel.weights)))
            coverage = values[..., -1] / total
            inside = coverage > 0
            denom = np.where(inside, coverage, 1)[..., np.newaxis]
            values[..., :-1] = np.where(inside[..., np.newaxis], values[..., :-1] / denom, 0)
            values[..., -1] = coverage * values.dtype.type(amax)
            notes.append("alpha premultiplied: colour weighted by alpha before filtering, divided after")
        if kernel.offset:
            if policy == "premultiply":
                values[..., :-1] += values.dtype.type(kernel.offset)
            else:
                values += values.dtype.type(kernel.offset)
        scale_text = kernel.scale_text
        engine_text = chosen.describe()
    geometry = plan_geometry(
        src.shape, kernel.shape, stride=spec.stride, padding=spec.padding, dilation=spec.dilation
    )
    t1 = time.perf_counter()
    by_channel = _channel_stats(values, filtered_names, spec.threads)
    # every channel holds as many values: the overall mean is the mean of theirs
    stats = tuple(float(f(np.array([c[key] for c in by_channel])))
                  for f, key in ((np.min, "min"), (np.max, "max"), (np.mean, "mean")))
    if not all(np.isfinite(stats)):
        raise ShapeError(
            f"kernel {kernel.name!r}: the result overflows {values.dtype} (values beyond "
            f"{np.finfo(values.dtype).max:.3g}); scale the kernel down"
        )
    bits = _output_bits(image, fmt, forced)
    float_out = bits is None or spec.map == "raw"
    if float_out:
        if spec.map not in ("auto", "raw"):
            notes.append(f"--map {spec.map} ignored: {fmt} output holds the raw float32 values")
        if policy == "keep":
            notes.append(f"alpha not written: float {fmt} output holds the filtered channels only")
        if others:
            notes.append(f"channels {', '.join(names[i] for i in others)} not written: float output holds "
                         "the filtered channels only")
        how, clipped, bits = "raw", 0, None
        if npy_dtype(values) == np.float64:
            notes.append("written as float64: the values exceed float32's range")
        out_shape = values.shape
        if fmt == "NPZ":
            encoded = b""
        elif fmt == "NPY":
            buf = io.BytesIO()
            write_npy(buf, values)
            encoded = buf.getvalue()
        else:
            if values.ndim > 3:
                raise OutputError(f"{fmt} holds one page per channel; write the stacked maps to .npy")
            encoded = encode_image(values.astype(npy_dtype(values)), None, fmt)
            if values.ndim == 3:
                notes.append(f"float TIFF: one page per channel ({', '.join(filtered_names)})")
    else:
        if isinstance(kernel, Bank):
            how = spec.map if spec.map != "auto" else (kernel.map or "clip")
        else:
            how = spec.map if spec.map != "auto" else auto_map(kernel.weights, kernel.map)
        dtype = np.dtype(np.uint16 if bits == 16 else np.uint8)
        if image.bits == 16 and bits == 8:
            notes.append(f"16-bit input written as 8-bit: {fmt} output here holds 8 bits per channel")
        if image.bits == 16 and bits == 8 and how != "rescale":
            values = values / np.float32(257.0)
        elif image.bits == 8 and bits == 16 and how != "rescale":
            values = values * np.float32(257.0)
            notes.append("8-bit input written as 16-bit: values multiplied by 257 (255 -> 65535)")
        mapped_alpha = None
        colour = values
        if policy == "premultiply":
            colour = values[..., :-1]
            if colour.shape[-1] == 1:
                colour = colour[..., 0]
            mapped_alpha = map_values(values[..., -1], "clip", dtype).data
        mapped = map_values(colour, how, dtype, per_channel=not spec.rescale_global, threads=spec.threads)
        clipped = mapped.clipped
        if clipped > 0.01 * colour.size:
            notes.append(
                f"{100 * clipped / colour.size:.1f}% of values fell outside 0..{2**bits - 1} "
                "and were clipped; --map rescale keeps them all, .npy output keeps the raw floats"
            )
        pixels = mapped.data
        if policy == "filter":
            mapped_alpha = pixels[..., -1]
            pixels = pixels[..., :-1]
            if pixels.shape[-1] == 1:
                pixels = pixels[..., 0]
        if others:
            anchor = kernel.shape
            full = [None] * work.channels
            got = pixels if pixels.ndim == 3 else pixels[..., np.newaxis]
            for k, i in enumerate(chosen_idx):
                full[i] = got[..., k]
            for i in others:
                full[i] = _to_depth(_sample_alpha(planes[..., i], anchor, spec), image.bits, dtype)
            pixels = np.stack(full, axis=2)
            notes.append(f"channels {', '.join(names[i] for i in others)} passed through unfiltered")
        alpha = None
        if work.alpha is not None:
            if fmt not in ("PNG", "TIFF", "WEBP"):
                notes.append(f"alpha dropped: {fmt} output cannot hold it")
            elif policy == "keep":
                alpha = _to_depth(_sample_alpha(work.alpha, kernel.shape, spec), image.bits, dtype)
            else:
                alpha = mapped_alpha
        out_shape = pixels.shape if alpha is None else (*pixels.shape[:2], (pixels.shape[2] if pixels.ndim == 3 else 1) + 1)
        encoded = encode_image(pixels, alpha, fmt, quality=spec.quality, compress_level=spec.compress_level,
                               threads=spec.threads)  # before the temporary file exists
    if fmt == "NPZ":
        if npz is not None:
            key = kernel.name if image.frame is None else f"{kernel.name}.frame{image.frame}"
            npz[key] = values
    elif to_stream:
        if stream is None:
            raise OutputError("-o -: no standard output to write to")
        stream.write(encoded)
        stream.flush()
    else:

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
        channels=by_channel,
        alpha=policy,
        frame=image.frame,
        output_format=fmt,
    )


def _bank_scale(bank: Bank) -> str:
    scales = {k.scale_text for k in bank.kernels}
    return scales.pop() if len(scales) == 1 else "(per kernel)"


def _frame_path(out: Path, frame: str | None) -> Path:
    if frame is None or str(out) == STDIO or out.suffix.lower() == ".npz":
        return out
    return out.with_name(f"{out.stem}.frame{frame}{out.suffix}")


def process_file(
    plan: OutputPlan, spec: FilterSpec, *, stream: BinaryIO | None = None, skip_existing: bool = False
) -> FileResult:
    """Read one input and apply every kernel; failures are returned, not raised.

    A kernel that fails (its geometry does not fit this input, say) does not stop the
    others: each failure is one message naming the input and the kernel. With
    ``skip_existing`` an output that exists is left alone (listed in ``skipped``), and an
    input whose outputs all exist is not even read.
    """
    runs: list[KernelRun] = []
    errors: list[str] = []
    skipped: list[str] = []
    if skip_existing and spec.frames == "first" and all(o.exists() for o in plan.outputs if str(o) != STDIO):
        return FileResult(str(plan.input), (), skipped=tuple(str(o) for o in dict.fromkeys(plan.outputs)))
    try:
        t0 = time.perf_counter()
        frames = read_frames(plan.input, data=plan.data, max_pixels=spec.max_pixels,
                             first_only=spec.frames == "first")
        read_s = time.perf_counter() - t0
    except ConvcliError as exc:
        return FileResult(str(plan.input), (), errors=(_located(plan.input, None, exc),))
    if len(frames) > 1 and any(str(o) == STDIO for o in plan.outputs):
        message = f"--frames all: {plan.input} has {len(frames)} frames, but -o - writes one output"
        return FileResult(str(plan.input), (), errors=(message,))
    filters = plan.filters or spec.kernels
    npz: dict[str, np.ndarray] = {}
    for image in frames:
        for kernel, out in zip(filters, plan.outputs, strict=True):
            target = _frame_path(out, image.frame)
            if skip_existing and str(target) != STDIO and target.exists():
                if str(target) not in skipped:
                    skipped.append(str(target))
                continue
            try:
                run_ = apply_kernel(image, kernel, spec, target, stream=stream, npz=npz)
            except ConvcliError as exc:
                errors.append(_located(plan.input, kernel.name if len(filters) > 1 else None, exc))
                continue
            except MemoryError:
                errors.append(f"{plan.input}: out of memory while filtering with {kernel.name!r}")
                continue
            run_.seconds["read"] = read_s / len(frames)
            runs.append(run_)
    if npz and not errors:
        t0 = time.perf_counter()
        target = plan.outputs[0]
        doc = FileResult(str(plan.input), tuple(runs)).to_dict()
        try:
            atomic_write(target, lambda fh: write_npz(fh, npz, json.dumps(doc)))
        except ConvcliError as exc:
            return FileResult(str(plan.input), (), errors=(_located(plan.input, None, exc),))
        write_s = time.perf_counter() - t0
        for r in runs:
            r.seconds["write"] = r.seconds.get("write", 0.0) + write_s / len(runs)
    elif npz and errors:
        runs = []  # no partial archive: the kernels that worked are not written either
    return FileResult(str(plan.input), tuple(runs), errors=tuple(errors), skipped=tuple(skipped))


def _located(path: Path, kernel: str | None, exc: Exception) -> str:
    message = str(exc)
    if kernel is not None and kernel not in message:
        message = f"kernel {kernel!r}: {message}"
    if str(path) not in message:
        message = f"{path}: {message}"
    return message


def _failed_plan(plan: OutputPlan, message: str) -> FileResult:
    return FileResult(str(plan.input), (), errors=(f"{plan.input}: {message}",))


def run(
    plans: list[OutputPlan],
    spec: FilterSpec,
    on_result: Callable[[FileResult], None] | None = None,
    *,
    stream: BinaryIO | None = None,
    jobs: int = 1,
    skip_existing: bool = False,
    fail_fast: bool = False,
) -> list[FileResult]:
    """Process every input; ``on_result`` is called as each one finishes (in finishing order
    with several jobs); the results come back in input order.

    ``stream`` receives the output written to ``-`` (the CLI passes standard output).
    ``jobs`` above 1 runs the files in that many worker processes, each with an equal share
    of the engine's threads, so that the cores are not oversubscribed; one file alone always
    runs here with all threads. ``fail_fast`` starts no new file after a failure; inputs not
    started are left out of the results.
    """
    from .engine import default_threads

    jobs = 1 if stream is not None else max(1, min(jobs, len(plans)))
    if jobs > 1 and spec.threads is None:
        import dataclasses

        spec = dataclasses.replace(spec, threads=max(1, default_threads() // jobs))
    work = functools.partial(_process, spec=spec, stream=stream, skip_existing=skip_existing)
    results = run_files(
        plans, work, _failed_plan, jobs=jobs,
        on_result=(lambda i, r: on_result(r)) if on_result is not None else None,
        should_stop=(lambda r: not r.ok) if fail_fast else None,
    )
    return [r for r in results if r is not None]


def _process(plan: OutputPlan, *, spec: FilterSpec, stream: BinaryIO | None, skip_existing: bool) -> FileResult:
    return process_file(plan, spec, stream=stream, skip_existing=skip_existing)
