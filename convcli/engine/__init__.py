"""The convolution engine: arrays in, arrays out.

Everything here is pure NumPy: no printing, no files, no command line.

Conventions
-----------
* ``correlate`` computes the cross-correlation that deep-learning libraries
  call convolution: ``out[u, v] = sum_ij k[i, j] * x[u*s + i*d - top, v*s + j*d - left]``,
  with ``x`` extended past its edges by the border mode.
* ``convolve`` is the true convolution: the same with the kernel rotated by
  180 degrees (``k[::-1, ::-1]``), under the same padding.
* Images are ``(H, W)`` or ``(H, W, C)``; each channel is filtered alone.
* Float32, float16 and integer types up to 16 bits are computed in float32;
  everything else in float64. The result is always a new float array.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np

from ..errors import KernelError, ParameterError, ShapeError
from ..geometry import (
    ConvLayer,
    LayerGeometry,
    PaddingLike,
    PaddingSpec,
    PairLike,
    layer_geometry,
    parse_pair,
)
from ._border import BORDER_ALIASES, BORDER_MODES, Border
from ._plan import ENGINES, KernelInfo, Plan, analyze, choose
from .._parallel import default_threads
from ._run import run_plan

__all__ = [
    "BORDER_MODES",
    "BORDER_ALIASES",
    "Border",
    "correlate",
    "convolve",
    "correlate1d",
    "convolve1d",
    "float_dtype",
    "check_kernel",
    "plan_geometry",
    "plan",
    "Plan",
    "ENGINES",
    "default_threads",
    "separable_rank_limit",
    "conv2d",
    "conv2d_geometry",
    "plan_layer",
    "LayerPlan",
    "check_weights",
]

BorderLike = Union[str, Border]


def separable_rank_limit() -> int:
    """Highest kernel rank the separable path runs (as a sum of rank-1 passes)."""
    from ._plan import _MAX_SEPARABLE_RANK

    return _MAX_SEPARABLE_RANK


def float_dtype(dtype: np.dtype | type) -> np.dtype:
    """The float type the engine computes in for input of ``dtype``.

    >>> float_dtype(np.uint8), float_dtype(np.uint16), float_dtype(np.float64)
    (dtype('float32'), dtype('float32'), dtype('float64'))
    """
    dtype = np.dtype(dtype)
    if dtype == np.float32 or dtype == np.float16 or dtype == np.bool_:
        return np.dtype(np.float32)
    if dtype.kind in "ui" and dtype.itemsize <= 2:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def check_kernel(kernel: np.ndarray | list) -> np.ndarray:
    """Return ``kernel`` as a 2-D float64 array, or raise KernelError naming the problem."""
    try:
        k = np.asarray(kernel, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise KernelError(f"kernel is not a numeric matrix ({exc})") from None
    if k.ndim == 1:
        k = k[np.newaxis, :]
    if k.ndim != 2:
        raise KernelError(f"kernel must be 2-D, got {k.ndim} dimensions with shape {k.shape}")
    if k.size == 0:
        raise KernelError("kernel is empty")
    if not np.all(np.isfinite(k)):
        raise KernelError("kernel contains NaN or infinite entries")
    return k


def _check_image(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image)
    if x.ndim not in (2, 3):
        raise ParameterError(
            f"image must be 2-D (H, W) or 3-D (H, W, C), got shape {x.shape}"
        )
    if x.size == 0:
        raise ParameterError(f"image is empty (shape {x.shape})")
    if x.dtype.kind not in "biuf":
        raise ParameterError(f"image must hold numbers, not {x.dtype}")
    return x


def plan_geometry(
    image_shape: tuple[int, ...],
    kernel_shape: tuple[int, int],
    *,
    stride: PairLike = 1,
    padding: PaddingLike = "same",
    dilation: PairLike = 1,
) -> LayerGeometry:
    """The geometry ``correlate`` will use for these shapes (per-channel filtering)."""
    layer = ConvLayer(
        kernel=(int(kernel_shape[0]), int(kernel_shape[1])),
        stride=parse_pair("stride", stride),
        dilation=parse_pair("dilation", dilation),
        padding=PaddingSpec.parse(padding),
        groups=image_shape[2] if len(image_shape) == 3 else 1,
        bias=False,
    )
    channels = image_shape[2] if len(image_shape) == 3 else 1
    return layer_geometry(layer, (int(image_shape[0]), int(image_shape[1])), channels_in=channels)


def correlate(
    image: np.ndarray,
    kernel: np.ndarray,
    *,
    stride: PairLike = 1,
    padding: PaddingLike = "same",
    dilation: PairLike = 1,
    border: BorderLike = "reflect",
    convolve: bool = False,
    engine: str = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """Cross-correlate each channel of ``image`` with a 2-D ``kernel``.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array
        Any real dtype; values are used as they are (0-255 stays 0-255).
    kernel : (kh, kw) array
        Any size, odd or even; a 1-D kernel is taken as one row.
    stride, dilation : int or (rows, cols) or "RxC"
    padding : "same", "valid", "full", int, "HxW", "B,A" or "T,B,L,R"
        ``same`` keeps ``ceil(n / stride)`` samples, the odd pixel of padding
        after (TensorFlow's SAME). See :mod:`convcli.geometry`.
    border : str
        How pixels outside the image are made up: ``zero``, ``constant=V``,
        ``replicate``, ``reflect`` (default), ``reflect101``, ``wrap``, or an
        alias (``edge``, ``nearest``, ``symmetric``, ``tile``...).
    convolve : bool
        Rotate the kernel by 180 degrees first (true convolution).
    engine : {"auto", "direct", "separable", "separable-gemm", "gemm", "fft"}
        How to compute it; ``auto`` follows the cost model (see :func:`plan`). Every
        path gives the same result to float rounding, borders included. NaN and infinity
        in the image stay inside the outputs whose window holds them under ``auto``
        (which then avoids matrix products and FFTs); a forced GEMM or FFT path may
        spread them further.
    threads : int, optional
        Worker threads (default: the usable cores).

    Returns
    -------
    out : (H', W'[, C]) float array
        ``H' = floor((H + top + bottom - k_eff) / stride) + 1`` (likewise W').

    Examples
    --------
    >>> ramp = np.arange(10, 260, 10).reshape(5, 5)
    >>> k = [[1, 0, -1], [1, 0, -1], [1, 0, -1]]
    >>> correlate(ramp, k, padding="valid")
    array([[-60., -60., -60.],
           [-60., -60., -60.],
           [-60., -60., -60.]])
    """
    x = _check_image(image)
    k = check_kernel(kernel)
    if convolve:
        k = k[::-1, ::-1]
    geometry = plan_geometry(x.shape, k.shape, stride=stride, padding=padding, dilation=dilation)
    border = Border.parse(border)
    dtype = _working_dtype(x, k)
    x3 = x if x.ndim == 3 else x[:, :, np.newaxis]
    ho, wo = geometry.output
    _check_size(ho, wo, x3.shape[2], dtype)
    out = np.empty((ho, wo, x3.shape[2]), dtype=dtype)
    chosen = _choose(k, geometry, x3.shape[2], engine, threads, dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow shows as inf; callers check
        run_plan(x3, k, chosen, out, geometry.padding, geometry.layer.stride, geometry.layer.dilation, border)
    return out if x.ndim == 3 else out[:, :, 0]


def _working_dtype(x: np.ndarray, k: np.ndarray) -> np.dtype:
    """:func:`float_dtype`, widened to float64 when float32 could overflow for these weights."""
    dtype = float_dtype(x.dtype)
    if dtype != np.float32:
        return dtype
    bound = float(np.abs(k).sum())
    if bound * 65535.0 < 1e37:
        return dtype
    if x.dtype.kind in "ui":
        peak = float(max(abs(np.iinfo(x.dtype).min), np.iinfo(x.dtype).max))
    else:
        peak = float(np.max(np.abs(x))) if x.size else 0.0
    return np.dtype(np.float64) if bound * peak > 1e37 else dtype


def _check_size(rows: int, cols: int, channels: int, dtype: np.dtype) -> None:
    need = rows * cols * channels * dtype.itemsize
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        total = 2**40
    if need > total:
        raise ShapeError(
            f"the output would be {rows}x{cols}x{channels} ({need / 2**30:.1f} GiB), more than this "
            f"machine's memory ({total / 2**30:.1f} GiB); reduce the padding or dilation"
        )


def _choose(
    k: np.ndarray,
    geometry: LayerGeometry,
    channels: int,
    engine: str,
    threads: int | None,
    dtype: np.dtype,
) -> Plan:
    if threads is None:
        threads = default_threads()
    elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ParameterError(f"threads must be a whole number of at least 1, got {threads!r}")
    stride, dilation = geometry.layer.stride, geometry.layer.dilation
    cols_in = (geometry.output[1] - 1) * stride[1] + geometry.effective_kernel[1]
    rtol = 1e-7 if dtype == np.float32 else 1e-13
    info = analyze(k, rtol=rtol)
    return choose(info, geometry.output, cols_in, channels, stride, dilation, engine=engine, threads=threads)


def plan(
    image_shape: tuple[int, ...],
    kernel: np.ndarray,
    *,
    stride: PairLike = 1,
    padding: PaddingLike = "same",
    dilation: PairLike = 1,
    convolve: bool = False,
    engine: str = "auto",
    threads: int | None = None,
    dtype: np.dtype | type = np.float32,
) -> Plan:
    """The :class:`Plan` that :func:`correlate` would follow for this shape and kernel.

    ``dtype`` is the image's dtype (it sets the working precision).
    """
    k = check_kernel(kernel)
    if convolve:
        k = k[::-1, ::-1]
    geometry = plan_geometry(tuple(image_shape), k.shape, stride=stride, padding=padding, dilation=dilation)
    channels = image_shape[2] if len(image_shape) == 3 else 1
    return _choose(k, geometry, channels, engine, threads, float_dtype(dtype))


def convolve(image: np.ndarray, kernel: np.ndarray, **options) -> np.ndarray:
    """True convolution: :func:`correlate` with the kernel rotated by 180 degrees."""
    return correlate(image, kernel, convolve=True, **options)


def _pads_1d(padding: PaddingLike) -> PaddingSpec:
    spec = PaddingSpec.parse(padding)
    if spec.explicit is not None:
        return PaddingSpec(explicit=((0, 0), spec.explicit[1]))
    return spec


def correlate1d(
    signal: np.ndarray,
    kernel: np.ndarray,
    *,
    stride: int = 1,
    padding: PaddingLike = "same",
    dilation: int = 1,
    border: BorderLike = "reflect",
    convolve: bool = False,
) -> np.ndarray:
    """Cross-correlate a 1-D signal with a 1-D kernel: ``y[n] = sum_i w[i] x[n*s + i*d - before]``.

    ``padding`` as an int or ``"B,A"`` pads only the ends of the signal.

    >>> correlate1d([1, 2, 0, -1, 3, 1], [2, -1, 1], padding="valid")
    array([ 0.,  3.,  4., -4.])
    """
    x = np.asarray(signal)
    w = np.asarray(kernel)
    if x.ndim != 1 or w.ndim != 1:
        raise ParameterError(
            f"correlate1d takes 1-D signal and kernel, got shapes {x.shape} and {w.shape}"
        )
    out = correlate(
        x[np.newaxis, :],
        w[np.newaxis, :],
        stride=(1, stride),
        dilation=(1, dilation),
        padding=_pads_1d(padding),
        border=border,
        convolve=convolve,
    )
    return out[0]


def convolve1d(signal: np.ndarray, kernel: np.ndarray, **options) -> np.ndarray:
    """True 1-D convolution: :func:`correlate1d` with the kernel reversed."""
    return correlate1d(signal, kernel, convolve=True, **options)


# the multi-channel layer; imported last because it uses the per-channel API above
from ._layer import LayerPlan, check_weights, conv2d, conv2d_geometry, plan_layer  # noqa: E402
