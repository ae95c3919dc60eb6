"""A convolution layer's weights and bias, read from ``.npy`` and ``.npz`` files and checked once.

Specs (as ``--weights`` and ``--bias`` take them):

``conv1.npy``
    one array: (C_out, C_in / groups, kh, kw) in PyTorch's layout (``oihw``, the default),
    or (kh, kw, C_in / groups, C_out) in TensorFlow's (``hwio``).
``layer.npz``
    the arrays ``weight`` and, when present, ``bias`` (a file holding a single array
    needs no names).
``model.npz:conv1.weight``
    one entry of a saved state dict; its bias is the entry named like it with ``bias``
    for ``weight`` (``conv1.bias``), ``kernel`` (Keras: ``conv1/bias:0``) or ``biases``
    for ``weights``, when the file holds one.

Every problem is a :class:`~convcli.errors.KernelError` or
:class:`~convcli.errors.ParameterError` (usage errors) with a one-line message that names
the file and says how to fix it. The arrays are returned as float64, in OIHW order.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

import numpy as np

from .errors import ConvcliError, KernelError, ParameterError, ShapeError

__all__ = ["LAYOUTS", "LayerWeights", "parse_layout", "split_spec", "load_weights", "load_bias", "check_channels"]

#: canonical layout -> what the axes of the stored array are
LAYOUTS = {
    "oihw": "(C_out, C_in/groups, kh, kw)",
    "hwio": "(kh, kw, C_in/groups, C_out)",
}
_LAYOUT_ALIASES = {"pytorch": "oihw", "torch": "oihw", "tensorflow": "hwio", "tf": "hwio", "keras": "hwio"}

# entry-name endings of weights and the bias entry beside each
_BIAS_FOR = (("weight", "bias"), ("weights", "biases"), ("kernel", "bias"))
_NAME_SUFFIXES = (".weight", "_weight", "/kernel:0", "/kernel", "/weights:0", "/weights", ".kernel")
_FOREIGN = {
    ".pt": "PyTorch",
    ".pth": "PyTorch",
    ".ckpt": "a checkpoint",
    ".h5": "Keras",
    ".keras": "Keras",
    ".safetensors": "safetensors",
    ".onnx": "ONNX",
}


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape) if shape else "scalar"


@dataclass(frozen=True, eq=False)
class LayerWeights:
    """Weights in OIHW order and an optional bias, with where they came from."""

    weight: np.ndarray
    bias: np.ndarray | None
    #: a short name for output files: the entry without ``.weight``, else the file's stem
    name: str
    #: the spec the weights were read from (``model.npz:conv1.weight``)
    source: str
    bias_source: str | None
    layout: str
    #: the array's shape as stored (before the layout was applied)
    stored_shape: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.weight.shape)  # type: ignore[return-value]

    @property
    def c_out(self) -> int:
        return int(self.weight.shape[0])

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])


def parse_layout(text: str) -> str:
    """``oihw`` or ``hwio`` (also ``pytorch``/``torch`` and ``tensorflow``/``tf``/``keras``).

    >>> parse_layout("HWIO"), parse_layout("torch")
    ('hwio', 'oihw')
    """
    name = text.strip().lower()
    name = _LAYOUT_ALIASES.get(name, name)
    if name not in LAYOUTS:
        near = get_close_matches(name, [*LAYOUTS, *_LAYOUT_ALIASES], n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ParameterError(
            f"--layout: unknown layout {text!r}{hint}; use oihw {LAYOUTS['oihw']}, PyTorch's, "
            f"or hwio {LAYOUTS['hwio']}, TensorFlow's"
        )
    return name


def split_spec(spec: str) -> tuple[Path, str | None]:
    """``file.npz:key`` -> (path, key); anything else -> (path, None). (``file.npy:key`` is split
    too, so that the key can be refused with a reason.)

    >>> split_spec("model.npz:conv1.weight")
    (PosixPath('model.npz'), 'conv1.weight')
    >>> split_spec("conv1.npy")
    (PosixPath('conv1.npy'), None)
    """
    match = re.fullmatch(r"(.+?\.np[yz]):(.*)", spec.strip(), flags=re.I)
    if match:
        return Path(match.group(1)), match.group(2)
    return Path(spec.strip()), None


def _open_file(option: str, path: Path) -> None:
    if path.suffix.lower() in _FOREIGN:
        what = _FOREIGN[path.suffix.lower()]
        raise ParameterError(
            f"{option} {path}: {what} files are not read directly; save the layer's arrays with NumPy, for "
            "example numpy.savez('model.npz', **{k: v.numpy() for k, v in model.state_dict().items()})"
        )
    if path.suffix.lower() not in (".npy", ".npz"):
        raise ParameterError(
            f"{option} {path}: unknown file type {path.suffix or '(none)'!r}; give a .npy array or an .npz "
            "file (FILE.npz:KEY picks one entry)"
        )
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ParameterError(f"{option} {path} {what}; give a .npy or .npz file")


def _header(fh) -> tuple[tuple[int, ...], np.dtype] | None:  # noqa: ANN001
    """Shape and dtype from a .npy header; None when it is not one NumPy's public readers know."""
    version = np.lib.format.read_magic(fh)  # ValueError when not the .npy format
    read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read is None:
        return None
    shape, _, dtype = read(fh)
    return tuple(shape), dtype


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype] | None]:
    """Entry name -> (shape, dtype), read from the headers only (None when unreadable)."""
    headers: dict[str, tuple[tuple[int, ...], np.dtype] | None] = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[: -len(".npy")]
            try:
                with zf.open(info) as fh:
                    headers[key] = _header(fh)
            except (ValueError, OSError, zipfile.BadZipFile):
                headers[key] = None
    return headers


def _npz_shapes(path: Path) -> dict[str, tuple[int, ...] | None]:
    return {k: (h[0] if h is not None else None) for k, h in _npz_headers(path).items()}


def _ragged(option: str, shown: str) -> KernelError:
    return KernelError(
        f"{option} {shown} holds Python objects (a ragged list of arrays?), not one numeric array; "
        "save a regular array, such as numpy.save(path, numpy.asarray(w, dtype=numpy.float32))"
    )


def _listing(shapes: dict[str, tuple[int, ...] | None], limit: int = 12) -> str:
    items = [f"{k} ({_size(s)})" if s is not None else k for k, s in shapes.items()]
    more = f", and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _read_array(option: str, path: Path, key: str | None) -> tuple[np.ndarray, str]:
    """The array at ``path`` (or its entry ``key``) and the entry name used ('' for .npy)."""
    shown = f"{path}:{key}" if key is not None else str(path)
    try:
        if path.suffix.lower() == ".npy":
            if key is not None:
                raise ParameterError(f"{option} {shown}: only .npz files have entries; give {path} alone")
            with open(path, "rb") as fh:
                try:
                    header = _header(fh)
                except ValueError:
                    raise KernelError(f"{option} {shown} is not an array NumPy can read (not in the .npy format)") \
                        from None
            if header is not None and header[1].hasobject:
                raise _ragged(option, shown)
            return np.load(path, allow_pickle=False), ""
        try:
            headers = _npz_headers(path)
            shapes = {k: (h[0] if h is not None else None) for k, h in headers.items()}
        except zipfile.BadZipFile:
            raise KernelError(f"{option} {path} is not an .npz file NumPy can read (not a zip archive)") from None
        if not shapes:
            raise KernelError(f"{option} {path} holds no arrays")
        if key is None:
            if "weight" in shapes:
                key = "weight"
            elif len(shapes) == 1:
                key = next(iter(shapes))
            else:
                raise KernelError(
                    f"{option} {path} has no entry 'weight'; pick one with {path}:KEY from: {_listing(shapes)}"
                )
        elif key not in shapes:
            near = get_close_matches(key, list(shapes), n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise KernelError(f"{option} {shown}: no entry {key!r} in {path}{hint}; it holds: {_listing(shapes)}")
        header = headers[key]
        if header is not None and header[1].hasobject:
            raise _ragged(option, f"{path}:{key}")
        with np.load(path, allow_pickle=False) as npz:
            return npz[key], key
    except ConvcliError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise _ragged(option, shown) from None
        raise KernelError(f"{option} {shown} is not an array NumPy can read ({exc})") from None
    except (OSError, EOFError) as exc:
        raise KernelError(f"{option} {shown} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None


def _numeric(option: str, shown: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        what = "Python objects" if arr.dtype.kind == "O" else f"{arr.dtype} values"
        raise KernelError(f"{option} {shown} holds {what}, not real numbers; save a float array")
    if arr.size == 0:
        raise KernelError(f"{option} {shown} has an empty axis (shape {arr.shape}); it holds no weights")
    out = arr.astype(np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        where = tuple(int(v) for v in np.argwhere(bad)[0])
        raise KernelError(
            f"{option} {shown} contains {int(bad.sum())} NaN or infinite value(s), the first at index {where}; "
            "check the file, or replace them (numpy.nan_to_num) before saving"
        )
    return out


def _shape_hint(ndim: int, layout: str) -> str:
    if ndim == 2:
        return "a single 2-D kernel goes to -k @FILE instead"
    if ndim == 3:
        add = "w[numpy.newaxis]" if layout == "oihw" else "w[..., numpy.newaxis]"
        return f"for one filter, add the C_out axis and save {add}"
    if ndim == 1:
        return "a 1-D array is a bias (--bias) or a 1-D kernel (-k @FILE)"
    return "save one layer's weights, not a stack or a batch"


def _entry_name(key: str, path: Path) -> str:
    name = key
    for suffix in _NAME_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    if not name or name == key and key in ("", "weight", "weights", "kernel", "arr_0"):
        name = path.stem
    return re.sub(r"[^\w.+-]+", "-", name).strip("-.") or "layer"


def _bias_key(key: str, shapes: dict[str, tuple[int, ...] | None]) -> str | None:
    for weight_word, bias_word in _BIAS_FOR:
        idx = key.rfind(weight_word)
        if idx < 0:
            continue
        candidate = key[:idx] + bias_word + key[idx + len(weight_word) :]
        if candidate in shapes and candidate != key:
            return candidate
    return None


def load_bias(spec: str, c_out: int, *, option: str = "--bias") -> np.ndarray:
    """Read a bias of ``c_out`` values from ``file.npy``, ``file.npz`` (entry ``bias``) or ``file.npz:key``."""
    path, key = split_spec(spec)
    _open_file(option, path)
    if key is None and path.suffix.lower() == ".npz":
        shapes = _npz_shapes(path)
        if "bias" in shapes:
            key = "bias"
    arr, used = _read_array(option, path, key)
    shown = f"{path}:{used}" if used else str(path)
    return _check_bias(option, shown, arr, c_out)


def _check_bias(option: str, shown: str, arr: np.ndarray, c_out: int) -> np.ndarray:
    b = _numeric(option, shown, arr)
    if b.ndim != 1 or b.shape[0] != c_out:
        raise KernelError(
            f"{option} {shown} has shape {arr.shape}, but the bias needs one value per output channel: "
            f"({c_out},) for these weights with C_out = {c_out}"
        )
    return b


def load_weights(spec: str, *, layout: str = "oihw", bias: str | None = None) -> LayerWeights:
    """Read and check a layer's weights (and its bias: ``bias``, or the file's own when present).

    The result's ``weight`` is OIHW float64 whatever ``layout`` the file uses.
    """
    layout = parse_layout(layout)
    path, key = split_spec(spec)
    _open_file("--weights", path)
    arr, used = _read_array("--weights", path, key)
    shown = f"{path}:{used}" if used else str(path)
    w = _numeric("--weights", shown, arr)
    if w.ndim != 4:
        raise KernelError(
            f"--weights {shown} has shape {arr.shape} ({w.ndim}-D), but a layer's weights are 4-D "
            f"{LAYOUTS[layout]} ({layout}); {_shape_hint(w.ndim, layout)}"
        )
    stored = tuple(int(v) for v in w.shape)
    if layout == "hwio":
        w = w.transpose(3, 2, 0, 1)
    w = np.ascontiguousarray(w)
    b = None
    bias_source = None
    if bias is not None:
        b = load_bias(bias, w.shape[0])
        bias_source = bias
    elif path.suffix.lower() == ".npz":
        shapes = _npz_shapes(path)
        bkey = "bias" if used == "weight" and "bias" in shapes else _bias_key(used, shapes)
        if bkey is not None:
            with np.load(path, allow_pickle=False) as npz:
                raw = npz[bkey]
            bias_source = f"{path}:{bkey}"
            b = _check_bias("--weights", f"{bias_source} (the bias found beside the weights)", raw, w.shape[0])
    return LayerWeights(w, b, _entry_name(used, path), spec, bias_source, layout, stored)


def check_channels(weights: LayerWeights, channels: int, groups: int, image: str) -> None:
    """Refuse (usage errors) groups that do not divide the channels, or an image whose channel count
    is not the layer's C_in, with a hint that fixes it."""
    c_out, cig = weights.weight.shape[:2]
    if c_out % groups:
        raise ShapeError(
            f"--groups {groups} does not divide the {c_out} output channels of {weights.source}; use a "
            f"divisor of {c_out} that also divides the input channels"
        )
    need = cig * groups
    if need == channels:
        return
    per = f" ({cig} per group x {groups} groups)" if groups > 1 else ""
    kind = {1: "grayscale", 3: "RGB"}.get(channels, "")
    what = f"{channels} channel{'s' if channels != 1 else ''}" + (f" ({kind})" if kind else "")
    hints = []
    if channels % cig == 0 and c_out % (channels // cig) == 0 and channels // cig != groups:
        g = channels // cig
        hints.append(f"--groups {g}" + (" (depthwise)" if cig == 1 and g == channels else ""))
    other = "hwio" if weights.layout == "oihw" else "oihw"
    s = weights.stored_shape
    swapped = (s[3], s[2], s[0], s[1]) if other == "hwio" else s  # OIHW if read the other way
    if swapped[1] * groups == channels and swapped[0] % groups == 0:
        hints.append(f"--layout {other} (the stored shape {_size(s)} read as {LAYOUTS[other]})")
    if channels == 1 and need == 3:
        hints.append("an RGB version of the image (Pillow: Image.open(path).convert('RGB'))")
    elif channels in (3, 4) and need == 1:
        hints.append("a grayscale version of the image (Pillow: Image.open(path).convert('L'))")
    else:
        hints.append(f"an image with {need} channel{'s' if need != 1 else ''} or weights made for {channels}")
    raise ShapeError(
        f"{image} has {what} but the weights {_size(weights.shape)} take C_in = {need}{per}; try "
        + ", or ".join(hints)
    )
