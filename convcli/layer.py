"""Read, normalise, run a convolution layer, write its maps: the work behind ``apply --weights``.

No terminal I/O: the CLI builds a :class:`LayerSpec`, plans the outputs with
:func:`plan_layer_outputs` and renders the :class:`~convcli.report.LayerRun` of each input.

Outputs (all optional; decided before any file is read):

* maps (``-o``): ``.npy`` (H', W', C_out) float32, ``.npz`` with ``maps`` and ``report``
  (the run report as JSON text), or ``.tif``/``.tiff`` with one float32 page per map;
  a folder gives ``{folder}/{stem}.{layer}.npy``. Without ``-o`` and ``--grid`` the maps go
  beside each input as ``{stem}.{layer}.npy``.
* grid (``--grid``): a PNG of every map as a labelled tile (see :mod:`convcli._grid`);
  a folder gives ``{folder}/{stem}.{layer}.grid.png``.
* filters (``--show-filters``): a PNG of the filters themselves, written once.

An output never replaces an input (images, weights or bias files); existing outputs are
replaced atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .engine import Border, conv2d, conv2d_geometry, float_dtype, plan_layer
from .errors import ConvcliError, ParameterError
from .files import atomic_write, same_file
from .geometry import Pair, PaddingSpec
from .images import LoadedImage, encode_image, read_input, select_channels, to_gray, write_npy
from .report import FileResult, LayerRun, MapStats
from .weights import LayerWeights, check_channels

__all__ = [
    "MAP_SUFFIXES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Normalisation",
    "describe_normalisation",
    "LayerSpec",
    "LayerOutputs",
    "plan_layer_outputs",
    "write_filters",
    "process_layer_file",
    "run_layer_files",
]

#: file types that hold a layer's float maps
MAP_SUFFIXES = (".npy", ".npz", ".tif", ".tiff")
#: the per-channel mean and standard deviation of ImageNet's RGB training images (on 0..1),
#: which most torchvision models expect after ``--input-scale 1/255``
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _numbers(option: str, text: str, *, positive: bool = False) -> tuple[float, ...]:
    from .errors import KernelError
    from .kernels import parse_number

    parts = text.replace(";", ",").split(",")
    if not parts or any(not p.strip() for p in parts):
        raise ParameterError(f"{option}: {text!r} is not a comma-separated list of numbers, such as 0.5,0.5,0.5")
    values = []
    for p in parts:
        try:
            v = parse_number(p, what=f"{option} value")
        except KernelError as exc:
            raise ParameterError(str(exc)) from None
        if positive and v <= 0:
            raise ParameterError(f"{option}: {p.strip()!r} must be above 0 (the values are divided by it)")
        values.append(v)
    return tuple(values)


@dataclass(frozen=True)
class Normalisation:
    """``(x * scale - mean[c]) / std[c]`` per input channel, before the layer.

    >>> n = Normalisation.parse("1/255", "0.5", "0.5")
    >>> n.apply(np.array([[[0, 255]]], dtype=np.uint8)).tolist()
    [[[-1.0, 1.0]]]
    """

    scale: float = 1.0
    scale_text: str = "1"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def parse(cls, scale: str | None, mean: str | None, std: str | None) -> Normalisation | None:
        if scale is None and mean is None and std is None:
            return None
        value, text = 1.0, "1"
        if scale is not None:
            if "," in scale or ";" in scale:
                raise ParameterError(f"--input-scale takes one number, such as 1/255, not {scale!r}")
            (value,) = _numbers("--input-scale", scale)
            if value == 0:
                raise ParameterError("--input-scale 0 would make every input value 0; use a number such as 1/255")
            text = scale.strip()
        m = _numbers("--mean", mean) if mean is not None else None
        s = _numbers("--std", std, positive=True) if std is not None else None
        return cls(value, text, m, s)

    def check(self, channels: int, image: str) -> None:
        """Refuse a mean or std list whose length is neither 1 nor the image's channel count."""
        for option, values in (("--mean", self.mean), ("--std", self.std)):
            if values is not None and len(values) not in (1, channels):
                raise ParameterError(
                    f"{option} has {len(values)} values but {image} has {channels} channel(s); give one "
                    f"value for all channels or one per channel"
                )

    def apply(self, x: np.ndarray) -> np.ndarray:
        """A new float array (float32 for 8/16-bit and float32 input, else float64)."""
        dtype = float_dtype(x.dtype)
        y = x.astype(dtype) if self.scale == 1 else np.multiply(x, dtype.type(self.scale), dtype=dtype)
        channels = x.shape[2] if x.ndim == 3 else 1
        if self.mean is not None:
            y -= self._per_channel(self.mean, channels, dtype)
        if self.std is not None:
            y /= self._per_channel(self.std, channels, dtype)
        return y

    @staticmethod
    def _per_channel(values: tuple[float, ...], channels: int, dtype: np.dtype) -> np.ndarray | float:
        if len(values) == 1:
            return dtype.type(values[0])
        return np.asarray(values, dtype)  # one per channel (checked against the image first)

    def to_dict(self) -> dict:
        return {"scale": self.scale_text, "mean": _list(self.mean), "std": _list(self.std)}

    def describe(self) -> str:
        return describe_normalisation(self.to_dict())


def describe_normalisation(doc: dict) -> str:
    """One line for a normalisation as :meth:`Normalisation.to_dict` gives it.

    >>> describe_normalisation({"scale": "1/255", "mean": [0.5], "std": None})
    'x 1/255 - mean 0.5, per channel, before the layer'
    """
    parts = [f"x {doc['scale']}"] if doc["scale"] != "1" else []
    if doc["mean"] is not None:
        parts.append("- mean " + ",".join(f"{v:g}" for v in doc["mean"]))
    if doc["std"] is not None:
        parts.append("/ std " + ",".join(f"{v:g}" for v in doc["std"]))
    text = " ".join(parts)
    if doc["mean"] is not None and doc["std"] is not None:
        if tuple(doc["mean"]) == IMAGENET_MEAN and tuple(doc["std"]) == IMAGENET_STD:
            text += " (ImageNet's)"
    return (text or "x 1") + ", per channel, before the layer"


def _list(values: tuple[float, ...] | None) -> list[float] | None:
    return None if values is None else list(values)


@dataclass(frozen=True)
class LayerSpec:
    """The layer and how to run it, shared by every input."""

    weights: LayerWeights
    stride: Pair = (1, 1)
    padding: PaddingSpec = field(default_factory=lambda: PaddingSpec(rule="same"))
    dilation: Pair = (1, 1)
    groups: int = 1
    border: Border = field(default_factory=lambda: Border("constant", 0.0))
    convolve: bool = False
    normalisation: Normalisation | None = None
    #: per-channel engine path for depthwise layers ("auto": the planner's choice)
    engine: str = "auto"
    threads: int | None = None
    #: the --map the user gave (a layer writes float maps; anything but auto is noted)
    map: str = "auto"
    #: the layer reads the luminance (``--gray``) or only these channels (``--channels``)
    gray: bool = False
    channels: tuple[str, ...] | None = None
    max_pixels: int | None = None

    @property
    def kernel_weights(self) -> np.ndarray:
        """OIHW weights as they are correlated (rotated 180 degrees for ``convolve``)."""
        w = self.weights.weight
        return np.ascontiguousarray(w[:, :, ::-1, ::-1]) if self.convolve else w


@dataclass(frozen=True)
class LayerOutputs:
    """Where one input's results go (None: not written)."""

    input: Path
    maps: Path | None
    grid: Path | None


def _is_folder(text: str) -> bool:
    p = Path(text)
    return text.endswith(("/", os.sep)) or p.is_dir() or not p.suffix


def plan_layer_outputs(
    inputs: Iterable[Path],
    name: str,
    output: str | None,
    grid: str | None,
    filters: str | None,
    *,
    protected: Iterable[Path] = (),
    c_out: int = 0,
) -> list[LayerOutputs]:
    """Decide every output path; refuse unknown types, collisions and overwriting any input
    (images, or the ``protected`` weight files) with ParameterError."""
    inputs = [Path(p) for p in inputs]
    for option, value in (("-o", output), ("--grid", grid), ("--show-filters", filters)):
        if value is not None and value.strip() == "-":
            raise ParameterError(f"{option} -: writing to standard output is not supported; give a file")
    maps_file = maps_dir = grid_file = grid_dir = None
    if output is not None:
        if _is_folder(output):
            maps_dir = Path(output)
        else:
            suffix = Path(output).suffix.lower()
            if suffix not in MAP_SUFFIXES:
                picture = " (the maps as a picture: --grid FILE.png)" if suffix in (".png", ".jpg", ".jpeg") else ""
                raise ParameterError(
                    f"-o {output}: a layer's {c_out or 'C_out'} maps are float values, written as .npy, .npz or "
                    f".tif, not {suffix!r}{picture}"
                )
            maps_file = Path(output)
    if grid is not None:
        if _is_folder(grid):
            grid_dir = Path(grid)
        elif Path(grid).suffix.lower() != ".png":
            raise ParameterError(f"--grid {grid}: the grid is a PNG picture; give a name ending in .png")
        else:
            grid_file = Path(grid)
    if filters is not None and (_is_folder(filters) or Path(filters).suffix.lower() != ".png"):
        raise ParameterError(f"--show-filters {filters}: give a file name ending in .png")
    for option, single in (("-o", maps_file), ("--grid", grid_file)):
        if single is not None and len(inputs) != 1:
            raise ParameterError(
                f"{option} {single} names one file, but there are {len(inputs)} inputs; give a folder instead, "
                f"such as {option} out/"
            )
    if output is None and grid is None:
        maps_dir = None
    plans = []
    for path in inputs:
        if maps_file is not None:
            maps = maps_file
        elif maps_dir is not None:
            maps = maps_dir / f"{path.stem}.{name}.npy"
        elif output is None and grid is None:
            maps = path.parent / f"{path.stem}.{name}.npy"
        else:
            maps = None
        if grid_file is not None:
            pic = grid_file
        elif grid_dir is not None:
            pic = grid_dir / f"{path.stem}.{name}.grid.png"
        else:
            pic = None
        plans.append(LayerOutputs(path, maps, pic))
    written = [(p.input, out) for p in plans for out in (p.maps, p.grid) if out is not None]
    if filters is not None:
        written.append((None, Path(filters)))
    seen: dict[str, Path | None] = {}
    keep = [*inputs, *(Path(p) for p in protected)]
    for source, out in written:
        key = os.path.normcase(os.path.abspath(out))
        if key in seen:
            raise ParameterError(f"{str(out)!r} would be written twice; give the outputs different names")
        seen[key] = source
        for other in keep:
            if same_file(out, other):
                raise ParameterError(f"output {str(out)!r} is an input file; convcli never overwrites its inputs")
    return plans


def write_filters(weights: np.ndarray, path: Path) -> None:
    """Draw the filters (OIHW) and write the picture atomically."""
    from ._grid import filter_picture

    picture = filter_picture(weights)
    atomic_write(Path(path), lambda fh: fh.write(encode_image(picture, None, "PNG")))


def _write_tiff(fh, maps: np.ndarray) -> None:  # noqa: ANN001
    import io

    from PIL import Image

    pages = [Image.fromarray(np.ascontiguousarray(maps[:, :, c], dtype=np.float32)) for c in range(maps.shape[2])]
    buf = io.BytesIO()  # the multi-page writer reads back what it wrote: encode in memory
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:], compression="tiff_adobe_deflate")
    fh.write(buf.getvalue())


def _write_maps(path: Path, maps: np.ndarray, report: Callable[[], dict]) -> None:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        atomic_write(path, lambda fh: write_npy(fh, maps))
    elif suffix == ".npz":
        text = json.dumps(report())
        atomic_write(path, lambda fh: np.savez(fh, maps=maps.astype(np.float32, copy=False), report=np.array(text)))
    else:
        atomic_write(path, lambda fh: _write_tiff(fh, maps))


def _notes(image: LoadedImage, spec: LayerSpec, path: str) -> list[str]:
    notes = []
    if image.alpha is not None:
        notes.append("alpha not used: the layer reads the colour channels only")
    if spec.map != "auto":
        notes.append(f"--map {spec.map} ignored: a layer's maps are written as float32; --grid scales each map itself")
    if spec.engine != "auto" and path != "depthwise":
        notes.append(f"--engine {spec.engine} ignored: it picks the per-channel path; this layer runs as GEMM")
    if image.bits is not None and spec.normalisation is None:
        notes.append(f"the layer saw the {image.bits}-bit values as they are (0..{2**image.bits - 1}); "
                     f"most trained weights expect --input-scale 1/{2**image.bits - 1} and maybe --mean/--std")
    return notes


def process_layer_file(plan: LayerOutputs, spec: LayerSpec, filters: Path | None = None) -> FileResult:
    """Run the layer on one input and write its outputs.

    A failure while reading or processing is returned (exit 1); an image whose channels do
    not fit the layer raises its usage error (exit 2).
    """
    try:
        t0 = time.perf_counter()
        image = read_input(plan.input, max_pixels=spec.max_pixels)
        read_s = time.perf_counter() - t0
    except ConvcliError as exc:
        return _failed(plan, exc)
    if spec.gray:
        image = to_gray(image)
    elif spec.channels:
        picked = select_channels(image, spec.channels)
        data = image.data[:, :, list(picked)] if image.data.ndim == 3 else image.data
        names = "".join(image.channel_names[i] for i in picked)
        image = dataclasses.replace(image, data=data, mode=f"{image.mode}[{names}]")
    check_channels(spec.weights, image.channels, spec.groups, str(plan.input))
    if spec.normalisation is not None:
        spec.normalisation.check(image.channels, str(plan.input))
    try:
        return FileResult(str(plan.input), (_run_one(image, plan, spec, filters, read_s),))
    except ConvcliError as exc:
        return _failed(plan, exc)
    except MemoryError:
        return FileResult(str(plan.input), (), errors=(f"{plan.input}: out of memory while running the layer",))


def _failed(plan: LayerOutputs, exc: ConvcliError) -> FileResult:
    message = str(exc)
    if str(plan.input) not in message:
        message = f"{plan.input}: {message}"
    return FileResult(str(plan.input), (), errors=(message,))


def _run_one(image: LoadedImage, plan: LayerOutputs, spec: LayerSpec, filters: Path | None, read_s: float) -> LayerRun:
    t0 = time.perf_counter()
    x = image.data if spec.normalisation is None else spec.normalisation.apply(image.data)
    w = spec.kernel_weights
    lw = spec.weights
    geometry = conv2d_geometry(x.shape, w.shape, stride=spec.stride, padding=spec.padding,
                               dilation=spec.dilation, groups=spec.groups, bias=lw.bias is not None)
    from .engine import default_threads

    threads = spec.threads if spec.threads is not None else default_threads()
    chosen = plan_layer(geometry.output, w.shape, spec.groups, geometry.layer.stride, geometry.layer.dilation,
                        float_dtype(x.dtype), threads)
    maps = conv2d(x, w, lw.bias, stride=spec.stride, padding=spec.padding, dilation=spec.dilation,
                  groups=spec.groups, border=spec.border, engine=spec.engine, threads=threads)
    t1 = time.perf_counter()
    per_map = tuple(_stats(maps[:, :, c]) for c in range(maps.shape[2]))  # one map at a time: small temporaries
    outputs = {}
    if plan.maps is not None:
        outputs["maps"] = str(plan.maps)
    if plan.grid is not None:
        outputs["grid"] = str(plan.grid)
    if filters is not None:
        outputs["filters"] = str(filters)
    run = LayerRun(
        input=image.path,
        input_mode=image.mode,
        input_shape=image.shape,
        input_bits=image.bits,
        weights=lw.source,
        weight_shape=lw.shape,
        stored_shape=lw.stored_shape,
        layout=lw.layout,
        bias=lw.bias_source,
        convolve=spec.convolve,
        normalisation=spec.normalisation.to_dict() if spec.normalisation is not None else None,
        border=str(spec.border),
        engine=chosen.describe(),
        geometry=geometry,
        outputs=outputs,
        output_shape=tuple(maps.shape),  # type: ignore[arg-type]
        minimum=min(m.minimum for m in per_map),
        maximum=max(m.maximum for m in per_map),
        mean=float(np.mean([m.mean for m in per_map])),  # every map has as many values
        maps=per_map,
        notes=tuple(_notes(image, spec, chosen.path)),
        seconds={"read": read_s, "layer": t1 - t0},
    )
    if plan.maps is not None:
        _write_maps(plan.maps, maps, run.to_dict)
    if plan.grid is not None:
        from ._grid import feature_grid

        picture = feature_grid(maps)
        atomic_write(plan.grid, lambda fh: fh.write(encode_image(picture, None, "PNG")))
    run.seconds["write"] = time.perf_counter() - t1
    return run


def _stats(m: np.ndarray) -> MapStats:
    return MapStats(float(m.min()), float(m.max()), float(np.mean(m, dtype=np.float64)),
                    float(np.std(m, dtype=np.float64)))


def run_layer_files(
    plans: list[LayerOutputs],
    spec: LayerSpec,
    filters: Path | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Process every input in order; ``on_result`` is called as each one finishes."""
    results = []
    for plan in plans:
        result = process_layer_file(plan, spec, filters)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
