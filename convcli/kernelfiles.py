"""Kernel files and the other tools' kernel formats: read them, and write them back.

Formats, chosen by the file's suffix:

``.txt``
    rows of numbers, one row per line (or rows split by ``;``), entries split
    by spaces or commas, fractions allowed, ``#`` starts a comment. A file
    whose text is an ImageMagick kernel string (``3x3: ...``) is read as one.
``.csv``
    one row per line, entries split by commas, semicolons, tabs or spaces.
``.npy``
    a 1-D or 2-D NumPy array of real numbers.
``.toml``
    the registry schema (``[kernels.NAME]`` tables, see ``kernels.toml``); a
    file with one entry gives that entry, ``FILE.toml#NAME`` picks one.
``.mat``
    a libvips matrix: a header line ``WIDTH HEIGHT [SCALE [OFFSET]]``, then
    HEIGHT rows of WIDTH numbers. vips *divides* by SCALE and then adds
    OFFSET, so the kernel's scale is ``1/SCALE``.

ImageMagick kernel strings, ``"WxH[+X+Y]: v, v, v ..."`` (``"3: ..."`` is
3x3), are read inline or from ``.txt`` files. Cells given as ``nan`` or ``-``
are left out of the kernel; under correlation a left-out cell weighs 0 (it
adds nothing to the sum and nothing to the normalisation), so it is stored as
0 and reported in the kernel's notes. An origin ``+X+Y`` other than the
centre is kept by padding the kernel with zeros until that cell is its centre.
"""

from __future__ import annotations

import io
import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from .banks import Bank
from .errors import KernelError
from .kernels import (
    MAX_KERNEL_SIDE,
    Kernel,
    Registry,
    check_matrix,
    format_number,
    load_registry,
    parse_matrix,
    parse_number,
)

__all__ = [
    "SAVE_SUFFIXES",
    "imagemagick_string",
    "is_imagemagick_string",
    "kernel_file_bytes",
    "kernel_from_imagemagick",
    "parse_imagemagick",
    "parse_vips_mat",
    "read_kernel_file",
    "read_matrix",
]

#: Suffixes :func:`kernel_file_bytes` can write.
SAVE_SUFFIXES = (".txt", ".csv", ".npy", ".toml", ".mat")

_IM = re.compile(
    r"^\s*(?:(?P<w>\d+)(?:[xX](?P<h>\d+))?|[xX](?P<h2>\d+))"
    r"(?P<origin>[+-]\d+[+-]\d+)?(?P<flags>[@<>^!%]*)\s*:(?P<body>.*)$",
    re.S,
)




# ----------------------------------------------------------------------------- ImageMagick


def is_imagemagick_string(text: str) -> bool:
    """True for ``WxH[+X+Y]: ...`` kernel strings.

    >>> is_imagemagick_string("3x3: 1,0,-1 2,0,-2 1,0,-1"), is_imagemagick_string("1 0 -1")
    (True, False)
    """
    return bool(_IM.match(text))


def parse_imagemagick(
    text: str, *, where: str = "ImageMagick kernel", max_side: int | None = MAX_KERNEL_SIDE
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Parse an ImageMagick kernel string into ``(matrix, notes)``.

    >>> m, notes = parse_imagemagick("3x1: 1, nan, -1")
    >>> m.tolist(), len(notes)
    ([[1.0, 0.0, -1.0]], 1)
    >>> parse_imagemagick("3x1+0+0: 1 2 3")[0].tolist()      # origin on the left: padded to 5x1
    [[0.0, 0.0, 1.0, 2.0, 3.0]]
    """
    parts = [p for p in text.split(";") if p.strip()]
    if len(parts) > 1:
        raise KernelError(
            f"{where}: {len(parts)} kernels separated by ';' form an ImageMagick kernel list, which "
            "ImageMagick applies one after another; convcli takes one kernel per -k"
        )
    m = _IM.match(parts[0] if parts else text)
    if m is None:
        raise KernelError(f"{where}: expected WxH: followed by the values, e.g. \"3x3: 1,0,-1 2,0,-2 1,0,-1\"")
    if m["flags"]:
        raise KernelError(
            f"{where}: the flag {m['flags']!r} asks ImageMagick for a list of rotated kernels; "
            "convcli takes one kernel per -k (write each rotation out)"
        )
    width = int(m["w"]) if m["w"] else int(m["h2"])
    height = int(m["h"] or m["h2"] or width)
    if width < 1 or height < 1:
        raise KernelError(f"{where}: the size {width}x{height} must be at least 1x1")
    if max_side is not None and max(width, height) > max_side:
        raise KernelError(
            f"{where}: a {height}x{width} kernel is larger than {max_side} per side; if you mean it, "
            f"raise the limit with --max-kernel-size {max(width, height)}"
        )
    x0, y0 = (width - 1) // 2, (height - 1) // 2
    if m["origin"]:
        sx, sy = re.findall(r"[+-]\d+", m["origin"])
        x0, y0 = int(sx), int(sy)
        if not (0 <= x0 < width and 0 <= y0 < height):
            raise KernelError(
                f"{where}: the origin {m['origin']} lies outside the {width}x{height} kernel "
                f"(+0+0 is the top-left cell, +{width - 1}+{height - 1} the bottom-right)"
            )
    tokens = [t for t in re.split(r"[\s,]+", m["body"].strip()) if t]
    if len(tokens) != width * height:
        raise KernelError(
            f"{where}: a {width}x{height} kernel (width x height) needs {width * height} values, "
            f"got {len(tokens)}"
        )
    values = []
    for i, tok in enumerate(tokens, start=1):
        if tok.lower() in ("nan", "-"):
            values.append(np.nan)
        else:
            values.append(parse_number(tok, what=f"{where}: value {i}"))
    matrix = np.array(values, dtype=np.float64).reshape(height, width)
    left_out = np.isnan(matrix)
    notes = []
    if left_out.all():
        raise KernelError(f"{where}: every cell is nan or -, so nothing is left of the kernel")
    if left_out.any():
        n = int(left_out.sum())
        notes.append(
            f"{n} cell{'s' if n > 1 else ''} given as nan or - left out: under correlation a left-out "
            "cell weighs 0 (it adds nothing to the sum or to the normalisation), so convcli stores 0"
        )
        matrix[left_out] = 0.0
    default = ((width - 1) // 2, (height - 1) // 2)
    if (x0, y0) != default:
        left, right = max(0, (width - 1 - x0) - x0), max(0, x0 - (width - 1 - x0))
        top, bottom = max(0, (height - 1 - y0) - y0), max(0, y0 - (height - 1 - y0))
        matrix = np.pad(matrix, ((top, bottom), (left, right)))
        notes.append(
            f"origin +{x0}+{y0} kept by padding the {width}x{height} kernel with zeros to "
            f"{matrix.shape[1]}x{matrix.shape[0]}, so that the origin is its centre"
        )
    return check_matrix(matrix, where, max_side=max_side), tuple(notes)


def kernel_from_imagemagick(
    text: str,
    *,
    name: str = "custom",
    source: str = "inline",
    max_side: int | None = MAX_KERNEL_SIDE,
) -> Kernel:
    """A :class:`Kernel` from an ImageMagick kernel string (see :func:`parse_imagemagick`)."""
    where = "ImageMagick kernel" if source == "inline" else f"kernel file {source!r}"
    matrix, notes = parse_imagemagick(text, where=where, max_side=max_side)
    return Kernel(
        name=name,
        matrix=matrix,
        description="ImageMagick kernel string" + ("" if source == "inline" else f" read from {source}"),
        source=source,
        spec=" ".join(text.split()) if source == "inline" else f"@{source}",
        notes=notes,
    )


def imagemagick_string(weights: np.ndarray) -> str:
    """The ImageMagick kernel string of a matrix (width x height, rows split by spaces).

    >>> imagemagick_string(np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]))
    '3x3: -1,0,1 -2,0,2 -1,0,1'
    """
    w = np.asarray(weights, dtype=np.float64)
    rows = " ".join(",".join(format_number(v) for v in row) for row in w)
    return f"{w.shape[1]}x{w.shape[0]}: {rows}"


# ----------------------------------------------------------------------------- vips .mat


def parse_vips_mat(
    text: str, *, where: str = "vips matrix", max_side: int | None = MAX_KERNEL_SIDE
) -> tuple[np.ndarray, Fraction, float]:
    """Parse a libvips ``.mat`` file into ``(matrix, vips_scale, offset)``.

    >>> m, scale, offset = parse_vips_mat("3 1 4 128\\n1 2 1\\n")
    >>> m.tolist(), scale, offset
    ([[1.0, 2.0, 1.0]], Fraction(4, 1), 128.0)
    """
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise KernelError(f"{where}: the file is empty")
    head = lines[0].split()
    if not 2 <= len(head) <= 4:
        raise KernelError(
            f"{where}: the first line must be the vips header WIDTH HEIGHT [SCALE [OFFSET]], got {lines[0]!r}"
        )
    size = []
    for label, tok in zip(("width", "height"), head[:2], strict=True):
        if not re.fullmatch(r"\d+", tok) or int(tok) < 1:
            raise KernelError(f"{where}: the header's {label} {tok!r} must be a whole number of at least 1")
        size.append(int(tok))
    width, height = size
    if max_side is not None and max(width, height) > max_side:
        raise KernelError(
            f"{where}: a {height}x{width} kernel is larger than {max_side} per side; if you mean it, "
            f"raise the limit with --max-kernel-size {max(width, height)}"
        )
    scale_text = head[2] if len(head) > 2 else "1"
    parse_number(scale_text, what=f"{where}: header scale")
    scale = Fraction(scale_text)
    if scale == 0:
        raise KernelError(f"{where}: the header scale is 0, but vips divides every output by it")
    offset = parse_number(head[3], what=f"{where}: header offset") if len(head) > 3 else 0.0
    rows = [[c for c in re.split(r"[\s,]+", ln) if c] for ln in lines[1:]]
    if len(rows) != height:
        raise KernelError(
            f"{where}: the header says {height} rows of {width} numbers, but {len(rows)} rows follow"
        )
    values = []
    for i, row in enumerate(rows, start=1):
        if len(row) != width:
            raise KernelError(f"{where}: row {i} has {len(row)} numbers, but the header says {width} per row")
        values.append([parse_number(c, what=f"{where}: row {i} entry") for c in row])
    return check_matrix(values, where, max_side=max_side), scale, offset


# ----------------------------------------------------------------------------- reading


def _read_text(path: Path, where: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KernelError(f"{where} cannot be read as text ({exc})") from None


def _rows_text(text: str, where: str, *, csv: bool, max_side: int | None) -> np.ndarray:
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise KernelError(f"{where}: the matrix is empty")
    if not csv:
        return parse_matrix("\n".join(lines), where=where, max_side=max_side)
    rows = []
    for i, ln in enumerate(lines, start=1):
        cells = [c for c in re.split(r"[,;\t ]+", ln) if c]
        rows.append([parse_number(c, what=f"{where}: row {i} entry") for c in cells])
    return check_matrix(rows, where, max_side=max_side)


def _read_npy(path: Path, where: str, max_side: int | None) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise KernelError(f"{where} is not a readable .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise KernelError(f"{where} holds several arrays; save one 2-D array with numpy.save")
    if arr.ndim == 0:
        raise KernelError(f"{where}: expected a 1-D or 2-D array, got a single number; save a 2-D array")
    return check_matrix(arr, where, max_side=max_side)


def read_matrix(path: Path, *, max_side: int | None = None) -> np.ndarray:
    """The 2-D array in a ``.npy``, ``.csv`` or text file of rows (no size limit by default).

    This is also how array *inputs* (``.txt``, ``.csv``) are read.
    """
    path = Path(path)
    where = f"kernel file {str(path)!r}"
    if not path.is_file():
        raise KernelError(f"{where} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _read_npy(path, where, max_side)
    return _rows_text(_read_text(path, where), where, csv=suffix == ".csv", max_side=max_side)


def read_kernel_file(
    path_text: str,
    *,
    registry: Registry | None = None,
    max_side: int = MAX_KERNEL_SIDE,
) -> Kernel | Bank:
    """Read a kernel (or, from ``.toml``, a bank) from a file; the format comes from the suffix."""
    selector = None
    if ".toml#" in path_text.lower():
        cut = path_text.lower().rindex(".toml#") + len(".toml")
        path_text, selector = path_text[:cut], path_text[cut + 1 :]
    path = Path(path_text)
    where = f"kernel file {path_text!r}"
    if not path_text.strip():
        raise KernelError("kernel: '@' needs a file name, e.g. @edge.txt")
    if not path.is_file():
        raise KernelError(f"{where} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    suffix = path.suffix.lower()
    name = path.stem or "custom"
    common = {"name": name, "source": str(path), "spec": f"@{path_text}"}
    if suffix == ".toml":
        return _from_toml(path, selector, registry, max_side)
    if suffix == ".npy":
        return Kernel(matrix=_read_npy(path, where, max_side), description=f"matrix read from {path}", **common)
    text = _read_text(path, where)
    if suffix == ".mat":
        matrix, vips_scale, offset = parse_vips_mat(text, where=where, max_side=max_side)
        scale = 1 / vips_scale
        return Kernel(
            matrix=matrix,
            scale=float(scale),
            scale_text=str(scale),
            offset=offset,
            description=f"vips matrix read from {path}",
            **common,
        )
    stripped = "\n".join(ln.split("#", 1)[0] for ln in text.splitlines()).strip()
    if suffix != ".csv" and is_imagemagick_string(stripped):
        return kernel_from_imagemagick(stripped, name=name, source=str(path), max_side=max_side)
    matrix = _rows_text(text, where, csv=suffix == ".csv", max_side=max_side)
    return Kernel(matrix=matrix, description=f"matrix read from {path}", **common)


def _from_toml(path: Path, selector: str | None, registry: Registry | None, max_side: int) -> Kernel | Bank:
    from .kernels import builtin_registry

    where = f"kernel file {str(path)!r}"
    source = str(path)
    merged = load_registry(
        _read_text(path, where), source=source, base=registry or builtin_registry(), max_side=max_side
    )
    own = [k.name for k in merged.kernels.values() if k.source == source]
    own += [b.name for b in merged.banks.values() if b.source == source]
    if selector is not None:
        found = merged.find(selector)
        if found is None or found.source != source:
            raise KernelError(f"{where} has no kernel {selector!r}; it holds {', '.join(own)}")
        return found
    if len(own) != 1:
        first = own[0]
        raise KernelError(
            f"{where} holds {len(own)} entries ({', '.join(own)}); pick one with @{path}#{first}, "
            f"or load them all with --kernels {path}"
        )
    return merged.find(own[0])  # type: ignore[return-value]


# ----------------------------------------------------------------------------- writing


def _toml_name(name: str) -> str:
    clean = re.sub(r"[^a-z0-9_.+-]+", "-", name.lower()).strip("-")
    return clean if re.match(r"^[a-z]", clean) else f"kernel-{clean}".rstrip("-")


def kernel_file_bytes(kernel: Kernel, suffix: str) -> tuple[bytes, tuple[str, ...]]:
    """The kernel written in the format of ``suffix``; returns ``(data, notes)``.

    Formats without a scale (``.txt``, ``.csv``, ``.npy``) hold the weights
    (matrix times scale); ``.toml`` keeps the matrix and its scale; ``.mat``
    keeps them when the scale is ``1/N`` (vips divides by N). An offset that
    the format cannot hold is reported in the notes.

    >>> from convcli.kernels import resolve_kernel
    >>> kernel_file_bytes(resolve_kernel("gaussian-blur"), ".mat")[0].decode()
    '3 3 16 0\\n1 2 1\\n2 4 2\\n1 2 1\\n'
    """
    suffix = suffix.lower()
    notes: list[str] = []
    if kernel.offset and suffix in (".txt", ".csv", ".npy"):
        notes.append(f"offset {format_number(kernel.offset)} not saved: {suffix} files hold only the matrix")
    weights = kernel.weights
    if suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, np.array(weights, dtype=np.float64), allow_pickle=False)
        return buf.getvalue(), tuple(notes)
    if suffix == ".txt":
        head = f"# {kernel.name}: {kernel.description}\n" if kernel.description else ""
        body = "".join(" ".join(format_number(v) for v in row) + "\n" for row in weights)
        return (head + body).encode(), tuple(notes)
    if suffix == ".csv":
        return "".join(",".join(format_number(v) for v in row) + "\n" for row in weights).encode(), tuple(notes)
    if suffix == ".mat":
        try:
            scale = Fraction(kernel.scale_text)
        except (ValueError, ZeroDivisionError):
            scale = Fraction(kernel.scale)
        if scale.numerator in (1, -1) and float(scale) == kernel.scale:
            divisor, rows = 1 / scale, kernel.matrix
        else:
            divisor, rows = Fraction(1), weights
        h, w = rows.shape
        head = f"{w} {h} {format_number(float(divisor))} {format_number(kernel.offset)}\n"
        return (head + "".join(" ".join(format_number(v) for v in row) + "\n" for row in rows)).encode(), tuple(notes)
    if suffix == ".toml":
        name = _toml_name(kernel.name)
        key = name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)  # TOML bare keys
        lines = [f"[kernels.{key}]"]
        lines.append(f"description = {json.dumps(kernel.description or 'saved by convcli')}")
        lines.append("matrix = [")
        lines += [f"  [{', '.join(format_number(v) for v in row)}]," for row in kernel.matrix]
        lines.append("]")
        if kernel.scale_text != "1":
            lines.append(f"scale = {json.dumps(kernel.scale_text)}")
        if kernel.offset:
            lines.append(f"offset = {format_number(kernel.offset)}")
        if kernel.map:
            lines.append(f"map = {json.dumps(kernel.map)}")
        if kernel.tags:
            lines.append(f"tags = {json.dumps(list(kernel.tags))}")
        return ("\n".join(lines) + "\n").encode(), tuple(notes)
    raise KernelError(
        f"cannot save a kernel as {suffix or '(no suffix)'!r}; use one of {', '.join(SAVE_SUFFIXES)}"
    )
