"""Reading a layer's weights: layouts, .npz entries and their biases, and every refusal."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from convcli.errors import ConvcliError, KernelError, ParameterError, ShapeError
from convcli.weights import check_channels, load_bias, load_weights, parse_layout, split_spec

from .conftest import SAMPLES


@pytest.fixture
def w8(rng) -> np.ndarray:
    return rng.standard_normal((8, 3, 5, 3)).astype(np.float32)


def test_npy_in_pytorch_layout(tmp_path, w8):
    np.save(tmp_path / "conv1.npy", w8)
    lw = load_weights(str(tmp_path / "conv1.npy"))
    assert lw.weight.dtype == np.float64 and lw.shape == (8, 3, 5, 3)
    np.testing.assert_array_equal(lw.weight, w8)
    assert lw.bias is None and lw.name == "conv1" and lw.layout == "oihw" and lw.kernel == (5, 3)


def test_npy_in_tensorflow_layout_is_transposed(tmp_path, w8):
    np.save(tmp_path / "k.npy", w8.transpose(2, 3, 1, 0))  # (kh, kw, C_in, C_out)
    lw = load_weights(str(tmp_path / "k.npy"), layout="hwio")
    np.testing.assert_array_equal(lw.weight, w8)
    assert lw.stored_shape == (5, 3, 3, 8) and lw.layout == "hwio"
    assert load_weights(str(tmp_path / "k.npy"), layout="TensorFlow").layout == "hwio"


def test_npz_weight_and_bias(tmp_path, w8):
    b = np.arange(8.0)
    np.savez(tmp_path / "layer.npz", weight=w8, bias=b)
    lw = load_weights(str(tmp_path / "layer.npz"))
    np.testing.assert_array_equal(lw.bias, b)
    assert lw.bias_source == f"{tmp_path / 'layer.npz'}:bias" and lw.name == "layer"


def test_state_dict_entry_finds_its_bias(tmp_path, w8):
    b = np.arange(8.0)
    np.savez(tmp_path / "model.npz", **{"conv1.weight": w8, "conv1.bias": b, "fc.weight": np.ones((2, 8)),
                                         "fc.bias": np.ones(2)})
    lw = load_weights(f"{tmp_path / 'model.npz'}:conv1.weight")
    np.testing.assert_array_equal(lw.bias, b)
    assert lw.name == "conv1" and lw.bias_source.endswith("model.npz:conv1.bias")


def test_keras_style_entries(tmp_path, w8):
    np.savez(tmp_path / "k.npz", **{"block1/conv/kernel:0": w8.transpose(2, 3, 1, 0), "block1/conv/bias:0": np.ones(8)})
    lw = load_weights(f"{tmp_path / 'k.npz'}:block1/conv/kernel:0", layout="hwio")
    np.testing.assert_array_equal(lw.weight, w8)
    np.testing.assert_array_equal(lw.bias, np.ones(8))
    assert lw.name == "block1-conv"


def test_a_single_unnamed_array_needs_no_key(tmp_path, w8):
    np.savez(tmp_path / "one.npz", w8)
    np.testing.assert_array_equal(load_weights(str(tmp_path / "one.npz")).weight, w8)


def test_bias_option_overrides_and_reads_npy_or_npz(tmp_path, w8):
    np.savez(tmp_path / "layer.npz", weight=w8, bias=np.zeros(8))
    np.save(tmp_path / "b.npy", np.full(8, 2.0))
    np.savez(tmp_path / "b.npz", bias=np.full(8, 3.0), other=np.ones(8))
    assert load_weights(str(tmp_path / "layer.npz"), bias=str(tmp_path / "b.npy")).bias[0] == 2.0
    assert load_weights(str(tmp_path / "layer.npz"), bias=str(tmp_path / "b.npz")).bias[0] == 3.0
    assert load_weights(str(tmp_path / "layer.npz"), bias=f"{tmp_path / 'b.npz'}:other").bias[0] == 1.0
    assert load_bias(str(tmp_path / "b.npy"), 8).shape == (8,)


def test_integer_and_float16_weights_become_float64(tmp_path):
    np.save(tmp_path / "i.npy", np.ones((2, 1, 3, 3), dtype=np.int8))
    np.save(tmp_path / "h.npy", np.ones((2, 1, 3, 3), dtype=np.float16))
    for name in ("i.npy", "h.npy"):
        assert load_weights(str(tmp_path / name)).weight.dtype == np.float64


def test_split_spec_only_splits_npz():
    assert split_spec("a/b.npz:x.weight") == (split_spec("a/b.npz")[0], "x.weight")
    assert split_spec("C:/w.npy")[1] is None


def _refused(tmp_path, make, spec, *, error=KernelError, layout="oihw", bias=None) -> str:
    make(tmp_path)
    with pytest.raises(error) as info:
        load_weights(spec.replace("{d}", str(tmp_path)), layout=layout, bias=bias and bias.replace("{d}", str(tmp_path)))
    message = str(info.value)
    assert "\n" not in message and info.value.usage and "allow_pickle" not in message
    return message


def test_wrong_ndim_with_hints(tmp_path):
    def make(d):
        np.save(d / "k2.npy", np.ones((3, 3)))
        np.save(d / "k3.npy", np.ones((3, 5, 5)))
        np.save(d / "k5.npy", np.ones((1, 2, 3, 3, 3)))

    m = _refused(tmp_path, make, "{d}/k2.npy")
    assert "has shape (3, 3) (2-D)" in m and "4-D (C_out, C_in/groups, kh, kw)" in m and "-k @FILE" in m
    m = _refused(tmp_path, make, "{d}/k3.npy")
    assert "add the C_out axis" in m and "w[numpy.newaxis]" in m
    m = _refused(tmp_path, make, "{d}/k3.npy", layout="hwio")
    assert "(kh, kw, C_in/groups, C_out) (hwio)" in m and "w[..., numpy.newaxis]" in m
    assert "not a stack or a batch" in _refused(tmp_path, make, "{d}/k5.npy")


def test_ragged_and_non_numeric_files(tmp_path):
    def make(d):
        ragged = np.empty(2, dtype=object)
        ragged[0], ragged[1] = np.ones((3, 3)), np.ones((2, 2))
        np.save(d / "ragged.npy", ragged, allow_pickle=True)
        np.save(d / "text.npy", np.array([["a", "b"]]))
        np.save(d / "complex.npy", np.ones((1, 1, 3, 3), dtype=complex))
        np.save(d / "empty.npy", np.ones((4, 3, 0, 3)))
        (d / "junk.npy").write_bytes(b"not numpy")
        (d / "junk.npz").write_bytes(b"not a zip")

    assert "ragged list of arrays" in _refused(tmp_path, make, "{d}/ragged.npy")
    assert "<U1 values, not real numbers" in _refused(tmp_path, make, "{d}/text.npy")
    assert "complex128 values" in _refused(tmp_path, make, "{d}/complex.npy")
    assert "empty axis (shape (4, 3, 0, 3))" in _refused(tmp_path, make, "{d}/empty.npy")
    assert "not an array NumPy can read" in _refused(tmp_path, make, "{d}/junk.npy")
    assert "not a zip archive" in _refused(tmp_path, make, "{d}/junk.npz")


def test_non_finite_weights_name_the_first_bad_index(tmp_path):
    def make(d):
        w = np.ones((2, 3, 3, 3))
        w[1, 2, 0, 1] = np.nan
        w[1, 2, 2, 2] = np.inf
        np.save(d / "nan.npy", w)

    m = _refused(tmp_path, make, "{d}/nan.npy")
    assert "2 NaN or infinite value(s), the first at index (1, 2, 0, 1)" in m


def test_missing_keys_list_what_is_there(tmp_path, w8):
    def make(d):
        np.savez(d / "m.npz", **{"conv1.weight": w8, "conv1.bias": np.ones(8), "layer1.0.conv1.weight": w8})

    m = _refused(tmp_path, make, "{d}/m.npz:conv1.weights")
    assert "no entry 'conv1.weights'" in m and "did you mean 'conv1.weight'?" in m
    assert "conv1.weight (8x3x5x3), conv1.bias (8), layer1.0.conv1.weight (8x3x5x3)" in m
    m = _refused(tmp_path, make, "{d}/m.npz")
    assert "has no entry 'weight'" in m and "m.npz:KEY" in m and "conv1.bias (8)" in m
    m = _refused(tmp_path, make, "{d}/m.npz:conv1.weight", bias="{d}/m.npz:bias", error=KernelError)
    assert "no entry 'bias'" in m


def test_bias_of_the_wrong_length_or_shape(tmp_path, w8):
    def make(d):
        np.savez(d / "l.npz", weight=w8, bias=np.ones(7))
        np.save(d / "w.npy", w8)
        np.save(d / "b2.npy", np.ones((8, 1)))
        np.save(d / "bnan.npy", np.array([np.nan] * 8))

    m = _refused(tmp_path, make, "{d}/l.npz")
    assert "has shape (7,), but the bias needs one value per output channel: (8,)" in m and "C_out = 8" in m
    assert "shape (8, 1)" in _refused(tmp_path, make, "{d}/w.npy", bias="{d}/b2.npy")
    assert "NaN" in _refused(tmp_path, make, "{d}/w.npy", bias="{d}/bnan.npy")


@pytest.mark.parametrize(
    "spec,message",
    [
        ("{d}/nothing.npy", "does not exist"),
        ("{d}", "unknown file type"),
        ("{d}/model.pt", "PyTorch files are not read directly"),
        ("{d}/model.h5", "Keras files"),
        ("{d}/w.txt", "unknown file type '.txt'"),
    ],
)
def test_files_that_cannot_be_weights(tmp_path, spec, message):
    assert message in _refused(tmp_path, lambda d: None, spec, error=ParameterError)


def test_entries_only_in_npz(tmp_path, w8):
    def make(d):
        np.save(d / "w.npy", w8)

    assert "only .npz files have entries; give " in _refused(tmp_path, make, "{d}/w.npy:x", error=ParameterError)


def test_unknown_layout_has_a_did_you_mean():
    with pytest.raises(ParameterError) as info:
        parse_layout("hwoi")
    assert "did you mean 'hwio'?" in str(info.value)


@pytest.mark.parametrize(
    "shape,channels,groups,layout,hints",
    [
        ((8, 3, 3, 3), 1, 1, "oihw", ["weights 8x3x3x3 take C_in = 3", "1 channel (grayscale)", "convert('RGB')"]),
        ((8, 1, 3, 3), 3, 1, "oihw", ["3 channels (RGB)", "C_in = 1", "convert('L')"]),
        ((3, 1, 3, 3), 3, 1, "oihw", ["--groups 3 (depthwise)"]),
        ((8, 2, 3, 3), 4, 1, "oihw", ["--groups 2"]),
        ((5, 5, 3, 8), 3, 1, "oihw", ["--layout hwio (the stored shape 5x5x3x8 read as (kh, kw, C_in/groups, C_out))"]),
        ((8, 3, 3, 3), 5, 1, "oihw", ["5 channels", "an image with 3 channels or weights made for 5"]),
        ((8, 2, 3, 3), 3, 2, "oihw", ["C_in = 4 (2 per group x 2 groups)"]),
    ],
)
def test_channel_mismatch_names_both_numbers_and_a_fix(tmp_path, shape, channels, groups, layout, hints):
    np.save(tmp_path / "w.npy", np.ones(shape))
    lw = load_weights(str(tmp_path / "w.npy"), layout=layout)
    with pytest.raises(ShapeError) as info:
        check_channels(lw, channels, groups, "photo.png")
    message = str(info.value)
    assert message.startswith("photo.png has ")
    for hint in hints:
        assert hint in message


def test_groups_must_divide_c_out(tmp_path):
    np.save(tmp_path / "w.npy", np.ones((6, 1, 3, 3)))
    lw = load_weights(str(tmp_path / "w.npy"))
    with pytest.raises(ShapeError, match="--groups 4 does not divide the 6 output channels"):
        check_channels(lw, 4, 4, "x.png")
    check_channels(lw, 3, 3, "x.png")  # 6 maps, 2 per channel: fine


def test_errors_are_convcli_errors_never_numpy_ones(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04" + b"\0" * 30)
    with pytest.raises(ConvcliError):
        load_weights(str(tmp_path / "bad.npz"))


def test_the_shipped_weights_are_what_the_script_makes():
    spec = importlib.util.spec_from_file_location("make_weights", SAMPLES / "weights" / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    w, b = module.rgb8()
    np.testing.assert_array_equal(np.load(SAMPLES / "weights" / "rgb8.npy"), w)
    np.testing.assert_array_equal(np.load(SAMPLES / "weights" / "rgb8_bias.npy"), b)
    with np.load(SAMPLES / "weights" / "layers.npz") as npz:
        assert sorted(npz.files) == ["blur.weight", "conv1.bias", "conv1.weight"]
        np.testing.assert_array_equal(npz["conv1.weight"], w)
        np.testing.assert_array_equal(npz["blur.weight"], module.blur())
    assert w.shape == (8, 3, 3, 3) and w.dtype == np.float32
    # the filters do what the script's table says: brightness sums to 1, the rest to 0
    sums = w.astype(np.float64).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(sums, [1, 0, 0, 0, 0, 0, 0, 0], atol=1e-6)


def test_ragged_entry_in_an_npz(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.ones(3), np.ones(2)
    np.savez(tmp_path / "r.npz", weight=ragged)
    with pytest.raises(KernelError, match=r"r.npz:weight holds Python objects \(a ragged list of arrays\?\)"):
        load_weights(str(tmp_path / "r.npz"))
