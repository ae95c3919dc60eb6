"""Parametric kernels against independent oracles: scipy.ndimage on impulses, hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi

from convcli.engine import correlate
from convcli.errors import KernelError
from convcli.kernels import resolve_kernel

from .conftest import ndi_correlate_same


def impulse(n: int) -> np.ndarray:
    x = np.zeros((n, n))
    x[n // 2, n // 2] = 1.0
    return x


@pytest.mark.parametrize("sigma", [0.5, 0.8, 1, 1.4, 2, 3.3])
def test_gaussian_equals_scipy_gaussian_filter_on_an_impulse(sigma):
    k = resolve_kernel(f"gaussian:sigma={sigma}")
    n = 2 * math.ceil(3 * sigma) + 1
    assert k.shape == (n, n)
    expected = ndi.gaussian_filter(impulse(n), sigma, mode="constant", radius=(n - 1) // 2)
    np.testing.assert_allclose(k.weights, expected, rtol=1e-13, atol=1e-17)
    assert k.weights.sum() == pytest.approx(1.0, abs=1e-14)


@pytest.mark.parametrize("sigma,size", [(2, 9), (1, 3), (0.7, 15)])
def test_gaussian_size_overrides_the_default(sigma, size):
    k = resolve_kernel(f"gaussian:sigma={sigma},size={size}")
    assert k.shape == (size, size)
    expected = ndi.gaussian_filter(impulse(size), sigma, mode="constant", radius=(size - 1) // 2)
    np.testing.assert_allclose(k.weights, expected, rtol=1e-13, atol=1e-17)
    assert k.weights.sum() == pytest.approx(1.0, abs=1e-14)


def test_gaussian_by_hand():
    # sigma 1, size 3: the 1-D samples are exp(-1/2), 1, exp(-1/2), normalised
    g = np.array([math.exp(-0.5), 1, math.exp(-0.5)])
    g /= g.sum()
    np.testing.assert_allclose(resolve_kernel("gaussian:sigma=1,size=3").weights, np.outer(g, g), rtol=1e-15)


def test_gaussian_blurs_an_image_like_scipy(photos):
    image = photos["camera.png"]
    k = resolve_kernel("gaussian:sigma=1.5")
    expected = ndi.gaussian_filter(image.astype(np.float64), 1.5, mode="reflect", radius=5)
    np.testing.assert_allclose(correlate(image, k.weights), expected, atol=1e-3)


@pytest.mark.parametrize("sigma", [1, 1.4, 2.5])
def test_log_is_scipys_gaussian_laplace_negated_and_made_zero_sum(sigma):
    k = resolve_kernel(f"log:sigma={sigma}")
    n = 2 * math.ceil(3 * sigma) + 1
    lap = ndi.gaussian_laplace(impulse(n), sigma, mode="constant", radius=(n - 1) // 2)
    expected = -lap - (-lap).mean()
    np.testing.assert_allclose(k.weights, expected, rtol=1e-11, atol=1e-15)
    assert abs(k.weights.sum()) < 1e-15
    c = n // 2
    assert k.weights[c, c] == k.weights.max() > 0          # bright blob -> positive, like `log`
    np.testing.assert_allclose(k.weights, k.weights.T, atol=1e-17)
    # flat areas give exactly nothing
    assert np.abs(correlate(np.full((20, 20), 200.0), k.weights)).max() < 1e-9


def test_dog_is_the_difference_of_two_scipy_gaussians():
    k = resolve_kernel("dog:sigma1=1,sigma2=2")
    n = 13  # from the larger sigma
    expected = (ndi.gaussian_filter(impulse(n), 1, mode="constant", radius=6)
                - ndi.gaussian_filter(impulse(n), 2, mode="constant", radius=6))
    assert k.shape == (n, n)
    np.testing.assert_allclose(k.weights, expected, rtol=1e-12, atol=1e-17)
    assert abs(k.weights.sum()) < 1e-15 and k.weights[6, 6] > 0
    assert resolve_kernel("dog:1,2").spec == "dog:sigma1=1,sigma2=2"


def test_unsharp_matches_its_definition_on_a_photo(photos):
    image = photos["coffee.jpg"].astype(np.float64)
    k = resolve_kernel("unsharp:sigma=1,amount=1.5")
    assert k.shape == (7, 7) and k.weights.sum() == pytest.approx(1.0, abs=1e-14)
    blurred = np.stack([ndi.gaussian_filter(image[..., c], 1, mode="reflect", radius=3) for c in range(3)], axis=2)
    expected = 2.5 * image - 1.5 * blurred
    np.testing.assert_allclose(correlate(image, k.weights), expected, atol=1e-9)
    # amount defaults to 1
    np.testing.assert_allclose(resolve_kernel("unsharp:sigma=1").weights.sum(), 1.0)
    assert resolve_kernel("unsharp:sigma=1").weights[3, 3] == pytest.approx(2 - resolve_kernel("gaussian:1").weights[3, 3])


@pytest.mark.parametrize("spec,shape,scale", [("box:7", (7, 7), "1/49"), ("box:3x5", (3, 5), "1/15"),
                                              ("box:size=4", (4, 4), "1/16"), ("box:1", (1, 1), "1/1")])
def test_box(spec, shape, scale):
    k = resolve_kernel(spec)
    assert k.shape == shape and k.scale_text == scale
    np.testing.assert_allclose(k.weights, np.full(shape, 1 / (shape[0] * shape[1])))


def test_box_equals_scipy_uniform_filter(photos):
    image = photos["camera.png"]
    out = correlate(image, resolve_kernel("box:5").weights, border="replicate")
    np.testing.assert_allclose(out, ndi.uniform_filter(image.astype(np.float64), 5, mode="nearest"), atol=1e-3)


# --- motion -----------------------------------------------------------------------------------


def test_motion_at_0_and_90_degrees_is_a_plain_line():
    np.testing.assert_array_equal(resolve_kernel("motion:length=9").weights, np.full((1, 9), 1 / 9))
    np.testing.assert_array_equal(resolve_kernel("motion:length=9,angle=90").weights, np.full((9, 1), 1 / 9))
    np.testing.assert_array_equal(resolve_kernel("motion:length=9,angle=180").weights, np.full((1, 9), 1 / 9))
    # an even length straddles the centre: half weights at both ends
    np.testing.assert_allclose(resolve_kernel("motion:length=4").weights, [[0.5, 1, 1, 1, 0.5]] / np.float64(4))


def test_motion_at_45_degrees_by_hand():
    # length 3 at 45 degrees: samples at t = -1, 0, 1 along (cos 45, sin 45), i.e. columns +-0.7071
    # and rows -+0.7071: each outer sample is spread bilinearly over a 2x2 block
    k = resolve_kernel("motion:length=3,angle=45").weights
    f = math.sqrt(0.5)
    expected = np.zeros((3, 3))
    expected[1, 1] += 1 / 3
    # t = 1: column 0.7071 (between 0 and 1), row -0.7071 (between -1 and 0)
    for r, wr in ((-1, f), (0, 1 - f)):
        for c, wc in ((0, 1 - f), (1, f)):
            expected[1 + r, 1 + c] += wr * wc / 3
            expected[1 - r, 1 - c] += wr * wc / 3
    np.testing.assert_allclose(k, expected, atol=1e-15)


@pytest.mark.parametrize("length,angle", [(9, 30), (15, -20), (7, 45), (10, 120), (25, 75)])
def test_motion_properties(length, angle):
    k = resolve_kernel(f"motion:length={length},angle={angle}").weights
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(k >= 0)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)   # symmetric about the centre
    rows, cols = np.indices(k.shape)
    y = -(rows - (k.shape[0] - 1) / 2)   # up is positive, as the angle is measured on screen
    x = cols - (k.shape[1] - 1) / 2
    assert (k * x).sum() == pytest.approx(0, abs=1e-12) and (k * y).sum() == pytest.approx(0, abs=1e-12)
    cov = np.array([[(k * x * x).sum(), (k * x * y).sum()], [(k * x * y).sum(), (k * y * y).sum()]])
    vals, vecs = np.linalg.eigh(cov)
    direction = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1])) % 180
    assert direction == pytest.approx(angle % 180, abs=0.5)
    # spread along the line: the samples' own variance ((L^2 - 1) / 12) plus the bilinear spread
    assert vals[1] == pytest.approx((length**2 - 1) / 12, abs=0.3)


# --- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,message",
    [
        ("gaussian:sigma=0", "sigma must be greater than 0"),
        ("gaussian:sigma=-1", "greater than 0"),
        ("gaussian:sigma=x", "is not a number"),
        ("gaussian:sigma=nan", "NaN"),
        ("gaussian:sigma=1,size=4", "odd whole number"),
        ("gaussian:sigma=1,size=2.5", "odd whole number"),
        ("gaussian:0x2", "looks like ImageMagick's RADIUSxSIGMA"),
        ("gaussian:size=5", "gaussian needs sigma"),
        ("gaussian:sigma=1,radius=2", "unknown parameter 'radius'"),
        ("gaussian:sigma=1,sigma=2", "given twice"),
        ("gaussian:1,2,3", "too many values"),
        ("gaussian:sigma=1,3", "without a name after named ones"),
        ("gaussian:sigma=1,,", "empty parameter"),
        ("box:0", "at least 1"),
        ("box:2.5", "whole number"),
        ("box:3x0", "at least 1"),
        ("motion:length=0", "whole number of pixels"),
        ("motion:length=9,angle=x", "not a number"),
        ("dog:sigma1=2,sigma2=2", "equal"),
        ("gaussian:sigma=200", "larger than 1025 per side"),
        ("box:2000", "--max-kernel-size 2000"),
        ("motion:length=3000", "larger than 1025"),
    ],
)
def test_parameter_errors_are_one_clear_line(spec, message):
    with pytest.raises(KernelError, match=message) as err:
        resolve_kernel(spec)
    assert "\n" not in str(err.value)


def test_the_size_limit_can_be_raised():
    from convcli.kernels import resolve_spec

    assert resolve_spec("box:1100", max_side=1100).shape == (1100, 1100)


def test_generated_kernels_carry_their_spec_map_and_tags():
    for spec, map_ in [("gaussian:sigma=2", "clip"), ("log:sigma=1.4", "abs"), ("dog:1,2", "abs"),
                       ("motion:length=9,angle=30", "clip"), ("unsharp:sigma=1,amount=1.5", "clip"), ("box:7", "clip")]:
        k = resolve_kernel(spec)
        assert k.map == map_ and k.tags and k.source == "generated"
        assert ":" not in k.name and "/" not in k.name       # they name output files
        assert resolve_kernel(k.spec).spec == k.spec         # the canonical spec reproduces the kernel
        np.testing.assert_array_equal(resolve_kernel(k.spec).weights, k.weights)


def test_generated_gaussian_applied_through_the_engine_matches_ndimage(rng):
    image = rng.random((31, 40)) * 255
    k = resolve_kernel("gaussian:sigma=2")
    for border in ("reflect", "replicate", "reflect101", "wrap"):
        np.testing.assert_allclose(correlate(image, k.weights, border=border),
                                   ndi_correlate_same(image, k.weights, border), atol=1e-9)
