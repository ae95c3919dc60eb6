"""A multi-channel convolution layer: C_out kernels, each spanning C_in / groups channels.

``out[u, v, o] = bias[o] + sum_{c, i, j} w[o, c, i, j] * x[u*sh + i*dh - top, v*sw + j*dw - left, g*C + c]``
with ``g = o // (C_out / groups)`` and ``C = C_in / groups``; ``x`` is extended past its
edges by the border mode, one region at a time (:func:`fill_region`), never as a whole.

The cross-channel sum is a matrix product. The output is cut into tiles of whole rows
(or, for very wide layers, parts of rows) whose scratch memory stays under
:data:`LAYER_BYTES`; for each tile the patches are copied into an im2col matrix
(tile samples x ``kh*kw*C``) and multiplied by the weights (``kh*kw*C`` x ``C_out/groups``)
once per group. Kernels that see one input channel each (depthwise layers, groups = C_in)
are per-channel filtering: they run through :func:`convcli.engine.correlate`, the same
code as ``convcli apply -k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import KernelError, ParameterError, ShapeError
from ..geometry import ConvLayer, LayerGeometry, PaddingLike, PaddingSpec, PairLike, layer_geometry, parse_pair
from ._border import Border, fill_region
from ._run import _map, _scratch, blas_is_single_threaded

#: scratch memory of one tile (input region, im2col matrix, result), bytes, per thread
LAYER_BYTES = 3_000_000


@dataclass(frozen=True)
class LayerPlan:
    """How a layer is computed: the path, the tiling and the scratch memory per thread."""

    path: str
    reason: str
    threads: int
    #: output rows and columns per tile (GEMM path)
    tile: tuple[int, int] = (0, 0)
    tiles: int = 0
    scratch_bytes: int = 0

    def describe(self) -> str:
        if self.path == "gemm":
            return (
                f"gemm: {self.reason}; {self.tiles} tile(s) of {self.tile[0]}x{self.tile[1]} outputs, "
                f"{self.scratch_bytes / 1e6:.2g} MB scratch per thread; threads {self.threads}"
            )
        return f"{self.path}: {self.reason}; threads {self.threads}"

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "reason": self.reason,
            "threads": self.threads,
            "tile": list(self.tile),
            "tiles": self.tiles,
            "scratch_bytes": self.scratch_bytes,
        }


def _tiling(
    out_shape: tuple[int, int],
    kernel: tuple[int, int],
    k_eff: tuple[int, int],
    stride: tuple[int, int],
    c_in: int,
    c_out: int,
    itemsize: int,
    threads: int,
) -> tuple[int, int, int]:
    """(rows, cols) of an output tile and its scratch bytes: under LAYER_BYTES when possible,
    whole rows when they fit, and enough tiles to keep every thread busy."""
    ho, wo = out_shape
    kh, kw = kernel
    sh, sw = stride

    def cost(m: int, wt: int) -> int:
        rows_in = (m - 1) * sh + k_eff[0]
        cols_in = (wt - 1) * sw + k_eff[1]
        return itemsize * (rows_in * cols_in * c_in + m * wt * (kh * kw * c_in + c_out))

    if cost(1, wo) <= LAYER_BYTES:
        wt = wo
        m = 1
        while m < ho and cost(m + 1, wo) <= LAYER_BYTES:
            m += 1
    else:
        m = 1
        wt = 1
        while wt < wo and cost(1, wt + 1) <= LAYER_BYTES:
            wt += 1
    if threads > 1 and wt == wo:
        m = max(1, min(m, -(-ho // (2 * threads))))
    return m, wt, cost(m, wt)


def plan_layer(
    out_shape: tuple[int, int],
    weight_shape: tuple[int, int, int, int],
    groups: int,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    dtype: np.dtype,
    threads: int,
) -> LayerPlan:
    """The :class:`LayerPlan` for a layer with OIHW ``weight_shape`` and this output size."""
    c_out, cig, kh, kw = weight_shape
    if cig == 1 and c_out == groups:
        return LayerPlan(
            "depthwise",
            "one kernel per input channel: per-channel filtering, as apply -k",
            threads,
        )
    if not blas_is_single_threaded():
        threads = 1  # BLAS runs its own threads; two levels of threads stall OpenBLAS
    k_eff = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    m, wt, scratch = _tiling(out_shape, (kh, kw), k_eff, stride, cig * groups, c_out,
                             np.dtype(dtype).itemsize, threads)
    tiles = -(-out_shape[0] // m) * -(-out_shape[1] // wt)
    per_group = f" in {groups} groups" if groups > 1 else ""
    reason = (
        f"im2col of {kh}x{kw}x{cig} = {kh * kw * cig} values per output times a "
        f"{kh * kw * cig}x{c_out // groups} weight matrix{per_group}"
    )
    return LayerPlan("gemm", reason, threads, (m, wt), tiles, scratch)


def run_layer(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None,
    out: np.ndarray,
    pads: tuple[tuple[int, int], tuple[int, int]],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    border: Border,
    plan: LayerPlan,
) -> None:
    """Fill ``out`` (Ho, Wo, C_out) with the layer applied to ``x`` (H, W, C_in), by GEMM.

    ``weights`` is OIHW, already in ``out``'s dtype; ``bias`` is (C_out,) or None.
    """
    dtype = out.dtype
    ho, wo, c_out = out.shape
    c_in = x.shape[2]
    _, cig, kh, kw = weights.shape
    cog = c_out // groups
    sh, sw = stride
    dh, dw = dilation
    keh, kew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    top, left = pads[0][0], pads[1][0]
    k_g = kh * kw * cig
    # (groups, kh*kw*C, C_out/groups): rows in the im2col column order (i, j, c)
    wmat = np.ascontiguousarray(
        weights.reshape(groups, cog, cig, kh, kw).transpose(0, 3, 4, 2, 1).reshape(groups, k_g, cog)
    )
    b = None if bias is None else bias.astype(dtype)
    m, wt = plan.tile
    tiles = [(u0, min(u0 + m, ho), v0, min(v0 + wt, wo)) for u0 in range(0, ho, m) for v0 in range(0, wo, wt)]
    # one row of kernel taps is one contiguous run of kw*C_in values when there is no
    # column dilation and no groups: copy it in one piece
    row_runs = dw == 1 and groups == 1

    def work(tile: tuple[int, int, int, int]) -> None:
        u0, u1, v0, v1 = tile
        n, w = u1 - u0, v1 - v0
        rows_in, cols_in = (n - 1) * sh + keh, (w - 1) * sw + kew
        buf = _scratch("layer_in", (rows_in, cols_in, c_in), dtype)
        fill_region(buf, x, u0 * sh - top, v0 * sw - left, border)
        cols = _scratch("layer_cols", (n, w, groups, kh, kw, cig), dtype)
        rs, cs = (n - 1) * sh + 1, (w - 1) * sw + 1  # spans of the strided slices
        if row_runs:
            # patches[y, x, i] = the kw*C_in values buf[y*sh + i*dh, x*sw : x*sw + kw] (one view, no copy)
            item = buf.itemsize
            row = cols_in * c_in * item
            patches = as_strided(buf, shape=(n, w, kh, kw * c_in), strides=(sh * row, sw * c_in * item, dh * row, item),
                                 writeable=False)
            np.copyto(cols.reshape(n, w, kh, kw * c_in), patches)
        else:
            grouped = buf.reshape(rows_in, cols_in, groups, cig)
            for i in range(kh):
                for j in range(kw):
                    np.copyto(cols[:, :, :, i, j], grouped[i * dh : i * dh + rs : sh, j * dw : j * dw + cs : sw])
        a = cols.reshape(n * w, groups, k_g)
        direct = w == wo
        res = out[u0:u1].reshape(n * w, c_out) if direct else _scratch("layer_res", (n * w, c_out), dtype)
        if groups == 1:
            np.matmul(a[:, 0], wmat[0], out=res)
        else:
            for g in range(groups):
                res[:, g * cog : (g + 1) * cog] = a[:, g] @ wmat[g]
        if b is not None:
            np.add(res, b, out=res)
        if not direct:
            np.copyto(out[u0:u1, v0:v1], res.reshape(n, w, c_out))

    _map(work, tiles, plan.threads)


def check_weights(weights: np.ndarray | list) -> np.ndarray:
    """Return ``weights`` as a 4-D (C_out, C_in/groups, kh, kw) float64 array, or raise KernelError."""
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise KernelError(f"weights are not a numeric array ({exc})") from None
    if w.ndim != 4:
        raise KernelError(
            f"weights must be 4-D (C_out, C_in/groups, kh, kw), got {w.ndim} dimensions with shape {w.shape}"
        )
    if w.size == 0:
        raise KernelError(f"weights have an empty axis: shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise KernelError("weights contain NaN or infinite entries")
    return w


def check_bias(bias: np.ndarray | list | None, c_out: int) -> np.ndarray | None:
    """Return ``bias`` as a (C_out,) float64 array (or None), or raise KernelError."""
    if bias is None:
        return None
    try:
        b = np.asarray(bias, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise KernelError(f"bias is not a numeric array ({exc})") from None
    if b.ndim != 1 or b.shape[0] != c_out:
        raise KernelError(f"bias must have one value per output channel, C_out = {c_out}; got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        raise KernelError("bias contains NaN or infinite entries")
    return b


def conv2d_geometry(
    image_shape: tuple[int, ...],
    weight_shape: tuple[int, int, int, int],
    *,
    stride: PairLike = 1,
    padding: PaddingLike = "same",
    dilation: PairLike = 1,
    groups: int = 1,
    bias: bool = True,
) -> LayerGeometry:
    """The geometry :func:`conv2d` will use, with the layer's parameters and MACs
    (the same :func:`convcli.geometry.layer_geometry` as ``convcli shape``).

    >>> g = conv2d_geometry((224, 224, 3), (64, 3, 7, 7), stride=2, padding=3)
    >>> g.output, g.params, g.macs
    ((112, 112), 9472, 118013952)
    """
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ParameterError(f"groups must be a whole number of at least 1, got {groups!r}")
    c_in = image_shape[2] if len(image_shape) == 3 else 1
    c_out, cig, kh, kw = (int(v) for v in weight_shape)
    if c_out % groups:
        raise ShapeError(
            f"groups={groups} must divide the output channels, C_out = {c_out}; choose groups that divide "
            f"both C_in and C_out"
        )
    if cig * groups != c_in:
        raise ShapeError(
            f"the image has {c_in} channel(s) but the weights take C_in = {cig} x groups {groups} = "
            f"{cig * groups}; give an image with {cig * groups} channel(s) or weights made for {c_in}"
        )
    layer = ConvLayer(
        kernel=(kh, kw),
        stride=parse_pair("stride", stride),
        dilation=parse_pair("dilation", dilation),
        padding=PaddingSpec.parse(padding),
        channels_out=c_out,
        groups=int(groups),
        bias=bias,
    )
    return layer_geometry(layer, (int(image_shape[0]), int(image_shape[1])), channels_in=c_in)


def conv2d(
    image: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: PairLike = 1,
    padding: PaddingLike = "same",
    dilation: PairLike = 1,
    groups: int = 1,
    border: str | Border = "zero",
    engine: str = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """A convolution layer (cross-correlation, as ``torch.nn.functional.conv2d``) on one image.

    Parameters
    ----------
    image : (H, W, C_in) or (H, W) array
        Any real dtype, used as it is (normalise first if the weights expect it).
    weights : (C_out, C_in / groups, kh, kw) array
        PyTorch's layout (OIHW). For TensorFlow's (kh, kw, C_in / groups, C_out) pass
        ``weights.transpose(3, 2, 0, 1)``.
    bias : (C_out,) array, optional
    stride, dilation, padding
        As :func:`correlate`; ``same`` is TensorFlow's SAME (the odd pixel after).
    groups : int
        Divides C_in and C_out; output channel ``o`` sees input channels of group
        ``o // (C_out / groups)``. ``groups = C_in = C_out`` is a depthwise layer, which runs
        through :func:`correlate` (per-channel filtering, as ``apply -k``).
    border : str
        Pixels beyond the edge; ``zero`` (default) is what deep-learning layers pad with.
    engine : str
        The per-channel engine path for depthwise layers (see :func:`correlate`); other
        layers always run as GEMM.
    threads : int, optional
        Worker threads (default: the usable cores).

    Returns
    -------
    out : (H', W', C_out) float array
        float32 for 8/16-bit integer, float16 and float32 images, else float64;
        ``H' = floor((H + top + bottom - k_eff) / stride) + 1`` (likewise W').

    Examples
    --------
    >>> x = np.arange(16.0).reshape(4, 4, 1) * [1, 10]      # two channels
    >>> w = np.ones((1, 2, 2, 2))                            # one 2x2 kernel over both
    >>> conv2d(x, w, [0.5], padding="valid")[..., 0]
    array([[110.5, 154.5, 198.5],
           [286.5, 330.5, 374.5],
           [462.5, 506.5, 550.5]])
    """
    from . import _check_image, correlate, default_threads, float_dtype

    x = _check_image(image)
    w = check_weights(weights)
    b = check_bias(bias, w.shape[0])
    geometry = conv2d_geometry(x.shape, w.shape, stride=stride, padding=padding, dilation=dilation,
                               groups=groups, bias=b is not None)
    border = Border.parse(border)
    if threads is None:
        threads = default_threads()
    elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ParameterError(f"threads must be a whole number of at least 1, got {threads!r}")
    dtype = float_dtype(x.dtype)
    x3 = x if x.ndim == 3 else x[:, :, np.newaxis]
    c_out, cig = w.shape[:2]
    ho, wo = geometry.output
    stride_, dilation_ = geometry.layer.stride, geometry.layer.dilation
    plan = plan_layer((ho, wo), w.shape, groups, stride_, dilation_, dtype, threads)
    options = dict(stride=stride_, padding=geometry.layer.padding, dilation=dilation_, border=border,
                   engine=engine, threads=threads)
    if plan.path == "depthwise":
        out = _depthwise(x3, w, correlate, options)
        if b is not None:
            out += b.astype(out.dtype)
        return out
    out = np.empty((ho, wo, c_out), dtype=dtype)
    run_layer(x3, w.astype(dtype), b, out, geometry.padding, stride_, dilation_, groups, border, plan)
    return out


def _depthwise(x3: np.ndarray, w: np.ndarray, correlate, options: dict) -> np.ndarray:  # noqa: ANN001
    """One kernel per channel: per-channel filtering, channel by channel (or in one call when
    every channel gets the same kernel, which is exactly ``apply -k``)."""
    if np.all(w == w[0]):
        return correlate(x3, w[0, 0], **options)
    return np.stack([correlate(x3[:, :, c], w[c, 0], **options) for c in range(w.shape[0])], axis=2)
