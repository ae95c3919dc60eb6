"""Parametric kernels, generated exactly from their definitions.

Spec syntax: ``NAME:KEY=VALUE,KEY=VALUE`` or, in the order listed below,
``NAME:VALUE,VALUE`` (``box:7``, ``gaussian:2``). Numbers may be fractions.

``gaussian:sigma=S[,size=N]``
    ``exp(-(r^2 + c^2) / (2 S^2))`` sampled at the integer offsets ``r, c``
    from the centre, normalised to sum 1. ``N`` defaults to
    ``2*ceil(3*S) + 1``. It is the outer product of the normalised 1-D
    Gaussian with itself, exactly what ``scipy.ndimage.gaussian_filter``
    (with ``radius=(N-1)/2``) and OpenCV's ``getGaussianKernel(N, S)`` use.
``box:N`` or ``box:HxW``
    the mean of an N x N (or H rows x W columns) neighbourhood: ones, scale ``1/(H*W)``.
``log:sigma=S[,size=N]``
    the Laplacian of the sampled, normalised Gaussian (what
    ``scipy.ndimage.gaussian_laplace`` applies), negated so that a bright blob
    gives a positive centre (the sign of the fixed ``log`` kernel and of
    ImageMagick's LoG), then shifted by its mean so that it sums to exactly 0.
``dog:sigma1=A,sigma2=B[,size=N]``
    ``gaussian(A) - gaussian(B)`` on one grid (size from the larger sigma),
    each normalised to sum 1, so the difference sums to 0. ``A < B`` gives a
    positive centre.
``motion:length=L[,angle=T]``
    L samples one pixel apart on a line through the centre at T degrees
    counter-clockwise from rightwards (0: horizontal, 90: vertical), each
    spread bilinearly over the four nearest pixels, weight ``1/L`` each: the
    kernel sums to 1 and is symmetric about its centre. At 0 or 90 degrees
    with an odd L it is a plain line of L pixels.
``unsharp:sigma=S[,amount=A][,size=N]``
    ``(1 + A)`` times the pixel minus ``A`` times its Gaussian blur: sums to 1.

Generated kernels are named after their canonical spec with ``:`` replaced by
``-`` (``gaussian-sigma=2``), which is also the name of their output files.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .errors import KernelError
from .kernels import MAX_KERNEL_SIDE, Kernel, format_number, parse_number

__all__ = [
    "GENERATORS",
    "Generator",
    "Param",
    "box_kernel",
    "default_size",
    "dog_kernel",
    "gaussian_kernel",
    "generate",
    "log_kernel",
    "motion_kernel",
    "unsharp_kernel",
]




def default_size(sigma: float) -> int:
    """``2*ceil(3*sigma) + 1``: the default side of the Gaussian-based kernels.

    >>> default_size(1), default_size(1.4), default_size(2)
    (7, 11, 13)
    """
    return 2 * math.ceil(3 * sigma) + 1


def _gauss1d(sigma: float, radius: int) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    # the same expression, in the same order, as scipy.ndimage's _gaussian_kernel1d
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return phi / phi.sum()


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """The sampled Gaussian of ``sigma``, ``size`` x ``size``, normalised to sum 1.

    >>> g = gaussian_kernel(1.0)
    >>> g.shape, round(float(g.sum()), 12), bool(g[3, 3] == g.max())
    ((7, 7), 1.0, True)
    """
    n = default_size(sigma) if size is None else size
    g = _gauss1d(sigma, (n - 1) // 2)
    return np.outer(g, g)


def log_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """Negated Laplacian of the sampled Gaussian, shifted to sum exactly 0.

    >>> k = log_kernel(1.4)
    >>> k.shape, abs(float(k.sum())) < 1e-15, bool(k[5, 5] > 0)
    ((11, 11), True, True)
    """
    n = default_size(sigma) if size is None else size
    r = (n - 1) // 2
    x = np.arange(-r, r + 1, dtype=np.float64)
    g0 = _gauss1d(sigma, r)
    g2 = (x**2 / sigma**4 - 1.0 / sigma**2) * g0
    k = -(np.outer(g2, g0) + np.outer(g0, g2))
    return k - k.mean()


def dog_kernel(sigma1: float, sigma2: float, size: int | None = None) -> np.ndarray:
    """``gaussian(sigma1) - gaussian(sigma2)`` on one grid; sums to 0.

    >>> dog_kernel(1, 2).shape
    (13, 13)
    """
    n = default_size(max(sigma1, sigma2)) if size is None else size
    return gaussian_kernel(sigma1, n) - gaussian_kernel(sigma2, n)


def box_kernel(rows: int, cols: int | None = None) -> np.ndarray:
    """Ones, ``rows`` x ``cols`` (the registry form keeps the ``1/(rows*cols)`` as its scale).

    >>> box_kernel(2, 3)
    array([[1., 1., 1.],
           [1., 1., 1.]])
    """
    return np.ones((rows, rows if cols is None else cols))


def motion_kernel(length: int, angle: float = 0.0) -> np.ndarray:
    """A line of ``length`` one-pixel-apart samples at ``angle`` degrees, bilinear, sum 1.

    >>> motion_kernel(5).tolist()
    [[0.2, 0.2, 0.2, 0.2, 0.2]]
    >>> motion_kernel(3, 90).shape
    (3, 1)
    """
    theta = math.radians(angle)
    c, s = math.cos(theta), math.sin(theta)
    c = 0.0 if abs(c) < 1e-12 else c
    s = 0.0 if abs(s) < 1e-12 else s
    t = np.arange(length, dtype=np.float64) - (length - 1) / 2
    xs, ys = t * c, -t * s  # columns grow rightwards, rows downwards (so up is -row)

    def snap(v: np.ndarray) -> np.ndarray:
        near = np.rint(v)
        return np.where(np.abs(v - near) < 1e-9, near, v) + 0.0

    xs, ys = snap(xs), snap(ys)
    rx, ry = math.ceil(float(np.max(np.abs(xs)))), math.ceil(float(np.max(np.abs(ys))))
    k = np.zeros((2 * ry + 1, 2 * rx + 1))
    w = 1.0 / length
    for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
        c0, r0 = math.floor(x), math.floor(y)
        fx, fy = x - c0, y - r0
        for dr, wr in ((0, 1.0 - fy), (1, fy)):
            if wr <= 0:
                continue
            for dc, wc in ((0, 1.0 - fx), (1, fx)):
                if wc > 0:
                    k[r0 + dr + ry, c0 + dc + rx] += w * wr * wc
    return k


def unsharp_kernel(sigma: float, amount: float = 1.0, size: int | None = None) -> np.ndarray:
    """``(1 + amount) * identity - amount * gaussian(sigma)``; sums to 1.

    >>> k = unsharp_kernel(1, 1.5)
    >>> round(float(k.sum()), 12), bool(k[3, 3] > 1)
    (1.0, True)
    """
    k = -amount * gaussian_kernel(sigma, size)
    c = (k.shape[0] - 1) // 2
    k[c, c] += 1.0 + amount
    return k


# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Param:
    """One parameter of a parametric kernel."""

    name: str
    #: sigma (> 0), size (odd whole number), box-size (N or HxW), length (whole >= 1), number
    kind: str
    required: bool = True
    default: float | None = None
    help: str = ""


@dataclass(frozen=True)
class Generator:
    """A parametric kernel: its parameters, a one-line summary and an example spec."""

    name: str
    params: tuple[Param, ...]
    summary: str
    example: str
    map: str
    tags: tuple[str, ...]

    def syntax(self) -> str:
        """The spec pattern, e.g. ``gaussian:sigma=S[,size=N]``.

        >>> GENERATORS["box"].syntax(), GENERATORS["unsharp"].syntax()
        ('box[:size=N|HxW]', 'unsharp:sigma=S[,amount=A][,size=N]')
        """
        required = [f"{p.name}={p.help}" for p in self.params if p.required]
        out = f"{self.name}:{','.join(required)}" if required else self.name
        for i, p in enumerate(q for q in self.params if not q.required):
            sep = "," if required or i else ":"
            out += f"[{sep}{p.name}={p.help}]"
        return out


_SIZE = Param("size", "size", required=False, help="N")
GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator(
            "gaussian",
            (Param("sigma", "sigma", help="S"), _SIZE),
            "sampled Gaussian normalised to sum 1; N defaults to 2*ceil(3*S)+1",
            "gaussian:sigma=2",
            "clip",
            ("blur",),
        ),
        Generator(
            "box",
            (Param("size", "box-size", required=False, default=3, help="N|HxW"),),
            "mean of an N x N (or H x W) neighbourhood",
            "box:7",
            "clip",
            ("blur",),
        ),
        Generator(
            "log",
            (Param("sigma", "sigma", help="S"), _SIZE),
            "Laplacian of Gaussian, negated (bright blobs positive), shifted to sum 0",
            "log:sigma=1.4",
            "abs",
            ("edge", "second-derivative", "blob"),
        ),
        Generator(
            "dog",
            (Param("sigma1", "sigma", help="A"), Param("sigma2", "sigma", help="B"), _SIZE),
            "difference of Gaussians gaussian(A) - gaussian(B), sums to 0",
            "dog:sigma1=1,sigma2=2",
            "abs",
            ("edge", "blob"),
        ),
        Generator(
            "motion",
            (Param("length", "length", help="L"), Param("angle", "number", required=False, default=0.0, help="T")),
            "motion blur: L samples along a line at T degrees counter-clockwise from rightwards, sum 1",
            "motion:length=9,angle=30",
            "clip",
            ("blur",),
        ),
        Generator(
            "unsharp",
            (
                Param("sigma", "sigma", help="S"),
                Param("amount", "number", required=False, default=1.0, help="A"),
                _SIZE,
            ),
            "unsharp mask: (1 + A) x the pixel - A x its Gaussian blur, sums to 1",
            "unsharp:sigma=1,amount=1.5",
            "clip",
            ("sharpen",),
        ),
    )
}


def _value(gen: str, p: Param, text: str) -> object:
    what = f"{gen}: {p.name}"
    t = text.strip()
    if p.kind == "sigma" and re.fullmatch(r"\d*\.?\d*[xX]\d+\.?\d*", t):
        raise KernelError(
            f"{what} {t!r} looks like ImageMagick's RADIUSxSIGMA; in convcli write "
            f"{gen}:{p.name}=SIGMA (and size=2*RADIUS+1 to fix the size)"
        )
    if p.kind == "box-size":
        m = re.fullmatch(r"(\d+)\s*[xX]\s*(\d+)", t)
        sides = (m[1], m[2]) if m else (t, t)
        out = []
        for side in sides:
            v = parse_number(side, what=what)
            if not v.is_integer() or v < 1:
                raise KernelError(f"{what} must be a whole number of at least 1 (or HxW), got {t!r}")
            out.append(int(v))
        return tuple(out)
    v = parse_number(t, what=what)
    if p.kind == "sigma" and v <= 0:
        raise KernelError(f"{what} must be greater than 0, got {t!r}")
    if p.kind == "size" and (not v.is_integer() or v < 1 or int(v) % 2 == 0):
        raise KernelError(f"{what} must be an odd whole number (the kernel is centred on a pixel), got {t!r}")
    if p.kind == "length" and (not v.is_integer() or v < 1):
        raise KernelError(f"{what} must be a whole number of pixels, at least 1, got {t!r}")
    if p.kind in ("size", "length"):
        return int(v)
    return v


def parse_params(gen: Generator, args: str) -> dict[str, object]:
    """``"sigma=2,size=9"`` or ``"2,9"`` -> ``{"sigma": 2.0, "size": 9}`` (given parameters only).

    >>> parse_params(GENERATORS["dog"], "1, sigma2=2")
    {'sigma1': 1.0, 'sigma2': 2.0}
    """
    names = [p.name for p in gen.params]
    by_name = {p.name: p for p in gen.params}
    values: dict[str, object] = {}
    texts: dict[str, str] = {}
    keyword_seen = False
    items = [a for a in args.split(",")]
    if len(items) == 1 and not items[0].strip():
        items = []
    for pos, item in enumerate(items):
        if not item.strip():
            raise KernelError(f"{gen.name}: empty parameter in {args!r}; write {gen.example}")
        key, eq, text = item.partition("=")
        if eq:
            keyword_seen = True
            key = key.strip().lower()
            if key not in by_name:
                raise KernelError(
                    f"{gen.name}: unknown parameter {key!r}; it takes {', '.join(names)} (e.g. {gen.example})"
                )
        else:
            if keyword_seen:
                raise KernelError(f"{gen.name}: a value without a name after named ones in {args!r}")
            if pos >= len(names):
                raise KernelError(f"{gen.name}: too many values in {args!r}; it takes {', '.join(names)}")
            key, text = names[pos], item
        if key in texts:
            raise KernelError(f"{gen.name}: {key} is given twice")
        texts[key] = text
    for key, text in texts.items():
        values[key] = _value(gen.name, by_name[key], text)
    for p in gen.params:
        if p.required and p.name not in values:
            raise KernelError(f"{gen.name} needs {p.name}, e.g. {gen.example}")
    return values


def _canonical(gen: Generator, values: dict[str, object]) -> str:
    parts = []
    for p in gen.params:
        if p.name in values:
            v = values[p.name]
            text = "x".join(str(s) for s in dict.fromkeys(v)) if isinstance(v, tuple) else format_number(v)  # type: ignore[arg-type]
            parts.append(f"{p.name}={text}")
    return f"{gen.name}:{','.join(parts)}" if parts else gen.name


def generate(name: str, args: str = "", *, max_side: int = MAX_KERNEL_SIDE) -> Kernel:
    """Build the parametric kernel ``name:args`` as a :class:`Kernel`.

    >>> k = generate("box", "7")
    >>> k.name, k.shape, k.scale_text
    ('box-size=7', (7, 7), '1/49')
    """
    gen = GENERATORS.get(name)
    if gen is None:
        raise KernelError(f"unknown parametric kernel {name!r}; they are {', '.join(GENERATORS)}")
    values = parse_params(gen, args)
    spec = _canonical(gen, values)

    def number(key: str, default: float = 0.0) -> float:
        return float(values.get(key, default))  # type: ignore[arg-type]

    def check_side(n: int, why: str) -> None:
        if n > max_side:
            raise KernelError(
                f"{spec} makes a {n}x{n} kernel, larger than {max_side} per side; {why}, "
                f"or raise the limit with --max-kernel-size {n}"
            )

    def size_for(sigma: float) -> int:
        n = int(values["size"]) if "size" in values else default_size(sigma)  # type: ignore[call-overload]
        check_side(n, "give a smaller sigma or size=")
        return n

    scale, scale_text = 1.0, "1"
    if name == "gaussian":
        sigma = number("sigma")
        n = size_for(sigma)
        matrix = gaussian_kernel(sigma, n)
        description = f"Gaussian, sigma {format_number(sigma)}: {n}x{n} samples of exp(-r^2/(2 sigma^2)), normalised to sum 1"
    elif name == "box":
        h, w = values.get("size", (3, 3))  # type: ignore[misc]
        check_side(max(h, w), "give a smaller size")
        matrix = box_kernel(h, w)
        scale, scale_text = 1.0 / (h * w), f"1/{h * w}"
        description = f"{h}x{w} mean: every pixel becomes the average of its neighbourhood"
    elif name == "log":
        sigma = number("sigma")
        n = size_for(sigma)
        matrix = log_kernel(sigma, n)
        description = (
            f"Laplacian of Gaussian, sigma {format_number(sigma)}, {n}x{n}: negated so that bright blobs are positive, "
            "shifted to sum 0"
        )
    elif name == "dog":
        a, b = number("sigma1"), number("sigma2")
        if a == b:
            raise KernelError(f"{spec}: sigma1 and sigma2 are equal, so the difference is 0 everywhere")
        n = size_for(max(a, b))
        matrix = dog_kernel(a, b, n)
        description = f"Difference of Gaussians, sigma {format_number(a)} minus sigma {format_number(b)}, {n}x{n}: sums to 0"
    elif name == "motion":
        length, angle = int(number("length")), number("angle")
        check_side(length, "give a shorter length")
        matrix = motion_kernel(length, angle)
        description = (
            f"Motion blur: {length} samples one pixel apart on a line at {format_number(angle)} degrees "
            "counter-clockwise from rightwards, sums to 1"
        )
    else:  # unsharp
        sigma, amount = number("sigma"), number("amount", 1.0)
        n = size_for(sigma)
        matrix = unsharp_kernel(sigma, amount, n)
        description = (
            f"Unsharp mask: {format_number(1 + amount)} x the pixel minus {format_number(amount)} x its Gaussian blur "
            f"(sigma {format_number(sigma)}), {n}x{n}, sums to 1"
        )
    return Kernel(
        name=spec.replace(":", "-", 1),
        matrix=matrix,
        description=description,
        scale=scale,
        scale_text=scale_text,
        map=gen.map,
        tags=gen.tags,
        source="generated",
        spec=spec,
    )
