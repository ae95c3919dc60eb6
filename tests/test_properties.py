"""Property tests: shape math, identity, translation equivariance."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from convcli.engine import correlate
from convcli.geometry import conv_geometry

BORDERS = ["zero", "replicate", "reflect", "reflect101", "wrap", "constant=3"]
paddings = st.one_of(
    st.sampled_from(["same", "valid", "full"]),
    st.integers(0, 4),
    st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)).map(
        lambda t: ",".join(map(str, t))
    ),
)


@st.composite
def cases(draw):
    h, w = draw(st.integers(1, 14)), draw(st.integers(1, 14))
    kh, kw = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(paddings)
    border = draw(st.sampled_from(BORDERS))
    channels = draw(st.sampled_from([None, 1, 3]))
    return h, w, kh, kw, (sh, sw), (dh, dw), padding, border, channels


@settings(max_examples=300, deadline=None)
@given(cases())
def test_output_shape_equals_the_shape_math(case):
    h, w, kh, kw, stride, dilation, padding, border, channels = case
    try:
        g = conv_geometry((h, w), (kh, kw), stride=stride, dilation=dilation, padding=padding)
    except ValueError:
        # geometry says empty: the engine must refuse too
        shape = (h, w) if channels is None else (h, w, channels)
        try:
            correlate(np.zeros(shape), np.ones((kh, kw)), stride=stride, dilation=dilation, padding=padding)
        except ValueError:
            return
        raise AssertionError("engine accepted a geometry the shape math calls empty")
    shape = (h, w) if channels is None else (h, w, channels)
    out = correlate(np.zeros(shape), np.ones((kh, kw)), stride=stride, dilation=dilation,
                    padding=padding, border=border)
    expected = g.output if channels is None else (*g.output, channels)
    assert out.shape == expected


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 12), st.integers(1, 12), st.sampled_from(BORDERS), st.integers(0, 2**31 - 1),
    st.integers(1, 3), st.integers(1, 3),
)
def test_identity_kernel_returns_the_input(h, w, border, seed, kh_half, kw_half):
    image = np.random.default_rng(seed).integers(0, 65536, size=(h, w)).astype(np.uint16)
    kernel = np.zeros((2 * kh_half + 1, 2 * kw_half + 1))
    kernel[kh_half, kw_half] = 1
    np.testing.assert_array_equal(correlate(image, kernel, border=border), image)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 2**31 - 1), st.integers(1, 5), st.integers(1, 5), st.integers(-4, 4), st.integers(-4, 4),
    st.integers(1, 2),
)
def test_translation_equivariance_away_from_borders(seed, kh, kw, dy, dx, dilation):
    rng = np.random.default_rng(seed)
    image = rng.random((24, 26))
    kernel = rng.standard_normal((kh, kw))
    shifted = np.roll(image, (dy, dx), axis=(0, 1))
    out = correlate(image, kernel, dilation=dilation, border="zero")
    out_shifted = correlate(shifted, kernel, dilation=dilation, border="zero")
    # compare only where neither the roll's wrap-around nor the border reaches
    m = (max(kh, kw) - 1) * dilation + 5
    inner = (slice(m, -m), slice(m, -m))
    np.testing.assert_allclose(np.roll(out, (dy, dx), axis=(0, 1))[inner], out_shifted[inner], rtol=1e-6, atol=1e-9)
    # ...and exactly everywhere with the periodic border, where shifting commutes with filtering
    wrap = correlate(image, kernel, dilation=dilation, border="wrap")
    np.testing.assert_allclose(
        np.roll(wrap, (dy, dx), axis=(0, 1)), correlate(shifted, kernel, dilation=dilation, border="wrap"),
        rtol=1e-6, atol=1e-9,
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.integers(1, 4))
def test_linearity(seed, kh, kw):
    rng = np.random.default_rng(seed)
    a, b = rng.random((9, 11)), rng.random((9, 11))
    k = rng.standard_normal((kh, kw))
    np.testing.assert_allclose(
        correlate(2 * a - 3 * b, k), 2 * correlate(a, k) - 3 * correlate(b, k), rtol=1e-9, atol=1e-9
    )
