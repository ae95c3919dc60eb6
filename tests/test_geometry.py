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
