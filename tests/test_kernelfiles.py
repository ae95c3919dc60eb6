"""Kernel files and the other tools' formats: round trips, hand-made files, and one message per mistake."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from convcli.engine import correlate, correlate1d
from convcli.errors import KernelError
from convcli.kernelfiles import (
    SAVE_SUFFIXES,
    imagemagick_string,
    kernel_file_bytes,
    kernel_from_imagemagick,
    parse_imagemagick,
    read_kernel_file,
)
from convcli.kernels import builtin_registry, resolve_kernel, resolve_spec

from .conftest import SAMPLES

KERNELS = SAMPLES / "kernels"
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)

ROUND_TRIP = ["sobel-x", "gaussian-blur", "box-blur", "unsharp", "roberts-y", "unity", "gaussian:sigma=1.3",
              "log:sigma=1.4", "motion:length=9,angle=30", "box:3x5"]


@pytest.mark.parametrize("suffix", SAVE_SUFFIXES)
@pytest.mark.parametrize("spec", ROUND_TRIP)
def test_every_file_format_round_trips_the_same_matrix(tmp_path, spec, suffix):
    kernel = resolve_kernel(spec)
    data, notes = kernel_file_bytes(kernel, suffix)
    path = tmp_path / f"k{suffix}"
    path.write_bytes(data)
    back = read_kernel_file(str(path))
    assert back.shape == kernel.shape
    np.testing.assert_array_equal(back.weights, kernel.weights)     # bit for bit
    assert notes == ()
    if suffix in (".toml", ".mat"):
        # formats with a scale keep the integer matrix and the fraction
        np.testing.assert_array_equal(back.matrix, kernel.matrix)
        assert back.scale == kernel.scale


@pytest.mark.parametrize("spec", ROUND_TRIP)
def test_imagemagick_strings_round_trip(spec):
    kernel = resolve_kernel(spec)
    text = imagemagick_string(kernel.weights)
    assert text.startswith(f"{kernel.shape[1]}x{kernel.shape[0]}: ")      # width x height, as ImageMagick
    np.testing.assert_array_equal(kernel_from_imagemagick(text).weights, kernel.weights)


def test_offsets_round_trip_where_the_format_holds_them(tmp_path):
    from convcli.kernels import adjust

    kernel = adjust(resolve_kernel("gaussian-blur"), offset=128.0)
    for suffix in (".toml", ".mat"):
        (tmp_path / f"k{suffix}").write_bytes(kernel_file_bytes(kernel, suffix)[0])
        assert read_kernel_file(str(tmp_path / f"k{suffix}")).offset == 128.0
    for suffix in (".txt", ".csv", ".npy"):
        assert kernel_file_bytes(kernel, suffix)[1] == (f"offset 128 not saved: {suffix} files hold only the matrix",)
    with pytest.raises(KernelError, match="cannot save a kernel as '.png'"):
        kernel_file_bytes(kernel, ".png")


def test_the_vips_file_writes_the_divisor_as_vips_reads_it():
    text = kernel_file_bytes(resolve_kernel("box-blur"), ".mat")[0].decode()
    assert text == "3 3 9 0\n1 1 1\n1 1 1\n1 1 1\n"
    text = kernel_file_bytes(resolve_kernel("unsharp"), ".mat")[0].decode()
    assert text.splitlines()[0] == "5 5 -256 0"


# --- the shipped sample files, against matrices written out by hand ------------------------------


def test_sample_files():
    mat = resolve_kernel(f"@{KERNELS / 'sobel.mat'}")
    np.testing.assert_array_equal(mat.weights, SOBEL_X / 4)
    assert mat.scale_text == "1/4" and mat.name == "sobel"
    im = resolve_kernel(f"@{KERNELS / 'im-sobel.txt'}")        # ImageMagick's Sobel: -sobel-x
    np.testing.assert_array_equal(im.weights, -SOBEL_X)
    csv = resolve_kernel(str(KERNELS / "binomial5.csv"))        # a path with a kernel suffix needs no @
    np.testing.assert_array_equal(csv.weights, np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]))
    compass = resolve_spec(f"@{KERNELS / 'mine.toml'}#compass")
    assert compass.combine == "max" and compass.member_names[:2] == ("sobel-x", "sobel-y")
    sharpen = resolve_kernel(f"@{KERNELS / 'mine.toml'}#sharpen")
    assert sharpen.weights[1, 1] == 9


# --- ImageMagick semantics -----------------------------------------------------------------------


def test_imagemagick_geometry_forms():
    assert parse_imagemagick("3: 1 2 3 4 5 6 7 8 9")[0].shape == (3, 3)        # N: is NxN
    m, _ = parse_imagemagick("3x2: 1,2,3 4,5,6")                               # width 3, height 2
    np.testing.assert_array_equal(m, [[1, 2, 3], [4, 5, 6]])
    m, _ = parse_imagemagick("1x3:1 2 3")
    assert m.shape == (3, 1)
    m, _ = parse_imagemagick("3x1: 1/4, 1/2, 1/4")
    np.testing.assert_array_equal(m, [[0.25, 0.5, 0.25]])
    m, notes = parse_imagemagick(" 3x3 : 1 2 3 4 5 6 7 8 9 ; ")                # trailing ';' is ignored
    assert m.shape == (3, 3) and notes == ()


def test_left_out_cells_weigh_zero_under_correlation(rng):
    # a nan or - cell adds nothing to the sum and nothing to the normalisation: exactly a 0 weight
    m, notes = parse_imagemagick("3x3: 1,-,-1 2,nan,-2 1,0,-1")
    np.testing.assert_array_equal(m, -SOBEL_X)
    assert len(notes) == 1 and "2 cells given as nan or - left out" in notes[0]
    image = rng.random((12, 15)) * 255
    expected = np.zeros((10, 13))
    for (i, j), w in np.ndenumerate(np.array([[1, np.nan, -1], [2, np.nan, -2], [1, 0, -1]])):
        if not np.isnan(w):
            expected += w * image[i:i + 10, j:j + 13]
    np.testing.assert_allclose(correlate(image, m, padding="valid"), expected, atol=1e-9)


def test_an_origin_other_than_the_centre_is_kept_by_zero_padding():
    # ImageMagick's origin +X+Y is the tap over the output pixel: out[x] = sum_u k[u] * in[x - X + u]
    m, notes = parse_imagemagick("3x1+0+0: 1 2 3")
    np.testing.assert_array_equal(m, [[0, 0, 1, 2, 3]])
    assert "origin +0+0 kept by padding the 3x1 kernel with zeros to 5x1" in notes[0]
    signal = np.array([1.0, 5, -2, 7, 3, 0, 4])
    out = correlate1d(signal, m[0], padding="same", border="zero")
    padded = np.concatenate([signal, [0, 0]])
    np.testing.assert_array_equal(out, [padded[x] + 2 * padded[x + 1] + 3 * padded[x + 2] for x in range(7)])
    m, _ = parse_imagemagick("2x2+1+1: 1 2 3 4")           # origin at the bottom right
    np.testing.assert_array_equal(m, [[1, 2, 0], [3, 4, 0], [0, 0, 0]])
    m, notes = parse_imagemagick("2x2+0+0: 1 2 3 4")       # the default origin of an even kernel
    np.testing.assert_array_equal(m, [[1, 2], [3, 4]])
    assert notes == ()


@pytest.mark.parametrize(
    "text,message",
    [
        ("3x3: 1 2 3", "needs 9 values, got 3"),
        ("3x1: 1 2 3 4", "needs 3 values, got 4"),
        ("3x3: 1 2 3 4 5 6 7 8 9; 3x3: 1 2 3 4 5 6 7 8 9", "kernel list"),
        ("3x3@: 1 2 3 4 5 6 7 8 9", "rotated kernels"),
        ("3x3+3+0: 1 2 3 4 5 6 7 8 9", "origin +3+0 lies outside"),
        ("2x1: nan -", "every cell is nan"),
        ("2x1: 1 x", "value 2 'x' is not a number"),
        ("2x1: 1 inf", "NaN and infinite"),
        ("0x0: ", "at least 1x1"),
        ("2000x1: 1", "larger than 1025 per side"),
    ],
)
def test_imagemagick_errors(text, message):
    with pytest.raises(KernelError, match=re.escape(message)):
        parse_imagemagick(text)


# --- malformed files: one message each ------------------------------------------------------------


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("ragged.txt", "1 2\n3\n", "ragged matrix: row 2 has 1 entries but row 1 has 2"),
        ("ragged.csv", "1,2\n3,4,5\n", "ragged matrix"),
        ("empty.txt", "# only a comment\n\n", "the matrix is empty"),
        ("empty.csv", "", "the matrix is empty"),
        ("word.csv", "1,a\n", "'a' is not a number"),
        ("nan.csv", "1,nan\n", "NaN"),
        ("inf.txt", "1 -inf\n", "NaN and infinite"),
        ("header.csv", "x,y\n1,2\n", "'x' is not a number"),
        ("bad.mat", "3 x\n1 2 3\n", "the header's height 'x' must be a whole number"),
        ("head.mat", "3\n1 2 3\n", "WIDTH HEIGHT [SCALE [OFFSET]]"),
        ("short.mat", "3 2\n1 2 3\n", "the header says 2 rows of 3 numbers, but 1 rows follow"),
        ("wide.mat", "2 1\n1 2 3\n", "row 1 has 3 numbers, but the header says 2"),
        ("zero.mat", "1 1 0\n1\n", "the header scale is 0"),
        ("empty.mat", "\n", "the file is empty"),
        ("huge.mat", "2000 1\n1\n", "larger than 1025 per side"),
        ("im.txt", "3x3: 1 2\n", "needs 9 values, got 2"),
        ("bad.toml", "[kernels.a\n", "not valid TOML"),
        ("two.toml", "[kernels.a]\ndescription='a'\nmatrix=[[1]]\n[kernels.b]\ndescription='b'\nmatrix=[[2]]\n",
         "holds 2 entries (a, b); pick one with"),
    ],
)
def test_malformed_files(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(KernelError, match=re.escape(message)) as err:
        resolve_spec(f"@{tmp_path / name}")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "array,message",
    [
        (np.ones((2, 2, 2)), "this matrix is 3-D with shape (2, 2, 2)"),
        (np.array([[1 + 2j]]), "complex values"),
        (np.array(3.0), "got a single number"),
        (np.array([[1.0, np.nan]]), "1 NaN or infinite entries"),
        (np.zeros((0, 3)), "empty"),
        (np.ones((1100, 1)), "a 1100x1 kernel is larger than 1025 per side"),
        (np.array([["a"]]), "non-numeric"),
    ],
)
def test_malformed_npy(tmp_path, array, message):
    np.save(tmp_path / "k.npy", array)
    with pytest.raises(KernelError, match=re.escape(message)):
        resolve_spec(f"@{tmp_path / 'k.npy'}")


def test_the_size_limit_is_overridable_for_files(tmp_path):
    np.save(tmp_path / "k.npy", np.ones((1100, 1)))
    assert resolve_spec(f"@{tmp_path / 'k.npy'}", max_side=1100).shape == (1100, 1)


def test_missing_files_and_selectors(tmp_path):
    with pytest.raises(KernelError, match="does not exist"):
        resolve_spec(f"@{tmp_path / 'nope.mat'}")
    with pytest.raises(KernelError, match="does not exist"):
        resolve_spec(str(tmp_path / "nope.csv"))
    with pytest.raises(KernelError, match="it is a folder"):
        resolve_spec(f"@{tmp_path}")
    with pytest.raises(KernelError, match="needs a file name"):
        resolve_spec("@")
    with pytest.raises(KernelError, match="has no kernel 'nope'; it holds sharpen, sobel-diagonal"):
        resolve_spec(f"@{KERNELS / 'mine.toml'}#nope")
    # a built-in name is not in the file, even though the file is merged over the registry
    with pytest.raises(KernelError, match="has no kernel 'sobel-x'"):
        resolve_spec(f"@{KERNELS / 'mine.toml'}#sobel-x")


def test_text_files_keep_rows_and_fractions(tmp_path):
    (tmp_path / "k.txt").write_text("1/16 2/16 1/16; 2/16 4/16 2/16\n1/16, 2/16, 1/16  # last row\n")
    np.testing.assert_array_equal(resolve_kernel(f"@{tmp_path / 'k.txt'}").weights,
                                  builtin_registry().get("gaussian-blur").weights)
    (tmp_path / "k.csv").write_text("1;2;3\n4\t5\t6\n")                      # ; and tab separated CSV
    np.testing.assert_array_equal(resolve_kernel(f"@{tmp_path / 'k.csv'}").weights, [[1, 2, 3], [4, 5, 6]])


# --- any finite matrix survives every format -------------------------------------------------------

matrices = st.tuples(st.integers(1, 5), st.integers(1, 5)).flatmap(
    lambda shape: arrays(np.float64, shape, elements=st.floats(allow_nan=False, allow_infinity=False, width=64))
)


@settings(max_examples=60, deadline=None)
@given(matrices)
def test_any_finite_matrix_round_trips_through_every_format(tmp_path_factory, m):
    from convcli.kernels import Kernel

    folder = tmp_path_factory.mktemp("rt")
    kernel = Kernel("k", m, description="random")
    for suffix in SAVE_SUFFIXES:
        (folder / f"k{suffix}").write_bytes(kernel_file_bytes(kernel, suffix)[0])
        np.testing.assert_array_equal(read_kernel_file(str(folder / f"k{suffix}")).weights, m)
    np.testing.assert_array_equal(kernel_from_imagemagick(imagemagick_string(m)).weights, m)
