"""``convcli shape``: one layer, stacks, architecture files, units, errors, the table and the plot.

stdout, stderr and the exit code are checked separately. Expected values are
worked by hand (the working is in the comments), taken from the seeds'
exercises, or published (VGG-16's receptive field; torchvision's parameter
counts and GFLOPS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from convcli.engine import plan_geometry
from convcli.geometry import network_geometry, parse_layer_spec
from convcli.shapeplot import COLOURS, layout

from .conftest import SAMPLES
from .test_cli import _one_error_line, cli  # noqa: F401  (cli is a fixture)

ARCH = SAMPLES / "arch"


def shape_json(cli, *args: str) -> dict:  # noqa: F811
    code, out, err = cli("shape", *args, "--json")
    assert (code, err) == (0, ""), err
    return json.loads(out)


def column(doc: dict, key: str) -> list:
    return [layer[key] for layer in doc["layers"]]


# --- the seeds' exercises ------------------------------------------------------------------------


def test_seed_1d_length_20_kernel_5_stride_2_padding_4_in_total(cli):  # noqa: F811
    # floor((20 + 2 + 2 - 5) / 2) + 1 = floor(19 / 2) + 1 = 10
    doc = shape_json(cli, "--in", "20", "--k", "5", "--s", "2", "--p", "2", "--1d")
    assert doc["output"] == [10] and doc["layers"][0]["padding"] == [[2, 2]]
    # the same 4 in total, split 1 before and 3 after
    doc = shape_json(cli, "--in", "20", "--k", "5", "--s", "2", "--p", "1,3", "--1d")
    assert doc["output"] == [10] and doc["padding"] == [[1, 3]]


def test_seed_stack_k333_s121_has_receptive_field_9(cli):  # noqa: F811
    # r: 1 -> 1 + 2*1 = 3 -> 3 + 2*1 = 5 -> 5 + 2*2 = 9; j: 1, 2, 2
    doc = shape_json(cli, "--in", "64", "--k", "3,3,3", "--s", "1,2,1", "--p", "0")
    assert column(doc, "receptive_field") == [[3, 3], [5, 5], [9, 9]]
    assert column(doc, "jump") == [[1, 1], [2, 2], [2, 2]]
    assert doc["receptive_field"] == [9, 9] and doc["jump"] == [2, 2]
    assert column(doc, "output") == [[62, 62], [30, 30], [28, 28]]


def test_seed_32x32_through_three_valid_3x3_convs(cli):  # noqa: F811
    for args in (["--k", "3,3,3", "--p", "valid"], ["--layers", "conv k3; conv k3 pvalid; conv k3 p0"]):
        doc = shape_json(cli, "--in", "32", *args)
        assert column(doc, "output") == [[30, 30], [28, 28], [26, 26]]
        assert doc["receptive_field"] == [7, 7]


def test_seed_parameter_counts(cli):  # noqa: F811
    # Conv2d(3, 64, 3): 64*3*3*3 + 64 = 1792
    assert shape_json(cli, "--in", "32", "--k", "3", "--p", "1", "--cin", "3", "--cout", "64")["params"] == 1792
    # 128x128x3, 32 filters 5x5, padding 2, stride 2: 64x64 and 32*3*25 + 32 = 2432
    doc = shape_json(cli, "--in", "128", "--k", "5", "--s", "2", "--p", "2", "--cin", "3", "--cout", "32")
    assert doc["output"] == [64, 64] and doc["params"] == 2432
    assert doc["macs"] == 32 * 64 * 64 * 3 * 25


# --- one layer -----------------------------------------------------------------------------------


def test_same_padding_at_stride_2_pads_2_before_and_3_after(cli):  # noqa: F811
    # out = ceil(224/2) = 112; total = (112-1)*2 + 7 - 224 = 5: 2 before, 3 after (TensorFlow's SAME)
    for rule in ("same", "tf-same"):
        doc = shape_json(cli, "--in", "224", "--k", "7", "--s", "2", "--p", rule)
        assert doc["layers"][0]["padding"] == [[2, 3], [2, 3]] and doc["output"] == [112, 112]
        assert doc["effective_padding"] == [2, 2]


@pytest.mark.parametrize("n,k,s,d", [(n, k, s, d) for n in (1, 5, 8, 13) for k in (1, 2, 3, 4, 7)
                                      for s in (1, 2, 3) for d in (1, 2)])
def test_same_is_the_rule_apply_uses(n, k, s, d):
    layer = parse_layer_spec(f"conv k{k} s{s} d{d} psame")[0]
    assert network_geometry((n, n + 1), [layer]).layers[0].padding == \
        plan_geometry((n, n + 1), (k, k), stride=s, dilation=d, padding="same").padding


@pytest.mark.parametrize(
    "pad,padding,output",
    [
        ("valid", [[0, 0], [0, 0]], [8, 6]),     # 10 - 3 + 1, 10 - 5 + 1
        ("full", [[2, 2], [4, 4]], [12, 14]),    # k_eff - 1 on each side
        ("3x1", [[3, 3], [1, 1]], [14, 8]),
        ("1,2", [[1, 2], [1, 2]], [11, 9]),
        ("1,2,0,4", [[1, 2], [0, 4]], [11, 10]),
    ],
)
def test_padding_forms(cli, pad, padding, output):  # noqa: F811
    doc = shape_json(cli, "--in", "10", "--k", "3x5", "--p", pad)
    assert doc["layers"][0]["padding"] == padding and doc["output"] == output


def test_groups_and_no_bias(cli):  # noqa: F811
    # depthwise 3x3 on 56x56x32: 32 * (32/32) * 9 = 288 weights, + 32 biases; MACs 32*56*56*1*9
    doc = shape_json(cli, "--in", "56", "--k", "3", "--p", "1", "--cin", "32", "--cout", "32", "--groups", "32")
    assert doc["params"] == 320 and doc["macs"] == 903_168
    doc = shape_json(cli, "--in", "56", "--k", "3", "--p", "1", "--cin", "32", "--cout", "64", "--groups", "4",
                     "--no-bias")
    assert doc["params"] == 64 * 8 * 9


def test_transposed_convolution(cli):  # noqa: F811
    # (16-1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 32; weights 8 x (4/1) x 3 x 3 = 288, + 4 biases;
    # MACs: every input value times every tap: 8*16*16 * 4*9 = 73,728
    doc = shape_json(cli, "--in", "16", "--k", "3", "--s", "2", "--p", "1", "--transposed",
                     "--output-padding", "1", "--cin", "8", "--cout", "4")
    assert doc["output"] == [32, 32] and doc["params"] == 292 and doc["macs"] == 73_728
    assert doc["layers"][0]["type"] == "convtranspose"
    assert doc["receptive_field"] is None and doc["jump"] is None
    code, out, err = cli("shape", "--in", "16", "--k", "3", "--s", "2", "--p", "1", "--transposed",
                         "--output-padding", "1")
    assert code == 0 and err == ""
    assert "(16 - 1)*2 - 1 - 1 + 3 + 1 = 32" in out


def test_one_layer_text_keeps_its_layout(cli):  # noqa: F811
    code, out, err = cli("shape", "--in", "224", "--k", "7", "--s", "2", "--p", "same", "--cin", "3", "--cout", "64")
    assert code == 0 and err == ""
    assert out.splitlines() == [
        "input            224x224",
        "kernel           7x7, stride 2x2, dilation 1x1 (effective kernel 7x7)",
        "padding (same)   top 2, bottom 3, left 2, right 3",
        "output           112x112",
        "  height:        floor((224 + 2 + 3 - 7) / 2) + 1 = 112",
        "  width:         floor((224 + 2 + 3 - 7) / 2) + 1 = 112",
        "receptive field  7x7",
        "jump             2x2",
        "channels         3 -> 64, groups 1",
        "params           9,472",
        "MACs             118,013,952",
    ]


def test_ceil_mode_pool_shows_the_dropped_window(cli):  # noqa: F811
    # ceil((5 + 1 + 1 - 2) / 2) + 1 = 4, but window 4 would start at 3*2 - 1 = 5 = the input's end
    code, out, _ = cli("shape", "--in", "5", "--layers", "maxpool k2 s2 p1 ceil")
    assert code == 0
    assert "ceil((5 + 1 + 1 - 2) / 2) + 1 - 1 = 3" in out and "maxpool, ceil_mode" in out


def test_1d_json_uses_one_element_lists(cli):  # noqa: F811
    doc = shape_json(cli, "--in", "100", "--1d", "--k", "5,3", "--s", "2,1", "--p", "2,same", "--cin", "1",
                     "--cout", "4,8")
    assert doc["input"] == [100] and doc["output"] == [50]
    assert column(doc, "padding") == [[[2, 2]], [[1, 1]]]
    # r: 5, 5 + 2*2 = 9; j 2; P: 2, 2 + 1*2 = 4; params 4*1*5+4 = 24, 8*4*3+8 = 104
    assert column(doc, "receptive_field") == [[5], [9]] and doc["jump"] == [2] and doc["effective_padding"] == [4]
    assert column(doc, "params") == [24, 104] and doc["params"] == 128
    for layer in doc["layers"]:
        assert all(len(layer[key]) == 1 for key in ("kernel", "stride", "dilation", "output", "jump"))


def test_json_key_layout():
    """The documented layout, key for key: scripts depend on it."""
    from typer.testing import CliRunner

    from convcli.cli import app

    result = CliRunner().invoke(app, ["shape", "--in", "32", "--k", "3,3", "--json"], catch_exceptions=False)
    doc = json.loads(result.stdout)
    assert list(doc) == ["input", "layers", "output", "receptive_field", "jump", "effective_padding", "params",
                         "macs"]
    assert [list(layer) for layer in doc["layers"]] == [[
        "name", "type", "kernel", "stride", "dilation", "padding", "output", "receptive_field", "jump",
        "effective_padding", "params", "macs"]] * 2
    assert doc["params"] is None and doc["macs"] is None


# --- stacks ---------------------------------------------------------------------------------------


def test_layers_spec_stem(cli):  # noqa: F811
    doc = shape_json(cli, "--in", "224", "--cin", "3", "--layers",
                     "conv k7 s2 p3 c64; maxpool k3 s2 p1; conv k3 p1 c64")
    assert column(doc, "name") == ["conv1", "maxpool1", "conv2"]
    assert column(doc, "type") == ["conv", "maxpool", "conv"]
    assert column(doc, "output") == [[112, 112], [56, 56], [56, 56]]
    # r: 7, 7 + 2*2 = 11, 11 + 2*4 = 19; j: 2, 4, 4; P: 3, 3 + 1*2 = 5, 5 + 1*4 = 9
    assert column(doc, "receptive_field") == [[7, 7], [11, 11], [19, 19]]
    assert column(doc, "jump") == [[2, 2], [4, 4], [4, 4]]
    assert column(doc, "effective_padding") == [[3, 3], [5, 5], [9, 9]]
    # 64*3*49 + 64; no weights; 64*64*9 + 64
    assert column(doc, "params") == [9472, 0, 36928] and doc["params"] == 46400
    assert column(doc, "macs") == [64 * 112 * 112 * 147, 0, 64 * 56 * 56 * 576]
    assert doc["macs"] == 118_013_952 + 115_605_504


def test_lists_broadcast(cli):  # noqa: F811
    doc = shape_json(cli, "--in", "32", "--k", "3", "--s", "1,2,2", "--p", "1", "--cin", "3", "--cout", "16,32,64")
    assert column(doc, "output") == [[32, 32], [16, 16], [8, 8]]
    assert column(doc, "params") == [16 * 27 + 16, 32 * 16 * 9 + 32, 64 * 32 * 9 + 64]


def test_stack_table(cli):  # noqa: F811
    code, out, err = cli("shape", "--in", "224", "--cin", "3", "--layers",
                         "conv k7 s2 p3 c64; maxpool k3 s2 p1; conv k3 p1 c64")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["#", "name", "type", "k", "s", "p", "d", "output", "channels", "receptive",
                                "field", "jump", "eff.", "padding", "params", "MACs"]
    rows = {line.split()[1]: line.split() for line in lines if line.split() and line.split()[0] in "123"}
    assert rows["conv1"] == ["1", "conv1", "conv", "7x7", "2x2", "3/3", "1x1", "112x112", "64", "7x7", "2x2", "3x3",
                             "9,472", "118,013,952"]
    assert rows["maxpool1"][2:] == ["maxpool", "3x3", "2x2", "1/1", "1x1", "56x56", "64", "11x11", "4x4", "5x5",
                                    "0", "0"]
    total = next(line.split() for line in lines if line.split()[:1] == ["total"])
    assert total == ["total", "56x56", "64", "19x19", "4x4", "9x9", "46,400", "233,619,456"]


def test_arch_file(cli, tmp_path):  # noqa: F811
    (tmp_path / "net.toml").write_text(
        'input = [20, 30]\nin_channels = 2\n'
        '[[layer]]\nk = [3, 1]\np = [1, 2]\nchannels = 4\n'
        '[[layer]]\ntype = "avgpool"\nname = "pool"\nk = 2\nceil_mode = true\n'
        '[[layer]]\nk = 3\nd = [1, 2]\np = "same"\ngroups = 2\nchannels = 8\nbias = false\n'
    )
    doc = shape_json(cli, "--arch", "net.toml")
    assert doc["input"] == [20, 30]
    # (20 + 3 - 3) + 1 = 21, (30 + 3 - 1) + 1 = 33; ceil(19/2)+1 = 11, ceil(31/2)+1 = 17; same keeps 11x17
    assert column(doc, "output") == [[21, 33], [11, 17], [11, 17]]
    assert column(doc, "name") == ["conv1", "pool", "conv2"]
    assert doc["layers"][2]["padding"] == [[1, 1], [2, 2]]
    assert column(doc, "params") == [4 * 2 * 3 + 4, 0, 8 * 2 * 9]
    # --in overrides the file's input: 11x13, then ceil(9/2)+1 = 6 and ceil(11/2)+1 = 7
    assert shape_json(cli, "--arch", "net.toml", "--in", "10")["output"] == [6, 7]


@pytest.mark.parametrize(
    "text,message",
    [
        ("[[layer]]\nkernal = 3\n", "unknown key 'kernal'; did you mean 'k'?"),
        ("[[layer]]\nk = 3\ntype = 'maxpol'\n", "unknown layer type 'maxpol'; did you mean 'maxpool'?"),
        ("input = 8\n", "no [[layer]] tables"),
        ("[[layer]]\nk = 3\nceil_mode = 1\n", "ceil_mode must be true or false"),
        ("[[layer]]\nk = 3\nceil_mode = true\n", "ceil_mode applies to maxpool and avgpool layers only"),
        ("[[layer]\nk = 3\n", "is not valid TOML"),
    ],
)
def test_arch_file_errors(cli, tmp_path, text, message):  # noqa: F811
    (tmp_path / "bad.toml").write_text(text)
    code, out, err = cli("shape", "--arch", "bad.toml", "--in", "8")
    assert code == 2 and out == ""
    assert message in _one_error_line(err)


# --- errors: one line, exit 2, the formula with the numbers ---------------------------------------


@pytest.mark.parametrize(
    "args,message",
    [
        (["--in", "8", "--layers", "conv k5; conv k5"],
         "layer 2 (conv2): output height would be empty: floor((4 + 0 + 0 - 5) / 1) + 1 = 0"),
        (["--in", "8", "--k", "3", "--cin", "6", "--cout", "4", "--groups", "4"],
         "groups=4 must divide both input channels (6) and output channels (4): 6 / 4 = 1.5 and 4 / 4 = 1"),
        (["--in", "10", "--layers", "conv k3; maxpool k3 s2 p2"],
         "layer 2 (maxpool1): pool padding 2 is too large: it must be at most k_eff/2 = 3/2; use padding 1"),
        (["--in", "8", "--k", "3", "--s", "2", "--transposed", "--output-padding", "2"],
         "output_padding 2 >= stride 2 and >= dilation 1 in out = (in-1)*s - 2p + d*(k-1) + output_padding + 1"),
        (["--in", "1", "--layers", "maxpool k3 s2 ceil"], "ceil((1 + 0 + 0 - 3) / 2) + 1 = 0"),
        (["--in", "1", "--k", "1", "--p", "1", "--transposed"], "(1 - 1)*1 - 1 - 1 + 1 + 0 = -1"),
        (["--in", "8", "--k", "3", "--p", "same", "--transposed"], "takes explicit padding"),
        (["--in", "8", "--k", "3,3,3", "--s", "1,2"], "--s has 2 values for 3 layers; give 1 or 3"),
        (["--in", "8", "--layers", "conv k3", "--s", "2"], "--s applies to --k"),
        (["--in", "8", "--layers", "conv k3 q2"], "'q2' is not understood"),
        (["--in", "8", "--layers", "conv s2"], "no kernel size"),
        (["--in", "8", "--layers", "maxpool k2 c4"], "keeps its input channels"),
        (["--in", "8", "--layers", "avgpool k2 d2"], "avgpool has no dilation"),
        (["--in", "8"], "give the layer with --k"),
        (["--k", "3"], "--in is missing"),
        (["--in", "8x8", "--k", "3", "--1d"], "a 1-D layer takes one number"),
        (["--in", "8", "--k", "3", "--p", "3x1", "--1d"], "padding: a 1-D layer takes N or BEFORE,AFTER"),
        (["--in", "8", "--k", "3", "--unit", "6,0"], "unit (6, 0) is outside the output 6x6"),
        (["--in", "8", "--k", "3", "--unit", "1"], "is not ROW,COL"),
        (["--arch", "missing.toml"], "cannot read missing.toml"),
        (["--in", "8", "--k", "3", "--plot", "x.xyz"], "unknown image type '.xyz'"),
    ],
)
def test_shape_errors(cli, args, message):  # noqa: F811
    code, out, err = cli("shape", *args)
    assert code == 2 and out == ""
    assert message in _one_error_line(err)


# --- where a unit looks ---------------------------------------------------------------------------


def test_unit_region_clipped_and_unclipped(cli):  # noqa: F811
    # unit u reads u*2 - 3 .. u*2 - 3 + 6: rows -3..3 (clipped 0..3), cols 17..23
    code, out, err = cli("shape", "--in", "224", "--k", "7", "--s", "2", "--p", "3", "--unit", "0,10")
    assert code == 0 and err == ""
    assert "unit             (0, 10) of conv1 (112x112)" in out
    assert "reads          rows -3..3, cols 17..23 (7x7, unclipped)" in out
    assert "in the image   rows 0..3, cols 17..23 (4x7, clipped; the rest is padding)" in out
    doc = shape_json(cli, "--in", "224", "--k", "7", "--s", "2", "--p", "3", "--unit", "0,10")
    assert doc["unit"] == {"index": [0, 10], "unclipped": [[-3, 3], [17, 23]], "clipped": [[0, 3], [17, 23]],
                           "exceeds_input": [False, False]}


def test_unit_says_when_the_receptive_field_exceeds_the_input(cli):  # noqa: F811
    # four 3x3 convs with padding 1: r = 9 > 8; unit (0, 7) reads rows -4..4, cols 3..11
    code, out, _ = cli("shape", "--in", "8", "--k", "3,3,3,3", "--p", "1", "--unit", "0,7")
    assert code == 0
    assert "rows -4..4, cols 3..11 (9x9, unclipped)" in out
    assert "rows 0..4, cols 3..7 (5x5, clipped" in out
    assert "the receptive field (9) is larger than the input height (8)" in out
    assert "the receptive field (9) is larger than the input width (8)" in out


def test_unit_in_1d_and_in_padding_only(cli):  # noqa: F811
    # k1 p3: output 0 reads position -3, which is padding
    doc = shape_json(cli, "--in", "4", "--k", "1", "--p", "3", "--1d", "--unit", "0")
    assert doc["unit"] == {"index": [0], "unclipped": [[-3, -3]], "clipped": None, "exceeds_input": [False]}
    code, out, _ = cli("shape", "--in", "4", "--k", "1", "--p", "3", "--1d", "--unit", "0")
    assert "reads          positions -3..-3 (1, unclipped)" in out
    assert "in the signal  nothing: the unit sees padding only" in out


def test_unit_through_a_transposed_convolution(cli):  # noqa: F811
    # ConvTranspose(k3, s2, p1): input i reaches output o = 2i - 1 + t for taps t = 0, 1, 2.
    # o = 6: 2i = 7 - t, so t = 1 and i = 3. o = 5: 2i = 6 - t, so i = 3 (t = 0) and i = 2 (t = 2).
    doc = shape_json(cli, "--in", "8", "--k", "3", "--s", "2", "--p", "1", "--transposed", "--unit", "6,5")
    assert doc["unit"]["unclipped"] == [[3, 3], [2, 3]]


# --- the shipped architectures --------------------------------------------------------------------


def by_name(doc: dict) -> dict:
    return {layer["name"]: layer for layer in doc["layers"]}


def test_vgg16_pool5_receptive_field_212_jump_32(cli):  # noqa: F811
    # Published: VGG-16 receptive field 212, effective stride 32, effective padding 90 (Araujo, Norris and
    # Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019).
    doc = shape_json(cli, "--arch", str(ARCH / "vgg16.toml"))
    pool5 = by_name(doc)["pool5"]
    assert pool5["receptive_field"] == [212, 212] and pool5["jump"] == [32, 32]
    assert pool5["effective_padding"] == [90, 90] and pool5["output"] == [7, 7]
    # torchvision publishes 138,357,544 parameters and 15.47 GFLOPS (multiply-adds) for vgg16
    assert doc["params"] == 138_357_544
    assert doc["macs"] == 15_470_264_320
    assert doc["output"] == [1, 1] and doc["layers"][-1]["name"] == "fc8"


def test_alexnet(cli):  # noqa: F811
    # By hand (torchvision layout, 224x224): conv1 floor((224 + 4 - 11)/4) + 1 = 55, r 11, j 4, P 2;
    # pool1 27, r 11 + 2*4 = 19, j 8; conv2 27, r 19 + 4*8 = 51, P 2 + 2*8 = 18; pool2 13, r 67, j 16;
    # conv3..5 13, r 99, 131, 163, P 34, 50, 66; pool5 6, r 163 + 2*16 = 195, j 32, P 66.
    doc = shape_json(cli, "--arch", str(ARCH / "alexnet.toml"))
    layers = by_name(doc)
    assert [layers[n]["output"][0] for n in ("conv1", "pool1", "conv2", "pool2", "conv5", "pool5")] == \
        [55, 27, 27, 13, 13, 6]
    assert layers["pool5"]["receptive_field"] == [195, 195] and layers["pool5"]["jump"] == [32, 32]
    assert layers["pool5"]["effective_padding"] == [66, 66]
    # torchvision publishes 61,100,840 parameters and 0.71 GFLOPS for alexnet
    assert doc["params"] == 61_100_840
    assert doc["macs"] == 714_188_480


def test_resnet50(cli):  # noqa: F811
    # By hand (torchvision's v1.5 layout, 224x224), main path: conv1 r 7, j 2, P 3; maxpool r 11, j 4, P 5;
    # layer1 (3 blocks, one 3x3 each): r 11 + 3*2*4 = 35, P 5 + 3*4 = 17; layer2: first 3x3 has stride 2:
    # r 35 + 2*4 = 43, j 8, P 21, then 3 more: r 43 + 3*16 = 91, P 45; layer3: r 91 + 16 = 107, j 16,
    # P 53, then 5 more: r 107 + 5*32 = 267, P 133; layer4: r 267 + 32 = 299, j 32, P 149, then 2 more:
    # r 299 + 2*64 = 427, P 149 + 2*32 = 213.
    doc = shape_json(cli, "--arch", str(ARCH / "resnet50.toml"))
    layers = by_name(doc)
    assert [layers[n]["output"][0] for n in ("conv1", "maxpool", "layer1.2.conv3", "layer2.3.conv3",
                                             "layer3.5.conv3", "layer4.2.conv3", "fc")] == [112, 56, 56, 28, 14, 7, 1]
    last = layers["layer4.2.conv3"]
    assert last["receptive_field"] == [427, 427] and last["jump"] == [32, 32]
    assert last["effective_padding"] == [213, 213]
    # torchvision publishes 25,557,032 parameters and 4.09 GFLOPS for resnet50. The file holds the main path;
    # add the four 1x1 projection shortcuts and the batch norms (2 values per channel) it leaves out.
    shortcuts = [(64, 256, 56), (256, 512, 28), (512, 1024, 14), (1024, 2048, 7)]  # C_in, C_out, output side
    shortcut_params = sum(ci * co for ci, co, _ in shortcuts)
    shortcut_macs = sum(ci * co * n * n for ci, co, n in shortcuts)
    bn_channels = 64 + sum(blocks * (w + w + 4 * w) + 4 * w for blocks, w in [(3, 64), (4, 128), (6, 256), (3, 512)])
    assert doc["params"] + shortcut_params + 2 * bn_channels == 25_557_032
    assert doc["macs"] + shortcut_macs == 4_089_184_256


# --- the picture ----------------------------------------------------------------------------------


def test_plot(cli, tmp_path):  # noqa: F811
    spec = "conv k3 p1; conv k3 s2 p1; conv k3 p1; maxpool k2"
    code, out, err = cli("shape", "--in", "32", "--layers", spec, "--unit", "0,4", "--plot", "rf.png")
    assert code == 0 and "maxpool1" in out
    assert err.startswith("plot: rf.png (")
    net = network_geometry((32, 32), parse_layer_spec(spec))
    lay = layout(net, (0, 4))
    with Image.open(tmp_path / "rf.png") as img:
        assert img.format == "PNG" and img.mode == "RGB"
        assert img.size == lay.size == (4 * (lay.plot[0] + 20), 2 * (lay.plot[1] + 16 + 20) + 22)
        assert err == f"plot: rf.png ({img.width}x{img.height})\n"

        def at(panel, row, col):
            x, y = lay.point(panel, row, col)
            return img.getpixel((int(x), int(y)))

        # the unit reads rows -4..6, cols 12..22 (r 11, j 4, P 4)
        assert at(0, 2, 17) == COLOURS["cone"]            # inside the image
        assert at(0, -3, 17) == COLOURS["cone_padding"]   # in the padding
        assert at(0, 20, 5) == COLOURS["image"]           # the image, away from the field
        assert at(0, -3, 2) == COLOURS["padding"]         # the padding, away from the field
        # the last layer (8x8, jump 4): unit (0, 4) is centred on input (1.5, 17.5); its neighbour is not lit
        assert at(4, 1.5, 17.5) == COLOURS["cone"]
        assert at(4, 5.5, 17.5) == COLOURS["image"]
        # conv2's units that feed it: rows 0..1 of its 16x16 grid, centred at input rows 0 and 2
        assert at(2, 0.2, 17.5) == COLOURS["cone"]
        assert at(2, 6, 17.5) == COLOURS["image"]


def test_plot_default_unit_is_the_centre_and_1d_works(cli, tmp_path):  # noqa: F811
    code, _, _ = cli("shape", "--in", "100", "--1d", "--k", "5,3", "--s", "2,2", "--plot", "line.png")
    assert code == 0
    net = network_geometry((1, 100), parse_layer_spec("conv k5 s2; conv k3 s2", ndim=1), ndim=1)
    # 100 -> floor(95/2) + 1 = 48 -> floor(45/2) + 1 = 23 outputs; the centre one is 11
    lay = layout(net, (0, 11))
    with Image.open(tmp_path / "line.png") as img:
        assert img.size == lay.size and img.height < 120
        # unit 11 reads 11*4 .. 11*4 + 8 = 44..52
        assert img.getpixel(tuple(int(v) for v in lay.point(0, 0, 48))) == COLOURS["cone"]
        assert img.getpixel(tuple(int(v) for v in lay.point(0, 0, 30))) == COLOURS["image"]


# --- start-up -------------------------------------------------------------------------------------


def _imported(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "convcli", "shape", *args],
                          capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    names = [line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return {name.split(".")[0] for name in names}


def test_shape_imports_no_numpy_pillow_or_rich_unless_needed():
    heavy = {"numpy", "PIL", "rich"}
    assert not _imported("--in", "224", "--k", "7", "--s", "2", "--p", "3") & heavy
    assert not _imported("--in", "224", "--layers", "conv k7 s2 p3; maxpool k3 s2 p1", "--json") & heavy
    assert _imported("--in", "224", "--k", "3,3") & heavy == {"rich"}
