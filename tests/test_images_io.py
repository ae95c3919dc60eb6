"""Issue 5 end to end: modes, bit depth, alpha policies, channels, formats, report, broken inputs."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from convcli.cli import app
from convcli.images import read_frames, read_input
from convcli.png16 import SIGNATURE, read_png, write_png

from .conftest import SAMPLES, ndi_correlate_same, read_image


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def invoke(*args, stdin: bytes | None = None):
        result = CliRunner().invoke(app, [str(a) for a in args], input=stdin, catch_exceptions=False)
        assert "Traceback" not in result.stderr
        return result.exit_code, result.stdout_bytes, result.stderr

    return invoke


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("convcli: error: ")
    return lines[0]


# --- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_sixteen_bit_gray_variants(tmp_path, rng, mode):
    arr = rng.integers(0, 65536, size=(5, 6), dtype=np.uint16)
    img = Image.frombytes(mode, (6, 5), arr.astype("<u2" if mode == "I;16" else ">u2").tobytes())
    img.save(tmp_path / "g.tif")
    got = read_input(tmp_path / "g.tif")
    assert got.bits == 16 and got.data.dtype == np.uint16
    np.testing.assert_array_equal(got.data, arr)


def test_int32_and_ycbcr(tmp_path, rng):
    big = rng.integers(-100000, 100000, size=(4, 5), dtype=np.int32)
    Image.fromarray(big).save(tmp_path / "i.tif")
    got = read_input(tmp_path / "i.tif")
    np.testing.assert_array_equal(got.data, big)
    assert got.bits is None and got.mode == "I"
    rgb = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    ycc = Image.fromarray(rgb).convert("YCbCr")
    ycc.save(tmp_path / "y.tif")
    got = read_input(tmp_path / "y.tif")
    with Image.open(tmp_path / "y.tif") as img:
        np.testing.assert_array_equal(got.data, np.asarray(img.convert("RGB")))
    assert got.mode == "YCbCr" and got.data.shape == (8, 8, 3)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_sixteen_bit_colour_png_keeps_16_bits(tmp_path, rng, channels):
    arr = rng.integers(0, 65536, size=(6, 7, channels), dtype=np.uint16)
    (tmp_path / "c.png").write_bytes(write_png(arr))
    got = read_input(tmp_path / "c.png")
    assert got.bits == 16 and got.data.dtype == np.uint16
    has_alpha = channels in (2, 4)
    np.testing.assert_array_equal(got.data, arr[..., :-1].squeeze(-1) if channels == 2 else
                                  arr[..., :3] if has_alpha else arr)
    if has_alpha:
        np.testing.assert_array_equal(got.alpha, arr[..., -1])


def test_frames_first_and_all(tmp_path):
    frames = [Image.new("L", (4, 3), v) for v in (10, 20, 30)]
    frames[0].save(tmp_path / "m.tif", save_all=True, append_images=frames[1:])
    assert read_input(tmp_path / "m.tif").data[0, 0] == 10
    got = read_frames(tmp_path / "m.tif")
    assert [int(f.data[0, 0]) for f in got] == [10, 20, 30] and [f.frame for f in got] == ["0", "1", "2"]


def test_frames_all_writes_one_output_per_frame(cli, tmp_path):
    frames = [Image.new("L", (4, 3), v) for v in (10, 20)]
    frames[0].save(tmp_path / "m.gif", save_all=True, append_images=frames[1:])
    code, _, _ = cli("apply", "m.gif", "-k", "identity", "--frames", "all", "-o", "out/", "-q")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m.identity.frame0.png", "m.identity.frame1.png"]
    assert np.all(read_image(tmp_path / "out" / "m.identity.frame1.png")[0, 0] == 20)  # later GIF frames are RGB


def test_npz_input_and_stdin(cli, tmp_path):
    a, b = np.arange(12.0).reshape(3, 4), -np.ones((3, 4))
    np.savez(tmp_path / "x.npz", first=a, second=b)
    np.testing.assert_array_equal(read_input(tmp_path / "x.npz").data, a)
    assert [f.frame for f in read_frames(tmp_path / "x.npz")] == ["first", "second"]
    buf = io.BytesIO()
    np.save(buf, a)
    code, out, err = cli("apply", "-", "-k", "identity", "-o", "-", stdin=buf.getvalue())
    assert code == 0
    np.testing.assert_array_equal(np.load(io.BytesIO(out)), a)
    assert "input    -" in err
    png = (SAMPLES / "camera.png").read_bytes()
    code, out, _ = cli("apply", "-", "-k", "box-blur", "-q", stdin=png)
    assert code == 0 and (tmp_path / "stdin.box-blur.png").is_file()


# --- 16-bit end to end -------------------------------------------------------------------------


def test_sixteen_bit_rgb_identity_is_bit_identical(cli, tmp_path, rng):
    arr = rng.integers(0, 65536, size=(12, 10, 4), dtype=np.uint16)
    (tmp_path / "in.png").write_bytes(write_png(arr))
    code, _, err = cli("apply", "in.png", "-k", "identity", "-o", "out.png")
    assert code == 0 and "16-bit" in err
    back = read_png((tmp_path / "out.png").read_bytes())
    assert back.bits == 16 and back.mode == "RGBA"
    np.testing.assert_array_equal(back.data, arr)


def test_png16_from_8_bit_multiplies_by_257(cli, tmp_path):
    code, _, _ = cli("apply", SAMPLES / "astronaut.png", "-k", "identity", "--format", "png16", "-o", "a.png", "-q")
    assert code == 0
    back = read_png((tmp_path / "a.png").read_bytes())
    np.testing.assert_array_equal(back.data, read_image(SAMPLES / "astronaut.png").astype(np.uint32) * 257)


# --- alpha ------------------------------------------------------------------------------------

# 3x3 image: left and right columns opaque red, the middle column green at alpha 128.
# box-blur, valid padding: one output pixel, the mean of all nine.
HALF = np.zeros((3, 3, 4), np.uint8)
HALF[:, [0, 2]] = (255, 0, 0, 255)
HALF[:, 1] = (0, 255, 0, 128)


@pytest.mark.parametrize(
    "policy,expected",
    [
        # keep: colour is the plain mean (255*6/9, 255*3/9, 0); alpha is the centre's
        ("keep", (170, 85, 0, 128)),
        # filter: alpha averaged like a colour: (255*6 + 128*3) / 9 = 212.67
        ("filter", (170, 85, 0, 213)),
        # premultiply: weights a = 1, 128/255, 1; coverage (6 + 3*128/255)/9 = 0.833987;
        # R = 255*6/9 / 0.833987 = 203.84, G = 255*(3*128/255)/9 / 0.833987 = 51.16
        ("premultiply", (204, 51, 0, 213)),
    ],
)
def test_alpha_policies_on_a_half_transparent_image(cli, tmp_path, policy, expected):
    Image.fromarray(HALF).save(tmp_path / "half.png")
    code, _, _ = cli("apply", "half.png", "-k", "box-blur", "--padding", "valid", "--alpha", policy, "-o", "o.png", "-q")
    assert code == 0
    out = read_image(tmp_path / "o.png")
    assert out.shape == (1, 1, 4)
    assert tuple(int(v) for v in out[0, 0]) == expected


def test_premultiply_refuses_zero_sum_kernels(cli):
    code, _, err = cli("apply", SAMPLES / "camera.png", "-k", "sobel-x", "--alpha", "premultiply", "-o", "x.png")
    assert code == 2 and "sums to 0" in _one_error_line(err)


# --- gray and channels -----------------------------------------------------------------------------


def test_gray_is_bt601_luminance(cli, tmp_path):
    code, _, _ = cli("apply", SAMPLES / "coffee.jpg", "-k", "identity", "--gray", "-o", "g.npy", "-q")
    assert code == 0
    got = np.load(tmp_path / "g.npy")
    with Image.open(SAMPLES / "coffee.jpg") as img:
        pillow = np.asarray(img.convert("L")).astype(np.float64)
    assert got.shape == pillow.shape
    assert np.max(np.abs(got - pillow)) <= 0.5 + 1e-3  # Pillow rounds, we do not
    rgb = read_image(SAMPLES / "coffee.jpg").astype(np.float64)
    np.testing.assert_allclose(got, rgb @ [0.299, 0.587, 0.114], atol=1e-3)


def test_channels_filter_some_and_pass_the_others(cli, tmp_path):
    code, _, err = cli("apply", SAMPLES / "astronaut.png", "-k", "box-blur", "--channels", "R,B", "-o", "o.png")
    assert code == 0 and "G passed through unfiltered" in err
    photo = read_image(SAMPLES / "astronaut.png")
    out = read_image(tmp_path / "o.png")
    np.testing.assert_array_equal(out[..., 1], photo[..., 1])
    blurred = ndi_correlate_same(photo, np.ones((3, 3)) / 9, "reflect")
    np.testing.assert_array_equal(out[..., [0, 2]], np.clip(np.rint(blurred[..., [0, 2]]), 0, 255))
    code, _, err = cli("apply", SAMPLES / "astronaut.png", "-k", "box-blur", "--channels", "Q", "-o", "q.png")
    assert code == 1 and "is not a channel" in _one_error_line(err)


# --- formats -----------------------------------------------------------------------------------


def test_float_tiff_holds_signed_values_one_page_per_channel(cli, tmp_path):
    code, _, _ = cli("apply", SAMPLES / "astronaut.png", "-k", "sobel-x", "--map", "raw", "-o", "s.tif", "-q")
    assert code == 0
    expected = ndi_correlate_same(read_image(SAMPLES / "astronaut.png"), np.array(
        [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float), "reflect")
    with Image.open(tmp_path / "s.tif") as img:
        assert img.n_frames == 3
        for c in range(3):
            img.seek(c)
            assert img.mode == "F"
            np.testing.assert_allclose(np.asarray(img), expected[..., c], atol=1e-3)


def test_tiff16_colour_pages(cli, tmp_path):
    code, _, _ = cli("apply", SAMPLES / "astronaut.png", "-k", "identity", "--format", "tiff16", "-o", "a.tif", "-q")
    assert code == 0
    photo = read_image(SAMPLES / "astronaut.png").astype(np.uint32) * 257
    with Image.open(tmp_path / "a.tif") as img:
        for c in range(3):
            img.seek(c)
            np.testing.assert_array_equal(np.asarray(img), photo[..., c])


def test_jpeg_quality(cli, tmp_path):
    for q in ("20", "95"):
        assert cli("apply", SAMPLES / "coffee.jpg", "-k", "identity", "--quality", q, "-o", f"q{q}.jpg", "-q")[0] == 0
    assert (tmp_path / "q20.jpg").stat().st_size < (tmp_path / "q95.jpg").stat().st_size / 2


@pytest.mark.parametrize("source", ["astronaut.png", "camera.png", "camera16.png"])
def test_compress_level_changes_the_size_never_the_pixels(cli, tmp_path, source):
    sizes = {}
    for level in ("0", "1", "9", None):
        name = f"l{level}.png"
        args = ["apply", SAMPLES / source, "-k", "gaussian-blur", "-o", name, "-q"]
        assert cli(*args, *(["--compress-level", level] if level else []))[0] == 0
        sizes[level] = (tmp_path / name).stat().st_size
        # Pillow and zlib (which checks the header and the Adler-32) read every level back
        np.testing.assert_array_equal(read_png((tmp_path / name).read_bytes()).data,
                                      read_png((tmp_path / "l0.png").read_bytes()).data)
        with Image.open(tmp_path / name) as img:
            img.load()
    raw = read_png((tmp_path / "l0.png").read_bytes()).data
    assert sizes["0"] > raw.nbytes  # stored: every byte, plus a filter byte a row
    assert sizes["9"] < sizes["1"] < 0.8 * sizes["0"]
    assert sizes[None] < 0.8 * sizes["0"]


def test_compress_level_out_of_range_or_off_png(cli, tmp_path):
    code, _, err = cli("apply", SAMPLES / "camera.png", "-k", "identity", "--compress-level", "10", "-o", "x.png")
    assert code == 2 and "--compress-level" in err and "10" in err and "9" in err
    assert not (tmp_path / "x.png").exists()
    code, out, _ = cli("apply", SAMPLES / "camera.png", "-k", "identity", "--compress-level", "9", "-o", "x.jpg",
                       "--json")
    assert code == 0
    assert any("--compress-level ignored" in n for n in json.loads(out)["results"][0]["runs"][0]["notes"])


def test_npz_holds_every_kernel_and_the_report(cli, tmp_path):
    code, _, _ = cli("apply", SAMPLES / "camera.png", "-k", "sobel-x", "-k", "sobel-y", "-o", "maps.npz", "-q")
    assert code == 0
    with np.load(tmp_path / "maps.npz") as z:
        assert sorted(z.files) == ["report", "sobel-x", "sobel-y"]
        photo = read_image(SAMPLES / "camera.png")
        np.testing.assert_allclose(z["sobel-y"], ndi_correlate_same(photo, np.array(
            [[-1, -2, -1], [0, 0, 0], [1, 2, 1]], float), "reflect"), atol=1e-3)
        report = json.loads(str(z["report"]))
    assert [r["kernel"] for r in report["runs"]] == ["sobel-x", "sobel-y"]


def test_stdout_output_is_the_image_and_the_report_stays_on_stderr(cli, tmp_path):
    code, out, err = cli("apply", SAMPLES / "camera.png", "-k", "box-blur", "-o", "-", "--report", "r.json")
    assert code == 0 and "map      clip" in err
    img = np.asarray(Image.open(io.BytesIO(out)))
    code2, _, _ = cli("apply", SAMPLES / "camera.png", "-k", "box-blur", "-o", "f.png", "-q")
    np.testing.assert_array_equal(img, read_image(tmp_path / "f.png"))
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["runs"][0]["output"] == "-"


def test_combine_magnitude_equals_the_bank(cli, tmp_path):
    code, _, _ = cli("apply", SAMPLES / "camera.png", "-k", "sobel-x", "-k", "sobel-y", "--combine", "magnitude",
                     "-o", "c.npy", "-q")
    assert code == 0
    cli("apply", SAMPLES / "camera.png", "-k", "sobel", "-o", "b.npy", "-q")
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), np.load(tmp_path / "b.npy"))
    code, _, _ = cli("apply", SAMPLES / "camera.png", "-k", "sobel-x", "-k", "sobel-y", "--combine", "max", "-o", "d/")
    assert code == 0 and (tmp_path / "d" / "camera.sobel-x+sobel-y+max.png").is_file()


def test_rescale_global_keeps_channels_comparable():
    from convcli.output import map_values

    x = np.stack([np.full((2, 2), -10.0), np.full((2, 2), 10.0)], axis=2)
    x[0, 0, 0] = 0.0
    per = map_values(x, "rescale").data
    glob = map_values(x, "rescale", per_channel=False).data
    assert per[..., 1].max() == 0  # a constant channel alone maps to 0
    np.testing.assert_array_equal(glob[..., 1], 255)  # against the other channel it is the top
    np.testing.assert_array_equal(glob[..., 0], [[128, 0], [0, 0]])


# --- the report --------------------------------------------------------------------------------


def test_report_file_has_channel_stats_and_stage_timings(cli, tmp_path):
    code, out, _ = cli("apply", SAMPLES / "astronaut.png", "-k", "laplacian", "-o", "l.png", "--report", "r.json", "-q")
    assert code == 0 and out == b""
    run = json.loads((tmp_path / "r.json").read_text())["results"][0]["runs"][0]
    expected = ndi_correlate_same(read_image(SAMPLES / "astronaut.png"), np.array(
        [[0, 1, 0], [1, -4, 1], [0, 1, 0]], float), "reflect")
    assert [c["channel"] for c in run["channels"]] == ["R", "G", "B"]
    for c, stats in enumerate(run["channels"]):
        assert stats["min"] == expected[..., c].min() and stats["max"] == expected[..., c].max()
        assert stats["mean"] == pytest.approx(expected[..., c].mean(), abs=1e-3)
    assert set(run["seconds"]) == {"read", "filter", "write"}
    assert run["input_mode"] == "RGB" and run["input_bits"] == 8 and run["map"] == "abs"
    assert run["clipped"] == int(np.count_nonzero(np.rint(np.abs(expected)) > 255))


# --- broken inputs: exit 1, one line, no output file ---------------------------------------------------


def _bomb() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "name,content",
    [
        ("zero.png", b""),
        ("text.png", b"hello, I am not an image\n"),
        ("truncated.png", (SAMPLES / "astronaut.png").read_bytes()[:3000]),
        ("corrupt.png", (SAMPLES / "camera.png").read_bytes()[:100] + b"\xff" * 400
         + (SAMPLES / "camera.png").read_bytes()[500:]),
        ("truncated16.png", write_png(np.ones((40, 40, 3), np.uint16))[:-30]),
        ("bomb.png", _bomb()),
    ],
)
def test_broken_inputs_exit_1_with_one_line_and_no_output(cli, tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    code, out, err = cli("apply", name, "-k", "sobel-x", "-o", "out.png")
    line = _one_error_line(err)
    assert code == 1 and name in line and out == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    if name == "bomb.png":
        assert "--max-pixels" in line


def test_max_pixels_lowers_and_raises_the_limit(cli, tmp_path):
    code, _, err = cli("apply", SAMPLES / "camera.png", "-k", "identity", "--max-pixels", "1000", "-o", "o.png")
    assert code == 1 and "--max-pixels" in _one_error_line(err)
    assert not (tmp_path / "o.png").exists()
    code, _, _ = cli("apply", SAMPLES / "camera.png", "-k", "identity", "--max-pixels", "65536", "-o", "o.png", "-q")
    assert code == 0
