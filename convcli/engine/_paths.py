"""The engine's four ways to compute one band (or tile) of a correlation.

Every function reads a padded region ``buf`` of shape ``(rows_in, cols_in, C)`` (made by
``fill_region``) and writes ``out`` of shape ``(n, Wo, C)``, where output sample
``(y, x)`` is ``sum_ij k[i, j] * buf[y*sh + i*dh, x*sw + j*dw]``. Stride is applied inside
the slices: only the samples that are kept are computed (polyphase), never a full map
that is then subsampled (the FFT path excepted; the planner knows).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

#: taps grouped by absolute weight: [(|w|, [(index, sign), ...]), ...]
Groups = list[tuple[float, list[tuple[object, int]]]]


def group_taps(taps: list[tuple[object, float]]) -> Groups:
    """Group ``(index, weight)`` taps by |weight|, zero taps dropped.

    Taps of equal magnitude are added (or subtracted) first and multiplied once, which
    pairs the symmetric and antisymmetric taps of blur and derivative kernels. Within a
    group the positive taps come first, so ``[-1, 0, 1]`` is one subtraction.
    """
    groups: dict[float, list[tuple[object, int]]] = {}
    for index, w in taps:
        if w != 0:
            groups.setdefault(abs(float(w)), []).append((index, 1 if w > 0 else -1))
    for members in groups.values():
        members.sort(key=lambda m: -m[1])
    # unit weights first: they need no multiply at all
    return sorted(groups.items(), key=lambda g: (g[0] != 1.0, -len(g[1])))


def accumulate(out: np.ndarray, view: Callable[[object], np.ndarray], groups: Groups, tmp: np.ndarray) -> None:
    """``out = sum_groups |w| * sum_members sign * view(index)``, in place, no allocation."""
    started = False
    dt = out.dtype  # compute in the output's float type even when views hold integers
    for absw, members in groups:
        (i0, s0), rest = members[0], members[1:]
        w = dt.type(s0 * absw)  # weight of the group's sum, signs relative to its first tap
        into_out = not started and w == 1
        acc = out if into_out else tmp
        v0 = view(i0)
        if rest:
            i1, s1 = rest[0]
            (np.add if s1 == s0 else np.subtract)(v0, view(i1), out=acc, dtype=dt)
            for index, sign in rest[1:]:
                (np.add if sign == s0 else np.subtract)(acc, view(index), out=acc, dtype=dt)
            src = acc
        else:
            src = v0
        if into_out:
            if not rest:
                np.copyto(out, v0, casting="unsafe")
        elif not started:
            np.multiply(src, w, out=out, dtype=dt)
        elif w == 1:
            np.add(out, src, out=out, dtype=dt)
        elif w == -1:
            np.subtract(out, src, out=out, dtype=dt)
        else:
            np.multiply(src, w, out=tmp, dtype=dt)
            np.add(out, tmp, out=out)
        started = True
    if not started:
        out.fill(0)


def direct_band(buf, out, groups: Groups, stride, dilation, tmp) -> None:  # noqa: ANN001
    """Shift-and-add over the kernel's taps (grouped by weight)."""
    n, wo = out.shape[:2]
    sh, sw = stride
    dh, dw = dilation
    rs, cs = (n - 1) * sh + 1, (wo - 1) * sw + 1

    def view(ij):  # noqa: ANN001, ANN202
        i, j = ij
        return buf[i * dh : i * dh + rs : sh, j * dw : j * dw + cs : sw]

    accumulate(out, view, groups, tmp)


#: equal taps from this many on are summed by doubling (cost grows with log2 of the length)
BOX_MIN_TAPS = 6


def box_length(groups: Groups) -> int:
    """k when the 1-D taps are k equal weights at 0..k-1 (a box), else 0."""
    if len(groups) != 1:
        return 0
    members = groups[0][1]
    indices = sorted(int(i) for i, _ in members)  # type: ignore[call-overload]
    signs = {sign for _, sign in members}
    k = len(indices)
    if k < BOX_MIN_TAPS or len(signs) != 1 or indices != list(range(k)):
        return 0
    return k


def box_pass(src, dst, axis: int, k: int, step: int, weight: float, scratch) -> None:  # noqa: ANN001
    """``dst`` = ``weight`` x sums of ``k`` consecutive samples of ``src`` along ``axis``, at
    ``0, step, 2 step, ...``, by doubling: sums of 1, 2, 4, ... samples, each from the last
    with one add, and the binary digits of ``k`` picked out: about 2 log2(k) whole-array adds
    whatever ``k``, each sum still of at most ``k`` terms (no running-sum cancellation).

    ``scratch(name)`` gives float buffers shaped like ``src``.
    """
    n = dst.shape[axis]
    span = (n - 1) * step + 1
    dt = dst.dtype

    def take(a, start: int, stop: int, stride: int = 1):  # noqa: ANN001, ANN202
        index = [slice(None)] * a.ndim
        index[axis] = slice(start, stop, stride)
        return a[tuple(index)]

    cur, length, width, offset, started = src, src.shape[axis], 1, 0, False
    buffers = [scratch("box_a"), scratch("box_b")]
    bit = 0
    while True:
        if k >> bit & 1:
            part = take(cur, offset, offset + span, step)
            if not started:
                np.copyto(dst, part, casting="unsafe")
                started = True
            else:
                np.add(dst, part, out=dst, dtype=dt)
            offset += width
        if k >> (bit + 1) == 0:
            break
        nxt = take(buffers[bit % 2], 0, length - width)
        np.add(take(cur, 0, length - width), take(cur, width, length), out=nxt, dtype=dt)
        cur, length, width, bit = nxt, length - width, width * 2, bit + 1
    if weight != 1:
        np.multiply(dst, dt.type(weight), out=dst)


def _one_d(src, dst, axis, groups, step, dilation, tmp, scratch, weights=None) -> None:  # noqa: ANN001
    """One 1-D pass along ``axis`` (0 vertical, 1 horizontal) into ``dst``; ``weights``, when
    given, is ``(offset, taps)`` for a horizontal pass to run as one :func:`shifted_sum`."""
    k = box_length(groups) if dilation == 1 else 0
    if k:
        absw, members = groups[0]
        box_pass(src, dst, axis, k, step, absw * members[0][1], lambda name: scratch((name, src.shape)))
        return
    if weights is not None and axis == 1 and step == 1 and shifted_sum(src, dst, weights[1], dilation, weights[0]):
        return
    span = (dst.shape[axis] - 1) * step + 1
    if axis == 0:
        accumulate(dst, lambda i: src[i * dilation : i * dilation + span : step], groups, tmp)
    else:
        accumulate(dst, lambda j: src[:, j * dilation : j * dilation + span : step], groups, tmp)


def shifted_sum(src: np.ndarray, dst: np.ndarray, weights: np.ndarray, dilation: int, offset: int = 0) -> bool:
    """A horizontal pass at stride 1 as one ``np.einsum`` over a strided view of ``src``.

    ``dst[y, x, c] = sum_j weights[j] src[y, x + (offset + j)*dilation, c]`` (``offset``
    skips leading zero taps): the view has one axis per
    tap, so NumPy runs each row through every tap in turn (multiply-adds on a row still in
    cache) in a single call. The planner decides when this pays (``_plan.einsum_row``); it
    never has a zero tap between others, which would multiply its sample (0 x NaN is NaN,
    where :func:`accumulate` skips the tap). Returns False, doing nothing, when the arrays
    do not allow the view.
    """
    rows, wo, c = dst.shape
    e = src.itemsize
    if src.dtype != dst.dtype or src.strides[1:] != (c * e, e) or not dst.flags.c_contiguous:
        return False
    k, n, rs = len(weights), wo * c, src.strides[0]
    w = weights.astype(dst.dtype, copy=False)
    base = src[:, offset * dilation :]
    out = dst.reshape(rows, n)
    # rows in pieces of SUM_CHUNK samples, each through every tap while it is in L1 (7% faster
    # than whole rows on 4096-wide RGB): a view (row, piece, tap, sample); the rest after
    pieces = n // SUM_CHUNK
    if pieces:
        view = np.lib.stride_tricks.as_strided(
            base, (rows, pieces, k, SUM_CHUNK), (rs, SUM_CHUNK * e, dilation * c * e, e), writeable=False
        )
        np.einsum("k,rpkn->rpn", w, view, out=out[:, : pieces * SUM_CHUNK].reshape(rows, pieces, SUM_CHUNK))
    done = pieces * SUM_CHUNK
    if done < n:
        tail = np.lib.stride_tricks.as_strided(base, (rows, done + 1), (rs, e), writeable=False)[:, done:]
        view = np.lib.stride_tricks.as_strided(tail, (rows, k, n - done), (rs, dilation * c * e, e), writeable=False)
        np.einsum("k,rkn->rn", w, view, out=out[:, done:])
    return True


#: samples of a row that :func:`shifted_sum` runs through every tap at a time
SUM_CHUNK = 2048


def separable_band(rows, out, components, stride, dilation, scratch, cols=None, pad_columns=None,
                   vertical=None) -> bool:  # noqa: ANN001
    """Sum over rank-1 components of a vertical 1-D pass then a horizontal 1-D pass.

    ``rows`` is the band's input rows (padded buffer, or the image itself when the band
    needs no row padding); the vertical pass writes columns ``cols`` (a slice) of the
    ``vert`` scratch buffer and ``pad_columns(vert, component)`` completes the padded
    columns. ``components`` is a list of ``(col_groups, row_groups, row_weights)``, the last
    None or ``(offset, taps)`` for :func:`shifted_sum`; ``scratch`` gives
    ``vert`` and ``tmpv`` (n, cols_in, C), ``tmph`` and ``part`` like ``out``.
    ``vertical``, when given, is a list (one per component) of callables ``(dst)`` that do
    the vertical pass themselves (as a banded matrix product), or None to add shifted rows;
    they return False when the product met NaN or infinity, and then so does this function,
    at once, leaving ``out`` unfinished (to be computed again by shifted adds).
    """
    sh, sw = stride
    dh, dw = dilation
    vert, tmpv, tmph = scratch("vert"), scratch("tmpv"), scratch("tmph")
    inner = slice(None) if cols is None else cols

    for r, (col_groups, row_groups, row_weights) in enumerate(components):
        if vertical is not None and vertical[r] is not None:
            if not vertical[r](vert[:, inner]):
                return False
        else:
            _one_d(rows, vert[:, inner], 0, col_groups, sh, dh, tmpv[:, inner], scratch)
        if pad_columns is not None:
            pad_columns(vert, r)
        target = out if r == 0 else scratch("part")
        _one_d(vert, target, 1, row_groups, sw, dw, tmph, scratch, row_weights)
        if r:
            np.add(out, target, out=out)
    return True


def toeplitz(kernel: np.ndarray, n: int, rows_in: int, sh: int, dh: int, dtype) -> np.ndarray:  # noqa: ANN001
    """``A[j*n + y, y*sh + i*dh] = kernel[i, j]``: one GEMM does every vertical sum of a band."""
    kh, kw = kernel.shape
    a = np.zeros((kw, n, rows_in), dtype)
    ys = np.arange(n)
    for i in range(kh):
        a[:, ys, ys * sh + i * dh] = kernel[i][:, None]
    return a.reshape(kw * n, rows_in)


def gemm_band(buf, out, mats, kw, stride, dilation, col_tile, scratch, gather=None, rows_in=None) -> None:  # noqa: ANN001
    """Vertical sums for all kernel columns by banded matrix products, then their shifted
    sum; the width is processed in tiles of ``col_tile`` outputs.

    ``mats`` is ``(q, a_q, a_rem)``: the band's output rows go ``q`` at a time through
    ``a_q = toeplitz(kernel, q, ...)`` (one batched call over the sub-bands; a thin matrix
    wastes few multiplications on its zeros), the ``n % q`` left over through ``a_rem``.

    The products land in one buffer laid out so that the ``kw`` shifted terms of the
    output are a single strided view (kernel column ``j``'s block shifted by its column
    offset), added by one ``np.add.reduce`` call instead of ``kw`` adds.

    With a column stride the band is first regrouped into planes, one per (phase, channel):
    plane ``p*C + c`` holds channel ``c`` of the columns at positions ``p, p + s, ...``. Each
    kernel column's sums are computed on its own phase only (the others would never be
    read), from contiguous rows, and the planar result is interleaved into ``out`` at the
    end. ``buf`` must then hold ``sw - 1`` columns beyond the last one read; or ``gather``,
    given with ``rows_in`` and ``buf`` None, fills the planes of the tile at output column
    ``x0`` itself, ``gather(planes, x0)`` (straight from the image: no padded copy first).
    """
    n, wo, c = out.shape
    sh, sw = stride
    dh, dw = dilation
    q, a_q, a_rem = mats
    nb = n // q
    rem = n - nb * q
    if buf is not None:
        rows_in = buf.shape[0]
        flat = buf.reshape(rows_in, -1)
    # kernel columns by phase: the position modulo the stride of the input columns they read;
    # within a phase consecutive columns are ``g`` samples apart in the phase's plane
    phases = [(ph, [j for j in range(kw) if (j * dw) % sw == ph]) for ph in range(sw)]
    phases = sorted((p for p in phases if p[1]), key=lambda p: (p[1][0] * dw) // sw)
    g = dw // math.gcd(dw, sw)
    unit = c if sw == 1 else 1  # elements per output column in a row of products
    groups = [(nb, q, 0, 0, a_q)] if nb else []
    if rem:
        groups.append((1, rem, nb * q * sh, nb * q, a_rem))

    for x0 in range(0, wo, col_tile):
        wt = min(col_tile, wo - x0)
        c0 = x0 * sw
        span = (wt - 1) * sw + (kw - 1) * dw + 1
        if sw > 1:
            wph = -(-span // sw)
            planes = scratch("gemm_p", (rows_in, sw * c, wph))
            if gather is not None:
                gather(planes, x0)
            else:
                np.copyto(planes, flat[:, c0 * c : (c0 + wph * sw) * c].reshape(rows_in, wph, sw * c).transpose(0, 2, 1))
            row = c * wph  # one phase's C planes side by side

            def source(ph: int) -> np.ndarray:
                return planes[:, ph * c : ph * c + c].reshape(rows_in, row)

            acc = scratch("gemm_acc", (n, c, wt))
        else:
            row = span * c
            src1 = flat[:, c0 * c : c0 * c + row]

            def source(ph: int) -> np.ndarray:
                return src1

            acc = out[:, x0 : x0 + wt].reshape(n, wt * c)
        for count, qq, r0, y0, a in groups:
            a3 = a.reshape(kw, qq, -1)
            rin = a3.shape[2]
            block = qq * row  # one kernel column's products for one sub-band
            step = block + g * unit  # from one column's block to the next one's shifted start
            first = max((js[0] * dw) // sw for _, js in phases) * unit
            bases, t = [], 0
            for _, js in phases:
                bases.append(first + t * step - (js[0] * dw) // sw * unit)
                t += len(js)
            item = max(bases[-1] + len(phases[-1][1]) * block, first + (kw - 1) * step + block)
            prods = scratch("gemm_v", (count * item,))
            e = prods.itemsize
            for (ph, js), base in zip(phases, bases):
                src = source(ph)
                rs, es = src.strides
                view = np.lib.stride_tricks.as_strided(src[r0:], (count, rin, row), (qq * sh * rs, rs, es), writeable=False)
                dst = np.lib.stride_tricks.as_strided(prods[base:], (count, len(js) * qq, row), (item * e, row * e, e))
                np.matmul(a3.reshape(kw * qq, rin) if len(js) == kw else a3[js].reshape(len(js) * qq, rin), view, out=dst)
            if sw > 1:
                terms = np.lib.stride_tricks.as_strided(
                    prods[first:], (kw, count, qq, c, wt), (step * e, item * e, row * e, wph * e, e), writeable=False
                )
                np.add.reduce(terms, axis=0, out=acc[y0 : y0 + count * qq].reshape(count, qq, c, wt))
            else:
                terms = np.lib.stride_tricks.as_strided(
                    prods[first:], (kw, count, qq, wt * c), (step * e, item * e, row * e, e), writeable=False
                )
                np.add.reduce(terms, axis=0, out=acc[y0 : y0 + count * qq].reshape(count, qq, wt * c))
        if sw > 1:
            dst = out[:, x0 : x0 + wt]
            for ch in range(c):
                np.copyto(dst[:, :, ch], acc[:, ch])


def fft_tile(buf, out, spectrum, fft_shape, k_eff, stride, workers: int = 1) -> None:  # noqa: ANN001
    """Overlap-save: the valid part of a circular convolution of the tile with the kernel.

    ``spectrum`` is the rfft2 of the 180-degree-rotated dilated kernel at ``fft_shape``,
    shaped (1, F, F//2 + 1) to broadcast over channels.
    """
    import scipy.fft as sfft

    keh, kew = k_eff
    n, wo = out.shape[:2]
    sh, sw = stride
    planes = np.ascontiguousarray(np.moveaxis(buf, 2, 0))  # (C, h, w): contiguous transforms
    xf = sfft.rfft2(planes, s=fft_shape, axes=(1, 2), workers=workers, overwrite_x=True)
    xf *= spectrum
    y = sfft.irfft2(xf, s=fft_shape, axes=(1, 2), workers=workers, overwrite_x=True)
    valid = y[:, keh - 1 : keh - 1 + (n - 1) * sh + 1 : sh, kew - 1 : kew - 1 + (wo - 1) * sw + 1 : sw]
    np.copyto(out, np.moveaxis(valid, 0, 2), casting="same_kind")


def banded(taps: np.ndarray, n: int, length: int, step: int, dilation: int, dtype) -> np.ndarray:  # noqa: ANN001
    """``T[y, y*step + i*dilation] = taps[i]``: (n, length), one 1-D pass of n outputs as a product."""
    return toeplitz(np.asarray(taps)[:, np.newaxis], n, length, step, dilation, dtype)


def separable_gemm_band(src, vt, out, vert_mats, horiz_mats, target, pad_rows, tile, steps, scratch) -> None:  # noqa: ANN001
    """Each rank-1 component as two banded matrix products, the band held transposed in between.

    ``src`` (rows_in, ncols*C) holds the band's input rows (a view of the image, or a padded
    buffer); ``vt`` (cols, C*m) receives the vertical pass transposed: row ``x`` holds column
    ``x`` for every channel and band row, so the horizontal pass is again a product from the
    left, ``tile`` outputs at a time (one batched call over the tiles). ``target`` is the
    slice of ``vt``'s rows that ``src`` covers; ``pad_rows(vt, r)`` fills the rest.
    ``out`` (m, Wo, C) gets the sum over components. ``vert_mats`` are :func:`banded_mats`
    triples, ``horiz_mats`` (tile, win) banded matrices; ``steps`` the (vertical,
    horizontal) strides.
    """
    m, wo, c = out.shape
    step_v, step = steps
    win = horiz_mats[0].shape[1]
    tiles = -(-wo // tile)
    view = np.lib.stride_tricks.as_strided(
        vt, (tiles, win, c * m), (tile * step * vt.strides[0], vt.strides[0], vt.strides[1]), writeable=False
    )
    acc = scratch("sg_out", (tiles * tile, c * m))
    part = scratch("sg_part", (tiles * tile, c * m)) if len(vert_mats) > 1 else None
    for r, (av, th) in enumerate(zip(vert_mats, horiz_mats)):
        block = vt[target]
        banded_product(av, src, block.reshape(-1, m), step_v, transposed=True)
        pad_rows(vt, r)
        dst = acc if r == 0 else part
        np.matmul(th, view, out=dst.reshape(tiles, tile, c * m))
        if r:
            np.add(acc, part, out=acc)
    np.copyto(out.transpose(1, 2, 0), acc[:wo].reshape(wo, c, m))


def banded_mats(taps: np.ndarray, m: int, q: int, step: int, dilation: int, dtype) -> tuple:  # noqa: ANN001
    """The matrices :func:`banded_product` needs for ``m`` outputs: one for each sub-band of
    ``q`` outputs and one for the ``m % q`` left over."""
    ke = dilation * (len(taps) - 1) + 1
    q = min(q, m)
    rem = m % q
    a_q = banded(taps, q, (q - 1) * step + ke, step, dilation, dtype)
    a_rem = banded(taps, rem, (rem - 1) * step + ke, step, dilation, dtype) if rem else None
    return q, a_q, a_rem


def banded_product(mats: tuple, src: np.ndarray, dst: np.ndarray, step: int, transposed: bool = False) -> None:
    """A 1-D pass down the rows of ``src`` (rows_in, N) as banded matrix products.

    ``dst`` is (m, N), or (N, m) with ``transposed``. The m outputs are computed ``q`` at a
    time against one small banded matrix (a thin matrix wastes fewer multiplications on
    the band's zeros, and BLAS runs thin products fast), batched in one call.
    """
    q, a_q, a_rem = mats
    m = dst.shape[1] if transposed else dst.shape[0]
    nb = m // q
    n = src.shape[1]
    rs, cs = src.strides
    if nb:
        rin = a_q.shape[1]
        if transposed:
            view = np.lib.stride_tricks.as_strided(src, (nb, n, rin), (q * step * rs, cs, rs), writeable=False)
            outv = np.lib.stride_tricks.as_strided(dst, (nb, n, q), (q * dst.strides[1], dst.strides[0], dst.strides[1]))
            np.matmul(view, a_q.T, out=outv)
        else:
            view = np.lib.stride_tricks.as_strided(src, (nb, rin, n), (q * step * rs, rs, cs), writeable=False)
            outv = np.lib.stride_tricks.as_strided(dst, (nb, q, n), (q * dst.strides[0], dst.strides[0], dst.strides[1]))
            np.matmul(a_q, view, out=outv)
    if a_rem is not None:
        r0 = nb * q * step
        part = src[r0 : r0 + a_rem.shape[1]]
        if transposed:
            np.matmul(part.T, a_rem.T, out=dst[:, nb * q :])
        else:
            np.matmul(a_rem, part, out=dst[nb * q :])
