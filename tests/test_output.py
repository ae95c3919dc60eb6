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
