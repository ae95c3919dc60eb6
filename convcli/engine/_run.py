"""Running a plan: row bands (or 2-D tiles for FFT), each padded locally, on a thread pool.

Extra memory is a few band-sized buffers per thread (1 to 6 MB each: 10-30 MiB in all for
a 4096x4096 RGB image on two threads), whatever the image or kernel size: no padded copy
of the whole image, no im2col.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np

from .._parallel import pool
from ._border import Border, fill_region, map_index
from ._paths import (
    banded,
    banded_mats,
    banded_product,
    direct_band,
    fft_tile,
    gemm_band,
    group_taps,
    separable_band,
    separable_gemm_band,
    toeplitz,
)
from ._plan import (
    GEMM_ROWS,
    GEMM_SUB_ROWS,
    SG_TILE,
    Plan,
    band_rows,
    einsum_row,
    fft_tile_shape,
    gemm_tile,
    sg_rows,
    trimmed,
    vertical_by_gemm,
)

def sub_rows(k_eff: int) -> int:
    """Outputs per banded product in a vertical pass. OpenBLAS runs some thin shapes much
    faster than others; measured on 4096-wide RGB for 2 to 32 outputs: 4 is best or near it
    up to 17 taps (17: 1.1 ns a sample against 2.1 with 16), 16 beyond (4 is then up to 1.5
    times slower)."""
    return 4 if k_eff <= 17 else 16

_local = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A per-thread buffer, reused across bands (contents undefined).

    One block of memory per name, as large as the largest shape asked for: a band or tile
    of another shape (the last, shorter one) reuses it rather than adding its own. A name
    therefore serves one use at a time.
    """
    cache = getattr(_local, "buffers", None)
    if cache is None:
        cache = _local.buffers = {}
    key = (name, np.dtype(dtype).str)
    size = math.prod(shape)
    flat = cache.get(key)
    if flat is None or flat.size < size:
        if len(cache) > 32:
            cache.clear()
        flat = cache[key] = np.empty(max(size, 1), dtype)
    return flat[:size].reshape(shape)


def blas_is_single_threaded() -> bool:
    """True when the BLAS was told to use one thread (then bands may call it from several)."""
    return any(os.environ.get(v) == "1" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"))


def finite(a: np.ndarray) -> bool:
    """True unless float samples hold NaN or infinity: one sum (a sum that overflows on
    finite values counts as not finite, which only costs speed)."""
    if a.dtype.kind != "f":
        return True
    rows = _as_rows(a)
    if rows is not None and blas_is_single_threaded():
        # a matrix-vector product with ones: BLAS sums four times faster than np.sum (which
        # also copies a strided array whole)
        ones = _ONES.get((rows.shape[1], a.dtype.str))
        if ones is None:
            if len(_ONES) > 16:
                _ONES.clear()
            ones = _ONES[(rows.shape[1], a.dtype.str)] = np.ones(rows.shape[1], a.dtype)
        return bool(np.isfinite(np.sum(rows @ ones)))
    return bool(np.isfinite(np.sum(a)))


def output_check(x: np.ndarray):  # noqa: ANN201
    """The test a band's (or tile's) output must pass to be kept, for input ``x``.

    The matrix-product and FFT paths assume finite input: there ``0 x NaN`` would spread a
    NaN (or an infinity's ``inf - inf``) along the band or over the tile. A NaN or infinity
    in the input always reaches the output, so the output, still in cache, is checked; one
    that is not finite is computed again by shifted adds, which keep a NaN inside the
    outputs whose window holds it. Integer input cannot hold either: no check.
    """
    if x.dtype.kind != "f":
        return lambda dst: True
    return finite


def _as_rows(a: np.ndarray) -> np.ndarray | None:
    """``a`` as a 2-D view (first axis, the rest) with contiguous rows, or None."""
    if a.ndim < 2 or a.size == 0:
        return None
    rows = a.view()
    try:
        rows.shape = (a.shape[0], -1)  # raises rather than copy
    except AttributeError:
        return None
    return rows if rows.strides[1] == a.itemsize and rows.strides[0] >= rows.shape[1] * a.itemsize else None


#: vectors of ones by (length, dtype), for :func:`finite`
_ONES: dict[tuple[int, str], np.ndarray] = {}


def _map(fn, items, threads: int) -> None:  # noqa: ANN001
    if threads > 1 and len(items) > 1:
        # NumPy's error state is per thread: the workers take the caller's (correlate lets
        # overflow and NaN arithmetic pass quietly, its callers check the result)
        state = np.geterr()

        def run(item):  # noqa: ANN001, ANN202
            with np.errstate(**state):
                fn(item)

        for _ in pool(threads).map(run, items):
            pass
    else:
        for item in items:
            fn(item)


def run_plan(
    x: np.ndarray,
    kernel: np.ndarray,
    plan: Plan,
    out: np.ndarray,
    pads: tuple[tuple[int, int], tuple[int, int]],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    border: Border,
) -> None:
    """Fill ``out`` (Ho, Wo, C) with the correlation of ``x`` (H, W, C) by ``plan.path``."""
    dtype = out.dtype
    ho, wo, channels = out.shape
    kh, kw = kernel.shape
    sh, sw = stride
    dh, dw = dilation
    keh, kew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    top, left = pads[0][0], pads[1][0]
    cols_in = (wo - 1) * sw + kew
    threads = plan.threads
    height = x.shape[0]
    finite_output = output_check(x)

    if plan.path == "fft":
        _run_fft(x, kernel, out, top, left, stride, (keh, kew), dilation, border, threads)
        return
    if plan.path == "separable-gemm":
        _run_separable_gemm(x, plan, out, top, left, stride, dilation, border, threads)
        return

    row_bytes = cols_in * channels * dtype.itemsize
    if plan.path == "gemm":
        n = GEMM_ROWS
        if not blas_is_single_threaded():
            threads = 1  # BLAS runs its own threads; two levels of threads stall OpenBLAS
    else:
        n = band_rows(row_bytes, keh, sh)
    bands = _bands(ho, n, threads)

    # the direct path's taps; the GEMM path's too, for bands holding NaN or infinity
    groups = group_taps([((i, j), w) for (i, j), w in np.ndenumerate(kernel)]) if plan.path != "separable" else []
    if plan.path == "separable":
        info = plan.kernel
        factors = info.factors if info is not None and info.factors else ()
        components = [
            (group_taps(list(enumerate(col.astype(dtype)))), group_taps(list(enumerate(row.astype(dtype)))),
             trimmed(row.astype(dtype)) if einsum_row(row, dw, sw) else None)
            for col, row in factors
        ]
        colsums = [float(col.astype(dtype).sum()) for col, _ in factors]
        width = x.shape[1]
        c_lo, c_hi, src_cols, pad_idx, inner_ok = _columns(cols_in, left, width, border)

        def pad_columns(vert: np.ndarray, r: int) -> None:
            if pad_idx.size == 0:
                return
            if border.mode == "constant":
                vert[:, pad_idx] = dtype.type(border.cval * colsums[r])
            else:
                vert[:, pad_idx] = vert[:, src_cols[pad_idx] + left]

        # vertical passes with many taps run as banded matrix products (BLAS), when BLAS is
        # single-threaded (nested threads stall OpenBLAS; the command line sets it so). The
        # choice never depends on ``threads``, so neither do the numbers, to the last bit.
        by_gemm = [vertical_by_gemm(col, dh, sh) and blas_is_single_threaded() for col, _ in factors]
        vert_mats: dict[int, list[np.ndarray | None]] = {}
        if any(by_gemm):
            for m in {u1 - u0 for u0, u1 in bands}:
                vert_mats[m] = [banded_mats(col.astype(dtype), m, sub_rows(keh), sh, dh, dtype) if g else None
                                for (col, _), g in zip(factors, by_gemm)]

        def verticals(m: int, rows2d: np.ndarray) -> list | None:
            """Callables doing each component's vertical pass of a band as one product."""

            def one(a: np.ndarray | None):  # noqa: ANN202
                if a is None:
                    return None

                def run(dst: np.ndarray) -> bool:  # dst: (m, cols, C), rows contiguous
                    flat = dst.view()
                    flat.shape = (m, -1)  # raises rather than copy: the product must land in dst
                    banded_product(a, rows2d, flat, sh)
                    # every output of a sub-band of q reads all its input rows (0 x NaN is
                    # NaN): a NaN or infinity in the band shows in the sub-bands' first rows
                    return finite_output(flat[:: a[0]])

                return run

            return [one(a) for a in vert_mats[m]]
    elif plan.path == "gemm":
        k32 = kernel.astype(dtype)
        wt = gemm_tile(wo, kw, kew, n, channels, sw, dtype.itemsize)
        gemm_mats = {}
        for m in {u1 - u0 for u0, u1 in bands}:
            q = min(GEMM_SUB_ROWS, m)
            rem = m % q
            gemm_mats[m] = (
                q,
                toeplitz(k32, q, (q - 1) * sh + keh, sh, dh, dtype),
                toeplitz(k32, rem, (rem - 1) * sh + keh, sh, dh, dtype) if rem else None,
            )
        # with a column stride, bands that need no row padding regroup straight from the image
        plane_gather = _plane_gatherer(x, wo, wt, sw, kew, left, border) if sw > 1 else None

    def work(band: tuple[int, int]) -> None:
        u0, u1 = band
        m = u1 - u0
        rows_in = (m - 1) * sh + keh
        row0 = u0 * sh - top
        if plan.path == "separable" and inner_ok and row0 >= 0 and row0 + rows_in <= height:
            # no row padding needed: the vertical pass reads the image itself (any dtype)
            dst = out[u0:u1]

            def scratch_v(name):  # noqa: ANN001, ANN202
                return _separable_scratch(name, m, cols_in, channels, dst.shape, dtype)

            rows = x[row0 : row0 + rows_in, c_lo:c_hi]
            vertical = None
            if vert_mats:
                rows, rows2d = _band_rows(x, row0, rows_in, c_lo, c_hi, dtype)
                vertical = verticals(m, rows2d)
            for attempt in (vertical, None) if vertical else (None,):
                if separable_band(rows, dst, components, stride, dilation, scratch_v, cols=slice(c_lo + left, c_hi + left),
                                  pad_columns=pad_columns, vertical=attempt):
                    break
            return
        if plan.path == "gemm" and plane_gather is not None and row0 >= 0 and row0 + rows_in <= height:
            dst = out[u0:u1]
            gemm_band(None, dst, gemm_mats[m], kw, stride, dilation, wt, lambda name, shape: _scratch(name, shape, dtype),
                      gather=lambda planes, x0: plane_gather(planes, row0, x0), rows_in=rows_in)
            if not finite_output(dst):
                buf = _scratch("band", (rows_in, cols_in, channels), dtype)
                fill_region(buf, x, row0, -left, border)
                direct_band(buf, dst, groups, stride, dilation, _scratch("tmp", dst.shape, dtype))
            return
        # the GEMM path regroups columns by phase in whole strides: up to sw - 1 columns more
        extra = sw - 1 if plan.path == "gemm" else 0
        buf = _scratch("band", (rows_in, cols_in + extra, channels), dtype)
        fill_region(buf, x, u0 * sh - top, -left, border)
        dst = out[u0:u1]
        if plan.path == "direct":
            direct_band(buf, dst, groups, stride, dilation, _scratch("tmp", dst.shape, dtype))
        elif plan.path == "separable":

            def scratch(name):  # noqa: ANN001, ANN202
                return _separable_scratch(name, m, cols_in, channels, dst.shape, dtype)

            vertical = verticals(m, buf.reshape(rows_in, -1)) if vert_mats else None
            if not separable_band(buf, dst, components, stride, dilation, scratch, vertical=vertical):
                separable_band(buf, dst, components, stride, dilation, scratch)
        else:
            gemm_band(buf, dst, gemm_mats[m], kw, stride, dilation, wt, lambda name, shape: _scratch(name, shape, dtype))
            if not finite_output(dst):
                direct_band(buf, dst, groups, stride, dilation, _scratch("tmp", dst.shape, dtype))

    _map(work, bands, threads)


def _plane_gatherer(x: np.ndarray, wo: int, wt: int, sw: int, kew: int, left: int, border: Border):  # noqa: ANN202
    """For the strided GEMM path: a function ``gather(planes, row0, x0)`` that fills the
    (phase, channel) planes of the tile at output column ``x0`` (see ``gemm_band``) straight
    from the image rows ``row0 ..``: the columns inside the image in one strided copy
    (converting to the working type on the way), the few past its edges by the border
    rule. None when the image's rows are not contiguous."""
    if not x.flags.c_contiguous:
        return None
    height, width, c = x.shape
    flat = x.reshape(height, width * c)
    tiles = {}
    for x0 in range(0, wo, wt):
        t = min(wt, wo - x0)
        wph = -(-((t - 1) * sw + kew) // sw)
        v0 = x0 * sw - left  # image column of plane 0's first sample
        # samples s whose columns v0 + p + s*sw lie inside the image for every phase p
        s_lo = min(max(-(-(-v0) // sw), 0), wph)
        s_hi = max(min((width - sw - v0) // sw + 1, wph), s_lo)
        edge = [(p * c + ch, s, v0 + p + s * sw, ch) for s in [*range(s_lo), *range(s_hi, wph)]
                for p in range(sw) for ch in range(c)]
        plane, s_idx, col, ch = (np.array([e[i] for e in edge], dtype=np.intp) for i in range(4))
        src = map_index(col, width, border.mode)  # -1: outside, for the constant border
        inside = src >= 0
        copied = (plane[inside], s_idx[inside], src[inside] * c + ch[inside])
        filled = (plane[~inside], s_idx[~inside])
        tiles[x0] = (s_lo, s_hi, v0, copied, filled)

    def gather(planes: np.ndarray, row0: int, x0: int) -> None:
        s_lo, s_hi, v0, copied, filled = tiles[x0]
        rows_in = planes.shape[0]
        rows = flat[row0 : row0 + rows_in]
        if s_hi > s_lo:
            start = (v0 + s_lo * sw) * c
            inner = rows[:, start : start + (s_hi - s_lo) * sw * c].reshape(rows_in, s_hi - s_lo, sw * c)
            np.copyto(planes[:, :, s_lo:s_hi], inner.transpose(0, 2, 1), casting="unsafe")
        if copied[0].size:
            planes[:, copied[0], copied[1]] = rows[:, copied[2]]
        if filled[0].size:
            planes[:, filled[0], filled[1]] = border.cval

    return gather


def _separable_scratch(name, m, cols_in, channels, out_shape, dtype):  # noqa: ANN001, ANN202
    if isinstance(name, tuple):  # (name, shape): box-sum buffers shaped like their source
        return _scratch(name[0], name[1], dtype)
    shape = (m, cols_in, channels) if name in ("vert", "tmpv") else out_shape
    return _scratch(name, shape, dtype)


def _run_fft(x, kernel, out, top, left, stride, k_eff, dilation, border, threads) -> None:  # noqa: ANN001
    import scipy.fft as sfft

    ho, wo, channels = out.shape
    dtype = out.dtype
    (th, tw), (bh, bw), fft_shape = fft_tile_shape((ho, wo), k_eff, stride)
    dh, dw = dilation
    dilated = np.zeros(k_eff, dtype=np.float64)
    dilated[::dh, ::dw] = kernel
    # correlation = convolution with the kernel rotated 180 degrees
    spectrum = sfft.rfft2(dilated[::-1, ::-1], s=fft_shape).astype(
        np.complex64 if dtype == np.float32 else np.complex128
    )[np.newaxis]
    sh, sw = stride
    tiles = [(u0, v0) for u0 in range(0, ho, th) for v0 in range(0, wo, tw)]
    groups = group_taps([((i, j), w) for (i, j), w in np.ndenumerate(kernel)])
    finite_output = output_check(x)

    def work(tile: tuple[int, int]) -> None:
        u0, v0 = tile
        u1, v1 = min(u0 + th, ho), min(v0 + tw, wo)
        rows_in = (u1 - u0 - 1) * sh + k_eff[0]
        cols_in = (v1 - v0 - 1) * sw + k_eff[1]
        buf = _scratch("fft_in", (rows_in, cols_in, channels), dtype)
        fill_region(buf, x, u0 * sh - top, v0 * sw - left, border)
        dst = out[u0:u1, v0:v1]
        fft_tile(buf, dst, spectrum, fft_shape, k_eff, stride)
        if not finite_output(dst):
            direct_band(buf, dst, groups, stride, dilation, _scratch("tmp", dst.shape, dtype))

    _map(work, tiles, threads)


def _columns(cols_in: int, left: int, width: int, border: Border):  # noqa: ANN202
    """For a band's column range [-left, cols_in - left): the image columns it covers
    (c_lo, c_hi), where every column reads from, the padded columns, and whether those all
    read from inside [c_lo, c_hi) (then the band can read the image itself and fill its
    padded columns after the vertical pass)."""
    c_lo, c_hi = max(-left, 0), min(cols_in - left, width)
    virtual = np.arange(-left, cols_in - left)
    src_cols = map_index(virtual, width, border.mode)
    pad_idx = np.flatnonzero((virtual < 0) | (virtual >= width))
    inside = border.mode == "constant" or bool(np.all((src_cols >= c_lo) & (src_cols < c_hi)))
    return c_lo, c_hi, src_cols, pad_idx, inside


def _band_rows(x: np.ndarray, row0: int, rows_in: int, c_lo: int, c_hi: int, dtype: np.dtype):  # noqa: ANN202
    """Rows ``row0 ..`` and columns ``c_lo:c_hi`` of the image as (rows, cols, C) and as the
    2-D (rows, cols*C) a matrix product takes: a view when the image is contiguous in the
    working dtype, else converted into a per-thread buffer."""
    channels = x.shape[2]
    if x.flags.c_contiguous and x.dtype == dtype:
        flat = x[row0 : row0 + rows_in].reshape(rows_in, x.shape[1] * channels)
        return x[row0 : row0 + rows_in, c_lo:c_hi], flat[:, c_lo * channels : c_hi * channels]
    conv = _scratch("rows", (rows_in, c_hi - c_lo, channels), dtype)
    np.copyto(conv, x[row0 : row0 + rows_in, c_lo:c_hi], casting="unsafe")
    return conv, conv.reshape(rows_in, -1)


def _bands(ho: int, n: int, threads: int) -> list[tuple[int, int]]:
    """Row ranges of ``n`` outputs (fewer when needed to give every thread two bands)."""
    n = max(1, min(n, ho, -(-ho // (2 * threads)) if threads > 1 else ho))
    return [(u0, min(u0 + n, ho)) for u0 in range(0, ho, n)]


def _run_separable_gemm(x, plan, out, top, left, stride, dilation, border, threads) -> None:  # noqa: ANN001
    """Rank-1 components as banded matrix products (see ``separable_gemm_band``)."""
    dtype = out.dtype
    ho, wo, channels = out.shape
    height, width = x.shape[:2]
    sh, sw = stride
    dh, dw = dilation
    factors = plan.kernel.factors
    cols = [col.astype(dtype) for col, _ in factors]
    rows = [row.astype(dtype) for _, row in factors]
    keh, kew = dh * (len(cols[0]) - 1) + 1, dw * (len(rows[0]) - 1) + 1
    cols_in = (wo - 1) * sw + kew
    if not blas_is_single_threaded():
        threads = 1  # BLAS runs its own threads; two levels of threads stall OpenBLAS
    tile = max(1, min(SG_TILE if kew <= 16 else 4 * SG_TILE, wo))
    tiles = -(-wo // tile)
    win = (tile - 1) * sw + kew
    vt_rows = max(cols_in, (tiles - 1) * tile * sw + win)
    horiz = [banded(r, tile, win, sw, dw, dtype) for r in rows]
    vert: dict[int, list[np.ndarray]] = {}
    bands = _bands(ho, sg_rows(cols_in, channels, dtype.itemsize), threads)
    for m in {u1 - u0 for u0, u1 in bands}:
        vert[m] = [banded_mats(c, m, sub_rows(keh), sh, dh, dtype) for c in cols]
    colsums = [dtype.type(float(c.sum()) * border.cval) for c in cols]

    c_lo, c_hi, src_cols, pad_idx, reads_inside = _columns(cols_in, left, width, border)

    def pad_rows(vt: np.ndarray, r: int) -> None:
        if pad_idx.size:
            if border.mode == "constant":
                vt[pad_idx] = colsums[r]
            else:
                vt[pad_idx] = vt[src_cols[pad_idx] + left]

    def no_pad(vt: np.ndarray, r: int) -> None:
        pass

    def scratch(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return _scratch(name, shape, dtype)

    # bands holding NaN or infinity: the same passes as shifted adds
    components = [(group_taps(list(enumerate(c))), group_taps(list(enumerate(r))), None) for c, r in zip(cols, rows)]
    finite_output = output_check(x)

    def work(band: tuple[int, int]) -> None:
        u0, u1 = band
        m = u1 - u0
        rows_in = (m - 1) * sh + keh
        row0 = u0 * sh - top
        dst = out[u0:u1]
        inside = reads_inside and row0 >= 0 and row0 + rows_in <= height
        if inside:
            src = _band_rows(x, row0, rows_in, c_lo, c_hi, dtype)[1]
            target, fill = slice(c_lo + left, c_hi + left), pad_rows
        else:
            buf = _scratch("band", (rows_in, cols_in, channels), dtype)
            fill_region(buf, x, row0, -left, border)
            src = buf.reshape(rows_in, -1)
            target, fill = slice(0, cols_in), no_pad
        vt = _scratch("sg_vt", (vt_rows, channels * m), dtype)
        if vt_rows > cols_in:
            vt[cols_in:] = 0  # read by the last tile: never garbage
        separable_gemm_band(src, vt, dst, vert[m], horiz, target, fill, tile, stride, scratch)
        if not finite_output(dst):
            if inside:
                buf = _scratch("band", (rows_in, cols_in, channels), dtype)
                fill_region(buf, x, row0, -left, border)
            separable_band(buf, dst, components, stride, dilation,
                           lambda name: _separable_scratch(name, m, cols_in, channels, dst.shape, dtype))

    _map(work, bands, threads)
