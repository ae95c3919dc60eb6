"""Reading every common Pillow mode, writing back, and refusing broken files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from convcli.errors import ImageReadError, OutputError
from convcli.images import encode_image, format_for, read_input

from .conftest import SAMPLES


def _save(tmp_path, img, name, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


@pytest.fixture
def rgb(rng):
    return rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)


def test_rgb_png(tmp_path, rgb):
    got = read_input(_save(tmp_path, Image.fromarray(rgb), "a.png"))
    np.testing.assert_array_equal(got.data, rgb)
    assert got.alpha is None and got.bits == 8 and got.mode == "RGB" and got.shape == (7, 9, 3)


def test_large_photo_read_in_one_piece_leaves_pillow_as_it_was(tmp_path, rng):
    """The pixels are packed in one block (ImageFile.MAXBLOCK raised for the call): the same
    values as Pillow's own array, and Pillow's setting back as it was afterwards."""
    from PIL import ImageFile

    before = ImageFile.MAXBLOCK
    big = rng.integers(0, 256, size=(300, 700, 3), dtype=np.uint8)  # 630 KB: ten 64 KB blocks
    for mode, arr in (("RGB", big), ("RGBA", np.dstack([big, big[..., :1]])), ("L", big[..., 0])):
        path = _save(tmp_path, Image.fromarray(arr, mode), f"{mode}.png")
        got = read_input(path)
        whole = np.dstack([got.data, got.alpha]) if got.alpha is not None else got.data
        np.testing.assert_array_equal(whole, arr)
        assert ImageFile.MAXBLOCK == before


def test_rgba_splits_alpha(tmp_path, rng):
    rgba = rng.integers(0, 256, size=(5, 6, 4), dtype=np.uint8)
    got = read_input(_save(tmp_path, Image.fromarray(rgba), "a.png"))
    np.testing.assert_array_equal(got.data, rgba[..., :3])
    np.testing.assert_array_equal(got.alpha, rgba[..., 3])
    assert got.shape == (5, 6, 4) and got.channels == 3


def test_la_and_l(tmp_path, rng):
    la = rng.integers(0, 256, size=(5, 6, 2), dtype=np.uint8)
    got = read_input(_save(tmp_path, Image.fromarray(la), "a.png"))
    np.testing.assert_array_equal(got.data, la[..., 0])
    np.testing.assert_array_equal(got.alpha, la[..., 1])
    gray = la[..., 0]
    got = read_input(_save(tmp_path, Image.fromarray(gray), "g.png"))
    assert got.data.shape == (5, 6) and got.alpha is None


def test_palette_with_and_without_transparency(tmp_path, rgb):
    p = Image.fromarray(rgb).quantize(colors=16)
    got = read_input(_save(tmp_path, p, "p.png"))
    np.testing.assert_array_equal(got.data, np.asarray(p.convert("RGB")))
    assert got.alpha is None and got.mode == "P"
    p.info["transparency"] = 0
    got = read_input(_save(tmp_path, p, "pt.png", transparency=0))
    assert got.alpha is not None and got.data.shape == (7, 9, 3)


def test_bilevel(tmp_path):
    img = Image.new("1", (4, 3))
    img.putpixel((1, 1), 1)
    got = read_input(_save(tmp_path, img, "b.png"))
    assert got.data.dtype == np.uint8 and got.data[1, 1] == 255 and got.data.sum() == 255


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_gray_stays_sixteen_bit(tmp_path, rng, suffix):
    arr = rng.integers(0, 65536, size=(6, 5), dtype=np.uint16)
    got = read_input(_save(tmp_path, Image.fromarray(arr), "h" + suffix))
    assert got.bits == 16 and got.data.dtype == np.uint16
    np.testing.assert_array_equal(got.data, arr)


def test_sixteen_bit_sample():
    got = read_input(SAMPLES / "camera16.png")
    assert got.bits == 16 and got.data.dtype == np.uint16 and got.data.max() > 255


def test_float_and_int32_modes(tmp_path, rng):
    f = rng.random((4, 5)).astype(np.float32)
    got = read_input(_save(tmp_path, Image.fromarray(f), "f.tif"))
    assert got.bits is None and got.data.dtype == np.float32
    np.testing.assert_array_equal(got.data, f)


def test_exif_orientation_is_applied(tmp_path, rgb):
    img = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    path = _save(tmp_path, img, "o.jpg", exif=exif, quality=100)
    got = read_input(path)
    assert got.data.shape == (9, 7, 3)
    # orientation 6: the stored image is shown rotated 90 degrees clockwise (JPEG: approximately)
    stored = np.asarray(Image.open(path)).astype(int)
    np.testing.assert_array_equal(got.data, np.rot90(stored, k=-1))


def test_cmyk_is_converted_to_rgb(tmp_path, rgb):
    path = _save(tmp_path, Image.fromarray(rgb).convert("CMYK"), "c.jpg")
    got = read_input(path)
    assert got.data.shape == (7, 9, 3) and got.mode == "CMYK"
    with Image.open(path) as img:
        np.testing.assert_array_equal(got.data, np.asarray(img.convert("RGB")))


def test_arrays(tmp_path, rng):
    a = rng.random((4, 6, 2))
    np.save(tmp_path / "a.npy", a)
    got = read_input(tmp_path / "a.npy")
    np.testing.assert_array_equal(got.data, a)
    assert got.mode == "array" and got.bits is None
    (tmp_path / "m.txt").write_text("1 2\n3 4\n")
    np.testing.assert_array_equal(read_input(tmp_path / "m.txt").data, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    "maker,message",
    [
        (lambda p: p.write_bytes(b""), "not an image"),
        (lambda p: p.write_text("hello, I am text"), "not an image"),
        (lambda p: p.write_bytes((SAMPLES / "astronaut.png").read_bytes()[:5000]), "truncated"),
    ],
    ids=["zero-byte", "text", "truncated"],
)
def test_broken_images_raise_read_errors(tmp_path, maker, message):
    path = tmp_path / "broken.png"
    maker(path)
    with pytest.raises(ImageReadError, match=message):
        read_input(path)


def test_broken_arrays(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(ImageReadError, match="NaN"):
        read_input(tmp_path / "nan.npy")
    np.save(tmp_path / "4d.npy", np.ones((1, 2, 3, 4)))
    with pytest.raises(ImageReadError, match="2-D"):
        read_input(tmp_path / "4d.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(ImageReadError):
        read_input(tmp_path / "bad.npy")
    with pytest.raises(ImageReadError, match="does not exist"):
        read_input(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="folder"):
        read_input(tmp_path)


@pytest.mark.parametrize("shape", [(5, 4), (5, 4, 3)])
def test_encode_round_trip_8bit(shape, rng):
    arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
    for fmt in ("PNG", "TIFF", "BMP"):
        back = np.asarray(Image.open(io.BytesIO(encode_image(arr, None, fmt))))
        np.testing.assert_array_equal(back, arr)


def test_encode_with_alpha_and_16bit(rng):
    arr = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, size=(5, 4), dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(encode_image(arr, alpha, "PNG"))))
    np.testing.assert_array_equal(back[..., 3], alpha)
    deep = rng.integers(0, 65536, size=(5, 4), dtype=np.uint16)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(encode_image(deep, None, "PNG")))), deep)
    with pytest.raises(OutputError, match="2-channel"):
        encode_image(np.zeros((3, 3, 2), np.uint8), None, "PNG")


def test_format_for():
    assert format_for("a.PNG") == "PNG" and format_for("x.npy") == "NPY" and format_for("t.tiff") == "TIFF"
    with pytest.raises(OutputError, match="unknown file type"):
        format_for("a.xyz")
