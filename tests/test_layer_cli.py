"""``convcli apply --weights``: a convolution layer end to end; stdout, stderr and exit codes apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageSequence
from typer.testing import CliRunner

from convcli.cli import app

from .conftest import SAMPLES, assert_close, read_image
from .test_layer_engine import reference

WEIGHTS = SAMPLES / "weights"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run convcli in an empty temporary folder; returns (exit_code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: object):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert "Traceback" not in result.stderr
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("convcli: error: ")
    return lines[0]


def _photo(name: str) -> np.ndarray:
    return read_image(SAMPLES / name)


# --- the numbers ------------------------------------------------------------------------------


def test_the_seeds_parameter_count_comes_out_of_the_report(cli, tmp_path, rng):
    """3 x 3 x 3 x 64 + 64 = 1792, as the teaching texts count a first layer."""
    np.savez(tmp_path / "first.npz", weight=rng.standard_normal((64, 3, 3, 3)), bias=rng.standard_normal(64))
    code, out, err = cli("apply", SAMPLES / "astronaut.png", "--weights", "first.npz", "--padding", "1",
                         "-o", "maps.npy")
    assert code == 0 and out == ""
    assert "params   3x3x3x64 + 64 = 1,792   MACs 113,246,208" in err
    assert "one output value reads 3x3 pixels x 3 channel(s), 27 weights" in err
    code, out, err = cli("apply", SAMPLES / "astronaut.png", "--weights", "first.npz", "--padding", "1",
                         "-o", "maps.npy", "--json")
    assert code == 0 and err == ""
    run = json.loads(out)["results"][0]["runs"][0]
    assert run["params"] == 1792 and run["params_formula"] == "3x3x3x64 + 64 = 1,792"
    assert run["macs"] == 256 * 256 * 64 * 27
    assert run["receptive_field"] == [3, 3] and run["inputs_per_value"] == 27
    assert run["first_value_reads"] == {"rows": [-1, 1], "cols": [-1, 1]}
    assert run["output_shape"] == [256, 256, 64] and run["channels_in"] == 3 and run["groups"] == 1


def test_a_strided_layer_on_a_photo_matches_the_reference(cli, tmp_path, rng):
    w = rng.standard_normal((8, 3, 7, 7)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    np.save(tmp_path / "conv1.npy", w)
    np.save(tmp_path / "conv1_bias.npy", b)
    code, out, err = cli("apply", SAMPLES / "coffee.jpg", "--weights", "conv1.npy", "--bias", "conv1_bias.npy",
                         "--stride", "2", "--padding", "3", "-o", "maps.npy")
    assert code == 0 and out == ""
    maps = np.load(tmp_path / "maps.npy")
    assert maps.dtype == np.float32 and maps.shape == (150, 200, 8)
    expected = reference(_photo("coffee.jpg"), w, b, stride=(2, 2), dilation=(1, 1), pads=((3, 3), (3, 3)), groups=1)
    assert_close(maps, expected)
    for words in ("weights  conv1.npy  8x3x7x7", "bias conv1_bias.npy", "border zero", "top 3, bottom 3",
                  "params   7x7x3x8 + 8 = 1,184", "receptive field 7x7, jump 2x2",
                  "value (0, 0) reads rows -3..3, cols -3..3", "maps.npy  150x200x8 float32"):
        assert words in err, words


def test_groups_dilation_and_a_state_dict_entry(cli, tmp_path, rng):
    w = rng.standard_normal((6, 2, 3, 3))
    b = rng.standard_normal(6)
    x = rng.random((25, 30, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "model.npz", **{"features.3.weight": w, "features.3.bias": b, "fc.weight": np.ones((2, 2))})
    code, _, err = cli("apply", "x.npy", "--weights", "model.npz:features.3.weight", "--groups", "2",
                       "--dilation", "2", "--padding", "same", "-o", "out/")
    assert code == 0
    maps = np.load(tmp_path / "out" / "x.features.3.npy")
    expected = reference(x, w, b, stride=(1, 1), dilation=(2, 2), pads=((2, 2), (2, 2)), groups=2)
    assert_close(maps, expected)
    assert "6 maps from 4 channel(s) in 2 groups (2 channel(s) each)" in err
    assert "bias model.npz:features.3.bias" in err


def test_tensorflow_layout_gives_the_same_maps(cli, tmp_path, rng):
    w = rng.standard_normal((5, 3, 3, 5))
    np.save(tmp_path / "oihw.npy", w)
    np.save(tmp_path / "hwio.npy", w.transpose(2, 3, 1, 0))
    cli("apply", SAMPLES / "chelsea.jpg", "--weights", "oihw.npy", "-o", "a.npy")
    code, _, err = cli("apply", SAMPLES / "chelsea.jpg", "--weights", "hwio.npy", "--layout", "hwio", "-o", "b.npy")
    assert code == 0 and "5x3x3x5 (C_out x C_in/groups x kh x kw, hwio, stored 3x5x3x5)" in err
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_depthwise_layer_is_apply_k_exactly(cli, tmp_path):
    """--groups 3 with one kernel per channel runs the per-channel engine: the same numbers as -k."""
    code, _, err = cli("apply", SAMPLES / "chelsea.jpg", "--weights", WEIGHTS / "layers.npz:blur.weight",
                       "--groups", "3", "--border", "reflect", "-o", "dw.npy")
    assert code == 0 and "engine   depthwise: one kernel per input channel" in err
    cli("apply", SAMPLES / "chelsea.jpg", "-k", "gaussian-blur-5", "-o", "k.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "dw.npy"), np.load(tmp_path / "k.npy"))


def test_imagenet_normalisation_is_applied_before_the_layer(cli, tmp_path, rng):
    w = rng.standard_normal((4, 3, 3, 3))
    np.save(tmp_path / "w.npy", w)
    code, _, err = cli("apply", SAMPLES / "astronaut.png", "--weights", "w.npy", "--input-scale", "1/255",
                       "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225", "--border", "replicate",
                       "-o", "m.npy")
    assert code == 0
    assert "x 1/255 - mean 0.485,0.456,0.406 / std 0.229,0.224,0.225 (ImageNet's)" in err
    x = (_photo("astronaut.png") / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    expected = reference(x, w, None, stride=(1, 1), dilation=(1, 1), pads=((1, 1), (1, 1)), groups=1,
                         border="replicate")
    assert_close(np.load(tmp_path / "m.npy"), expected)
    # one mean and std for every channel
    code, _, _ = cli("apply", SAMPLES / "astronaut.png", "--weights", "w.npy", "--mean", "128", "--std", "64",
                     "-o", "m1.npy")
    x1 = (_photo("astronaut.png") - 128.0) / 64.0
    assert_close(np.load(tmp_path / "m1.npy"),
                 reference(x1, w, None, stride=(1, 1), dilation=(1, 1), pads=((1, 1), (1, 1)), groups=1))


def test_convolve_flips_every_kernel(cli, tmp_path, rng):
    w = rng.standard_normal((3, 3, 2, 3))
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "flipped.npy", w[:, :, ::-1, ::-1])
    cli("apply", SAMPLES / "coffee.jpg", "--weights", "w.npy", "--convolve", "-o", "c.npy")
    cli("apply", SAMPLES / "coffee.jpg", "--weights", "flipped.npy", "-o", "r.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), np.load(tmp_path / "r.npy"))


def test_maps_of_one_layer_feed_the_next(cli, tmp_path, rng):
    """A (H', W', C_out) .npy is an input with C_out channels: layers chain."""
    w2 = rng.standard_normal((2, 8, 3, 3))
    np.save(tmp_path / "conv2.npy", w2)
    cli("apply", SAMPLES / "astronaut.png", "--weights", WEIGHTS / "rgb8.npy", "--input-scale", "1/255",
        "--stride", "2", "-o", "l1.npy")
    code, _, err = cli("apply", "l1.npy", "--weights", "conv2.npy", "-o", "l2.npy")
    assert code == 0 and "2 maps from 8 channel(s)" in err
    l1 = np.load(tmp_path / "l1.npy")
    assert_close(np.load(tmp_path / "l2.npy"),
                 reference(l1, w2, None, stride=(1, 1), dilation=(1, 1), pads=((1, 1), (1, 1)), groups=1))


# --- the other outputs ------------------------------------------------------------------------


def test_npz_holds_the_maps_and_the_report(cli, tmp_path):
    args = ("apply", SAMPLES / "coffee.jpg", "--weights", WEIGHTS / "layers.npz:conv1.weight", "--input-scale",
            "1/255", "--stride", "2")
    cli(*args, "-o", "m.npy")
    code, _, _ = cli(*args, "-o", "m.npz")
    assert code == 0
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["maps", "report"]
        np.testing.assert_array_equal(npz["maps"], np.load(tmp_path / "m.npy"))
        report = json.loads(str(npz["report"]))
    assert report["params"] == 8 * 27 + 8 and report["weight_shape"] == [8, 3, 3, 3]
    assert report["normalisation"] == {"scale": "1/255", "mean": None, "std": None}
    assert report["bias"].endswith("layers.npz:conv1.bias") and len(report["maps"]) == 8
    maps = np.load(tmp_path / "m.npy").astype(np.float64)
    for c, stats in enumerate(report["maps"]):
        assert stats["min"] == maps[..., c].min() and stats["max"] == maps[..., c].max()
        assert stats["mean"] == pytest.approx(maps[..., c].mean(), rel=1e-9, abs=1e-12)
        assert stats["std"] == pytest.approx(maps[..., c].std(), rel=1e-9)
    assert (report["min"], report["max"]) == (maps.min(), maps.max())
    assert report["mean"] == pytest.approx(maps.mean(), rel=1e-9, abs=1e-12)


def test_tiff_has_one_float_page_per_map(cli, tmp_path):
    args = ("apply", SAMPLES / "coffee.jpg", "--weights", WEIGHTS / "rgb8.npy", "--padding", "valid")
    cli(*args, "-o", "m.npy")
    code, _, _ = cli(*args, "-o", "m.tif")
    assert code == 0
    maps = np.load(tmp_path / "m.npy")
    with Image.open(tmp_path / "m.tif") as tif:
        pages = [np.asarray(page) for page in ImageSequence.Iterator(tif)]
    assert len(pages) == 8 and pages[0].dtype == np.float32 and pages[0].shape == (298, 398)
    np.testing.assert_array_equal(np.stack(pages, axis=2), maps)


def test_grid_tiles_are_normalised_labelled_and_diverging(cli, tmp_path):
    x = np.zeros((20, 30, 3))
    x[:, :, 0] = np.linspace(-1, 1, 30)  # a signed ramp in the first channel
    np.save(tmp_path / "ramp.npy", x)
    w = np.zeros((2, 3, 1, 1))
    w[1, 0] = 1.0  # map 0: all zero; map 1: the ramp
    np.save(tmp_path / "w.npy", w)
    code, _, err = cli("apply", "ramp.npy", "--weights", "w.npy", "--grid", "grid.png")
    assert code == 0 and "grid grid.png" in err and not (tmp_path / "ramp.w.npy").exists()
    pic = read_image(tmp_path / "grid.png")
    # tiles of 60x90 (30 columns enlarged 3x to reach 64), two in a row under 14-pixel labels,
    # 6-pixel margins and a 3-line legend
    assert pic.shape[0] == 6 + 14 + 60 + 4 + 3 * 13 + 6 and pic.shape[1] >= 6 + 90 + 4 + 90 + 6
    top = 6 + 14
    assert tuple(pic[top + 30, 6 + 45]) == (128, 128, 128)         # constant map: mid-grey
    left, right = 6 + 90 + 4, 6 + 90 + 4 + 89
    assert tuple(pic[top + 30, left]) == (33, 102, 172)             # -1: blue
    assert tuple(pic[top + 30, right]) == (178, 24, 43)             # +1: red
    assert tuple(pic[top + 1, 6 + 90 + 2]) == (48, 48, 48)          # the gap between tiles
    assert np.any(pic[6:top, left:left + 20] != 48)                 # a label above the tile


def test_filters_picture(cli, tmp_path):
    w = np.zeros((2, 3, 3, 3))
    w[0, 0, 1, 1] = 2.0    # filter 0: the centre of the red input
    w[1, 2] = -1.0         # filter 1: minus the blue input everywhere
    np.save(tmp_path / "w.npy", w)
    code, _, err = cli("apply", SAMPLES / "astronaut.png", "--weights", "w.npy", "--show-filters", "f.png",
                       "-o", "m.npy")
    assert code == 0 and "filters f.png" in err
    pic = read_image(tmp_path / "f.png")
    top = 6 + 14
    assert tuple(pic[top + 24, 6 + 24]) == (255, 128, 128)          # centre of filter 0: red at full weight
    assert tuple(pic[top + 2, 6 + 2]) == (128, 128, 128)            # its corner: zero, mid-grey
    assert tuple(pic[top + 2, 6 + 48 + 4 + 2]) == (128, 128, 0)     # filter 1: blue at -1
    assert pic.shape[1] >= 2 * 48 + 4 + 12


def test_filters_over_other_channel_counts_are_rows_of_tiles(cli, tmp_path, rng):
    np.save(tmp_path / "x.npy", rng.random((10, 12, 2)))
    w = np.zeros((3, 2, 3, 3))
    w[:, 1, 0, 0] = 1.0
    np.save(tmp_path / "w.npy", w)
    code, _, _ = cli("apply", "x.npy", "--weights", "w.npy", "--show-filters", "f.png", "--grid", "g.png")
    assert code == 0
    pic = read_image(tmp_path / "f.png")
    top = 6 + 14
    # 3 rows of 2 tiles of 48 pixels; input channel 1's top-left weight is +1 (red), channel 0 is 0 (white)
    assert tuple(pic[top + 2, 6 + 48 + 4 + 2]) == (178, 24, 43)
    assert tuple(pic[top + 2, 6 + 2]) == (255, 255, 255)
    assert tuple(pic[top + 2 * (48 + 14 + 4) + 2, 6 + 48 + 4 + 2]) == (178, 24, 43)
    assert read_image(tmp_path / "g.png").shape[2] == 3


def test_several_inputs_into_folders(cli, tmp_path):
    code, _, err = cli("apply", SAMPLES / "coffee.jpg", SAMPLES / "astronaut.png", "--weights",
                       WEIGHTS / "rgb8.npy", "-o", "maps/", "--grid", "grids/", "--show-filters", "f.png")
    assert code == 0 and "2 files: 2 done, 0 failed" in err
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["astronaut.rgb8.npy", "coffee.rgb8.npy"]
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["astronaut.rgb8.grid.png",
                                                                       "coffee.rgb8.grid.png"]
    assert (tmp_path / "f.png").is_file()


def test_default_output_goes_beside_the_input(cli, tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "cam.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    code, out, err = cli("apply", "pics/cam.jpg", "--weights", WEIGHTS / "layers.npz:conv1.weight", "-q")
    assert (code, out, err) == (0, "", "")
    assert np.load(tmp_path / "pics" / "cam.conv1.npy").shape == (300, 400, 8)


def test_alpha_is_left_out_with_a_note(cli, tmp_path, rng):
    Image.fromarray(rng.integers(0, 256, size=(12, 14, 4), dtype=np.uint8)).save(tmp_path / "a.png")
    code, _, err = cli("apply", "a.png", "--weights", WEIGHTS / "rgb8.npy", "-o", "m.npy")
    assert code == 0 and "alpha not used" in err and np.load(tmp_path / "m.npy").shape == (12, 14, 8)


def test_every_picture_and_map_is_written_atomically_with_no_leftovers(cli, tmp_path):
    (tmp_path / "m.npy").write_bytes(b"old")
    code, _, _ = cli("apply", SAMPLES / "coffee.jpg", "--weights", WEIGHTS / "rgb8.npy", "-o", "m.npy",
                     "--grid", "g.png", "--show-filters", "f.png", "-q")
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "g.png", "m.npy"]
    assert np.load(tmp_path / "m.npy").shape == (300, 400, 8)


# --- errors: one line, the right exit code, nothing written ---------------------------------------


@pytest.fixture
def bad_files(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.ones((3, 3)), np.ones((2, 2))
    np.save(tmp_path / "ragged.npy", ragged, allow_pickle=True)
    np.save(tmp_path / "flat.npy", np.ones((3, 3)))
    nan = np.ones((2, 3, 3, 3))
    nan[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "b7.npy", np.ones(7))
    np.savez(tmp_path / "model.npz", **{"conv1.weight": np.ones((8, 3, 3, 3)), "conv1.bias": np.ones(8)})


@pytest.mark.parametrize(
    "image,args,message",
    [
        ("camera.png", ["--weights", WEIGHTS / "rgb8.npy"],
         "camera.png has 1 channel (grayscale) but the weights 8x3x3x3 take C_in = 3; try an RGB version"),
        ("astronaut.png", ["--weights", WEIGHTS / "layers.npz:blur.weight"],
         "astronaut.png has 3 channels (RGB) but the weights 3x1x5x5 take C_in = 1; try --groups 3 (depthwise)"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--groups", "2"],
         "take C_in = 6 (3 per group x 2 groups); try --groups 1"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--groups", "5"], "--groups 5 does not divide the 8"),
        ("astronaut.png", ["--weights", "ragged.npy"], "ragged list of arrays"),
        ("astronaut.png", ["--weights", "flat.npy"], "has shape (3, 3) (2-D), but a layer's weights are 4-D"),
        ("astronaut.png", ["--weights", "nan.npy"], "1 NaN or infinite value(s), the first at index (0, 0, 0, 0)"),
        ("astronaut.png", ["--weights", "model.npz:conv1"], "did you mean 'conv1.bias'?"),
        ("astronaut.png", ["--weights", "model.npz:conv2.weight"], "it holds: conv1.weight (8x3x3x3), conv1.bias (8)"),
        ("astronaut.png", ["--weights", "model.npz"], "has no entry 'weight'; pick one with model.npz:KEY"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--bias", "b7.npy"], "(8,) for these weights with C_out = 8"),
        ("astronaut.png", ["--weights", "missing.npy"], "--weights missing.npy does not exist"),
        ("astronaut.png", ["--weights", "model.pth"], "PyTorch files are not read directly"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--layout", "nhwc"], "unknown layout 'nhwc'"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "-k", "sobel-x"], "give -k/--kernel or --weights"),
        ("astronaut.png", ["-k", "sobel-x", "--grid", "g.png"], "--grid applies to a convolution layer"),
        ("astronaut.png", ["-k", "sobel-x", "--mean", "1"], "--mean applies to a convolution layer"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "-o", "maps.png"], "(the maps as a picture: --grid"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--grid", "g.jpg"], "the grid is a PNG picture"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--show-filters", "f.gif"], "ending in .png"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--mean", "1,2"],
         "--mean has 2 values but"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--std", "1,0,1"], "must be above 0"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--input-scale", "0"], "--input-scale 0"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--input-scale", "1/255,2"], "takes one number"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--input-scale", "x"], "is not a number"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--groups", "0"], "--groups must be at least 1"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--stride", "0"], "stride must be at least 1"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "-o", "m.npy", "--grid", "m.npy"], "the grid is a PNG"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--grid", "a.png", "--show-filters", "a.png"],
         "would be written twice"),
        ("astronaut.png", ["--weights", "model.npz:conv1.weight", "-o", "model.npz"], "never overwrites its inputs"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--engine", "magic"], "is not one of auto"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--scale", "2"], "(to scale the input, --input-scale)"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--combine", "max"], "--combine applies to -k kernels"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--alpha", "filter"], "--alpha applies to -k kernels"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--frames", "all"], "--frames applies to -k kernels"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "--gray", "--channels", "R"], "give one of them"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "-o", "m.npy", "--report", "m.npy"], "ending in .json"),
        ("astronaut.png", ["--weights", WEIGHTS / "rgb8.npy", "-o", "m.npz", "--report", "m.json", "--grid",
                           "m.json"], "the grid is a PNG"),
    ],
)
def test_usage_errors_exit_2_with_one_line(cli, tmp_path, bad_files, image, args, message):
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = cli("apply", SAMPLES / image, *args)
    line = _one_error_line(err)
    assert message in line
    assert out == "" and code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_neither_kernel_nor_weights(cli):
    code, _, err = cli("apply", SAMPLES / "camera.png")
    assert code == 2 and "give a kernel with -k/--kernel, or a layer's weights with --weights" in _one_error_line(err)


def test_a_layer_too_large_for_an_input_is_a_processing_failure(cli, tmp_path):
    np.save(tmp_path / "tiny.npy", np.ones((2, 2, 3)))
    code, _, err = cli("apply", "tiny.npy", "--weights", WEIGHTS / "rgb8.npy", "--padding", "valid", "-o", "m.npy")
    assert code == 1 and "floor((2 + 0 + 0 - 3) / 1) + 1 = 0" in _one_error_line(err)
    assert not (tmp_path / "m.npy").exists()


def test_an_unreadable_image_fails_but_the_others_are_written(cli, tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    code, out, err = cli("apply", "bad.png", SAMPLES / "coffee.jpg", "--weights", WEIGHTS / "rgb8.npy", "-o", "o/",
                         "-q")
    assert code == 1 and out == "" and "bad.png" in _one_error_line(err)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["coffee.rgb8.npy"]


def test_help_does_not_import_numpy_or_pillow():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "convcli", "apply", "--help"],
                          capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0 and "--weights" in proc.stdout and "--show-filters" in proc.stdout
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in proc.stderr.splitlines()
             if line.startswith("import time:")}
    assert not names & {"numpy", "PIL", "scipy", "rich"}


# --- PyTorch, when installed ------------------------------------------------------------------


def test_the_shipped_layer_matches_torch(cli, tmp_path):
    torch = pytest.importorskip("torch")
    code, _, _ = cli("apply", SAMPLES / "coffee.jpg", "--weights", WEIGHTS / "layers.npz:conv1.weight",
                     "--input-scale", "1/255", "--stride", "2", "--padding", "1", "-o", "m.npy")
    assert code == 0
    with np.load(WEIGHTS / "layers.npz") as npz:
        conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(npz["conv1.weight"]))
            conv.bias.copy_(torch.from_numpy(npz["conv1.bias"]))
            x = torch.from_numpy((_photo("coffee.jpg") / np.float32(255)).astype(np.float32))
            theirs = conv(x.permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert_close(np.load(tmp_path / "m.npy"), theirs.astype(np.float64))


def test_pictures_of_many_maps_and_depthwise_filters_stay_compact(tmp_path):
    from convcli._grid import MAX_WIDTH, feature_grid, filter_picture

    maps = np.random.default_rng(1).standard_normal((300, 300, 100))
    pic = feature_grid(maps)
    assert pic.shape[1] <= MAX_WIDTH + 12 and pic.shape[0] < 1.2 * pic.shape[1]  # 10 x 10 tiles
    depthwise = filter_picture(np.ones((16, 1, 3, 3)))
    assert depthwise.shape[1] >= 4 * 48 and depthwise.shape[0] < 4 * (48 + 14 + 4) + 80  # 4 x 4, not 16 x 1


def test_the_readme_python_example_for_layers_runs(tmp_path, monkeypatch):
    import re
    import shutil

    from .conftest import ROOT

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (code,) = [b for b in blocks if "conv2d(" in b]
    shutil.copytree(SAMPLES, tmp_path / "samples")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    maps = scope["maps"]
    assert maps.shape == (150, 200, 8) and maps.dtype == np.float32
    w = scope["layer"].weight
    expected = reference(_photo("coffee.jpg") / 255.0, w, scope["layer"].bias, stride=(2, 2), dilation=(1, 1),
                         pads=((1, 1), (1, 1)), groups=1)
    assert_close(maps, expected)


def test_separable_engine_on_a_full_rank_depthwise_layer_is_a_usage_error(cli, tmp_path, rng):
    np.save(tmp_path / "dw.npy", rng.standard_normal((3, 1, 5, 5)))
    code, out, err = cli("apply", SAMPLES / "coffee.jpg", "--weights", "dw.npy", "--groups", "3", "--engine",
                         "separable", "-o", "m.npy")
    assert code == 2 and out == "" and "the separable path runs kernels of rank 1 to" in _one_error_line(err)
    code, _, err = cli("apply", SAMPLES / "coffee.jpg", "--weights", WEIGHTS / "layers.npz:blur.weight", "--groups",
                       "3", "--engine", "separable", "-o", "m.npy")
    assert code == 0 and "engine   depthwise" in err


def test_gray_and_channels_choose_what_the_layer_reads(cli, tmp_path, rng):
    """--gray feeds the BT.601 luminance (one channel); --channels R,B feeds those two, in that order."""
    from convcli.images import GRAY_WEIGHTS

    photo = _photo("coffee.jpg").astype(np.float64)
    w1 = rng.standard_normal((4, 1, 3, 3))
    np.save(tmp_path / "w1.npy", w1)
    code, _, err = cli("apply", SAMPLES / "coffee.jpg", "--weights", "w1.npy", "--gray", "-o", "g.npy")
    assert code == 0, err
    luminance = photo @ np.asarray(GRAY_WEIGHTS)
    assert_close(np.load(tmp_path / "g.npy"), reference(luminance, w1, None, stride=(1, 1), dilation=(1, 1),
                                                        pads=((1, 1), (1, 1)), groups=1))
    w2 = rng.standard_normal((3, 2, 3, 3))
    np.save(tmp_path / "w2.npy", w2)
    code, _, err = cli("apply", SAMPLES / "coffee.jpg", "--weights", "w2.npy", "--channels", "B,R", "-o", "c.npy")
    assert code == 0, err
    assert_close(np.load(tmp_path / "c.npy"), reference(photo[:, :, [2, 0]], w2, None, stride=(1, 1),
                                                        dilation=(1, 1), pads=((1, 1), (1, 1)), groups=1))
    code, _, err = cli("apply", SAMPLES / "coffee.jpg", "--weights", "w2.npy", "-o", "c.npy")
    assert code == 2 and "has 3 channels (RGB) but the weights 3x2x3x3 take C_in = 2" in err


def test_report_file_and_pixel_limit_with_weights(cli, tmp_path):
    code, out, err = cli("apply", SAMPLES / "astronaut.png", "--weights", WEIGHTS / "rgb8.npy", "-o", "m.npy",
                         "--report", "run.json", "-q")
    assert code == 0 and out == "" and err == ""
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["files"] == 1 and doc["results"][0]["runs"][0]["output_shape"] == [256, 256, 8]
    code, _, err = cli("apply", SAMPLES / "astronaut.png", "--weights", WEIGHTS / "rgb8.npy", "-o", "n.npy",
                       "--max-pixels", "1000")
    assert code == 1 and "65,536 pixels is above the limit of 1,000" in err and not (tmp_path / "n.npy").exists()


def test_report_never_replaces_an_input(cli, tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes((SAMPLES / "camera.png").read_bytes())
    before = src.read_bytes()
    code, _, err = cli("apply", "in.png", "-k", "sobel-x", "--report", "in.png")
    assert code == 2 and src.read_bytes() == before
    (tmp_path / "run.json").write_text("{}")
    code, _, err = cli("apply", "in.png", "-k", "sobel-x", "-o", "run.json", "--report", "run.json")
    assert code == 2 and (tmp_path / "run.json").read_text() == "{}"


def test_weights_refuse_standard_input(cli):
    code, _, err = cli("apply", "-", "--weights", WEIGHTS / "rgb8.npy")
    assert code == 2 and "standard input (-) is not supported" in _one_error_line(err)
