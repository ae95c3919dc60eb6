"""Kernels: the built-in registry (``kernels.toml``), inline matrices and kernel files.

The registry is parsed once into frozen :class:`Kernel` objects and checked as
it loads (shape, finite values, known map), never when a kernel is used.

A kernel *spec*, as typed on the command line, is one of:

* a registry name or alias: ``sobel-x``, ``gaussian-blur``;
* an inline matrix, rows split by ``;`` or newlines, entries by spaces or
  commas, fractions allowed: ``"1 0 -1; 2 0 -2; 1 0 -1"``, ``"1/9 1/9 1/9"``,
  or nested brackets ``"[[1, 0], [0, -1]]"``;
* ``@FILE``: a ``.npy`` array, or a text/CSV file of rows of numbers.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import KernelError
from .output import MAP_NAMES

__all__ = [
    "Kernel",
    "Registry",
    "builtin_registry",
    "load_registry",
    "parse_matrix",
    "parse_number",
    "resolve_kernel",
]

#: Largest kernel side accepted from users; far beyond any sensible image filter.
MAX_KERNEL_SIDE = 1025

_NUMERIC_SPEC = re.compile(r"^[\s\d.,;/+\-eE\[\]]+$")


@dataclass(frozen=True, eq=False)
class Kernel:
    """A validated kernel. ``matrix`` is as written; ``weights`` is ``matrix * scale``."""

    name: str
    matrix: np.ndarray
    description: str = ""
    scale: float = 1.0
    scale_text: str = "1"
    offset: float = 0.0
    map: str | None = None
    tags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    source: str = "built-in"
    weights: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        matrix = np.array(self.matrix, dtype=np.float64)
        matrix.setflags(write=False)
        weights = matrix * self.scale
        weights.setflags(write=False)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "weights", weights)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.matrix.shape[0]), int(self.matrix.shape[1]))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "matrix": self.matrix.tolist(),
            "scale": self.scale_text,
            "offset": self.offset,
            "weights": self.weights.tolist(),
            "sum": float(self.weights.sum()),
            "map": self.map,
            "tags": list(self.tags),
            "aliases": list(self.aliases),
            "description": self.description,
            "source": self.source,
        }


def parse_number(text: str, *, what: str = "entry") -> float:
    """Parse ``3``, ``-0.25``, ``1e-3`` or a fraction ``1/16`` into a float.

    >>> parse_number("1/16"), parse_number("-2"), parse_number("0.5")
    (0.0625, -2.0, 0.5)
    """
    t = text.strip()
    low = t.lower().lstrip("+-")
    if low in ("nan", "inf", "infinity"):
        raise KernelError(f"{what} {t!r}: NaN and infinite values are not allowed")
    try:
        value = Fraction(t)
    except (ValueError, ZeroDivisionError):
        reason = "divides by zero" if re.fullmatch(r".*/\s*[+-]?0+", t) else "is not a number"
        raise KernelError(f"{what} {t!r} {reason} (use numbers such as 2, -0.5 or 1/16)") from None
    return float(value)


def _check_matrix(rows: list[list[float]], where: str) -> np.ndarray:
    if not rows or not any(rows):
        raise KernelError(f"{where}: the matrix is empty")
    width = len(rows[0])
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise KernelError(
                f"{where}: ragged matrix: row {i} has {len(row)} entries but row 1 has {width}; "
                "every row needs the same number of entries"
            )
    m = np.array(rows, dtype=np.float64)
    if not np.all(np.isfinite(m)):
        raise KernelError(f"{where}: the matrix contains NaN or infinite entries")
    if max(m.shape) > MAX_KERNEL_SIDE:
        raise KernelError(
            f"{where}: a {m.shape[0]}x{m.shape[1]} kernel is larger than {MAX_KERNEL_SIDE} per side"
        )
    return m


def parse_matrix(text: str, *, where: str = "kernel") -> np.ndarray:
    """Parse an inline matrix into a 2-D float64 array.

    >>> parse_matrix("1 0 -1; 2 0 -2")
    array([[ 1.,  0., -1.],
           [ 2.,  0., -2.]])
    >>> parse_matrix("[[1, 0], [0, -1]]")
    array([[ 1.,  0.],
           [ 0., -1.]])
    """
    body = text.strip()
    if body.startswith("["):
        inner = re.findall(r"\[([^\[\]]*)\]", body)
        if body.count("[") != body.count("]") or not inner:
            raise KernelError(f"{where}: unbalanced brackets in {text!r}")
        row_texts = inner
    else:
        row_texts = [r for r in re.split(r"[;\n]", body)]
        # tolerate one trailing separator ("1 2; 3 4;")
        if row_texts and not row_texts[-1].strip():
            row_texts = row_texts[:-1]
    rows: list[list[float]] = []
    for i, row in enumerate(row_texts, start=1):
        cells = [c for c in re.split(r"[,\s]+", row.strip()) if c]
        if not cells:
            raise KernelError(f"{where}: row {i} is empty in {text!r}")
        rows.append([parse_number(c, what=f"{where}: row {i} entry") for c in cells])
    return _check_matrix(rows, where)


def _read_matrix_file(path: Path) -> np.ndarray:
    where = f"kernel file {str(path)!r}"
    if not path.is_file():
        raise KernelError(f"{where} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise KernelError(f"{where} is not a readable .npy array ({exc})") from None
        if arr.ndim == 1:
            arr = arr[np.newaxis]
        if arr.ndim != 2 or arr.dtype.kind not in "biuf":
            raise KernelError(f"{where}: expected a 2-D numeric array, got {arr.dtype} {arr.shape}")
        return _check_matrix(arr.astype(np.float64).tolist(), where)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KernelError(f"{where} cannot be read as text ({exc})") from None
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    return parse_matrix("\n".join(ln for ln in lines if ln), where=where)


@dataclass(frozen=True)
class Registry:
    """Named kernels and their aliases."""

    kernels: dict[str, Kernel]
    aliases: dict[str, str]

    def names(self) -> list[str]:
        return list(self.kernels)

    def get(self, name: str) -> Kernel | None:
        key = name.strip().lower()
        key = self.aliases.get(key, key)
        return self.kernels.get(key)

    def suggest(self, name: str) -> list[str]:
        return difflib.get_close_matches(
            name.strip().lower(), [*self.kernels, *self.aliases], n=3, cutoff=0.6
        )


def _scale_from(value: object, where: str) -> tuple[float, str]:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise KernelError(f"{where}: scale must be a number or a fraction string like \"1/16\"")
    text = str(value)
    scale = parse_number(text, what=f"{where}: scale")
    if scale == 0:
        raise KernelError(f"{where}: scale must not be 0")
    return scale, text


def load_registry(text: str, *, source: str) -> Registry:
    """Parse and validate registry TOML text (the schema is documented in kernels.toml)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KernelError(f"{source}: not valid TOML ({exc})") from None
    table = doc.get("kernels")
    if not isinstance(table, dict) or not table:
        raise KernelError(f"{source}: no [kernels.NAME] tables found")
    kernels: dict[str, Kernel] = {}
    aliases: dict[str, str] = {}
    known_keys = {"matrix", "description", "scale", "offset", "map", "tags", "aliases"}
    for raw_name, entry in table.items():
        name = raw_name.lower()
        where = f"{source}: kernel {raw_name!r}"
        if not isinstance(entry, dict):
            raise KernelError(f"{where} must be a table")
        unknown = set(entry) - known_keys
        if unknown:
            raise KernelError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(known_keys)}")
        matrix = entry.get("matrix")
        if not isinstance(matrix, list) or not all(isinstance(r, list) for r in matrix):
            raise KernelError(f"{where}: matrix must be a list of rows, e.g. [[1, 0], [0, -1]]")
        try:
            rows = [[float(v) if not isinstance(v, bool) else None for v in r] for r in matrix]
        except (TypeError, ValueError):
            raise KernelError(f"{where}: matrix entries must be numbers") from None
        if any(v is None for r in rows for v in r):
            raise KernelError(f"{where}: matrix entries must be numbers")
        m = _check_matrix(rows, where)  # type: ignore[arg-type]
        description = entry.get("description")
        if not isinstance(description, str) or not description.strip():
            raise KernelError(f"{where}: needs a one-line description")
        scale, scale_text = _scale_from(entry.get("scale", 1), where)
        offset = entry.get("offset", 0)
        if isinstance(offset, bool) or not isinstance(offset, (int, float)):
            raise KernelError(f"{where}: offset must be a number")
        how = entry.get("map")
        if how is not None and how not in MAP_NAMES:
            raise KernelError(f"{where}: map {how!r} is not one of {', '.join(MAP_NAMES)}")
        tags = entry.get("tags", [])
        names = entry.get("aliases", [])
        for label, seq in (("tags", tags), ("aliases", names)):
            if not isinstance(seq, list) or not all(isinstance(t, str) for t in seq):
                raise KernelError(f"{where}: {label} must be a list of strings")
        kernels[name] = Kernel(
            name=name,
            matrix=m,
            description=description.strip(),
            scale=scale,
            scale_text=scale_text,
            offset=float(offset),
            map=how,
            tags=tuple(tags),
            aliases=tuple(a.lower() for a in names),
            source=source,
        )
    for name, k in kernels.items():
        for alias in k.aliases:
            if alias in kernels or alias in aliases:
                raise KernelError(f"{source}: alias {alias!r} of {name!r} is already a kernel or alias")
            aliases[alias] = name
    return Registry(kernels, aliases)


def _builtin_text() -> tuple[str, str]:
    packaged = resources.files("convcli") / "kernels.toml"
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8"), "kernels.toml"
    # Source checkout or editable install: the registry sits at the repository root.
    checkout = Path(__file__).resolve().parent.parent / "kernels.toml"
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8"), "kernels.toml"
    raise KernelError(
        "the built-in kernel registry kernels.toml is missing from this installation; reinstall convcli"
    )


@functools.cache
def builtin_registry() -> Registry:
    """The registry shipped with convcli, loaded once."""
    text, source = _builtin_text()
    return load_registry(text, source=source)


def resolve_kernel(spec: str, registry: Registry | None = None) -> Kernel:
    """Turn a command-line kernel spec into a :class:`Kernel`.

    Inline matrices are named ``custom``; files are named after their stem.

    >>> resolve_kernel("sobel-x").matrix[0]
    array([-1.,  0.,  1.])
    >>> resolve_kernel("1 2 1").shape
    (1, 3)
    """
    registry = registry or builtin_registry()
    text = spec.strip()
    if not text:
        raise KernelError("kernel: empty spec; give a name such as sobel-x or a matrix such as \"1 0 -1\"")
    if text.startswith("@"):
        path = Path(text[1:])
        return Kernel(
            name=path.stem or "custom",
            matrix=_read_matrix_file(path),
            description=f"matrix read from {text[1:]}",
            source=str(path),
        )
    found = registry.get(text)
    if found is not None:
        return found
    if _NUMERIC_SPEC.match(text) or re.search(r"\d", text) and re.search(r"[;\s,]", text):
        return Kernel(
            name="custom",
            matrix=parse_matrix(text),
            description="inline matrix",
            source="inline",
        )
    near = registry.suggest(text)
    hint = f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""
    raise KernelError(
        f"kernel: unknown kernel {text!r}{hint}; `convcli kernels list` shows them all, "
        "or give a matrix such as \"1 0 -1; 2 0 -2; 1 0 -1\""
    )
