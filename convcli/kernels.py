"""Kernels: the registry (``kernels.toml``), kernel specs, and what can be said about a kernel.

The registry is parsed once into frozen :class:`Kernel` and
:class:`~convcli.banks.Bank` objects, checked as they load (shape, finite
values, known map, bank members), never when they are used. A user registry
(same schema) merges over the built-in one; every built-in name it replaces is
reported as a note, returned as data in :attr:`Registry.notes`.

A kernel *spec*, as typed on the command line, is one of:

* a registry name or alias: ``sobel-x``, ``gaussian-blur``, ``laplacian:15``;
* a bank: ``sobel`` (the magnitude of ``sobel-x`` and ``sobel-y``), or with
  another combine mode: ``sobel:max``, ``sobel:combine=stack``;
* a parametric kernel, generated exactly: ``gaussian:sigma=2``, ``box:7``,
  ``log:sigma=1.4``, ``dog:sigma1=1,sigma2=2``, ``motion:length=9,angle=30``,
  ``unsharp:sigma=1,amount=1.5`` (see :mod:`convcli.kernelgen`);
* an inline matrix, rows split by ``;`` or newlines, entries by spaces or
  commas, fractions allowed: ``"1 0 -1; 2 0 -2; 1 0 -1"``, ``"1/9 1/9 1/9"``,
  or nested brackets ``"[[1, 0], [0, -1]]"``;
* an ImageMagick kernel string: ``"3x3: 1,0,-1 2,0,-2 1,0,-1"``;
* a file, ``@FILE`` or a path ending in ``.txt``, ``.csv``, ``.npy``,
  ``.toml`` or ``.mat`` (see :mod:`convcli.kernelfiles`).
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from fractions import Fraction
from importlib import resources
from pathlib import Path

import numpy as np

from .banks import COMBINE_MODES, Bank
from .errors import KernelError
from .output import MAP_NAMES

__all__ = [
    "MAX_KERNEL_SIDE",
    "Kernel",
    "Bank",
    "Registry",
    "adjust",
    "builtin_registry",
    "check_matrix",
    "format_number",
    "load_registry",
    "load_registry_files",
    "matrix_rank",
    "parse_matrix",
    "parse_number",
    "rank1_factors",
    "resolve_kernel",
    "resolve_spec",
]

#: Largest kernel side accepted unless the caller raises it (``--max-kernel-size``).
MAX_KERNEL_SIDE = 1025

#: Registry names: they name output files, so no spaces, slashes or colons.
_NAME = re.compile(r"^[a-z][a-z0-9_.+-]*$")
#: Aliases may also carry the other tools' ``Name:N`` form (``laplacian:15``).
_ALIAS = re.compile(r"^[a-z][a-z0-9_.+:-]*$")
_NUMERIC_SPEC = re.compile(r"^[\s\d.,;/+\-eE\[\]]+$")
#: Suffixes read as kernel files even without a leading ``@``.
KERNEL_FILE_SUFFIXES = (".txt", ".csv", ".npy", ".toml", ".mat")
_ZERO_SUM_RTOL = 1e-9


# ----------------------------------------------------------------------------- numbers and matrices


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
        value = float(Fraction(t))
    except (ValueError, ZeroDivisionError):
        reason = "divides by zero" if re.fullmatch(r".*/\s*[+-]?0+", t) else "is not a number"
        raise KernelError(f"{what} {t!r} {reason} (use numbers such as 2, -0.5 or 1/16)") from None
    except OverflowError:
        raise KernelError(f"{what} {t!r} is too large for a floating-point number") from None
    if not math.isfinite(value):
        raise KernelError(f"{what} {t!r} is too large for a floating-point number")
    return value


def format_number(v: float) -> str:
    """The shortest text that reads back as the same float; whole numbers without a point.

    >>> format_number(2.0), format_number(-0.0), format_number(0.1), format_number(1e20)
    ('2', '0', '0.1', '1e+20')
    """
    v = float(v)
    if v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def _too_large(where: str, shape: tuple[int, ...], max_side: int) -> KernelError:
    h, w = shape
    return KernelError(
        f"{where}: a {h}x{w} kernel is larger than {max_side} per side; if you mean it, "
        f"raise the limit with --max-kernel-size {max(h, w)}"
    )


def check_matrix(rows: list | np.ndarray, where: str, *, max_side: int | None = MAX_KERNEL_SIDE) -> np.ndarray:
    """Validate rows of numbers (or an array) as a kernel; returns a 2-D float64 array.

    One message per problem: empty, ragged, more than 2-D, non-numeric,
    NaN or infinite entries, or a side longer than ``max_side``.

    >>> check_matrix([[1, 2], [3, 4]], "k")
    array([[1., 2.],
           [3., 4.]])
    >>> check_matrix([[1, 2], [3]], "k")
    Traceback (most recent call last):
    ...
    convcli.errors.KernelError: k: ragged matrix: row 2 has 1 entries but row 1 has 2; every row needs the same number of entries
    """
    if isinstance(rows, np.ndarray):
        arr = rows
        if arr.dtype.kind not in "biuf":
            kind = "complex" if arr.dtype.kind == "c" else f"non-numeric ({arr.dtype})"
            raise KernelError(f"{where}: the matrix holds {kind} values; a kernel needs real numbers")
        if arr.ndim == 1:
            arr = arr[np.newaxis, :]
        if arr.ndim != 2:
            raise KernelError(
                f"{where}: a kernel is 1-D or 2-D, but this matrix is {arr.ndim}-D with shape {arr.shape}"
            )
        if arr.size == 0:
            raise KernelError(f"{where}: the matrix is empty")
        m = arr.astype(np.float64)
    else:
        if not rows or not any(len(r) for r in rows):
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
        bad = int(np.count_nonzero(~np.isfinite(m)))
        raise KernelError(f"{where}: the matrix contains {bad} NaN or infinite entries; every weight must be finite")
    if max_side is not None and max(m.shape) > max_side:
        raise _too_large(where, m.shape, max_side)
    return m


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch == "[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == "]":
            depth -= 1
    return deepest


def parse_matrix(text: str, *, where: str = "kernel", max_side: int | None = MAX_KERNEL_SIDE) -> np.ndarray:
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
        if body.count("[") != body.count("]"):
            raise KernelError(f"{where}: unbalanced brackets in {text!r}")
        if _bracket_depth(body) > 2:
            raise KernelError(
                f"{where}: {text!r} nests brackets {_bracket_depth(body)} deep, but a kernel is 2-D: "
                "[[row 1], [row 2], ...]"
            )
        inner = re.findall(r"\[([^\[\]]*)\]", body)
        if not inner:
            raise KernelError(f"{where}: unbalanced brackets in {text!r}")
        outside = re.sub(r"\[[^\[\]]*\]", "", body)
        if re.search(r"[^\[\],\s]", outside):
            raise KernelError(
                f"{where}: {text!r} has numbers outside the row brackets; write [[row 1], [row 2], ...]"
            )
        row_texts = inner
    else:
        row_texts = [r for r in re.split(r"[;\n]", body)]
        # tolerate one trailing separator ("1 2; 3 4;")
        if row_texts and not row_texts[-1].strip():
            row_texts = row_texts[:-1]
    rows: list[list[float]] = []
    for i, row in enumerate(row_texts, start=1):
        if re.search(r",\s*,|^\s*,", row):
            raise KernelError(f"{where}: row {i} has an empty entry (a comma with no number) in {text!r}")
        cells = [c for c in re.split(r"[,\s]+", row.strip()) if c]
        if not cells:
            if len(row_texts) == 1:
                break
            raise KernelError(f"{where}: row {i} is empty in {text!r}")
        rows.append([parse_number(c, what=f"{where}: row {i} entry") for c in cells])
    return check_matrix(rows, where, max_side=max_side)


def matrix_rank(m: np.ndarray) -> int:
    """Numerical rank (NumPy's SVD tolerance); rank 1 means separable.

    >>> matrix_rank(np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]))
    1
    """
    return int(np.linalg.matrix_rank(np.asarray(m, dtype=np.float64)))


def rank1_factors(m: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """For a rank-1 matrix, a column and a row whose outer product is ``m``; else None.

    Integer factors are preferred (Sobel is ``[1, 2, 1]`` by ``[-1, 0, 1]``);
    otherwise the column sums to 1 when it can. The factor with a non-zero
    sum is made positive.

    >>> col, row = rank1_factors(np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]))
    >>> col.tolist(), row.tolist()
    ([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0])
    """
    k = np.asarray(m, dtype=np.float64)
    if not np.any(k) or matrix_rank(k) != 1:
        return None
    i, j = np.unravel_index(int(np.argmax(np.abs(k))), k.shape)
    col = k[:, j].copy()
    row = k[i, :] / k[i, j]
    smallest = float(np.min(np.abs(col[col != 0])))
    c2, r2 = col / smallest, row * smallest

    def whole(v: np.ndarray) -> bool:
        return bool(np.all(np.abs(v - np.rint(v)) <= 1e-9 * np.maximum(1.0, np.abs(v))))

    if whole(c2) and whole(r2):
        col, row = np.rint(c2), np.rint(r2)
    elif abs(col.sum()) > 1e-12 * np.abs(col).sum():
        s = col.sum()
        col, row = col / s, row * s
    flip = False
    if abs(col.sum()) > 1e-12 * np.abs(col).sum():
        flip = col.sum() < 0
    elif abs(row.sum()) > 1e-12 * np.abs(row).sum():
        flip = row.sum() < 0
    else:
        flip = col[np.flatnonzero(col)[0]] < 0
    if flip:
        col, row = -col, -row
    return col + 0.0, row + 0.0  # no negative zeros


# ----------------------------------------------------------------------------- Kernel


@dataclass(frozen=True, eq=False)
class Kernel:
    """A validated kernel. ``matrix`` is as written; ``weights`` is ``matrix * scale``.

    Under cross-correlation (convcli's default) ``weights`` is exactly what is
    multiplied with each patch; ``offset`` is added to every output value.
    """

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
    #: how to ask for this kernel again (a name, a parametric spec, @FILE, ...)
    spec: str = ""
    #: remarks about how the kernel was read, for the user (returned, never printed)
    notes: tuple[str, ...] = ()
    weights: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        where = f"kernel {self.name!r}"
        raw = self.matrix
        if not isinstance(raw, np.ndarray):
            try:
                raw = np.asarray(raw, dtype=np.float64)
            except (TypeError, ValueError):
                raise KernelError(f"{where}: the matrix must be rows of numbers, all of one length") from None
        matrix = check_matrix(raw, where, max_side=None)
        if not math.isfinite(self.scale) or self.scale == 0:
            raise KernelError(f"{where}: scale must be a finite number other than 0")
        if not math.isfinite(self.offset):
            raise KernelError(f"{where}: offset must be a finite number")
        if self.map is not None and self.map not in MAP_NAMES:
            raise KernelError(f"{where}: map {self.map!r} is not one of {', '.join(MAP_NAMES)}")
        matrix.setflags(write=False)
        weights = matrix * self.scale
        weights.setflags(write=False)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "notes", tuple(self.notes))
        if not self.spec:
            object.__setattr__(self, "spec", self.name)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.matrix.shape[0]), int(self.matrix.shape[1]))

    @property
    def total(self) -> float:
        """The sum of the weights."""
        return float(self.weights.sum())

    @property
    def zero_sum(self) -> bool:
        """True when the weights cancel (edge and derivative kernels)."""
        return abs(self.total) <= _ZERO_SUM_RTOL * float(np.abs(self.weights).sum())

    def flipped(self) -> Kernel:
        """The kernel rotated by 180 degrees (what ``--convolve`` correlates with)."""
        return replace(self, matrix=self.matrix[::-1, ::-1], notes=())

    def to_dict(self) -> dict:
        rank = matrix_rank(self.weights)
        return {
            "kind": "kernel",
            "name": self.name,
            "spec": self.spec,
            "shape": list(self.shape),
            "matrix": self.matrix.tolist(),
            "scale": self.scale_text,
            "offset": self.offset,
            "weights": self.weights.tolist(),
            "sum": 0.0 if self.zero_sum else self.total,
            "rank": rank,
            "separable": rank == 1,
            "map": self.map,
            "tags": list(self.tags),
            "aliases": list(self.aliases),
            "description": self.description,
            "source": self.source,
        }


def adjust(
    item: Kernel | Bank,
    *,
    scale: float | str | None = None,
    offset: float = 0.0,
    normalize: bool = False,
) -> Kernel | Bank:
    """Apply ``--normalize``, ``--scale`` and ``--offset`` to a kernel (or every member of a bank).

    The weights are first divided by their sum (``normalize``), then multiplied
    by ``scale``; ``offset`` is added to every output value (for a bank, to the
    combined map). A kernel whose weights sum to zero cannot be normalised:
    that is an error, never a black image.

    >>> k = adjust(resolve_kernel("1 2 1; 2 4 2; 1 2 1"), scale="1/16")
    >>> k.scale_text, float(k.weights.sum())
    ('1/16', 1.0)
    >>> adjust(resolve_kernel("1 2 1; 2 4 2; 1 2 1"), normalize=True).scale_text
    '1/16'
    """
    if isinstance(scale, str):
        parse_number(scale, what="scale")
        factor = Fraction(scale.strip())
    elif scale is not None:
        if not math.isfinite(float(scale)):
            raise KernelError("scale must be a finite number other than 0")
        factor = Fraction(float(scale))
    else:
        factor = Fraction(1)
    if factor == 0:
        raise KernelError("scale must not be 0 (a zero scale makes every output 0)")
    if not math.isfinite(offset):
        raise KernelError("offset must be a finite number")
    if isinstance(item, Bank):
        members = tuple(adjust(k, scale=scale, normalize=normalize) for k in item.kernels)
        return replace(item, kernels=members, offset=item.offset + float(offset))  # type: ignore[arg-type]
    kernel = item
    if not normalize and scale is None and not offset:
        return kernel
    new = Fraction(kernel.scale_text) if _is_fraction(kernel.scale_text) else Fraction(kernel.scale)
    if normalize:
        if kernel.zero_sum:
            raise KernelError(
                f"--normalize: kernel {kernel.name!r} sums to 0 (its positive and negative weights cancel, "
                "as in every edge or derivative kernel), so it cannot be divided by its sum; leave out "
                "--normalize, and use --scale to resize it or --map abs/offset/rescale to see both signs"
            )
        # matrix * scale / (sum(matrix) * scale): exact for integer matrices ("1 2 1; ..." gives 1/16)
        new = 1 / Fraction(float(kernel.matrix.sum()))
    new *= factor
    text = str(new) if new.denominator <= (1 << 20) else repr(float(new))
    return replace(kernel, scale=float(new), scale_text=text, offset=kernel.offset + float(offset))


def _is_fraction(text: str) -> bool:
    try:
        Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        return False
    return True


# ----------------------------------------------------------------------------- Registry


@dataclass(frozen=True)
class Registry:
    """Named kernels, banks and their aliases; ``notes`` tell what a user registry replaced."""

    kernels: dict[str, Kernel]
    aliases: dict[str, str]
    banks: dict[str, Bank] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: the files merged over the built-in registry, in order
    sources: tuple[str, ...] = ()

    def names(self) -> list[str]:
        return list(self.kernels)

    def _key(self, name: str) -> str:
        key = name.strip().lower()
        return self.aliases.get(key, key)

    def get(self, name: str) -> Kernel | None:
        """The kernel of that name or alias (banks are not kernels: see :meth:`find`)."""
        return self.kernels.get(self._key(name))

    def find(self, name: str) -> Kernel | Bank | None:
        """The kernel or bank of that name or alias."""
        key = self._key(name)
        return self.kernels.get(key) or self.banks.get(key)

    def suggest(self, name: str) -> list[str]:
        from .kernelgen import GENERATORS

        return difflib.get_close_matches(
            name.strip().lower(),
            [*self.kernels, *self.banks, *self.aliases, *GENERATORS],
            n=3,
            cutoff=0.6,
        )


def _scale_from(value: object, where: str) -> tuple[float, str]:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise KernelError(f"{where}: scale must be a number or a fraction string like \"1/16\"")
    text = str(value)
    scale = parse_number(text, what=f"{where}: scale")
    if scale == 0:
        raise KernelError(f"{where}: scale must not be 0")
    return scale, text


def _strings(entry: dict, key: str, where: str) -> list[str]:
    seq = entry.get(key, [])
    if not isinstance(seq, list) or not all(isinstance(t, str) for t in seq):
        raise KernelError(f"{where}: {key} must be a list of strings")
    return seq


def _toml_matrix(matrix: object, where: str, max_side: int) -> np.ndarray:
    if not isinstance(matrix, list) or not all(isinstance(r, list) for r in matrix):
        raise KernelError(f"{where}: matrix must be a list of rows, e.g. [[1, 0], [0, -1]]")
    for r in matrix:
        for v in r:
            if isinstance(v, list):
                raise KernelError(f"{where}: matrix must be 2-D (a list of rows of numbers), not deeper")
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise KernelError(
                    f"{where}: matrix entries must be numbers, not {v!r} (put fractions in scale = \"1/16\")"
                )
    return check_matrix(matrix, where, max_side=max_side)  # type: ignore[arg-type]


_KERNEL_KEYS = {"matrix", "description", "scale", "offset", "map", "tags", "aliases"}
_BANK_KEYS = {"kernels", "combine", "description", "map", "tags", "aliases", "offset"}


def _parse_kernel_entry(raw_name: str, entry: object, source: str, label: str, max_side: int) -> Kernel:
    name = raw_name.lower()
    where = f"{source}: kernel {raw_name!r}"
    if not isinstance(entry, dict):
        raise KernelError(f"{where} must be a table")
    if not _NAME.match(name):
        raise KernelError(
            f"{where}: names start with a letter and hold only letters, digits and . _ + - "
            "(they become part of output file names)"
        )
    unknown = set(entry) - _KERNEL_KEYS
    if unknown:
        raise KernelError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_KERNEL_KEYS)}")
    m = _toml_matrix(entry.get("matrix"), where, max_side)
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip():
        raise KernelError(f"{where}: needs a one-line description")
    scale, scale_text = _scale_from(entry.get("scale", 1), where)
    offset = entry.get("offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset):
        raise KernelError(f"{where}: offset must be a finite number")
    how = entry.get("map")
    if how is not None and how not in MAP_NAMES:
        raise KernelError(f"{where}: map {how!r} is not one of {', '.join(MAP_NAMES)}")
    tags = _strings(entry, "tags", where)
    names = [a.lower() for a in _strings(entry, "aliases", where)]
    for alias in names:
        if not _ALIAS.match(alias):
            raise KernelError(f"{where}: alias {alias!r} must start with a letter (letters, digits, . _ + - :)")
    return Kernel(
        name=name,
        matrix=m,
        description=" ".join(description.split()),
        scale=scale,
        scale_text=scale_text,
        offset=float(offset),
        map=how,
        tags=tuple(tags),
        aliases=tuple(names),
        source=label,
    )


def load_registry(
    text: str,
    *,
    source: str,
    base: Registry | None = None,
    max_side: int = MAX_KERNEL_SIDE,
) -> Registry:
    """Parse and validate registry TOML text, merged over ``base`` if given.

    The schema is documented at the top of ``kernels.toml``. An entry whose
    name (or alias) is already in ``base`` replaces it; each replacement adds
    one line to the returned registry's ``notes``. Bank members are resolved
    against this file's kernels first, then ``base``.
    """
    label = "built-in" if base is None and source == "kernels.toml" else source
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KernelError(f"{source}: not valid TOML ({exc})") from None
    table = doc.get("kernels", {})
    bank_table = doc.get("banks", {})
    if not isinstance(table, dict) or not isinstance(bank_table, dict) or not (table or bank_table):
        raise KernelError(f"{source}: no [kernels.NAME] or [banks.NAME] tables found")
    unknown_tables = set(doc) - {"kernels", "banks"}
    if unknown_tables:
        raise KernelError(
            f"{source}: unknown top-level keys {sorted(unknown_tables)}; a registry holds only "
            "[kernels.NAME] and [banks.NAME] tables"
        )

    own = {raw.lower(): _parse_kernel_entry(raw, entry, source, label, max_side) for raw, entry in table.items()}

    kernels = dict(base.kernels) if base else {}
    aliases = dict(base.aliases) if base else {}
    banks = dict(base.banks) if base else {}
    notes = list(base.notes) if base else []
    taken_here: set[str] = set()

    def shadow(name: str, what: str, owner: str = "") -> None:
        """``name`` is being defined by this file: drop what ``base`` had under it."""
        if name in taken_here:
            if owner:
                raise KernelError(f"{source}: alias {name!r} of {owner!r} is already a kernel, bank or alias here")
            raise KernelError(f"{source}: {what} {name!r} is defined twice in this file")
        taken_here.add(name)
        if name in kernels and kernels[name].source != source:
            notes.append(f"{what} {name!r} from {source} replaces the {kernels[name].source} kernel {name!r}")
            old = kernels.pop(name)
            for a in old.aliases:
                if aliases.get(a) == name:
                    del aliases[a]
        elif name in banks and banks[name].source != source:
            notes.append(f"{what} {name!r} from {source} replaces the {banks[name].source} bank {name!r}")
            del banks[name]
        elif name in aliases:
            target = aliases.pop(name)
            origin = (kernels.get(target) or banks.get(target))
            notes.append(
                f"{what} {name!r} from {source} replaces {name!r}, which was "
                f"{'an alias of ' + repr(target) if origin else 'an alias'}"
            )

    for name, kern in own.items():
        shadow(name, "kernel")
        kernels[name] = kern
    for raw_name in bank_table:
        shadow(raw_name.lower(), "bank")
    for name, kern in own.items():
        for alias in kern.aliases:
            shadow(alias, "alias", name)
            aliases[alias] = name

    partial = Registry(kernels, aliases, banks)
    for raw_name, entry in bank_table.items():
        bank = _parse_bank_entry(raw_name, entry, source, label, partial, max_side)
        banks[bank.name] = bank
        for alias in bank.aliases:
            shadow(alias, "alias", bank.name)
            aliases[alias] = bank.name
    for alias, target in aliases.items():
        if alias in kernels or alias in banks:
            raise KernelError(f"{source}: alias {alias!r} of {target!r} is already a kernel or bank name")
    sources = (*base.sources, source) if base else ()
    return Registry(kernels, aliases, banks, tuple(notes), sources)


def _parse_bank_entry(
    raw_name: str, entry: object, source: str, label: str, registry: Registry, max_side: int
) -> Bank:
    name = raw_name.lower()
    where = f"{source}: bank {raw_name!r}"
    if not isinstance(entry, dict):
        raise KernelError(f"{where} must be a table")
    if not _NAME.match(name):
        raise KernelError(f"{where}: names start with a letter and hold only letters, digits and . _ + -")
    unknown = set(entry) - _BANK_KEYS
    if unknown:
        raise KernelError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_BANK_KEYS)}")
    specs = _strings(entry, "kernels", where)
    if len(specs) < 2:
        raise KernelError(f"{where}: kernels must list at least two kernel names or specs")
    members = []
    for spec in specs:
        try:
            member = resolve_spec(spec, registry, max_side=max_side)
        except KernelError as exc:
            raise KernelError(f"{where}: {exc}") from None
        if isinstance(member, Bank):
            raise KernelError(f"{where}: {spec!r} is itself a bank; list kernels")
        members.append(member)
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip():
        raise KernelError(f"{where}: needs a one-line description")
    combine = entry.get("combine", "magnitude")
    if combine not in COMBINE_MODES:
        raise KernelError(f"{where}: combine {combine!r} is not one of {', '.join(COMBINE_MODES)}")
    how = entry.get("map")
    if how is not None and how not in MAP_NAMES:
        raise KernelError(f"{where}: map {how!r} is not one of {', '.join(MAP_NAMES)}")
    offset = entry.get("offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset):
        raise KernelError(f"{where}: offset must be a finite number")
    names = [a.lower() for a in _strings(entry, "aliases", where)]
    for alias in names:
        if not _ALIAS.match(alias):
            raise KernelError(f"{where}: alias {alias!r} must start with a letter (letters, digits, . _ + - :)")
    return Bank(
        name=name,
        kernels=tuple(members),
        combine=combine,
        description=" ".join(description.split()),
        map=how,
        tags=tuple(_strings(entry, "tags", where)),
        aliases=tuple(names),
        offset=float(offset),
        source=label,
    )


def load_registry_files(
    paths: list[str | Path],
    *,
    base: Registry | None = None,
    max_side: int = MAX_KERNEL_SIDE,
) -> Registry:
    """Merge registry files over ``base`` (default: the built-in registry), in order."""
    registry = base if base is not None else builtin_registry()
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise KernelError(f"kernel registry {str(path)!r} does not exist (or is not a file)")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KernelError(f"kernel registry {str(path)!r} cannot be read as text ({exc})") from None
        registry = load_registry(text, source=str(path), base=registry, max_side=max_side)
    return registry


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


# ----------------------------------------------------------------------------- specs


def _looks_like_file(text: str) -> bool:
    head = text.split("#", 1)[0] if ".toml#" in text.lower() else text
    return head.lower().endswith(KERNEL_FILE_SUFFIXES)


def resolve_spec(
    spec: str,
    registry: Registry | None = None,
    *,
    max_side: int = MAX_KERNEL_SIDE,
) -> Kernel | Bank:
    """Turn a command-line kernel spec into a :class:`Kernel` or a :class:`Bank`.

    >>> resolve_spec("sobel").summary()
    'magnitude sqrt(a^2 + b^2) of sobel-x, sobel-y'
    >>> resolve_spec("gaussian:sigma=1").shape
    (7, 7)
    >>> resolve_spec("3x3: 1,0,-1 2,0,-2 1,0,-1").matrix[0]
    array([ 1.,  0., -1.])
    """
    from . import kernelfiles, kernelgen

    registry = registry or builtin_registry()
    text = spec.strip()
    if not text:
        raise KernelError("kernel: empty spec; give a name such as sobel-x or a matrix such as \"1 0 -1\"")
    if text.startswith("@"):
        return kernelfiles.read_kernel_file(text[1:], registry=registry, max_side=max_side)
    found = registry.find(text)
    if found is not None:
        return found
    if kernelfiles.is_imagemagick_string(text):
        return kernelfiles.kernel_from_imagemagick(text, max_side=max_side)
    if _looks_like_file(text):
        return kernelfiles.read_kernel_file(text, registry=registry, max_side=max_side)
    if ":" in text and re.match(r"^[A-Za-z]", text):
        head, _, args = text.partition(":")
        name = head.strip().lower()
        if name in kernelgen.GENERATORS:
            return kernelgen.generate(name, args, max_side=max_side)
        target = registry.find(name)
        if isinstance(target, Bank):
            return _bank_options(target, args)
        if isinstance(target, Kernel):
            raise KernelError(
                f"kernel: {target.name!r} is a fixed kernel and takes no parameters ({text!r}); "
                f"the parametric kernels are {', '.join(kernelgen.GENERATORS)}"
            )
        near = difflib.get_close_matches(name, [*kernelgen.GENERATORS, *registry.banks], n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""
        raise KernelError(
            f"kernel: unknown parametric kernel {head.strip()!r}{hint}; the parametric kernels are "
            f"{', '.join(kernelgen.GENERATORS)}, e.g. gaussian:sigma=2"
        )
    if text.lower() in kernelgen.GENERATORS:
        return kernelgen.generate(text.lower(), "", max_side=max_side)
    words = re.sub(r"(?i)nan|inf(inity)?|\d[eE]", "", text)
    if _NUMERIC_SPEC.match(text) or (
        re.search(r"\d", text) and re.search(r"[;\s,]", text) and not re.search(r"[A-Za-z]{2,}", words)
    ):
        return Kernel(
            name="custom",
            matrix=parse_matrix(text, max_side=max_side),
            description="inline matrix",
            source="inline",
            spec=text,
        )
    near = registry.suggest(text)
    hint = f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""
    raise KernelError(
        f"kernel: unknown kernel {text!r}{hint}; `convcli kernels list` shows them all, "
        "or give a matrix such as \"1 0 -1; 2 0 -2; 1 0 -1\""
    )


def _bank_options(bank: Bank, args: str) -> Bank:
    opts = [a.strip() for a in args.split(",") if a.strip()]
    if not opts:
        return bank
    if len(opts) > 1:
        raise KernelError(f"bank {bank.name!r}: takes one option, combine=MODE ({', '.join(COMBINE_MODES)})")
    key, eq, value = opts[0].partition("=")
    if not eq:
        key, value = "combine", key
    if key.strip().lower() != "combine":
        raise KernelError(
            f"bank {bank.name!r}: unknown option {key.strip()!r}; the only option is combine="
            f"{'|'.join(COMBINE_MODES)}"
        )
    return bank.with_combine(value)


def resolve_kernel(spec: str, registry: Registry | None = None, *, max_side: int = MAX_KERNEL_SIDE) -> Kernel:
    """Like :func:`resolve_spec`, for callers that need a single kernel (not a bank).

    Inline matrices are named ``custom``; files are named after their stem.

    >>> resolve_kernel("sobel-x").matrix[0]
    array([-1.,  0.,  1.])
    >>> resolve_kernel("1 2 1").shape
    (1, 3)
    """
    item = resolve_spec(spec, registry, max_side=max_side)
    if isinstance(item, Bank):
        raise KernelError(
            f"kernel: {item.name!r} is a bank of {len(item.kernels)} kernels ({', '.join(item.member_names)}), "
            "not a single kernel; name one of them"
        )
    return item


def _read_matrix_file(path: Path) -> np.ndarray:
    """Rows of numbers from a ``.txt``/``.csv``/``.npy`` file (also used to read array inputs)."""
    from .kernelfiles import read_matrix

    return read_matrix(Path(path))
