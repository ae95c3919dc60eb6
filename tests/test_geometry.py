"""Shape math: hand-worked values from the teaching texts and framework rules."""

from __future__ import annotations

import pytest

from convcli.errors import ParameterError, ShapeError
from convcli.geometry import ConvLayer, PaddingSpec, conv_geometry, parse_pair, stack_geometry


def test_resnet_first_layer_224_to_112():
    g = conv_geometry(224, 7, stride=2, padding=3, channels_in=3, channels_out=64, bias=False)
    assert g.output == (112, 112)
    assert g.receptive_field == (7, 7)
    assert g.jump == (2, 2)
    assert g.params == 64 * 3 * 7 * 7
    assert g.macs == 64 * 112 * 112 * 3 * 7 * 7


@pytest.mark.parametrize(
    "n,k,s,p,expected",
    [
        (5, 3, 1, 0, 3),     # seeds: 5x5 input, 3x3 kernel, no padding
        (5, 3, 1, 1, 5),     # ... with padding 1: same size
        (6, 3, 1, 0, 4),
        (7, 3, 2, 1, 4),     # seeds worked example 2
        (6, 3, 2, 1, 3),     # seeds size_lab
        (224, 3, 1, 1, 224),
        (224, 5, 1, 2, 224),
        (224, 3, 2, 1, 112),
        (224, 3, 1, 0, 222),
        (64, 5, 2, 2, 32),
        (128, 5, 2, 2, 64),
        (20, 5, 2, 2, 10),   # 20, k5, s2, p4 in total
    ],
)
def test_output_size_formula(n, k, s, p, expected):
    assert conv_geometry(n, k, stride=s, padding=p).output == (expected, expected)


def test_dilation_enlarges_the_effective_kernel():
    g = conv_geometry(7, 3, dilation=2)
    assert g.effective_kernel == (5, 5)
    assert g.output == (3, 3)
    assert g.receptive_field == (5, 5)


def test_seed_parameter_counts():
    assert conv_geometry(32, 3, padding=1, channels_in=3, channels_out=64).params == 1792
    g = conv_geometry(128, 5, stride=2, padding=2, channels_in=3, channels_out=32)
    assert g.output == (64, 64) and g.params == 2432
    assert conv_geometry(8, 3, padding=1, channels_in=64, channels_out=128).params == 73856
    assert conv_geometry(8, 3, channels_in=1, channels_out=64).params == 640


def test_groups_divide_parameters_and_must_divide_channels():
    g = conv_geometry(10, 3, padding=1, channels_in=8, channels_out=8, groups=8, bias=False)
    assert g.params == 8 * 9
    with pytest.raises(ShapeError, match="groups=3 must divide"):
        conv_geometry(10, 3, channels_in=8, channels_out=8, groups=3)


@pytest.mark.parametrize(
    "n,k,s,d,pads,out",
    [
        (224, 7, 2, 1, (2, 3), 112),  # TF SAME at stride 2: 2 before, 3 after (not 3 and 3)
        (5, 3, 1, 1, (1, 1), 5),
        (5, 4, 1, 1, (1, 2), 5),      # even kernel: the odd pixel goes after
        (5, 2, 1, 1, (0, 1), 5),
        (7, 3, 2, 1, (1, 1), 4),
        (8, 3, 2, 1, (0, 1), 4),
        (10, 3, 1, 2, (2, 2), 10),
        (3, 7, 3, 1, (2, 2), 1),
    ],
)
def test_same_padding_rule(n, k, s, d, pads, out):
    g = conv_geometry(n, k, stride=s, dilation=d, padding="same")
    assert g.padding == (pads, pads)
    assert g.output == (out, out)
    assert conv_geometry(n, k, stride=s, dilation=d, padding="tf-same").padding == (pads, pads)


def test_full_and_valid():
    assert conv_geometry(6, 3, padding="full").output == (8, 8)
    assert conv_geometry(6, 3, padding="valid").output == (4, 4)
    assert conv_geometry(6, 3, dilation=2, padding="full").padding == ((4, 4), (4, 4))


@pytest.mark.parametrize(
    "text,explicit",
    [
        ("3", ((3, 3), (3, 3))),
        ("2x1", ((2, 2), (1, 1))),
        ("1,2", ((1, 2), (1, 2))),
        ("1,2,3,4", ((1, 2), (3, 4))),
        ("0", ((0, 0), (0, 0))),
    ],
)
def test_padding_forms(text, explicit):
    assert PaddingSpec.parse(text).explicit == explicit


def test_rectangular_geometry():
    g = conv_geometry("10x20", "3x5", stride="1x2", padding="0,0,2,2")
    assert g.output == (8, 10)


def test_empty_output_error_shows_formula_with_numbers():
    with pytest.raises(ShapeError) as info:
        conv_geometry(4, 7, padding=1)
    assert "floor((4 + 1 + 1 - 7) / 1) + 1 = 0" in str(info.value)


@pytest.mark.parametrize("value", ["0", "-1", "2x0", "a", "1x2x3", True, 1.5])
def test_bad_pairs(value):
    with pytest.raises(ParameterError):
        parse_pair("stride", value)


def test_stack_receptive_field_and_jump():
    # two 3x3 convs, stride 1: receptive field 5; three: 7 (seeds)
    layers = [ConvLayer(kernel=(3, 3), padding=PaddingSpec.parse(1))] * 3
    rf = [g.receptive_field for g in stack_geometry((32, 32), layers)]
    assert rf == [(3, 3), (5, 5), (7, 7)]
    # 32x32 through three valid 3x3 convs: 30, 28, 26, receptive field 7
    valid = [ConvLayer(kernel=(3, 3))] * 3
    geo = stack_geometry((32, 32), valid)
    assert [g.output for g in geo] == [(30, 30), (28, 28), (26, 26)]
    # k 3,3,3 with strides 1,2,1: r = 1 + 2*1 + 2*1 + 2*2 = 9, jump 2
    mixed = [ConvLayer(kernel=(3, 3), stride=(s, s)) for s in (1, 2, 1)]
    last = stack_geometry((64, 64), mixed)[-1]
    assert last.receptive_field == (9, 9) and last.jump == (2, 2)


def test_input_region_of_a_unit():
    g = conv_geometry(224, 7, stride=2, padding=3)
    # unit 0 reads rows -3..3 (unclipped); unit 10 reads 17..23
    assert g.input_region(0, 10) == ((-3, 3), (17, 23))


# --- stacks: pooling, transposed convolution, regions (issue 7) ---------------------------------

from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from convcli.geometry import (  # noqa: E402
    make_layer,
    network_geometry,
    parse_arch,
    parse_layer_spec,
    pool_output_size,
    transposed_output_size,
)


def _count_windows(n, k, s, d, before, after, ceil_mode):
    """Independent oracle: walk the window starts one stride at a time and count the ones kept.

    A window fits when it ends inside the padded input. With ceil_mode one more window is kept when
    it overhangs the padded end by less than a stride and starts inside the input or the left padding.
    """
    k_eff = d * (k - 1) + 1
    end = n + before + after          # padded length; starts are in padded coordinates
    count, start = 0, 0
    while start + k_eff <= end:
        count, start = count + 1, start + s
    if ceil_mode and start + k_eff <= end + s - 1 and start < n + before:
        count += 1
    return count


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 30), st.integers(1, 6), st.integers(1, 4), st.integers(1, 3), st.integers(0, 3),
       st.integers(0, 3), st.booleans())
def test_pool_output_size_counts_the_windows(n, k, s, d, before, after, ceil_mode):
    assume(max(before, after) <= (d * (k - 1) + 1) // 2)  # pool padding at most k_eff / 2
    expected = _count_windows(n, k, s, d, before, after, ceil_mode)
    if expected == 0:
        with pytest.raises(ShapeError, match="would be empty"):
            pool_output_size(n, k, s, d, before, after, ceil_mode=ceil_mode)
    else:
        assert pool_output_size(n, k, s, d, before, after, ceil_mode=ceil_mode) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.integers(1, 5), st.integers(1, 4), st.integers(1, 3), st.integers(0, 3),
       st.integers(0, 3))
def test_transposed_output_size_is_the_last_position_reached(n, k, s, d, pad, op):
    # input i writes outputs i*s + t*d - pad; the output runs to the last one written, plus output_padding
    last = max(i * s + t * d for i in range(n) for t in range(k)) - pad
    expected = last + 1 - pad + op
    if expected < 1:
        with pytest.raises(ShapeError):
            transposed_output_size(n, k, s, d, pad, pad, op)
    else:
        assert transposed_output_size(n, k, s, d, pad, pad, op) == expected


def _reads(layers, unit, axis):
    """Independent oracle: the set of input positions one unit depends on, layer by layer
    (written from the layers' definitions, not from the recurrence)."""
    positions = {unit}
    for g in reversed(layers):
        k, s, d = g.layer.kernel[axis], g.layer.stride[axis], g.layer.dilation[axis]
        before = g.padding[axis][0]
        if g.layer.kind == "convtranspose":
            # forward: input i writes outputs i*s - before + t*d; keep the inputs that write into `positions`
            lo, hi = min(positions, default=0), max(positions, default=-1)
            candidates = range((lo + before - (k - 1) * d) // s - 1, (hi + before) // s + 2)
            positions = {i for i in candidates if any(i * s - before + t * d in positions for t in range(k))}
        else:
            positions = {o * s - before + t * d for o in positions for t in range(k)}
    return positions


@st.composite
def stacks(draw, transposed=False):
    kinds = ["conv", "maxpool", "avgpool"] + (["convtranspose"] if transposed else [])
    layers = []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(kinds))
        k = draw(st.integers(1, 5))
        s = draw(st.integers(1, 3))
        d = 1 if kind == "avgpool" else draw(st.integers(1, 2))
        if kind.endswith("pool"):
            pad = draw(st.integers(0, k // 2))
            p = f"{pad}"
        elif kind == "convtranspose":
            p = str(draw(st.integers(0, 2)))
        else:
            p = draw(st.sampled_from(["0", "1", "same", "valid", "1,2", "2x0"]))
        op = draw(st.integers(0, max(s, d) - 1)) if kind == "convtranspose" else None
        ceil = kind.endswith("pool") and draw(st.booleans())
        layers.append(make_layer(kind, k=k, s=s, p=p, d=d, ceil_mode=ceil, output_padding=op, name=f"l{i}"))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    return size, layers


def _net_and_unit(stack, data):
    """The stack's geometry and one of its output units, or (None, None) when it has no output."""
    size, layers = stack
    try:
        net = network_geometry(size, layers)
    except ShapeError:
        return None, None
    return net, (data.draw(st.integers(0, net.output[0] - 1)), data.draw(st.integers(0, net.output[1] - 1)))


@settings(max_examples=300, deadline=None)
@given(stacks(), st.data())
def test_unit_region_is_the_recurrence_and_the_dependency_set(stack, data):
    net, unit = _net_and_unit(stack, data)
    if net is None:
        return
    region = net.unit_region(unit)
    for axis in range(2):
        reads = _reads(net.layers, unit[axis], axis)
        assert region.unclipped[axis] == (min(reads), max(reads))
        # the formula: [u*j - P, u*j - P + r - 1]
        j, p, r = net.jump[axis], net.effective_padding[axis], net.receptive_field[axis]
        assert region.unclipped[axis] == (unit[axis] * j - p, unit[axis] * j - p + r - 1)
    assert region.unclipped == net.layers[-1].input_region(*unit)


@settings(max_examples=200, deadline=None)
@given(stacks(transposed=True), st.data())
def test_unit_region_through_transposed_layers_is_the_dependency_hull(stack, data):
    net, unit = _net_and_unit(stack, data)
    if net is None:
        return
    region = net.unit_region(unit)
    hulls = []
    for axis in range(2):
        reads = _reads(net.layers, unit[axis], axis)
        hulls.append((min(reads), max(reads)) if reads else None)
    if None in hulls:
        assert region.unclipped is None
    else:
        assert region.unclipped == tuple(hulls)


def test_stacks_keep_the_one_layer_api():
    layers = parse_layer_spec("conv k7 s2 p3; maxpool k3 s2 p1")
    old = stack_geometry((224, 224), layers)
    new = network_geometry((224, 224), layers).layers
    assert [g.output for g in old] == [g.output for g in new] == [(112, 112), (56, 56)]
    assert conv_geometry(224, 7, stride=2, padding=3).layer.kind == "conv"
    assert stack_geometry((8, 8), []) == []


def test_pool_defaults_follow_pytorch():
    # MaxPool2d(3): stride defaults to the kernel size
    assert make_layer("maxpool", k=3).stride == (3, 3)
    assert make_layer("avgpool", k="2x3").stride == (2, 3)
    assert make_layer("conv", k=3).stride == (1, 1)


def test_layer_spec_words():
    a, b = parse_layer_spec("conv k3x1 s2 p1,2 d2 c16 g2 nobias; convtranspose k4 s2 p1 op1 c8")
    assert (a.kernel, a.stride, a.padding.explicit, a.dilation) == ((3, 1), (2, 2), ((1, 2), (1, 2)), (2, 2))
    assert (a.channels_out, a.groups, a.bias, a.name) == (16, 2, False, "conv1")
    assert (b.kind, b.output_padding, b.name) == ("convtranspose", (1, 1), "convtranspose1")
    (c,) = parse_layer_spec("avgpool k2 ceil", ndim=1)
    assert (c.kernel, c.stride, c.ceil_mode) == ((1, 2), (1, 2), True)


def test_arch_values():
    spec = parse_arch({"name": "t", "input": [8, 9], "in_channels": 3,
                       "layer": [{"k": [3, 1], "p": [0, 1], "s": 2, "channels": 4},
                                 {"type": "maxpool", "k": 2, "p": "valid", "name": "pool"}]})
    assert spec.input == (8, 9) and spec.channels_in == 3 and spec.name == "t"
    conv, pool = spec.layers
    assert conv.padding.explicit == ((0, 1), (0, 1)) and conv.kernel == (3, 1)
    assert pool.padding.rule == "valid" and pool.name == "pool"
    with pytest.raises(ParameterError, match="one number"):
        parse_arch({"layer": [{"k": [3, 3]}]}, ndim=1)
