"""16-bit colour TIFF input stays 16-bit (Pillow alone narrows it to 8 bits)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from typer.testing import CliRunner

from convcli.cli import app
from convcli.images import read_input
from convcli.png16 import read_png


def _tiff(arr: np.ndarray, order: str, deflate: bool = False) -> bytes:
    """A minimal single-strip, chunky TIFF, uncompressed or Adobe-deflate (which Pillow hands to
    libtiff), written tag by tag (independent of Pillow)."""
    h, w, c = arr.shape
    e = "<" if order == "II" else ">"
    pixels = arr.astype(f"{e}u2").tobytes()
    if deflate:
        pixels = zlib.compress(pixels)
    entries = []  # (tag, type, count, value or offset)
    extra = b""
    n_tags = 10 + (c == 4)
    ifd_at = 8
    extra_at = ifd_at + 2 + 12 * n_tags + 4
    bits_at = extra_at
    extra += struct.pack(f"{e}{c}H", *([16] * c))
    pixels_at = extra_at + len(extra)
    entries += [
        (256, 4, 1, w), (257, 4, 1, h), (258, 3, c, bits_at), (259, 3, 1, 8 if deflate else 1), (262, 3, 1, 2),
        (273, 4, 1, pixels_at), (277, 3, 1, c), (278, 4, 1, h), (279, 4, 1, len(pixels)), (284, 3, 1, 1),
    ]
    if c == 4:
        entries.append((338, 3, 1, 2))  # unassociated alpha
    entries.sort()
    ifd = struct.pack(f"{e}H", len(entries))
    for tag, typ, count, value in entries:
        if typ == 3 and count == 1:
            ifd += struct.pack(f"{e}HHIHH", tag, typ, count, value, 0)
        else:
            ifd += struct.pack(f"{e}HHII", tag, typ, count, value)
    ifd += struct.pack(f"{e}I", 0)
    head = order.encode() + struct.pack(f"{e}HI", 42, ifd_at)
    return head + ifd + extra + pixels


@pytest.mark.parametrize("deflate", [False, True])
@pytest.mark.parametrize("order", ["II", "MM"])
@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_colour_tiff_is_read_exactly(tmp_path, rng, order, channels, deflate):
    arr = rng.integers(0, 65536, size=(23, 17, channels), dtype=np.uint16)
    path = tmp_path / "x.tif"
    path.write_bytes(_tiff(arr, order, deflate))
    img = read_input(path)
    assert img.bits == 16 and img.data.dtype == np.uint16
    np.testing.assert_array_equal(img.data, arr[..., :3])
    if channels == 4:
        np.testing.assert_array_equal(img.alpha, arr[..., 3])
    else:
        assert img.alpha is None


def test_sixteen_bit_tiff_through_apply_stays_sixteen_bit(tmp_path, rng, monkeypatch):
    arr = rng.integers(0, 65536, size=(20, 30, 3), dtype=np.uint16)
    (tmp_path / "in.tif").write_bytes(_tiff(arr, "II"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["apply", "in.tif", "-k", "identity", "-o", "out.png"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    back = read_png((tmp_path / "out.png").read_bytes())
    assert back.bits == 16 and back.mode == "RGB"
    np.testing.assert_array_equal(back.data, arr)
