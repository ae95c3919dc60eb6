"""The 16-bit PNG reader and writer: round trips, every row filter, and Pillow as the oracle."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from convcli.png16 import SIGNATURE, PngError, read_png, write_png

from .conftest import SAMPLES


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filtered_rows(arr: np.ndarray, filters: list[int]) -> bytes:
    """Each row of ``arr`` with its filter byte, filtered byte by byte as the specification says."""
    h = arr.shape[0]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    depth = 16 if arr.dtype == np.uint16 else 8
    bpp = c * depth // 8
    rows = (arr.astype(">u2") if depth == 16 else arr).reshape(h, -1).view(np.uint8).reshape(h, -1)
    out = bytearray()
    prev = [0] * rows.shape[1]
    for r in range(h):
        cur = [int(v) for v in rows[r]]
        kind = filters[r % len(filters)]
        line = []
        for i, x in enumerate(cur):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            cc = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, cc)][kind]
            line.append((x - pred) % 256)
        out += bytes([kind, *line])
        prev = cur
    return bytes(out)


#: Adam7 passes: (row start, column start, row step, column step)
ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))


def _encode_with_filters(arr: np.ndarray, filters: list[int], *, interlace: bool = False) -> bytes:
    """An independent, byte-by-byte PNG encoder using the given filter type on each row
    (of each Adam7 pass when ``interlace``)."""
    h, w = arr.shape[:2]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    depth = 16 if arr.dtype == np.uint16 else 8
    if interlace:
        passes = [arr[r0::dr, c0::dc] for r0, c0, dr, dc in ADAM7]
        data = b"".join(_filtered_rows(p, filters) for p in passes if p.shape[0] and p.shape[1])
    else:
        data = _filtered_rows(arr, filters)
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, int(interlace))
    return SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(data)) + _chunk(b"IEND", b"")


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_round_trip_is_exact(rng, channels, dtype):
    shape = (9, 11) if channels == 1 else (9, 11, channels)
    arr = rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)
    back = read_png(write_png(arr))
    assert back.data.dtype == dtype and back.bits == np.iinfo(dtype).bits
    assert back.mode == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    np.testing.assert_array_equal(back.data, arr)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_row_filter_is_undone_and_pillow_agrees(rng, dtype, channels):
    shape = (10, 7) if channels == 1 else (10, 7, channels)
    arr = rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)
    arr[:3] = arr[0]  # equal rows: Up and Paeth predict exactly
    data = _encode_with_filters(arr, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(read_png(data).data, arr)
    if channels == 1 or dtype == np.uint8:  # what Pillow reads without losing bits
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), arr)


def test_pillow_reads_what_we_write_and_we_read_what_pillow_writes(rng):
    for arr in (rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8),
                rng.integers(0, 256, size=(6, 5, 4), dtype=np.uint8),
                rng.integers(0, 65536, size=(6, 5), dtype=np.uint16)):
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(write_png(arr)))), arr)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG")
        np.testing.assert_array_equal(read_png(buf.getvalue()).data, arr)


def test_sixteen_bit_colour_is_what_pillow_sees_in_its_high_bytes(rng):
    arr = rng.integers(0, 65536, size=(4, 6, 3), dtype=np.uint16)
    eight = np.asarray(Image.open(io.BytesIO(write_png(arr))).convert("RGB"))
    np.testing.assert_array_equal(eight, arr >> 8)  # Pillow keeps the most significant byte


def test_transparent_colour_becomes_alpha():
    arr = np.array([[[1, 2, 3], [4, 5, 6]]], dtype=np.uint16)
    data = write_png(arr)
    trns = _chunk(b"tRNS", struct.pack(">HHH", 4, 5, 6))
    data = data[:33] + trns + data[33:]
    got = read_png(data)
    assert got.mode == "RGBA"
    np.testing.assert_array_equal(got.data[0, :, 3], [65535, 0])


@pytest.mark.parametrize(
    "mangle,message",
    [
        (lambda d: d[:-20], "truncated"),
        (lambda d: d[:40] + bytes([d[40] ^ 0xFF]) + d[41:], "CRC"),
        (lambda d: b"GIF89a" + d[6:], "signature"),
    ],
    ids=["truncated", "crc", "signature"],
)
def test_damage_is_reported(mangle, message):
    data = write_png(np.zeros((4, 4, 3), np.uint16))
    with pytest.raises(PngError, match=message):
        read_png(mangle(data))


def test_pixel_limit():
    data = write_png(np.zeros((10, 10, 3), np.uint16))
    with pytest.raises(PngError, match="decompression bomb"):
        read_png(data, max_pixels=99)
    assert read_png(data, max_pixels=100).data.shape == (10, 10, 3)


def _paeth_by_hand(rows: np.ndarray, bpp: int) -> np.ndarray:
    """The Paeth filter exactly as the PNG specification writes it, one byte at a time."""
    out = np.zeros_like(rows)
    h, n = rows.shape
    for y in range(h):
        for x in range(n):
            a = int(rows[y, x - bpp]) if x >= bpp else 0
            b = int(rows[y - 1, x]) if y else 0
            c = int(rows[y - 1, x - bpp]) if y and x >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[y, x] = (int(rows[y, x]) - pred) % 256
    return out


@pytest.mark.parametrize("bpp", [1, 3, 4, 6])
def test_paeth_filter_matches_the_specification(rng, bpp):
    from convcli.png16 import _paeth

    rows = rng.integers(0, 256, size=(7, bpp * 9), dtype=np.uint8)
    rows[3] = rows[2]  # ties between the predictors
    np.testing.assert_array_equal(_paeth(rows, None, bpp), _paeth_by_hand(rows, bpp))
    # a block that starts lower down uses the row above it
    np.testing.assert_array_equal(_paeth(rows[4:], rows[3], bpp), _paeth_by_hand(rows, bpp)[4:])


@pytest.mark.parametrize("channels,dtype", [(1, np.uint8), (3, np.uint8), (4, np.uint8), (2, np.uint8),
                                            (1, np.uint16), (3, np.uint16)])
def test_blocks_on_threads_make_one_valid_stream(rng, monkeypatch, channels, dtype):
    """Deflated in small blocks on 1 or 3 threads: the same bytes, zlib's own check passes,
    and Pillow decodes the photo exactly."""
    import convcli.png16 as png16

    with Image.open(SAMPLES / "astronaut.png") as im:
        photo = np.asarray(im.convert("RGBA"))[:301, :257, :channels].astype(dtype)
    if dtype == np.uint16:
        photo = photo * 257 + rng.integers(0, 257, size=photo.shape).astype(dtype)
    monkeypatch.setattr(png16, "DEFLATE_BLOCK", 20_000)
    one, three = write_png(photo, threads=1), write_png(photo, threads=3)
    assert one == three
    idat = one[one.index(b"IDAT") + 4 : one.index(b"IEND") - 8]
    raw = zlib.decompress(idat)  # checks the combined Adler-32
    line = 1 + photo.shape[1] * channels * photo.itemsize
    # Paeth or Up, one filter a block; Sub for 16-bit with several channels (read back fast
    # by our own decoder)
    assert len(raw) == photo.shape[0] * line
    kinds = np.frombuffer(raw[::line], np.uint8)
    if dtype == np.uint16 and channels > 1:
        assert set(kinds) == {1}
    else:
        per_block = max(1, 20_000 // line)
        blocks = [set(kinds[i : i + per_block]) for i in range(0, len(kinds), per_block)]
        assert all(len(b) == 1 and b <= {2, 4} for b in blocks)
    np.testing.assert_array_equal(read_png(one).data, photo.squeeze())
    if dtype == np.uint8:
        with Image.open(io.BytesIO(one)) as back:
            np.testing.assert_array_equal(np.asarray(back), photo.squeeze())


def test_adler32_combine_agrees_with_zlib(rng):
    from convcli.png16 import _adler32_combine

    for _ in range(100):
        a = rng.bytes(int(rng.integers(0, 3000)))
        b = rng.bytes(int(rng.integers(0, 200_000)))
        assert _adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_sixteen_bit_average_and_paeth_rows_decode_through_pillow_exactly(rng, monkeypatch, channels):
    """Rows filtered with Average and Paeth go to Pillow's C decoder (twice, for the high and
    the low bytes); the result is exactly this module's own per-pixel decoding."""
    import convcli.png16 as png16

    arr = rng.integers(0, 65536, size=(12, 9, channels), dtype=np.uint16)
    arr[:4] = arr[0]
    data = _encode_with_filters(arr, [3, 4, 0, 1, 2])
    header = struct.unpack(">IIBBBBB", data[16:29])
    fast = png16._pillow_samples(data, header)
    assert fast is not None
    np.testing.assert_array_equal(fast, arr)
    np.testing.assert_array_equal(read_png(data).data, arr)
    monkeypatch.setattr(png16, "_pillow_samples", lambda *a: None)
    np.testing.assert_array_equal(read_png(data).data, arr)


def test_damaged_sixteen_bit_paeth_data_is_still_reported(rng):
    arr = rng.integers(0, 65536, size=(12, 9, 3), dtype=np.uint16)
    data = bytearray(_encode_with_filters(arr, [4]))
    data[-20] ^= 0xFF  # inside the IDAT (its CRC no longer matches)
    with pytest.raises(PngError):
        read_png(bytes(data))


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_interlaced_images_decode_exactly(rng, monkeypatch, channels, dtype):
    """Adam7, with every filter: Pillow's decoder and this module's own give the samples."""
    import convcli.png16 as png16

    shape = (13, 10) if channels == 1 else (13, 10, channels)
    arr = rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)
    data = _encode_with_filters(arr, [4, 3, 2, 1, 0], interlace=True)
    np.testing.assert_array_equal(read_png(data).data, arr)
    monkeypatch.setattr(png16, "_pillow_samples", lambda *a: None)
    np.testing.assert_array_equal(read_png(data).data, arr)


def test_up_filter_matches_the_specification(rng):
    from convcli.png16 import _up

    rows = rng.integers(0, 256, size=(5, 12), dtype=np.uint8)
    by_hand = (rows.astype(int) - np.vstack([np.zeros((1, 12), int), rows[:-1]])) % 256
    np.testing.assert_array_equal(_up(rows, None), by_hand)
    np.testing.assert_array_equal(_up(rows[2:], rows[1]), by_hand[2:])


def test_paeth_in_small_sub_blocks_equals_paeth_at_once(rng, monkeypatch):
    import convcli.png16 as png16

    rows = rng.integers(0, 256, size=(23, 30), dtype=np.uint8)
    out = np.empty_like(rows)
    png16._paeth_into(rows[5:], rows[4], 3, out[5:])
    np.testing.assert_array_equal(out[5:], _paeth_by_hand(rows, 3)[5:])


def test_paeth_where_it_pays_up_where_it_does_not(rng, monkeypatch):
    """Smooth photos and blurs take Paeth (a quarter smaller there); noise and edge maps take
    Up, as small for a fortieth of the work."""
    from convcli.png16 import _pick_filter

    with Image.open(SAMPLES / "astronaut.png") as im:
        photo = np.asarray(im.convert("RGB"))
    rows = photo.reshape(photo.shape[0], -1)
    assert _pick_filter(rows, None, 3) == 4
    noise = rng.integers(0, 256, size=(64, 300), dtype=np.uint8)
    assert _pick_filter(noise, None, 3) == 2
    # a Sobel magnitude of the camera photo: mostly dark, thin bright edges
    cam = np.asarray(Image.open(SAMPLES / "camera.png").convert("L")).astype(float)
    edges = np.clip(np.abs(cam[:, 2:] - cam[:, :-2]) * 2, 0, 255).astype(np.uint8)
    assert _pick_filter(edges, None, 1) == 2
    # the file made by the choice against the files made with each filter forced
    import convcli.png16 as png16

    def size(arr: np.ndarray, gain: float | None) -> int:
        if gain is not None:
            monkeypatch.setattr(png16, "PAETH_GAIN", gain)
        n = len(write_png(arr))
        monkeypatch.undo()
        return n

    for arr, paeth_wins in ((photo, True), (edges, False)):
        chosen, up, paeth = size(arr, None), size(arr, 0.0), size(arr, np.inf)
        if paeth_wins:
            assert chosen == paeth < up
        else:
            assert chosen == up <= 1.03 * paeth


@pytest.mark.parametrize("level", [None, 0, 1, 5, 6, 9])
def test_every_zlib_level_makes_a_valid_stream(level):
    with Image.open(SAMPLES / "camera.png") as im:
        photo = np.asarray(im.convert("L"))[:200, :150]
    data = write_png(photo, level=level, threads=2)
    idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
    assert (idat[0] * 256 + idat[1]) % 31 == 0 and idat[0] == 0x78
    zlib.decompress(idat)
    with Image.open(io.BytesIO(data)) as back:
        np.testing.assert_array_equal(np.asarray(back), photo)
    with pytest.raises(ValueError, match="between 0 and 9"):
        write_png(photo, level=10)
