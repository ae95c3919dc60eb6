"""Banks, the facts behind `kernels show`, and the heat map: against scipy and hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from convcli.banks import Bank, apply_bank, combine_maps
from convcli.errors import KernelError
from convcli.kernelinfo import describe, response_range
from convcli.kernels import builtin_registry, resolve_kernel, resolve_spec

from .conftest import ndi_correlate_same


def test_combine_by_hand():
    a = np.array([[3.0, -1.0, 0.0]])
    b = np.array([[-4.0, 2.0, 0.0]])
    np.testing.assert_array_equal(combine_maps([a, b], "magnitude"), [[5.0, np.sqrt(5.0), 0.0]])
    np.testing.assert_array_equal(combine_maps([a, b], "max"), [[4.0, 2.0, 0.0]])
    np.testing.assert_array_equal(combine_maps([a, b], "sum"), [[7.0, 3.0, 0.0]])
    stacked = combine_maps([a, b], "stack")
    assert stacked.shape == (1, 3, 2)
    np.testing.assert_array_equal(stacked[..., 1], b)
    with pytest.raises(KernelError, match="combine 'mean'"):
        combine_maps([a, b], "mean")


@pytest.mark.parametrize("name", ["sobel", "scharr", "prewitt"])
def test_gradient_magnitude_banks_equal_scipy(photos, name):
    image = photos["camera.png"].astype(np.float64)
    gx = ndi.correlate(image, builtin_registry().get(f"{name}-x").weights, mode="reflect")
    gy = ndi.correlate(image, builtin_registry().get(f"{name}-y").weights, mode="reflect")
    out = apply_bank(photos["camera.png"], resolve_spec(name))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.hypot(gx, gy), rtol=1e-6, atol=1e-3)


def test_sobel_magnitude_matches_scipy_sobel_on_a_colour_photo(photos):
    # scipy.ndimage.sobel(axis) is the Sobel derivative along that axis; hypot of both is the magnitude
    image = photos["astronaut.png"].astype(np.float64)
    expected = np.stack(
        [np.hypot(ndi.sobel(image[..., c], axis=0), ndi.sobel(image[..., c], axis=1)) for c in range(3)], axis=2
    )
    np.testing.assert_allclose(apply_bank(image, resolve_spec("sobel")), expected, atol=1e-9)


def test_roberts_bank_with_even_kernels_and_geometry(rng):
    image = rng.random((17, 22)) * 255
    bank = resolve_spec("roberts")
    a = ndi_correlate_same(image, bank.kernels[0].weights, "replicate")
    b = ndi_correlate_same(image, bank.kernels[1].weights, "replicate")
    np.testing.assert_allclose(apply_bank(image, bank, border="replicate"), np.hypot(a, b), atol=1e-9)
    strided = apply_bank(image, bank, stride=2, padding="valid", border="replicate")
    assert strided.shape == (8, 11)


@pytest.mark.parametrize("mode", ["max", "sum", "stack"])
def test_other_combine_modes_against_scipy(rng, mode):
    image = rng.random((3, 9, 11)).transpose(1, 2, 0) * 255     # (H, W, C)
    bank = resolve_spec(f"sobel:{mode}")
    maps = [np.stack([ndi.correlate(image[..., c], k.weights, mode="reflect") for c in range(3)], axis=2)
            for k in bank.kernels]
    out = apply_bank(image, bank)
    if mode == "stack":
        assert out.shape == (9, 11, 3, 2)          # (H, W, C, K)
        np.testing.assert_allclose(out, np.stack(maps, axis=-1), atol=1e-9)
    elif mode == "max":
        np.testing.assert_allclose(out, np.maximum(np.abs(maps[0]), np.abs(maps[1])), atol=1e-9)
    else:
        np.testing.assert_allclose(out, np.abs(maps[0]) + np.abs(maps[1]), atol=1e-9)


def test_convolve_flips_every_member(rng):
    image = rng.random((10, 10)) * 255
    bank = resolve_spec("sobel:stack")
    flipped = apply_bank(image, bank, convolve=True)
    np.testing.assert_allclose(flipped, -apply_bank(image, bank), atol=1e-9)  # Sobel is antisymmetric


def test_bank_offset_is_added_after_combining():
    from convcli.kernels import adjust

    image = np.tile(np.arange(6.0) * 10, (6, 1))                              # gx = 80, gy = 0
    out = apply_bank(image, adjust(resolve_spec("sobel"), offset=7.0), padding="valid")
    np.testing.assert_array_equal(out, np.full((4, 4), 87.0))


def test_bank_validation():
    x, r = resolve_kernel("sobel-x"), resolve_kernel("roberts-x")
    with pytest.raises(KernelError, match="must share one shape"):
        Bank("b", (x, r))
    with pytest.raises(KernelError, match="combine 'blend'"):
        Bank("b", (x, x), combine="blend")
    with pytest.raises(KernelError, match="listed twice"):
        Bank("b", (x, x))
    with pytest.raises(KernelError, match="at least one"):
        Bank("b", ())
    assert resolve_spec("sobel").with_combine("STACK").spec == "sobel:combine=stack"


# --- describe: the facts behind `kernels show` -------------------------------------------------


@pytest.mark.parametrize("name", sorted(builtin_registry().kernels))
def test_response_range_is_reached_by_the_extreme_patches(name):
    k = builtin_registry().get(name)
    info = describe(k)
    lo, hi = info.response[8]
    w = info.matrix
    # the brightest pixels under the negative weights (and 0 elsewhere) give the minimum, and so on
    low_patch = np.where(w < 0, 255.0, 0.0)
    high_patch = np.where(w > 0, 255.0, 0.0)
    assert lo == pytest.approx(float((w * low_patch).sum()) + k.offset, abs=1e-9)
    assert hi == pytest.approx(float((w * high_patch).sum()) + k.offset, abs=1e-9)
    rng = np.random.default_rng(1)
    for _ in range(50):   # and no patch goes beyond
        v = float((w * rng.integers(0, 256, w.shape)).sum())
        assert lo - 1e-9 <= v <= hi + 1e-9


def test_describe_by_hand():
    info = describe(resolve_kernel("sobel-x"))
    assert info.response == {8: (-1020.0, 1020.0), 16: (-262140.0, 262140.0)}
    assert info.zero_sum and not info.normalized and info.rank == 1 and info.anchor == (1, 1)
    assert info.map == "abs" and info.total == 0.0
    info = describe(resolve_kernel("box-blur"))
    assert info.normalized and info.response[8] == (0.0, 255.0) and info.map == "clip"
    info = describe(resolve_kernel("roberts-x"))
    assert info.anchor == (0, 0) and info.rank == 2 and info.factors is None
    info = describe(resolve_kernel("1 2 3; 4 5 6"), convolve=True)
    np.testing.assert_array_equal(info.matrix, [[6, 5, 4], [3, 2, 1]])
    assert info.to_dict()["as_written"] == [[6, 5, 4], [3, 2, 1]]
    assert info.imagemagick == "3x2: 6,5,4 3,2,1"


def test_describe_a_bank():
    info = describe(resolve_spec("sobel"))
    assert [m.kernel.name for m in info.members] == ["sobel-x", "sobel-y"]
    assert info.response[8][0] == 0 and info.response[8][1] == pytest.approx(np.hypot(1020, 1020))
    assert describe(resolve_spec("sobel:max")).response[8][1] == 1020
    assert describe(resolve_spec("sobel:sum")).response[8][1] == 2040
    assert describe(resolve_spec("sobel:stack")).response is None
    doc = info.to_dict()
    assert doc["kind"] == "bank" and doc["combine"] == "magnitude" and len(doc["kernels"]) == 2


def test_response_range_by_hand():
    assert response_range(np.array([[1, -2]]), 10.0) == (-500.0, 265.0)
    assert response_range(np.array([[0.5]]), bits=16) == (0.0, 32767.5)


# --- the heat map --------------------------------------------------------------------------------


def _cell_colour(img, info, r, c):
    """Colour near the top-left corner of cell (r, c), away from its text."""
    arr = np.asarray(img)
    # find the grid: the first row and column whose pixels are the grid colour
    h, w = info.matrix.shape
    grey = np.all(arr == (200, 200, 200), axis=2)
    rows = np.flatnonzero(grey.sum(axis=1) > 60)      # grid lines are long grey runs; text is not
    cols = np.flatnonzero(grey.sum(axis=0) > 60)
    top, left = rows[0], cols[0]
    cell = (cols[-1] - left + 1) // w
    return tuple(int(v) for v in arr[top + r * cell + 4, left + c * cell + 4])


def test_plot_colours_signed_cells_diverging():
    from convcli.kernelplot import NEGATIVE, POSITIVE, ZERO, plot

    info = describe(resolve_kernel("sobel-x"))
    img = plot(info)
    assert img.mode == "RGB"
    assert _cell_colour(img, info, 1, 2) == POSITIVE          # +2, the largest |weight|
    assert _cell_colour(img, info, 1, 0) == NEGATIVE          # -2
    assert _cell_colour(img, info, 0, 1) == ZERO              # 0
    r, g, b = _cell_colour(img, info, 0, 2)                   # +1: half-way to red
    assert r > b and g < 255
    r, g, b = _cell_colour(img, info, 2, 0)                   # -1: half-way to blue
    assert b > r


def test_plot_writes_values_and_scales_to_large_kernels():
    from convcli.kernelplot import plot

    small = plot(resolve_kernel("gaussian-blur"))
    big = plot(resolve_kernel("gaussian:sigma=10"))             # 61x61
    assert big.size[0] <= 700 and big.size[1] <= 800
    # the centre of the blur's 3x3 is darkest: 0.25 of the largest weight is full red
    arr = np.asarray(small)
    assert (arr == (178, 24, 43)).all(axis=2).any()
    bank = plot(resolve_spec("sobel"))
    assert bank.size[0] > small.size[0]                          # two panels side by side


@pytest.mark.parametrize("name,axis", [("sobel-x", 1), ("sobel-y", 0)])
def test_the_readme_equivalence_with_scipy_sobel_keeps_the_sign(rng, name, axis):
    image = rng.random((9, 11)) * 255
    np.testing.assert_allclose(ndi.correlate(image, resolve_kernel(name).weights, mode="reflect"),
                               ndi.sobel(image, axis=axis, mode="reflect"), atol=1e-9)
