"""Direct correlation: one vectorised multiply-add over the whole output per kernel tap.

The Python loop runs over the kernel's non-zero taps, never over pixels. Stride
is applied inside the slices, so only the output samples that are kept are
computed.
"""

from __future__ import annotations

import numpy as np


def correlate_padded(
    padded: np.ndarray,
    weights: np.ndarray,
    out_shape: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """Valid correlation of an already padded ``(H, W[, C])`` array.

    ``out[u, v] = sum_ij weights[i, j] * padded[u*sh + i*dh, v*sw + j*dw]``.
    ``weights`` must have ``padded``'s dtype.
    """
    rows, cols = out_shape
    sh, sw = stride
    dh, dw = dilation
    out = np.zeros((rows, cols, *padded.shape[2:]), dtype=padded.dtype)
    tmp = np.empty_like(out)
    row_span = (rows - 1) * sh + 1
    col_span = (cols - 1) * sw + 1
    for (i, j), w in np.ndenumerate(weights):
        if w == 0:
            continue
        r0, c0 = i * dh, j * dw
        view = padded[r0 : r0 + row_span : sh, c0 : c0 + col_span : sw]
        if w == 1:
            out += view
        else:
            np.multiply(view, w, out=tmp)
            out += tmp
    return out
