"""Choosing how to compute a correlation: a small, printable cost model.

The estimates are in milliseconds for this geometry on one core, from per-element
constants measured on a 2-core x86-64 machine (``benchmarks/bench_engine.py`` prints the
real times). They only need to rank the paths; every path gives the same numbers to
float rounding, so a wrong choice costs time, never accuracy.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError

ENGINES = ("auto", "direct", "separable", "separable-gemm", "gemm", "fft")

# Measured constants (ns). ELEMENT: one float32 add or multiply of a cache-resident band,
# per element.
# FFT: forward + inverse real FFT work, per element of the transform, per log2(size).
_ELEMENT_NS = 0.45
# GEMM path, per output sample: a fixed part (the strided sum of the partial sums, writing
# the output) and one multiply-add of the products (more with a row stride: the product
# reads its rows sparsely); with a column stride, regrouping per input sample
_GEMM_OUT_NS = 4.0
_MAC_NS = 0.042
_REGROUP_NS = 2.5
# a horizontal pass as one einsum, per output sample: fixed + per tap (61x4096 RGB bands)
_EINSUM_NS = (0.55, 0.27)
_FFT_NS = 1.2
_FILL_NS = 0.6
# separable-gemm: the transposed copy of the result, in element operations
_TRANSPOSE = 2.1

#: Largest matrix rank run as a sum of separable passes.
_MAX_SEPARABLE_RANK = 4

# --- the band geometry the runner uses (``_run``), which the estimates below assume

#: target size of one band buffer (direct and separable paths), bytes. Measured on 4096-wide
#: RGB: 3 MB bands ran 15-20% faster than 1.5 MB ones (fewer Python calls per pixel), 6 MB
#: no faster; two threads' buffers stay under 20 MiB
BAND_BYTES = 3_000_000

#: the GEMM path: output rows per band, and the size of its products per column tile,
#: bytes. Measured on 1024x1024 and 4096x4096 RGB with 7x7 and 15x15 kernels at stride 1
#: and 2: 64 rows and 6 MB beat 16 or 32 rows with 1.5 MB by 1.3-1.9x on two threads (each
#: band's few NumPy calls are large, so the threads rarely wait for each other's
#: interpreter lock); 96 rows, or 12 MB, were slower again
GEMM_ROWS = 64
GEMM_TILE_BYTES = 6_000_000

#: output rows per product in the GEMM path: 1, so the matrix is the kernel itself (no
#: Toeplitz zeros). Measured at 1024x1024 and 4096x4096, 3x3 to 25x25: 1 and 2 tie and beat
#: 4 (up to 1.2x), 8 and 16 (up to 1.5x)
GEMM_SUB_ROWS = 1

#: the separable-GEMM path: the size of a band's transposed vertical pass, bytes, and output
#: columns per horizontal tile. Measured on RGB on two threads: 16 rows at 4096 wide beat 32
#: and 64 (the transposed band leaves the cache), 64 rows at 1024 wide beat 16 by 1.8x (a
#: quarter as many bands); 8 columns beat 2, 4, 16 and 32
SG_BAND_BYTES = 800_000
SG_TILE = 8


def sg_rows(cols_in: int, channels: int, itemsize: int) -> int:
    """Output rows per band of the separable-GEMM path: 8 to 64, about SG_BAND_BYTES."""
    return max(8, min(64, SG_BAND_BYTES // max(cols_in * channels * itemsize, 1)))

#: fixed cost of one band or tile in Python (calls, views, small matrices), ms; measured on
#: a 2048x8 image where the arithmetic is negligible. The direct path adds a little per
#: operation on top (``_DIRECT_OP_MS``).
_BAND_MS = {"direct": 0.04, "separable": 0.09, "separable-gemm": 0.085, "gemm": 0.14, "fft": 0.3}

#: what each thread after the first adds, as a fraction of one core: measured on two cores
#: at 1024x1024 and 4096x4096 (speed-ups of 1.5-1.9 for direct, 1.8-2.3 separable, 1.4-2.0
#: separable-GEMM, 1.2-1.7 GEMM, 1.8-2.1 FFT: many small calls per band wait for each
#: other's interpreter lock). The choice ranks ``estimate / (1 + share)``, as on two threads.
_THREAD_SHARE = {"direct": 0.7, "separable": 0.9, "separable-gemm": 0.55, "gemm": 0.5, "fft": 0.9}
_DIRECT_OP_MS = 0.005


def band_rows(row_bytes: int, keh: int, sh: int) -> int:
    """Output rows per band of the direct and separable paths: about BAND_BYTES of input,
    and at least as many rows as the kernel is tall, so the halo never dominates."""
    return max(8, keh, (BAND_BYTES // max(row_bytes, 1) - keh) // sh + 1)


def gemm_tile(wo: int, kw: int, kew: int, n: int, channels: int, sw: int, itemsize: int) -> int:
    """Output columns per column tile of the GEMM path."""
    return max(1, min(wo, (GEMM_TILE_BYTES // (kw * n * channels * itemsize) - kew) // sw + 1))


@dataclass(frozen=True, eq=False)
class KernelInfo:
    """What the planner knows about a kernel (float64, as it will be correlated)."""

    weights: np.ndarray
    nonzero: int
    groups: int
    rank: int
    #: rank-1 components (col, row) whose outer products sum to the kernel
    factors: tuple[tuple[np.ndarray, np.ndarray], ...]


def _rank1_exact(k: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Factors of a rank-1 kernel taken from its own rows and columns (exact for integer kernels)."""
    i, j = np.unravel_index(np.argmax(np.abs(k)), k.shape)
    pivot = k[i, j]
    if pivot == 0:
        return None
    col, row = k[:, j].copy(), k[i, :] / pivot
    if np.array_equal(np.outer(col, row), k):
        return col, row
    return None


def _tidy(v: np.ndarray) -> np.ndarray:
    """Snap SVD noise: entries equal in magnitude to 1e-9 become exactly equal (pairs them)."""
    v = v.copy()
    scale = np.max(np.abs(v)) or 1.0
    for i in range(len(v) // 2):
        a, b = v[i], v[-1 - i]
        if abs(abs(a) - abs(b)) <= 1e-9 * scale:
            m = (abs(a) + abs(b)) / 2
            v[i], v[-1 - i] = math.copysign(m, a), math.copysign(m, b)
    v[np.abs(v) <= 1e-12 * scale] = 0.0
    return v


def _signed(col: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move the sign into ``row`` so that ``col``'s largest entry is positive (fewer negations)."""
    if col[np.argmax(np.abs(col))] < 0:
        return -col, -row
    return col, row


def _unit_row(col: np.ndarray, row: np.ndarray, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Move a scale from ``row`` into ``col`` so that ``row``'s largest group of equal
    magnitudes has weight 1: the horizontal pass (shifted adds) then skips a multiply, while
    the vertical pass (usually a matrix product) costs the same whatever its weights.
    ``exact`` keeps the factors only if their outer product is unchanged bit for bit."""
    nz = np.abs(row[row != 0])
    if nz.size == 0:
        return col, row
    values, counts = np.unique(nz, return_counts=True)
    w = float(values[np.argmax(counts)])  # the commonest magnitude (the smallest on ties)
    if w == 1.0:
        return col, row
    new_col, new_row = col * w, row / w
    if exact and not np.array_equal(np.outer(new_col, new_row), np.outer(col, row)):
        return col, row
    return new_col, new_row


def analyze(kernel: np.ndarray, rtol: float = 1e-13) -> KernelInfo:
    """Rank (by SVD), separable factors and tap statistics of a 2-D kernel.

    Singular values below ``rtol`` times the largest are dropped: their effect is below
    the rounding of the arithmetic that follows (about 1e-7 for float32, 1e-13 for float64).
    The last few answers are kept (a batch filters every image with the same kernel; the
    analysis takes about a millisecond, a tenth of a 1024x1024 strided filter); their
    arrays are read-only.
    """
    k = np.asarray(kernel, dtype=np.float64)
    key = (k.shape, k.tobytes(), rtol)
    info = _ANALYZED.get(key)
    if info is None:
        info = _analyze(np.array(k), rtol)
        for a in (info.weights, *(v for f in info.factors for v in f)):
            a.flags.writeable = False
        with _ANALYZED_LOCK:
            if len(_ANALYZED) >= 16:
                _ANALYZED.pop(next(iter(_ANALYZED)))
            _ANALYZED[key] = info
    return info


#: the last kernels analysed, by (shape, bytes, rtol)
_ANALYZED: dict[tuple, KernelInfo] = {}
_ANALYZED_LOCK = threading.Lock()


def _analyze(k: np.ndarray, rtol: float) -> KernelInfo:
    nonzero = int(np.count_nonzero(k))
    groups = len({abs(v) for v in k.ravel() if v != 0})
    if nonzero == 0:
        return KernelInfo(k, 0, 0, 0, ())
    exact = _rank1_exact(k)
    if exact is not None:
        return KernelInfo(k, nonzero, groups, 1, (_signed(*_unit_row(*exact, exact=True)),))
    u, s, vt = np.linalg.svd(k)
    tol = s[0] * rtol
    rank = int(np.count_nonzero(s > tol))
    factors = tuple(
        _signed(*_unit_row(_tidy(u[:, r] * math.sqrt(s[r])), _tidy(vt[r] * math.sqrt(s[r]))))
        for r in range(min(rank, _MAX_SEPARABLE_RANK))
    )
    return KernelInfo(k, nonzero, groups, rank, factors)


@dataclass(frozen=True, eq=False)
class Plan:
    """Which path computes the correlation, why, and the estimates behind the choice."""

    path: str
    reason: str
    #: estimated milliseconds per path (single core); absent when a path cannot run
    estimates: dict[str, float] = field(default_factory=dict)
    threads: int = 1
    kernel: KernelInfo | None = None

    def describe(self) -> str:
        ests = ", ".join(f"{p} {ms:.3g} ms" for p, ms in sorted(self.estimates.items(), key=lambda kv: kv[1]))
        return f"{self.path}: {self.reason} (estimates on one core: {ests}; threads {self.threads})"

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "reason": self.reason,
            "estimates_ms": {k: round(v, 3) for k, v in self.estimates.items()},
            "threads": self.threads,
            "rank": self.kernel.rank if self.kernel else None,
        }


def _group_ops(weights: np.ndarray) -> float:
    """Whole-array operations that ``_paths.accumulate`` performs for these taps."""
    nz = weights[weights != 0]
    if nz.size == 0:
        return 1.0
    sizes: dict[float, int] = {}
    for v in nz:
        sizes[abs(float(v))] = sizes.get(abs(float(v)), 0) + 1
    ops = 0.0
    for i, (w, m) in enumerate(sorted(sizes.items(), key=lambda g: (g[0] != 1.0, -g[1]))):
        adds = max(m - 1, 0)
        if i == 0:
            ops += adds + (0 if (w == 1.0 and m > 1) else 1)  # into the output, scaled if needed
        else:
            ops += adds + (1 if w == 1.0 and m == 1 else 2)  # scale, then add to the output
    return ops


def _pass_ops(taps: np.ndarray, dilation: int) -> float:
    """Array operations of one 1-D pass (a long box: by doubling, about 2 log2 of its length)."""
    nz = taps[taps != 0]
    if dilation == 1 and len(nz) == len(taps) >= 6 and np.all(nz == nz[0]):
        k = len(nz)
        return float(k.bit_length() - 1 + bin(k).count("1") + 1)
    return _group_ops(taps)


def trimmed(taps: np.ndarray) -> tuple[int, np.ndarray]:
    """(index of the first non-zero tap, the taps from it to the last non-zero one)."""
    nz = np.flatnonzero(taps)
    if nz.size == 0:
        return 0, taps[:0]
    return int(nz[0]), taps[nz[0] : nz[-1] + 1]


def _horizontal_ns(row: np.ndarray, dilation: int, stride: int) -> float:
    """ns per output sample of a horizontal pass: shifted adds (``_paths.accumulate``), or
    one ``np.einsum`` over the taps when that is cheaper (see :func:`einsum_row`)."""
    adds = _ELEMENT_NS * _pass_ops(row, dilation)
    taps = trimmed(row)[1]
    if stride != 1 or len(taps) < 2 or np.any(taps == 0):
        return adds
    return min(adds, _EINSUM_NS[0] + _EINSUM_NS[1] * len(taps))


def einsum_row(row: np.ndarray, dilation: int, stride: int) -> bool:
    """True when a horizontal pass runs as one einsum (``_paths.shifted_sum``) over the taps
    from the first non-zero one to the last: at stride 1, with no zero tap between (the
    einsum would multiply it: 0 x NaN is NaN), when cheaper than the shifted adds. A 5-tap
    Gaussian: about 1.6 ns per sample against 2.7."""
    return _horizontal_ns(row, dilation, stride) < _ELEMENT_NS * _pass_ops(row, dilation)


def _vertical_costs(col: np.ndarray, dilation: int, stride: int) -> tuple[float, float]:
    """(shifted adds, banded products) ns per sample of a vertical pass: thin banded products
    stream the rows about as fast as two whole-array operations, plus a little per tap, and
    about 1.2 ns more beyond 17 taps, where they take 16 outputs at a time (``_run.sub_rows``)."""
    keh = dilation * (len(col) - 1) + 1
    product = _ELEMENT_NS * (1.8 + 0.05 * keh) + (1.2 if keh > 17 else 0.0)
    return _ELEMENT_NS * _pass_ops(col, dilation), product * stride


def vertical_by_gemm(col: np.ndarray, dilation: int, stride: int) -> bool:
    """True when a vertical pass is cheaper as banded matrix products than as shifted adds."""
    adds, product = _vertical_costs(col, dilation, stride)
    return product < adds


def estimate(
    info: KernelInfo,
    out_shape: tuple[int, int],
    cols_in: int,
    channels: int,
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> dict[str, float]:
    """Estimated single-core milliseconds of each path that can run."""
    ho, wo = out_shape
    sh, sw = stride
    kh, kw = info.weights.shape
    keh, kew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    n_out = ho * wo * channels
    # every path pads and converts about (rows_in x cols_in) input samples per band
    fill = _FILL_NS * ho * sh * cols_in * channels
    ops_direct = _group_ops(info.weights)
    # strided views read memory sparsely: about three times the cost per element
    strided = 3.0 if sw > 1 else 1.0
    est = {"direct": (fill + _ELEMENT_NS * n_out * ops_direct * strided) / 1e6}
    if 0 < info.rank <= _MAX_SEPARABLE_RANK:
        per = 0.0
        for col, row in info.factors:
            c_ns = min(_vertical_costs(col, dilation[0], sh))
            r_ns = _horizontal_ns(row, dilation[1], sw)
            # the vertical pass runs over every input column, the horizontal one only on outputs
            per += c_ns * (cols_in / max(wo, 1)) + r_ns + (_ELEMENT_NS if per else 0)
        # interior bands read the image directly: no padding copy
        est["separable"] = (n_out * per) / 1e6
        # the same passes as thin banded products, the band transposed in between and back
        # (in element operations per sample, measured like _vertical_costs)
        vert = (2.2 + 0.1 * keh) * sh * cols_in / max(wo, 1)
        horiz = (1.5 + 0.06 * kew) * sw
        est["separable-gemm"] = (_ELEMENT_NS * n_out * info.rank * (vert + horiz + _TRANSPOSE)) / 1e6
    q = GEMM_SUB_ROWS
    macs = kw * ((q - 1) * sh + keh) / q  # per output sample, Toeplitz zeros included
    # products on each kernel column's own phase of columns, one strided sum of the kw
    # partial sums, and with a column stride the band regrouped into planes and back
    regroup = _REGROUP_NS * ho * sh * cols_in * channels if sw > 1 else 0.0
    mac_ns = _MAC_NS * (1 + 0.6 * (sh - 1))
    est["gemm"] = (fill + regroup + n_out * (_GEMM_OUT_NS + mac_ns * macs)) / 1e6
    tile = fft_tile_shape(out_shape, (keh, kew), stride)
    f_h, f_w = tile[2]
    t_h, t_w = tile[0]
    per_tile = f_h * f_w * channels * math.log2(f_h * f_w)
    tiles = math.ceil(ho / t_h) * math.ceil(wo / t_w)
    est["fft"] = (fill + _FFT_NS * per_tile * tiles) / 1e6
    # the fixed cost of each band (it tells on small images: a 1024x1024 5x5 Gaussian runs
    # 1.5x faster in a few large separable bands than in 64 thin separable-GEMM ones)
    itemsize = 4  # float32, the usual working type
    bands = math.ceil(ho / band_rows(cols_in * channels * itemsize, keh, sh))
    est["direct"] += bands * (_BAND_MS["direct"] + _DIRECT_OP_MS * ops_direct)
    rank = max(len(info.factors), 1)
    if "separable" in est:
        est["separable"] += bands * _BAND_MS["separable"] * rank
        sg_bands = math.ceil(ho / sg_rows(cols_in, channels, itemsize))
        est["separable-gemm"] += sg_bands * _BAND_MS["separable-gemm"] * rank
    n = GEMM_ROWS
    col_tiles = math.ceil(wo / gemm_tile(wo, kw, kew, n, channels, sw, itemsize))
    est["gemm"] += math.ceil(ho / n) * col_tiles * _BAND_MS["gemm"]
    est["fft"] += tiles * _BAND_MS["fft"]
    return est


def next_fast_len(n: int) -> int:
    """The smallest 5-smooth number (2^a 3^b 5^c) at least ``n``: a fast real FFT size.

    The same as ``scipy.fft.next_fast_len(n, real=True)``, without importing scipy.fft
    (a quarter of a second) just to plan a 3x3 filter.

    >>> next_fast_len(97), next_fast_len(1000), next_fast_len(1025)
    (100, 1000, 1080)
    """
    if n <= 6:
        return max(n, 1)
    best = 1 << (n - 1).bit_length()  # the next power of two always qualifies
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            # the smallest p35 * 2^k >= n
            q = -(-n // p35)
            cand = p35 << (q - 1).bit_length()
            best = min(best, cand)
            p35 *= 3
        p5 *= 5
    return best


def fft_tile_shape(out_shape, k_eff, stride):  # noqa: ANN001, ANN201
    """(output tile (rows, cols), input span (rows, cols), FFT size (rows, cols)) for the FFT path.

    Tiles are balanced (equal sizes, no sliver at the end) and one FFT size serves them all.
    """
    tiles, spans, sizes = [], [], []
    for n, ke, s in zip(out_shape, k_eff, stride):
        target = max(512, 8 * ke)
        t_max = max((target - ke) // s + 1, 1)
        count = -(-n // t_max)
        t = -(-n // count)
        span = (t - 1) * s + ke
        tiles.append(t)
        spans.append(span)
        sizes.append(next_fast_len(span))
    return tuple(tiles), tuple(spans), tuple(sizes)


def choose(
    info: KernelInfo,
    out_shape: tuple[int, int],
    cols_in: int,
    channels: int,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    *,
    engine: str = "auto",
    threads: int = 1,
) -> Plan:
    """Pick a path: the forced one, or the cheapest estimate.

    Every path computes a band (or tile) that holds NaN or infinity by shifted adds, so the
    choice never changes where a NaN shows (see ``_run.finite``).
    """
    if engine not in ENGINES:
        raise ParameterError(f"engine: unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    est = estimate(info, out_shape, cols_in, channels, stride, dilation)
    if info.nonzero == 0:
        return Plan("direct", "the kernel is all zeros", est, threads, info)
    if engine != "auto":
        if engine.startswith("separable") and engine not in est:
            raise ParameterError(
                f"engine: the kernel has rank {info.rank}; the separable path runs kernels of rank "
                f"1 to {_MAX_SEPARABLE_RANK} (use --engine auto)"
            )
        return Plan(engine, "forced with --engine", est, threads, info)
    # ranked as on two threads whatever ``threads`` is: the path, and so the numbers to the
    # last bit, must not depend on the thread count
    best = min(est, key=lambda p: est[p] / (1 + _THREAD_SHARE[p]))
    if best.startswith("separable") and info.rank > 1:
        # factors of rank 2 and up come from an SVD, with rounding in the last bits: an integer
        # kernel on integer pixels is exact on the direct and GEMM paths; keep that unless
        # the factors save a third of the time
        exact = min(("direct", "gemm"), key=lambda p: est.get(p, math.inf))
        if exact in est and est[best] * 1.5 > est[exact]:
            best = exact
    if best == "separable":
        why = f"rank {info.rank}: {info.rank} vertical + horizontal 1-D pass(es)"
    elif best == "separable-gemm":
        why = f"rank {info.rank}: {info.rank} vertical + horizontal 1-D pass(es) as banded GEMMs"
    elif best == "direct":
        why = f"{info.nonzero} non-zero taps in {info.groups} weight group(s)"
    elif best == "gemm":
        kh, kw = info.weights.shape
        why = f"dense {kh}x{kw} kernel of rank {info.rank}: one matrix product per band, shifted sums"
    else:
        why = f"large dense {info.weights.shape[0]}x{info.weights.shape[1]} kernel: tiled FFT (overlap-save)"
    return Plan(best, why, est, threads, info)
