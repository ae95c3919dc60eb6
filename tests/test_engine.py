"""The engine against independent oracles: scipy.ndimage, scipy.signal and worked examples."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal as ssig

from convcli.engine import BORDER_ALIASES, BORDER_MODES, Border, convolve, correlate, correlate1d, float_dtype
from convcli.errors import KernelError, ParameterError, ShapeError
from convcli.kernels import builtin_registry

from .conftest import SCIPY_MODES, assert_close, ndi_correlate_same

BORDERS = list(SCIPY_MODES)
KERNEL_SHAPES = [(3, 3), (5, 5), (1, 5), (7, 1), (2, 2), (4, 3), (6, 6), (3, 2)]


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("kshape", KERNEL_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("channels", [None, 3])
def test_same_size_matches_ndimage_on_random_arrays(rng, border, kshape, channels):
    shape = (23, 17) if channels is None else (23, 17, channels)
    image = (rng.random(shape) * 255).astype(np.float32)
    kernel = rng.standard_normal(kshape)
    ours = correlate(image, kernel, border=border)
    assert ours.dtype == np.float32
    assert_close(ours, ndi_correlate_same(image, kernel, border))


@pytest.mark.parametrize("name", ["astronaut.png", "coffee.jpg", "chelsea.jpg", "camera.png", "camera16.png"])
@pytest.mark.parametrize("kernel_name", ["sobel-x", "sobel-y", "gaussian-blur-5", "laplacian", "roberts-x", "emboss"])
def test_matches_ndimage_on_real_photos(photos, name, kernel_name):
    image = photos[name]
    kernel = builtin_registry().get(kernel_name).weights
    for border in ("reflect", "replicate", "reflect101"):
        assert_close(correlate(image, kernel, border=border), ndi_correlate_same(image, kernel, border))


@pytest.mark.parametrize("border", BORDERS)
def test_kernel_larger_than_image_reflects_repeatedly_like_ndimage(rng, border):
    image = rng.random((3, 4)).astype(np.float64)
    kernel = rng.standard_normal((9, 11))
    assert_close(correlate(image, kernel, border=border), ndi_correlate_same(image, kernel, border))


def test_single_row_and_column_images(rng):
    for shape in [(1, 9), (9, 1), (1, 1)]:
        image = rng.random(shape)
        for border in BORDERS:
            kernel = rng.standard_normal((3, 3))
            assert_close(correlate(image, kernel, border=border), ndi_correlate_same(image, kernel, border))


@pytest.mark.parametrize("kshape", [(3, 3), (5, 3), (1, 7)])
@pytest.mark.parametrize("border", BORDERS)
def test_convolve_odd_kernels_matches_ndimage_convolve(rng, kshape, border):
    image = rng.random((19, 21)) * 100
    kernel = rng.standard_normal(kshape)
    mode, cval = SCIPY_MODES[border]
    assert_close(convolve(image, kernel, border=border), ndi.convolve(image, kernel, mode=mode, cval=cval))


@pytest.mark.parametrize("kshape", [(2, 2), (4, 3), (3, 3), (6, 1)])
def test_convolve_full_and_valid_match_scipy_signal(rng, kshape):
    image = rng.random((12, 15))
    kernel = rng.standard_normal(kshape)
    full = convolve(image, kernel, padding="full", border="zero")
    assert_close(full, ssig.convolve2d(image, kernel, mode="full"))
    valid = convolve(image, kernel, padding="valid")
    assert_close(valid, ssig.convolve2d(image, kernel, mode="valid"))
    assert_close(correlate(image, kernel, padding="valid"), ssig.correlate2d(image, kernel, mode="valid"))


def test_convolve_is_correlate_with_rotated_kernel(rng):
    image = rng.random((10, 12, 3)).astype(np.float32)
    kernel = rng.standard_normal((4, 3))
    opts = dict(stride=(2, 1), padding="same", dilation=(1, 2), border="wrap")
    np.testing.assert_array_equal(convolve(image, kernel, **opts), correlate(image, kernel[::-1, ::-1], **opts))


# --- stride, dilation and padding against an independent pad-then-slice reference ---------------


def _extend_index(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Where padded index ``i`` (may be negative or >= n) reads from, by border mode."""
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    if mode == "wrap":
        return np.mod(i, n)
    if mode == "reflect":
        m = np.mod(i, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if mode == "reflect101":
        if n == 1:
            return np.zeros_like(i)
        m = np.mod(i, 2 * n - 2)
        return np.where(m < n, m, 2 * n - 2 - m)
    raise AssertionError(mode)


def reference(image, kernel, stride, dilation, pads, border):
    """Pad by index arithmetic, correlate the dilated kernel with scipy.signal, then subsample."""
    (t, b), (l, r) = pads
    h, w = image.shape
    rows = np.arange(-t, h + b)
    cols = np.arange(-l, w + r)
    if border.startswith("constant") or border == "zero":
        cval = float(border.partition("=")[2] or 0)
        padded = np.full((rows.size, cols.size), cval)
        padded[t : t + h, l : l + w] = image
    else:
        padded = image[np.ix_(_extend_index(rows, h, border), _extend_index(cols, w, border))]
    kh, kw = kernel.shape
    dh, dw = dilation
    dilated = np.zeros((dh * (kh - 1) + 1, dw * (kw - 1) + 1))
    dilated[::dh, ::dw] = kernel
    full = ssig.correlate2d(padded, dilated, mode="valid")
    return full[:: stride[0], :: stride[1]]


GEOMETRIES = [
    # stride, dilation, padding, expected pads for a 13x16 input and 3x4 kernel (None: computed)
    ((1, 1), (1, 1), "valid"),
    ((2, 2), (1, 1), "valid"),
    ((2, 3), (1, 1), 1),
    ((1, 1), (2, 2), "same"),
    ((2, 2), (1, 1), "same"),
    ((3, 2), (2, 1), "same"),
    ((1, 2), (1, 3), "full"),
    ((2, 1), (1, 1), "2,0,1,3"),
    ((3, 3), (2, 2), "4x1"),
    ((1, 1), (1, 1), "0,2"),
]


@pytest.mark.parametrize("stride,dilation,padding", GEOMETRIES)
@pytest.mark.parametrize("border", BORDERS)
def test_stride_dilation_padding_against_pad_then_slice(rng, stride, dilation, padding, border):
    from convcli.engine import plan_geometry

    image = rng.random((13, 16)) * 10
    kernel = rng.standard_normal((3, 4))
    ours = correlate(image, kernel, stride=stride, dilation=dilation, padding=padding, border=border)
    pads = plan_geometry(image.shape, kernel.shape, stride=stride, dilation=dilation, padding=padding).padding
    assert_close(ours, reference(image, kernel, stride, dilation, pads, border))


def test_strided_same_padding_follows_tensorflow_rule():
    from convcli.engine import plan_geometry

    # 224 input, 7x7 kernel, stride 2: out = ceil(224/2) = 112, total pad 5 -> 2 before, 3 after
    g = plan_geometry((224, 224), (7, 7), stride=2, padding="same")
    assert g.output == (112, 112)
    assert g.padding == ((2, 3), (2, 3))
    out = correlate(np.ones((224, 224), np.float32), np.ones((7, 7)), stride=2, border="zero")
    assert out.shape == (112, 112)
    # first output sees rows -2..4 -> 5 real rows x 5 real cols; the last sees rows 220..226 -> 4 real
    assert out[0, 0] == 25 and out[-1, -1] == 16


def test_channels_are_filtered_independently(rng):
    image = rng.random((9, 10, 4))
    kernel = rng.standard_normal((3, 3))
    out = correlate(image, kernel, stride=2, padding=1, border="wrap")
    for c in range(4):
        np.testing.assert_allclose(out[..., c], correlate(image[..., c], kernel, stride=2, padding=1, border="wrap"))


# --- worked examples from the teaching texts ----------------------------------------------------


def test_seed_ramp_with_vertical_edge_kernel_gives_minus_60_everywhere():
    ramp = np.arange(10, 260, 10).reshape(5, 5)
    out = correlate(ramp, [[1, 0, -1]] * 3, padding="valid")
    np.testing.assert_array_equal(out, np.full((3, 3), -60.0))


def test_seed_4x4_lab_with_2x2_kernel():
    image = np.array([[1, 2, 0, 0], [5, 3, 0, 4], [2, 1, 3, 1], [0, 2, 1, 2]], np.float32)
    out = correlate(image, [[1, 0], [0, -1]], padding="valid")
    np.testing.assert_array_equal(out, [[-2, 2, -4], [4, 0, -1], [0, 0, 1]])


def test_seed_1d_example():
    np.testing.assert_array_equal(correlate1d([1, 2, 0, -1, 3, 1], [2, -1, 1], padding="valid"), [0, 3, 4, -4])
    # the same signal as a (1, N) image
    out = correlate(np.array([[1, 2, 0, -1, 3, 1]]), [[2, -1, 1]], padding="valid")
    np.testing.assert_array_equal(out, [[0, 3, 4, -4]])


def test_seed_sobel_example_160_at_origin():
    image = np.array([[10, 20, 30, 40, 50], [20, 40, 60, 80, 100], [30, 60, 90, 120, 150],
                      [40, 80, 120, 160, 200], [50, 100, 150, 200, 250]])
    out = correlate(image, builtin_registry().get("sobel-x").weights, padding="valid")
    assert out[0, 0] == 160
    # by hand: x[r, c] = 10 (r+1)(c+1), so x[r, c+2] - x[r, c] = 20 (r+1); rows u..u+2 weighted
    # 1, 2, 1 give 20 ((u+1) + 2(u+2) + (u+3)) = 80u + 160, the same along each row
    np.testing.assert_array_equal(out, [[160] * 3, [240] * 3, [320] * 3])


def test_seed_edge_lab_with_two_tap_kernel():
    image = np.zeros((5, 5), np.float32)
    image[1:4, 2:] = 1
    out = correlate(image, [[-1, 1]], padding="valid")
    expected = np.zeros((5, 4))
    expected[1:4, 1] = 1
    np.testing.assert_array_equal(out, expected)


def test_correlate1d_stride_dilation_padding():
    x = np.arange(10.0)
    # y[n] = 1 * x[2n - 1] + 10 * x[2n + 1] (x[-1] = 0 from the zero padding);
    # length floor((10 + 1 + 1 - 3) / 2) + 1 = 5
    y = correlate1d(x, [1, 10], stride=2, dilation=2, padding="1,1", border="zero")
    np.testing.assert_array_equal(y, [0 + 10, 1 + 30, 3 + 50, 5 + 70, 7 + 90])


# --- dtypes and validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype,expected",
    [(np.uint8, np.float32), (np.uint16, np.float32), (np.int16, np.float32), (np.float16, np.float32),
     (np.float32, np.float32), (np.float64, np.float64), (np.int32, np.float64), (np.bool_, np.float32)],
)
def test_dtype_policy(dtype, expected):
    assert float_dtype(dtype) == expected
    out = correlate(np.ones((4, 4), dtype), [[1.0]])
    assert out.dtype == expected


def test_identity_kernel_returns_16bit_values_exactly(photos):
    image = photos["camera16.png"]
    assert image.dtype == np.uint16
    out = correlate(image, builtin_registry().get("identity").weights)
    np.testing.assert_array_equal(out, image)


def test_empty_output_is_an_error_showing_the_formula():
    with pytest.raises(ShapeError, match=r"floor\(\(4 \+ 0 \+ 0 - 5\) / 1\) \+ 1"):
        correlate(np.ones((4, 4)), np.ones((5, 5)), padding="valid")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(stride=0), "stride must be at least 1"),
        (dict(dilation="2x0"), "dilation must be at least 1"),
        (dict(padding=-1), "padding must not be negative"),
        (dict(padding="1,2,3"), "has 3 numbers"),
        (dict(padding="sometimes"), "not understood"),
        (dict(border="mirror"), "means different things"),
        (dict(border="bounce"), "unknown mode"),
        (dict(border="reflect=3"), "only 'constant' takes a value"),
    ],
)
def test_bad_parameters_raise_parameter_errors(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        correlate(np.ones((5, 5)), np.ones((3, 3)), **kwargs)


@pytest.mark.parametrize("kernel", [np.ones((2, 2, 2)), np.array([[1.0, np.nan]]), np.zeros((0, 3))])
def test_bad_kernels_raise_kernel_errors(kernel):
    with pytest.raises(KernelError):
        correlate(np.ones((5, 5)), kernel)


def test_bad_images_are_rejected():
    with pytest.raises(ParameterError, match="2-D"):
        correlate(np.ones((2, 3, 4, 5)), np.ones((3, 3)))
    with pytest.raises(ParameterError, match="empty"):
        correlate(np.ones((0, 3)), np.ones((3, 3)))


def test_every_alias_names_a_mode_and_mirror_is_refused():
    for alias, mode in BORDER_ALIASES.items():
        assert mode in BORDER_MODES
        assert Border.parse(alias).mode == (mode if mode != "zero" else "constant")
    assert "mirror" not in BORDER_ALIASES
    assert Border.parse("constant=128") == Border("constant", 128.0)
    assert str(Border.parse("zero")) == "zero"


def test_input_is_not_modified(rng):
    image = rng.random((8, 8)).astype(np.float32)
    before = image.copy()
    correlate(image, np.ones((3, 3)), border="constant=5")
    np.testing.assert_array_equal(image, before)


# --- every path gives the same numbers -------------------------------------------------------

PATHS = ["direct", "separable", "separable-gemm", "gemm", "fft"]


def _rank1(rng, shape):
    return np.outer(rng.standard_normal(shape[0]), rng.standard_normal(shape[1]))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("stride,dilation,padding", GEOMETRIES[::2])
def test_each_path_against_pad_then_slice(rng, path, border, stride, dilation, padding):
    from convcli.engine import plan_geometry

    image = rng.random((37, 41)) * 10
    kernel = _rank1(rng, (3, 4)) if path.startswith("separable") else rng.standard_normal((3, 4))
    ours = correlate(image, kernel, stride=stride, dilation=dilation, padding=padding, border=border,
                     engine=path, threads=2)
    pads = plan_geometry(image.shape, kernel.shape, stride=stride, dilation=dilation, padding=padding).padding
    assert_close(ours, reference(image, kernel, stride, dilation, pads, border))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("border", ["reflect", "replicate", "reflect101", "wrap", "zero"])
def test_each_path_on_a_real_photo_matches_ndimage(photos, path, border):
    image = photos["coffee.jpg"]
    for name in ("sobel-x", "gaussian-blur-5", "laplacian"):
        kernel = builtin_registry().get(name).weights
        out = correlate(image, kernel, border=border, engine=path, threads=2)
        assert out.dtype == np.float32
        assert_close(out, ndi_correlate_same(image, kernel, border))


@pytest.mark.parametrize("path", ["direct", "gemm", "fft"])
@pytest.mark.parametrize("size", [(2, 2), (6, 5), (15, 15), (31, 31)])
def test_dense_kernels_of_any_size_on_every_path(rng, path, size):
    image = (rng.random((70, 90, 3)) * 255).astype(np.float32)
    kernel = rng.standard_normal(size)
    kernel /= np.abs(kernel).sum()
    for border in ("reflect", "wrap"):
        assert_close(correlate(image, kernel, border=border, engine=path), ndi_correlate_same(image, kernel, border))


def test_rank_two_kernel_on_the_separable_path(rng):
    kernel = _rank1(rng, (5, 5)) + _rank1(rng, (5, 5))
    image = rng.random((30, 40, 2)).astype(np.float32)
    from convcli.engine import plan

    assert plan(image.shape, kernel, engine="auto").kernel.rank == 2
    assert_close(correlate(image, kernel, engine="separable"), ndi_correlate_same(image, kernel, "reflect"))


def test_separable_path_refuses_a_full_rank_kernel(rng):
    with pytest.raises(ParameterError, match="rank 5"):
        correlate(np.ones((9, 9)), rng.standard_normal((5, 5)), engine="separable")


def test_single_and_multi_threaded_results_are_identical(photos):
    image = photos["astronaut.png"]
    for name in ("sobel-x", "gaussian-blur-5", "motion-blur"):
        k = builtin_registry().get(name).weights
        np.testing.assert_array_equal(correlate(image, k, threads=1), correlate(image, k, threads=2))


def test_identity_is_exact_on_every_exact_path(photos):
    image = photos["camera16.png"]
    k = builtin_registry().get("identity").weights
    for path in ("direct", "separable", "separable-gemm", "gemm"):
        np.testing.assert_array_equal(correlate(image, k, engine=path), image)


def test_the_planner_picks_sensible_paths():
    from convcli.engine import plan

    reg = builtin_registry()
    assert plan((4096, 4096, 3), reg.get("sobel-x").weights).path in ("separable", "direct")
    assert plan((4096, 4096, 3), np.ones((31, 31))).path in ("separable", "separable-gemm", "fft")
    assert plan((4096, 4096, 3), np.ones((15, 15))).path.startswith("separable")
    # many taps per pass: both passes as banded products
    assert plan((4096, 4096, 3), np.outer(*[np.hanning(17)] * 2)).path == "separable-gemm"
    # a 5-tap horizontal pass as one einsum beats the transposes of banded products
    g5 = reg.get("gaussian-blur-5").weights
    assert plan((4096, 4096, 3), g5).path == "separable"
    assert plan((1024, 1024, 3), g5).path == "separable"
    # a narrow image: 32 bands of 64 rows, whose fixed cost outweighs all the arithmetic
    narrow = plan((2048, 8, 3), g5, engine="separable-gemm").estimates
    assert narrow["separable-gemm"] > 32 * 0.08 > narrow["separable"]
    rng = np.random.default_rng(1)
    assert plan((4096, 4096, 3), rng.standard_normal((31, 31))).path == "fft"
    assert plan((1024, 1024, 3), rng.standard_normal((7, 7)), stride=2).path in ("gemm", "direct")
    p = plan((100, 100), np.ones((3, 3)), engine="gemm", threads=1)
    assert p.path == "gemm" and "forced" in p.reason and set(p.estimates) >= {"direct", "gemm", "fft"}
    with pytest.raises(ParameterError, match="unknown engine"):
        plan((10, 10), np.ones((3, 3)), engine="magic")
    with pytest.raises(ParameterError, match="threads"):
        correlate(np.ones((5, 5)), np.ones((3, 3)), threads=0)


def test_the_planner_choice_does_not_depend_on_the_thread_count():
    """The same command with another --threads must write the same bytes: so the same path."""
    from convcli.engine import plan

    rng = np.random.default_rng(3)
    reg = builtin_registry()
    kernels = [reg.get(n).weights for n in ("sobel-x", "gaussian-blur-5", "sharpen", "laplacian")]
    kernels += [rng.standard_normal((k, k)) for k in (3, 7, 15, 21, 31)]
    kernels += [np.outer(*[np.hanning(n)] * 2) for n in (9, 17, 33)] + [np.ones((31, 31))]
    for shape in [(4096, 4096, 3), (1024, 1024, 3), (300, 200), (2048, 8, 3)]:
        for k in kernels:
            for stride in (1, 2):
                paths = {plan(shape, k, stride=stride, threads=t).path for t in (1, 2, 3, 8)}
                assert len(paths) == 1, (shape, k.shape, stride, paths)


def test_kernel_analysis_is_reused_and_read_only():
    from convcli.engine._plan import analyze

    k = np.outer([1.0, 2, 1], [1.0, 0, -1])
    info = analyze(k)
    assert analyze(k.copy()) is info and analyze(k, rtol=1e-7) is not info
    assert not info.weights.flags.writeable and not info.factors[0][0].flags.writeable
    k[0, 0] = 5.0  # the caller's array changed: a new analysis, the old one untouched
    assert analyze(k) is not info and info.weights[0, 0] == 1.0 and analyze(k).rank == 2


def test_fft_sizes_match_scipy_next_fast_len():
    import scipy.fft as sfft

    from convcli.engine._plan import next_fast_len

    for n in [*range(1, 3000), 4093, 4097, 8191, 65537, 123457]:
        assert next_fast_len(n) == sfft.next_fast_len(n, real=True), n


def test_planning_and_filtering_without_fft_do_not_import_scipy_fft():
    """scipy.fft takes a quarter of a second to import: only the FFT path may pay it."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from convcli.engine import correlate, plan\n"
        "img = np.random.default_rng(0).random((300, 400, 3), dtype=np.float32)\n"
        "p = plan(img.shape, np.ones((31, 31)))\n"
        "correlate(img, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]))\n"
        "before = 'scipy.fft' in sys.modules\n"
        "correlate(img, np.random.default_rng(1).random((31, 31)), engine='fft')\n"
        "print(before, 'scipy.fft' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]


def test_separable_factors_give_the_horizontal_pass_unit_weights():
    """The scale moves into the vertical factor, so the horizontal shifted adds skip a
    multiply; the factors still rebuild the kernel (exactly, for integer kernels)."""
    from convcli.engine._plan import analyze

    reg = builtin_registry()
    for name in ("gaussian-blur-5", "sobel-x", "box-blur", "sharpen", "laplacian"):
        k = reg.get(name).weights
        info = analyze(k)
        rebuilt = sum(np.outer(c, r) for c, r in info.factors)
        if info.rank == 1 and np.array_equal(k, np.round(k * 16) / 16):
            np.testing.assert_array_equal(rebuilt, k)  # exact: dyadic weights
        else:
            np.testing.assert_allclose(rebuilt, k, atol=1e-12)
        for _, row in info.factors:
            mags, counts = np.unique(np.abs(row[row != 0]), return_counts=True)
            assert mags[np.argmax(counts)] == 1.0, (name, row)
    g = np.outer([1.0, 4, 6, 4, 1], [1.0, 4, 6, 4, 1]) / 256.0 * (1 + 1e-12)  # through the SVD
    (col, row), = analyze(g).factors
    assert row[0] == row[-1] == 1.0
    np.testing.assert_allclose(np.outer(col, row), g, rtol=1e-12)


@pytest.mark.parametrize("path", ["separable", "separable-gemm", "gemm", "direct"])
@pytest.mark.parametrize("single_blas", [True, False])
def test_the_same_bits_whatever_the_number_of_threads(photos, monkeypatch, path, single_blas):
    """Band boundaries move with the thread count, but no output's arithmetic does (a
    banded product adds the same non-zero terms in the same order, the zeros exactly), and
    whether a pass runs as products depends on BLAS's threads, never on ours: the numbers
    agree to the last bit, so batches with -j 1 and -j 2 write the same files."""
    from convcli.kernels import resolve_kernel

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if single_blas:
            monkeypatch.setenv(var, "1")
        else:
            monkeypatch.delenv(var, raising=False)

    image = photos["astronaut.png"]
    for spec in ("gaussian:sigma=2", "sobel-x", "box:5"):
        k = resolve_kernel(spec).weights
        outs = [correlate(image, k, engine=path, threads=t) for t in (1, 2, 3, 5)]
        for other in outs[1:]:
            np.testing.assert_array_equal(outs[0], other)


def test_all_zero_kernel_gives_zeros():
    np.testing.assert_array_equal(correlate(np.ones((6, 7, 3)), np.zeros((3, 3))), np.zeros((6, 7, 3)))


def test_uint8_input_is_converted_per_band_not_up_front(photos):
    # same numbers whether the caller converts first or not
    image = photos["chelsea.jpg"]
    k = builtin_registry().get("sharpen").weights
    np.testing.assert_array_equal(correlate(image, k), correlate(image.astype(np.float32), k))


@pytest.mark.parametrize("shape", [(6, 6), (7, 1), (1, 9), (31, 31), (6, 13)])
@pytest.mark.parametrize("border", BORDERS)
def test_box_kernels_by_doubling_sums(rng, shape, border):
    from convcli.engine import plan

    image = (rng.random((45, 52, 3)) * 255).astype(np.float32)
    kernel = np.full(shape, -1.0 / (shape[0] * shape[1]))
    assert plan(image.shape, kernel).kernel.rank == 1
    for stride in (1, 2):
        ours = correlate(image, kernel, border=border, engine="separable", stride=stride)
        full = correlate(image, kernel, border=border, engine="direct", stride=stride)
        assert_close(ours, full)
    assert_close(correlate(image, kernel, border=border, engine="separable"), ndi_correlate_same(image, kernel, border))


def test_box_sums_stay_accurate_on_wide_16bit_rows(rng):
    image = rng.integers(0, 65536, size=(3, 20000)).astype(np.uint16)
    kernel = np.ones((1, 31)) / 31
    assert_close(correlate(image, kernel, engine="separable"), ndi_correlate_same(image, kernel, "reflect"), rel=1e-6)



@pytest.mark.parametrize("path", ["direct", "gemm", "fft", "separable", "separable-gemm"])
@pytest.mark.parametrize("size", [31, 63])
def test_large_kernels_stay_within_float32_rounding(photos, path, size):
    image = photos["astronaut.png"][:96, :128]
    rng = np.random.default_rng(size)
    if path.startswith("separable"):
        kernel = np.outer(rng.random(size), rng.random(size))
    else:
        kernel = rng.random((size, size))
    kernel /= kernel.sum()
    for border in ("reflect", "zero"):
        assert_close(correlate(image, kernel, border=border, engine=path), ndi_correlate_same(image, kernel, border))


def test_a_large_box_by_doubling_agrees_with_ndimage(photos):
    image = photos["astronaut.png"]
    kernel = np.ones((101, 101)) / 101**2
    assert_close(correlate(image, kernel), ndi_correlate_same(image, kernel, "reflect"))


# --- banded products (separable passes by BLAS) ----------------------------------------------


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("step,dilation", [(1, 1), (2, 1), (1, 2), (3, 2)])
@pytest.mark.parametrize("m,q", [(1, 4), (7, 4), (8, 4), (13, 16), (5, 1)])
def test_banded_product_is_a_1d_correlation_down_the_rows(rng, transposed, step, dilation, m, q):
    from convcli.engine._paths import banded_mats, banded_product

    taps = rng.standard_normal(5)
    ke = dilation * 4 + 1
    src = rng.standard_normal(((m - 1) * step + ke, 11))
    expected = np.array([[sum(taps[i] * src[y * step + i * dilation, x] for i in range(5)) for x in range(11)]
                         for y in range(m)])
    mats = banded_mats(taps, m, q, step, dilation, np.float64)
    wide = np.full((11 + 6, m) if transposed else (m, 11 + 6), np.nan)  # a view with a row stride
    dst = wide[3:-3] if transposed else wide[:, 3:-3]
    banded_product(mats, src, dst, step, transposed=transposed)
    np.testing.assert_allclose(dst.T if transposed else dst, expected, rtol=1e-12, atol=1e-12)
    assert np.isnan(wide[:3]).all() if transposed else np.isnan(wide[:, :3]).all()  # nothing written outside


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dilation", [1, 3])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("chunk", [2048, 16, 23])
def test_shifted_sum_is_a_1d_correlation_along_the_rows(rng, monkeypatch, dtype, dilation, channels, chunk):
    # rows go through the taps in pieces of `chunk` samples, the rest in one piece after
    from convcli.engine import _paths
    from convcli.engine._paths import shifted_sum

    monkeypatch.setattr(_paths, "SUM_CHUNK", chunk)

    taps = rng.standard_normal(5)
    wo = 23
    src = rng.standard_normal((6, wo + 5 * dilation + 2, channels)).astype(dtype)
    expected = sum(taps[j] * src[:, j * dilation : j * dilation + wo].astype(float) for j in range(5))
    dst = np.full((6, wo, channels), np.nan, dtype)
    assert shifted_sum(src, dst, taps, dilation)
    np.testing.assert_allclose(dst, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
    # taps [0, 0, w0 .. w3]: an offset of 2, the first two samples never read (NaN there)
    src[:, : 2 * dilation] = np.nan
    assert shifted_sum(src, dst, taps[:4], dilation, offset=2)
    expected = sum(taps[j] * src[:, (j + 2) * dilation : (j + 2) * dilation + wo].astype(float) for j in range(4))
    np.testing.assert_allclose(dst, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
    assert not np.isnan(dst).any()
    # arrays that do not allow the strided view are left to the caller
    assert not shifted_sum(src.astype(np.float16), dst, taps, dilation)
    assert not shifted_sum(src, np.empty((6, wo + 2, channels), dtype)[:, 1:-1], taps, dilation)


def test_the_horizontal_pass_runs_as_one_einsum_only_where_it_pays():
    from convcli.engine._plan import einsum_row

    g5 = np.array([1.0, 3.45, 5.22, 3.45, 1.0])
    assert einsum_row(g5, 1, 1)
    assert einsum_row(np.hanning(17), 1, 1)  # zeros at the ends are left out, not multiplied
    assert not einsum_row(g5, 1, 2)  # a column stride: shifted adds on the kept columns only
    assert not einsum_row(np.array([-1.0, 0.0, 1.0]), 1, 1)  # one subtraction is cheaper
    assert not einsum_row(np.array([1.0, 2, 0, -2, -1]), 1, 1)  # 0 x NaN would leak a NaN
    assert not einsum_row(np.ones(31), 1, 1)  # a box: sums by doubling


@pytest.mark.parametrize("path", ["separable", "separable-gemm"])
def test_a_nan_stays_in_its_window_through_a_gaussian(rng, path):
    """The Gaussian's horizontal pass multiplies every tap (one einsum): a NaN reaches the
    outputs whose window holds it, no more."""
    image = rng.random((130, 300, 3)).astype(np.float32)
    image[60, 100, 1] = np.nan
    image[3, 299, 0] = np.inf
    k = builtin_registry().get("gaussian-blur-5").weights
    want = correlate(image, k, engine="direct", threads=1)
    out = correlate(image, k, engine=path, threads=2)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(want))
    assert np.isnan(out).sum() == 25 and np.isinf(out).sum() == 5 * 3
    ok = np.isfinite(want)
    assert_close(out[ok], want[ok])


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("stride,dilation,padding", GEOMETRIES)
@pytest.mark.parametrize("single_blas", [True, False])
def test_separable_path_with_and_without_vertical_products(rng, monkeypatch, border, stride, dilation, padding,
                                                           single_blas):
    # BLAS on one thread (as the command line sets it): the vertical passes run as banded
    # products; otherwise as shifted adds. The same numbers either way.
    from convcli.engine import plan_geometry
    from convcli.engine._plan import vertical_by_gemm
    from convcli.engine._run import blas_is_single_threaded

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if single_blas:
            monkeypatch.setenv(var, "1")
        else:
            monkeypatch.delenv(var, raising=False)
    assert blas_is_single_threaded() == single_blas

    col, row = np.array([1.0, 2.0, 1.0, 0.5]), np.array([-1.0, 0.0, 1.0])
    assert vertical_by_gemm(col, 1, 1)
    kernel = np.outer(col, row)
    image = (rng.random((37, 41, 3)) * 255).astype(np.uint8)
    ours = correlate(image, kernel, stride=stride, dilation=dilation, padding=padding, border=border,
                     engine="separable", threads=1)
    pads = plan_geometry(image.shape, kernel.shape, stride=stride, dilation=dilation, padding=padding).padding
    expected = np.stack([reference(image[..., c].astype(float), kernel, stride, dilation, pads, border)
                         for c in range(3)], axis=-1)
    assert_close(ours, expected)
    # a non-contiguous float view takes the converting branch
    view = image.astype(np.float32)[:, ::-1][:, ::-1]
    assert_close(correlate(view[:, :, ::-1], kernel, stride=stride, dilation=dilation, padding=padding,
                           border=border, engine="separable", threads=1), expected[:, :, ::-1])


def test_separable_paths_on_a_real_photo_with_one_and_two_threads(photos):
    image = photos["astronaut.png"]
    kernel = builtin_registry().get("gaussian-blur-5").weights
    expected = ndi_correlate_same(image, kernel, "replicate")
    for path in ("separable", "separable-gemm"):
        for threads in (1, 2):
            assert_close(correlate(image, kernel, border="replicate", engine=path, threads=threads), expected)


@pytest.mark.parametrize("name", ["sobel-x", "gaussian-blur-5", "dense-7", "dense-31"])
def test_nan_stays_inside_its_window_under_auto(rng, name):
    from convcli.engine import plan

    kernel = rng.random((int(name[6:]),) * 2) if name.startswith("dense") else builtin_registry().get(name).weights
    image = rng.random((64, 3000, 3)).astype(np.float32)
    # on finite data these kernels take a path with matrix products or an FFT
    assert plan(image.shape, kernel).path in ("separable", "separable-gemm", "gemm", "fft")
    image[30, 1500, 1] = np.nan
    image[5, 7, 0] = np.inf
    for threads in (1, 2):
        out = correlate(image, kernel, threads=threads)
        direct = correlate(image, kernel, engine="direct")
        np.testing.assert_array_equal(np.isnan(out), np.isnan(direct))
        assert 0 < np.isnan(out).sum() <= 2 * kernel.size  # the NaN's window and the inf's
        finite = np.isfinite(direct)
        assert_close(out[finite], direct[finite])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("border", ["wrap", "reflect", "constant=2"])
def test_every_path_keeps_nan_inside_its_window(rng, path, border):
    """Bands and tiles that hold NaN or infinity are computed by shifted adds on every path:
    in a product or an FFT, 0 x NaN would spread it. With wrap, the top band reads the
    bottom rows, so a NaN in the last row must show in the first rows too."""
    kernel = np.outer([1.0, 4, 6, 4, 1], [1.0, 2, 0, -2, -1])  # rank 1, a zero column
    image = rng.random((150, 700, 3)).astype(np.float32)
    image[149, 350, 2] = np.nan
    image[70, 3, 0] = np.inf
    image[71, 690, 1] = -np.inf
    direct = correlate(image, kernel, border=border, engine="direct", threads=1)
    for stride in (1, 2):
        want = direct[::stride, ::stride] if stride == 1 else correlate(
            image, kernel, border=border, engine="direct", stride=stride, threads=1)
        for threads in (1, 2):
            out = correlate(image, kernel, border=border, engine=path, stride=stride, threads=threads)
            np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
            np.testing.assert_array_equal(np.isinf(out), np.isinf(want))
            ok = np.isfinite(want)
            assert_close(out[ok], want[ok])
    if border == "wrap":
        # (the centre column has weight 0: the NaN shows in columns 348, 349, 351 and 352)
        assert np.isnan(direct[0, 351, 2]) and np.isnan(direct[-1, 351, 2]) and not np.isnan(direct[0, 350, 2])
    assert np.isnan(direct).sum() <= 3 * kernel.size


@pytest.mark.parametrize("channels,dtype", [(3, np.uint8), (4, np.float64), (1, np.float32)])
@pytest.mark.parametrize("stride,dilation", [((2, 2), (1, 1)), ((1, 3), (1, 2)), ((3, 2), (2, 1)), ((2, 4), (1, 2)),
                                             ((1, 2), (2, 2)), ((2, 2), (1, 3)), ((1, 1), (1, 2))])
@pytest.mark.parametrize("tile_bytes", [None, 2000])
@pytest.mark.parametrize("border", ["reflect101", "constant=7.5", "wrap"])
def test_gemm_path_with_strides_on_colour_images(rng, monkeypatch, channels, dtype, stride, dilation, tile_bytes,
                                                 border):
    # strided columns go through the regrouping into one plane per (phase, channel), straight
    # from the image for bands that need no row padding (the columns past the edges by the
    # border rule), from a padded copy for the others; the shifted terms are summed through
    # one strided view; small tiles split the width
    from convcli.engine import _plan, plan_geometry

    if tile_bytes:
        monkeypatch.setattr(_plan, "GEMM_TILE_BYTES", tile_bytes)
    image = (rng.random((150, 57, channels)) * 200).astype(dtype)
    kernel = rng.standard_normal((5, 7))
    ours = correlate(image, kernel, stride=stride, dilation=dilation, border=border, engine="gemm", threads=2)
    pads = plan_geometry(image.shape, kernel.shape, stride=stride, dilation=dilation, padding="same").padding
    expected = np.stack([reference(image[..., c].astype(float), kernel, stride, dilation, pads, border)
                         for c in range(channels)], axis=-1)
    assert_close(ours, expected)
    # a view with a row stride (not contiguous): always through the padded copy
    wide = np.zeros((150, 60, channels), dtype)
    wide[:, :57] = image
    assert_close(correlate(wide[:, :57], kernel, stride=stride, dilation=dilation, border=border, engine="gemm"),
                 expected)
