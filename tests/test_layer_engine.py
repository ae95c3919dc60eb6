"""The multi-channel layer (conv2d) against an independent reference: an explicit sum over input
channels of scipy.signal.correlate2d results on np.pad-ded channels; and, when the torch extra is
installed, against torch.nn.functional.conv2d."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.signal as ssig

from convcli.engine import conv2d, conv2d_geometry, correlate, plan_layer
from convcli.engine import _layer
from convcli.errors import KernelError, ParameterError, ShapeError

from .conftest import assert_close

#: our border mode -> np.pad arguments (numpy's names, not the engine's code)
NP_PAD = {
    "zero": dict(mode="constant", constant_values=0.0),
    "constant=7.5": dict(mode="constant", constant_values=7.5),
    "replicate": dict(mode="edge"),
    "reflect": dict(mode="symmetric"),
    "reflect101": dict(mode="reflect"),
    "wrap": dict(mode="wrap"),
}


def dilate(k: np.ndarray, dilation: tuple[int, int]) -> np.ndarray:
    dh, dw = dilation
    out = np.zeros((dh * (k.shape[0] - 1) + 1, dw * (k.shape[1] - 1) + 1))
    out[::dh, ::dw] = k
    return out


def reference(x, w, b, *, stride, dilation, pads, groups, border="zero"):
    """out[..., o] = b[o] + sum over the group's input channels c of correlate2d(padded x_c, w[o, c])."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    (t, bo), (l, r) = pads
    padded = np.pad(x, ((t, bo), (l, r), (0, 0)), **NP_PAD[border])
    c_out, cig = w.shape[:2]
    per_group = c_out // groups
    maps = []
    for o in range(c_out):
        g = o // per_group
        acc = sum(
            ssig.correlate2d(padded[:, :, g * cig + c], dilate(w[o, c], dilation), mode="valid")
            for c in range(cig)
        )
        acc = acc[:: stride[0], :: stride[1]]
        maps.append(acc + (b[o] if b is not None else 0.0))
    return np.stack(maps, axis=2)


def tf_same(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's SAME padding, written out here: the odd pixel goes after."""
    k_eff = d * (k - 1) + 1
    total = max((-(-n // s) - 1) * s + k_eff - n, 0)
    return total // 2, total - total // 2


CASES = [
    # (C_in, C_out, groups, kernel, stride, dilation, pads)
    (3, 8, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
    (3, 5, 1, (7, 7), (2, 2), (1, 1), ((3, 3), (3, 3))),
    (3, 4, 1, (2, 4), (1, 2), (1, 1), ((0, 1), (2, 1))),
    (4, 6, 2, (3, 3), (2, 1), (2, 1), ((2, 2), (0, 3))),
    (6, 6, 3, (3, 2), (1, 1), (1, 2), ((0, 0), (0, 0))),
    (6, 6, 6, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))),  # depthwise: through correlate
    (3, 6, 3, (5, 5), (1, 1), (1, 1), ((2, 2), (2, 2))),  # depthwise x2: GEMM per group
    (1, 7, 1, (5, 3), (3, 2), (1, 1), ((2, 2), (1, 1))),  # gray in, 7 maps out
    (5, 2, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),  # a 1x1 layer: a per-pixel matrix product
]


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}to{c[1]}g{c[2]}k{c[3][0]}x{c[3][1]}s{c[4][0]}{c[4][1]}")
def test_against_the_sum_of_2d_correlations(rng, case, with_bias):
    c_in, c_out, groups, (kh, kw), stride, dilation, pads = case
    x = rng.random((23, 19, c_in)).astype(np.float32) * 255
    w = rng.standard_normal((c_out, c_in // groups, kh, kw))
    b = rng.standard_normal(c_out) * 10 if with_bias else None
    padding = ",".join(str(v) for v in (*pads[0], *pads[1]))
    out = conv2d(x, w, b, stride=stride, dilation=dilation, padding=padding, groups=groups)
    assert out.dtype == np.float32
    expected = reference(x, w, b, stride=stride, dilation=dilation, pads=pads, groups=groups)
    assert out.shape == expected.shape
    assert_close(out, expected)


@pytest.mark.parametrize("border", list(NP_PAD))
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_every_border_mode(rng, border, groups):
    x = rng.random((17, 21, 4))
    w = rng.standard_normal((4, 4 // groups, 3, 5))
    b = rng.standard_normal(4)
    out = conv2d(x, w, b, stride=(2, 1), padding="2,1,3,2", groups=groups, border=border)
    assert out.dtype == np.float64
    expected = reference(x, w, b, stride=(2, 1), dilation=(1, 1), pads=((2, 1), (3, 2)), groups=groups, border=border)
    assert_close(out, expected, rel=1e-12)


@pytest.mark.parametrize("size", [(32, 32), (31, 17), (5, 40)])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_same_padding_is_tensorflow_same(rng, size, stride):
    x = rng.random((*size, 3)).astype(np.float32)
    w = rng.standard_normal((4, 3, 4, 3))
    out = conv2d(x, w, stride=stride, padding="same")
    pads = (tf_same(size[0], 4, stride, 1), tf_same(size[1], 3, stride, 1))
    assert out.shape == (-(-size[0] // stride), -(-size[1] // stride), 4)
    assert_close(out, reference(x, w, None, stride=(stride, stride), dilation=(1, 1), pads=pads, groups=1))


def test_depthwise_is_per_channel_filtering_exactly(rng, photos):
    """groups = C_in = C_out: the same code as apply -k, so the same numbers to the last bit."""
    photo = photos["astronaut.png"]
    k = rng.standard_normal((5, 5))
    same = np.repeat(k[None, None], 3, axis=0)
    opts = dict(stride=2, padding="same", border="reflect")
    np.testing.assert_array_equal(conv2d(photo, same, groups=3, **opts), correlate(photo, k, **opts))
    distinct = rng.standard_normal((3, 1, 3, 4))
    out = conv2d(photo, distinct, groups=3, **opts)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], correlate(photo[..., c], distinct[c, 0], **opts))
    assert plan_layer(out.shape[:2], distinct.shape, 3, (2, 2), (1, 1), np.dtype(np.float32), 2).path == "depthwise"


def test_depthwise_with_bias_and_a_sobel_kernel(photos):
    photo = photos["coffee.jpg"]
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    w = np.repeat(sobel[None, None], 3, axis=0)
    out = conv2d(photo, w, [1.0, 2.0, 3.0], groups=3, border="replicate")
    np.testing.assert_array_equal(out - np.float32([1, 2, 3]), correlate(photo, sobel, border="replicate"))


def test_one_filter_over_rgb_is_the_sum_of_three_channel_correlations(photos):
    """The seeds' multi-channel convolution: one 3x3x3 kernel, one output map."""
    photo = photos["chelsea.jpg"]
    w = np.zeros((1, 3, 3, 3))
    w[0, 0] = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]  # R: Sobel x
    w[0, 1, 1, 1] = 1.0                              # G: identity
    w[0, 2] = 1 / 9                                  # B: box blur
    out = conv2d(photo, w, padding="valid")
    p = photo.astype(np.float64)
    expected = (ssig.correlate2d(p[..., 0], w[0, 0], mode="valid") + p[1:-1, 1:-1, 1]
                + ssig.correlate2d(p[..., 2], w[0, 2], mode="valid"))
    assert out.shape == (photo.shape[0] - 2, photo.shape[1] - 2, 1)
    assert_close(out[..., 0], expected)


def test_tiles_of_any_size_give_the_same_numbers(rng, monkeypatch):
    x = rng.random((40, 57, 3)).astype(np.float32)
    w = rng.standard_normal((5, 3, 5, 5))
    b = rng.standard_normal(5)
    whole = conv2d(x, w, b, stride=(1, 2), padding=2, border="reflect", threads=1)
    expected = reference(x, w, b, stride=(1, 2), dilation=(1, 1), pads=((2, 2), (2, 2)), groups=1, border="reflect")
    assert_close(whole, expected)
    # scratch for under one output row: the width is cut into tiles too
    monkeypatch.setattr(_layer, "LAYER_BYTES", 6_000)
    plan = plan_layer((40, 29), w.shape, 1, (1, 2), (1, 1), np.dtype(np.float32), 1)
    assert plan.tile[0] == 1 and plan.tile[1] < 29 and plan.tiles > 40
    for threads in (1, 2):
        tiled = conv2d(x, w, b, stride=(1, 2), padding=2, border="reflect", threads=threads)
        np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-4)


def test_single_and_multi_threaded_results_are_identical(photos):
    photo = photos["astronaut.png"]
    w = np.random.default_rng(3).standard_normal((16, 3, 7, 7))
    one = conv2d(photo, w, stride=2, padding=3, threads=1)
    two = conv2d(photo, w, stride=2, padding=3, threads=2)
    np.testing.assert_array_equal(one, two)


def _extra_memory(fn) -> int:  # noqa: ANN001
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - out.nbytes


def test_memory_is_tiles_not_a_padded_image_or_a_whole_im2col(rng):
    """Besides its result, a layer allocates a few tile buffers per thread: no padded copy of
    the image (a 7x7 layer on 512x512x3 would need 3.2 MB in float32) and no whole im2col
    (512 x 512 x 147 x 4 bytes = 154 MB)."""
    x = rng.integers(0, 256, size=(512, 512, 3), dtype=np.uint8)
    w = rng.standard_normal((8, 3, 7, 7))
    # each thread's tile buffers are at most LAYER_BYTES
    assert _extra_memory(lambda: conv2d(x, w, padding=3, threads=2)) < 2.2 * _layer.LAYER_BYTES
    # and once they exist (one thread, buffers kept from the first call), nearly nothing more
    conv2d(x, w, padding=3, threads=1)
    assert _extra_memory(lambda: conv2d(x, w, padding=3, threads=1)) < 500_000


def test_dtypes(rng):
    w = rng.standard_normal((2, 1, 3, 3))
    for dtype, expected in [(np.uint8, np.float32), (np.uint16, np.float32), (np.float32, np.float32),
                            (np.float64, np.float64), (np.int32, np.float64)]:
        x = (rng.random((9, 8)) * 100).astype(dtype)
        out = conv2d(x, w)
        assert out.dtype == expected and out.shape == (9, 8, 2)
        assert_close(out, reference(x, w, None, stride=(1, 1), dilation=(1, 1), pads=((1, 1), (1, 1)), groups=1))


def test_input_is_not_modified(rng):
    x = rng.random((10, 11, 3))
    before = x.copy()
    conv2d(x, rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4), border="reflect")
    np.testing.assert_array_equal(x, before)


def test_geometry_params_and_macs_come_from_the_shape_module():
    g = conv2d_geometry((224, 224, 3), (64, 3, 3, 3), padding=1)
    assert g.params == 3 * 3 * 3 * 64 + 64 == 1792           # the seeds' count
    assert g.macs == 224 * 224 * 64 * 27
    g = conv2d_geometry((56, 56, 64), (128, 16, 3, 3), padding=1, groups=4, bias=False)
    assert g.params == 128 * 16 * 9 and g.output == (56, 56)
    assert conv2d_geometry((128, 128, 3), (32, 3, 5, 5), stride=2, padding=2).params == 2432   # the seeds' exercise


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (dict(w=np.ones((3, 3))), KernelError, "must be 4-D"),
        (dict(w=np.ones((2, 3, 0, 3))), KernelError, "empty axis"),
        (dict(w=np.full((2, 3, 3, 3), np.nan)), KernelError, "NaN"),
        (dict(w=np.ones((2, 2, 3, 3))), ShapeError, "the image has 3 channel(s) but the weights take C_in = 2"),
        (dict(w=np.ones((4, 1, 3, 3)), groups=2), ShapeError, "C_in = 1 x groups 2 = 2"),
        (dict(w=np.ones((4, 1, 3, 3)), groups=3), ShapeError, "groups=3 must divide the output channels, C_out = 4"),
        (dict(w=np.ones((2, 3, 3, 3)), b=[1.0]), KernelError, "C_out = 2"),
        (dict(w=np.ones((2, 3, 3, 3)), b=[1.0, np.inf]), KernelError, "NaN or infinite"),
        (dict(w=np.ones((2, 3, 3, 3)), groups=0), ParameterError, "groups must be"),
        (dict(w=np.ones((2, 3, 9, 9)), padding="valid"), ShapeError, "would be empty"),
        (dict(w=np.ones((2, 3, 3, 3)), threads=0), ParameterError, "threads"),
    ],
)
def test_errors_name_the_problem(kwargs, error, message):
    x = np.zeros((5, 5, 3))
    w = kwargs.pop("w")
    b = kwargs.pop("b", None)
    with pytest.raises(error) as info:
        conv2d(x, w, b, **kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# --- PyTorch, when installed (pip install -e '.[torch]') -------------------------------------


TORCH_CASES = [
    # (C_in, C_out, groups, kernel, stride, padding, dilation)
    (3, 64, 1, 7, 2, 3, 1),
    (3, 16, 1, 3, 1, 1, 1),
    (4, 8, 2, 3, 2, 1, 2),
    (6, 6, 6, 3, 1, 1, 1),
    (6, 12, 3, 5, 3, 0, 1),
    (1, 5, 1, 4, 1, 2, 1),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: f"{c[0]}to{c[1]}g{c[2]}k{c[3]}s{c[4]}p{c[5]}d{c[6]}")
def test_against_torch_conv2d(rng, case):
    torch = pytest.importorskip("torch")
    c_in, c_out, groups, k, s, p, d = case
    x = rng.random((33, 29, c_in)).astype(np.float32)
    w = rng.standard_normal((c_out, c_in // groups, k, k)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    ours = conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=groups)
    with torch.no_grad():
        theirs = torch.nn.functional.conv2d(
            torch.from_numpy(x).permute(2, 0, 1)[None], torch.from_numpy(w), torch.from_numpy(b),
            stride=s, padding=p, dilation=d, groups=groups,
        )[0].permute(1, 2, 0).numpy()
    assert ours.shape == theirs.shape
    assert_close(ours, theirs.astype(np.float64), rel=1e-5)


def test_same_padding_at_stride_1_matches_torch_same(rng):
    torch = pytest.importorskip("torch")
    x = rng.random((20, 25, 3)).astype(np.float32)
    for k in (3, 4):
        w = rng.standard_normal((4, 3, k, k)).astype(np.float32)
        with torch.no_grad(), warnings.catch_warnings():
            # torch notes that an even kernel makes it pad a copy of the input; not our concern here
            warnings.filterwarnings("ignore", message="Using padding='same' with even kernel", category=UserWarning)
            theirs = torch.nn.functional.conv2d(torch.from_numpy(x).permute(2, 0, 1)[None], torch.from_numpy(w),
                                                padding="same")[0].permute(1, 2, 0).numpy()
        assert_close(conv2d(x, w, padding="same"), theirs.astype(np.float64))
