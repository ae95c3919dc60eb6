"""Output maps on known values."""

from __future__ import annotations

import numpy as np
import pytest

from convcli.errors import ParameterError
from convcli.output import auto_map, map_values

VALUES = np.array([-300.0, -20.0, -0.4, 0.0, 10.5, 127.6, 254.5, 300.0])


def test_clip_rounds_and_clips_and_counts():
    m = map_values(VALUES, "clip")
    np.testing.assert_array_equal(m.data, [0, 0, 0, 0, 10, 128, 254, 255])
    assert m.data.dtype == np.uint8
    assert m.clipped == 3  # -300, -20, 300; -0.4 rounds to 0 and is in range


def test_abs():
    m = map_values(VALUES, "abs")
    np.testing.assert_array_equal(m.data, [255, 20, 0, 0, 10, 128, 254, 255])
    assert m.clipped == 2


def test_offset_puts_zero_at_mid_grey():
    m = map_values(VALUES, "offset")
    np.testing.assert_array_equal(m.data, [0, 108, 128, 128, 138, 255, 255, 255])
    assert m.clipped == 4
    assert map_values(np.array([0.0]), "offset", np.uint16).data[0] == 32768


def test_rescale_per_channel_uses_full_range_without_clipping():
    x = np.stack([np.linspace(-5, 5, 12).reshape(3, 4), np.full((3, 4), 7.0)], axis=2)
    m = map_values(x, "rescale")
    assert m.clipped == 0
    assert m.data[..., 0].min() == 0 and m.data[..., 0].max() == 255
    assert np.all(m.data[..., 1] == 0)  # a constant channel maps to 0


def test_sixteen_bit_range():
    m = map_values(np.array([-1.0, 70000.0, 1000.0]), "clip", np.uint16)
    np.testing.assert_array_equal(m.data, [0, 65535, 1000])
    assert m.data.dtype == np.uint16 and m.clipped == 2


def test_raw_keeps_floats():
    m = map_values(VALUES, "raw")
    assert m.data.dtype == np.float32
    np.testing.assert_allclose(m.data, VALUES)


def test_unknown_map():
    with pytest.raises(ParameterError, match="unknown map"):
        map_values(VALUES, "glow")


def test_auto_map_prefers_the_kernel_then_zero_sum_rule():
    assert auto_map(np.array([[1, 0, -1]]), None) == "abs"
    assert auto_map(np.array([[1, 2, 1]]) / 4, None) == "clip"
    assert auto_map(np.array([[1, 0, -1]]), "offset") == "offset"


@pytest.mark.parametrize("how", ["clip", "abs", "offset"])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_chunked_maps_agree_with_whole_array_numpy(rng, how, threads, dtype):
    """Many row chunks (a 700x900x3 map is several): the same values and clip count as
    the map written out on the whole array, and the input left as it was."""
    hi = np.iinfo(dtype).max
    x = (rng.standard_normal((700, 900, 3)) * hi * 0.6).astype(np.float32)
    x[5, 7] = [hi + 10, -hi - 10, 0.5]
    before = x.copy()
    shifted = {"clip": x, "abs": np.abs(x), "offset": x + np.float32((hi + 1) / 2)}[how]
    rounded = np.rint(shifted)
    got = map_values(x, how, dtype, threads=threads)
    np.testing.assert_array_equal(got.data, np.clip(rounded, 0, hi).astype(dtype))
    assert got.clipped == int(np.count_nonzero((rounded < 0) | (rounded > hi)))
    assert got.total == x.size and got.data.dtype == dtype
    np.testing.assert_array_equal(x, before)


def test_integer_input_and_shapes_survive_the_chunks():
    x = np.arange(-5, 300, dtype=np.int32).reshape(61, 5)
    got = map_values(x, "clip")
    np.testing.assert_array_equal(got.data, np.clip(x, 0, 255))
    assert got.clipped == 5 + 44
    assert map_values(np.float32(3.6), "clip").data.shape == ()
    assert map_values(np.zeros((0, 4)), "abs").data.shape == (0, 4)


@pytest.mark.parametrize("shape", [(500, 700, 3), (500, 700), (2000, 600, 4), (3, 5, 2, 4)])
def test_channel_stats_against_numpy(rng, shape):
    from convcli.output import channel_stats

    x = (rng.standard_normal(shape) * 40 + 7).astype(np.float32)
    got = channel_stats(x, threads=2)
    planes = [x] if x.ndim < 3 else [x[:, :, c] for c in range(x.shape[2])]
    assert len(got) == len(planes)
    for (lo, hi, mean), p in zip(got, planes):
        assert lo == p.min() and hi == p.max()
        # float32 precision, relative to the values' magnitude
        assert abs(mean - p.astype(np.float64).mean()) <= 1e-6 * np.abs(p).mean()
    x[(1, 1) + (0,) * (x.ndim - 2)] = np.nan  # in channel 0
    assert all(np.isnan(v) for v in channel_stats(x)[0])
