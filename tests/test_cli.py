"""The command line: stdout, stderr and exit codes checked separately."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from convcli.cli import app
from convcli.kernels import builtin_registry

from .conftest import SAMPLES, ndi_correlate_same, read_image

MATRICES = SAMPLES / "matrices"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run convcli in an empty temporary folder; returns (exit_code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert "Traceback" not in result.stderr
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("convcli: error: ")
    return lines[0]


# --- the seeds' worked examples, end to end --------------------------------------------------


def test_ramp_with_vertical_edge_gives_minus_60(cli, tmp_path):
    for kernel in ("vertical-edge", "1 0 -1; 1 0 -1; 1 0 -1"):
        code, out, err = cli("apply", MATRICES / "ramp5x5.txt", "-k", kernel, "--padding", "valid",
                             "-o", "ramp.npy")
        assert code == 0 and out == ""
        np.testing.assert_array_equal(np.load(tmp_path / "ramp.npy"), np.full((3, 3), -60.0))


def test_4x4_lab_example(cli, tmp_path):
    code, _, _ = cli("apply", MATRICES / "image4x4.txt", "-k", "1 0; 0 -1", "--padding", "valid", "-o", "lab.npy")
    assert code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "lab.npy"), [[-2, 2, -4], [4, 0, -1], [0, 0, 1]])


def test_1d_example(cli, tmp_path):
    code, _, _ = cli("apply", MATRICES / "signal1d.txt", "-k", "2 -1 1", "--padding", "valid", "-o", "y.npy")
    assert code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), [[0, 3, 4, -4]])


def test_sobel_example_gives_160_at_origin(cli, tmp_path):
    code, _, err = cli("apply", MATRICES / "sobel5x5.txt", "-k", "sobel-x", "--padding", "valid", "-o", "s.npy")
    assert code == 0
    assert np.load(tmp_path / "s.npy")[0, 0] == 160
    assert "receptive field 3x3" in err


def test_shape_resnet_first_layer(cli):
    code, out, err = cli("shape", "--in", "224", "--k", "7", "--s", "2", "--p", "3")
    assert code == 0 and err == ""
    assert "output           112x112" in out
    assert "floor((224 + 3 + 3 - 7) / 2) + 1 = 112" in out
    code, out, _ = cli("shape", "--in", "224", "--k", "7", "--s", "2", "--p", "3", "--json",
                       "--cin", "3", "--cout", "64")
    doc = json.loads(out)
    assert doc["output"] == [112, 112] and doc["receptive_field"] == [7, 7] and doc["jump"] == [2, 2]
    assert doc["padding"] == [[3, 3], [3, 3]]
    assert doc["params"] == 64 * 3 * 49 + 64


def test_shape_same_padding_at_stride_2(cli):
    code, out, _ = cli("shape", "--in", "224", "--k", "7", "--s", "2", "--p", "same", "--json")
    doc = json.loads(out)
    assert doc["padding"] == [[2, 3], [2, 3]] and doc["output"] == [112, 112]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--in", "4", "--k", "7"], "would be empty: floor((4 + 0 + 0 - 7) / 1) + 1"),
        (["--in", "4", "--k", "0"], "kernel size must be at least 1"),
        (["--in", "8", "--k", "3", "--cin", "3", "--cout", "4", "--groups", "2"], "groups=2 must divide"),
        (["--in", "8", "--k", "3", "--cout", "4"], "needs --cin"),
        (["--in", "8", "--k", "3", "--groups", "2"], "needs --cin"),
    ],
)
def test_shape_usage_errors(cli, args, message):
    code, out, err = cli("shape", *args)
    assert code == 2 and out == ""
    assert message in _one_error_line(err)


# --- real photos ----------------------------------------------------------------------------


def test_apply_sobel_on_a_photo_matches_scipy(cli, tmp_path):
    code, out, err = cli("apply", SAMPLES / "astronaut.png", "-k", "sobel-x", "-o", "edges.png")
    assert code == 0 and out == ""
    got = read_image(tmp_path / "edges.png")
    photo = read_image(SAMPLES / "astronaut.png")
    expected = ndi_correlate_same(photo, builtin_registry().get("sobel-x").weights, "reflect")
    np.testing.assert_array_equal(got, np.clip(np.rint(np.abs(expected)), 0, 255).astype(np.uint8))
    # the report names every part of the geometry
    for word in ("256x256x3", "sobel-x 3x3", "padding  same: top 1, bottom 1, left 1, right 1",
                 "border reflect", "receptive field 3x3", "MACs 1,769,472", "map      abs"):
        assert word in err


def test_apply_raw_npy_keeps_signed_floats(cli, tmp_path):
    code, _, _ = cli("apply", SAMPLES / "camera.png", "-k", "sobel-y", "--stride", "2", "--border", "edge",
                     "-o", "g.npy")
    assert code == 0
    got = np.load(tmp_path / "g.npy")
    assert got.dtype == np.float32 and got.shape == (128, 128)
    photo = read_image(SAMPLES / "camera.png")
    # 'same' at stride 2 pads 0 before and 1 after (TensorFlow's rule for 256, k3, s2), so output
    # u is centred on input pixel 2u + 1
    expected = ndi_correlate_same(photo, builtin_registry().get("sobel-y").weights, "replicate")[1::2, 1::2]
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert got.min() < 0


def test_16bit_identity_is_bit_identical(cli, tmp_path):
    code, _, _ = cli("apply", SAMPLES / "camera16.png", "-k", "identity", "-o", "same.png")
    assert code == 0
    with Image.open(tmp_path / "same.png") as out:
        assert out.mode.startswith("I;16")
    np.testing.assert_array_equal(read_image(tmp_path / "same.png"), read_image(SAMPLES / "camera16.png"))


def test_alpha_is_kept_not_filtered(cli, tmp_path, rng):
    rgba = rng.integers(0, 256, size=(20, 30, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "in.png")
    code, _, _ = cli("apply", "in.png", "-k", "box-blur", "-o", "out.png")
    assert code == 0
    out = read_image(tmp_path / "out.png")
    assert out.shape == (20, 30, 4)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    # with stride 2 the alpha is sampled under each placement's anchor (the centre tap); 'same'
    # pads 0 before and 1 after here (20, k3, s2), so output u is centred on input 2u + 1
    code, _, _ = cli("apply", "in.png", "-k", "box-blur", "--stride", "2", "-o", "half.png")
    half = read_image(tmp_path / "half.png")
    np.testing.assert_array_equal(half[..., 3], rgba[1::2, 1::2, 3])
    np.testing.assert_allclose(half[..., :3], np.rint(ndi_correlate_same(rgba[..., :3], np.ones((3, 3)) / 9,
                                                                           "reflect"))[1::2, 1::2])


def test_convolve_flips_the_kernel(cli, tmp_path):
    cli("apply", MATRICES / "image4x4.txt", "-k", "1 2; 3 4", "--padding", "valid", "--convolve", "-o", "c.npy")
    cli("apply", MATRICES / "image4x4.txt", "-k", "4 3; 2 1", "--padding", "valid", "-o", "r.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), np.load(tmp_path / "r.npy"))


def test_several_inputs_and_kernels_into_a_folder(cli, tmp_path):
    code, out, err = cli("apply", SAMPLES / "coffee.jpg", SAMPLES / "camera.png", "-k", "sobel-x",
                         "-k", "gaussian-blur", "-k", "1 2 1", "-o", "maps")
    assert code == 0
    names = sorted(p.name for p in (tmp_path / "maps").iterdir())
    assert names == sorted(f"{s}.{k}.png" for s in ("coffee", "camera") for k in ("sobel-x", "gaussian-blur", "custom"))
    assert "2 files: 2 done, 0 failed" in err


def test_default_output_goes_beside_the_input(cli, tmp_path):
    src = tmp_path / "pics"
    src.mkdir()
    (src / "cam.png").write_bytes((SAMPLES / "camera.png").read_bytes())
    code, _, _ = cli("apply", src / "cam.png", "-k", "sharpen", "-q")
    assert code == 0 and (src / "cam.sharpen.png").is_file()


def test_json_report_on_stdout(cli):
    code, out, err = cli("apply", SAMPLES / "camera.png", "-k", "laplacian", "-o", "l.png", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    run = doc["results"][0]["runs"][0]
    assert run["kernel"] == "laplacian" and run["output_shape"] == [256, 256]
    assert run["padding"] == [[1, 1], [1, 1]] and run["receptive_field"] == [3, 3]
    assert run["macs"] == 256 * 256 * 9 and run["map"] == "abs"
    assert doc["failed"] == 0


@pytest.mark.parametrize("engine", ["direct", "separable", "separable-gemm", "gemm", "fft"])
def test_engine_option_gives_the_same_numbers(cli, tmp_path, engine):
    code, _, err = cli("apply", SAMPLES / "coffee.jpg", "-k", "gaussian-blur-5", "--engine", engine,
                       "--threads", "2", "-o", f"{engine}.npy")
    assert code == 0 and f"engine   {engine}: forced" in err
    photo = read_image(SAMPLES / "coffee.jpg")
    expected = ndi_correlate_same(photo, builtin_registry().get("gaussian-blur-5").weights, "reflect")
    np.testing.assert_allclose(np.load(tmp_path / f"{engine}.npy"), expected, atol=255 * 1e-5)


def test_quiet_prints_nothing(cli):
    code, out, err = cli("apply", SAMPLES / "camera.png", "-k", "box-blur", "-o", "b.png", "-q")
    assert (code, out, err) == (0, "", "")


# --- errors: one line, right exit code, no damage ------------------------------------------------


@pytest.mark.parametrize(
    "args,message",
    [
        (["-k", "sobelx"], "did you mean 'sobel-x'"),
        (["-k", "1 2; 3"], "ragged matrix"),
        (["-k", "1 nan"], "NaN"),
        (["-k", "sobel-x", "--stride", "0"], "stride must be at least 1"),
        (["-k", "sobel-x", "--dilation", "x"], "dilation"),
        (["-k", "sobel-x", "--padding", "lots"], "padding"),
        (["-k", "sobel-x", "--border", "mirror"], "means different things"),
        (["-k", "sobel-x", "--map", "glow"], "unknown map"),
        (["-k", "sobel-x", "-k", "sobel-x"], "given twice"),
        (["-k", "sobel-x", "-k", "sobel-y", "-o", "one.png"], "names one file"),
        (["-k", "sobel-x", "-o", "out.xyz"], "unknown file type"),
        (["-k", "sobel-x", "--map", "raw", "-o", "x.png"], "raw keeps float values"),
        (["--kernal", "sobel-x"], "No such option"),
        (["-k", "sobel-x", "-o", "-", "--json"], "use --report FILE.json"),
        (["-k", "1e400 1"], "too large for a floating-point number"),
        (["-k", "[[1, 2], 7, [3, 4]]"], "outside the row brackets"),
        (["-k", "[[1,2]] 5 6"], "outside the row brackets"),
        (["-k", "1,,2"], "empty entry"),
        (["-k", "gaussian blur 5"], "did you mean 'gaussian-blur-5'"),
        (["-k", "sobel-x", "--engine", "magic"], "is not one of auto"),
        (["-k", "sobel-x", "--threads", "0"], "--threads must be at least 1"),
        (["-k", "1 2 3 4 5; 2 1 4 3 6; 9 8 7 1 2; 3 5 2 8 1; 4 1 6 2 9", "--engine", "separable"], "rank 5"),
    ],
)
def test_usage_errors_exit_2_with_one_line(cli, tmp_path, args, message):
    code, out, err = cli("apply", SAMPLES / "camera.png", *args)
    line = _one_error_line(err)
    assert message in line
    assert out == ""
    assert code == 2
    assert not any(p.suffix in (".png", ".npy", ".tmp") for p in tmp_path.iterdir())


def test_missing_kernel_option_is_a_usage_error(cli):
    code, _, err = cli("apply", SAMPLES / "camera.png")
    assert code == 2 and "--kernel" in err


def test_output_naming_the_input_is_refused(cli, tmp_path):
    target = tmp_path / "keep.png"
    target.write_bytes((SAMPLES / "camera.png").read_bytes())
    before = target.read_bytes()
    code, _, err = cli("apply", target, "-k", "box-blur", "-o", target)
    assert code == 2 and "never overwrites its inputs" in _one_error_line(err)
    assert target.read_bytes() == before
    # also through another spelling of the same path
    code, _, err = cli("apply", target, "-k", "box-blur", "-o", tmp_path / "." / "keep.png")
    assert code == 2 and target.read_bytes() == before


def test_output_collisions_are_found_before_any_work(cli, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "x.png").write_bytes((SAMPLES / "camera.png").read_bytes())
    code, _, err = cli("apply", "a/x.png", "b/x.png", "-k", "box-blur", "-o", "out/")
    assert code == 2 and "would both write" in _one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_a_bad_file_fails_the_batch_but_not_the_others(cli, tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    code, out, err = cli("apply", "bad.png", SAMPLES / "camera.png", "-k", "box-blur", "-o", "out", "-q")
    assert code == 1 and out == ""
    line = _one_error_line(err)
    assert "bad.png" in line and "not an image" in line
    assert (tmp_path / "out" / "camera.box-blur.png").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["camera.box-blur.png"]


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 40], ids=["empty", "truncated"])
def test_unreadable_image_exits_1_without_output(cli, tmp_path, content):
    (tmp_path / "in.png").write_bytes(content)
    code, _, err = cli("apply", "in.png", "-k", "sobel-x", "-o", "out.png")
    assert code == 1 and "in.png" in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_geometry_too_large_for_an_input_is_a_processing_failure(cli, tmp_path):
    code, _, err = cli("apply", MATRICES / "image4x4.txt", "-k", "box-blur-5", "--padding", "valid", "-o", "x.npy")
    assert code == 1
    assert "floor((4 + 0 + 0 - 5) / 1) + 1 = 0" in _one_error_line(err)
    assert not (tmp_path / "x.npy").exists()


def test_existing_output_is_replaced_atomically(cli, tmp_path):
    (tmp_path / "o.png").write_bytes(b"old")
    code, _, _ = cli("apply", SAMPLES / "camera.png", "-k", "box-blur", "-o", "o.png", "-q")
    assert code == 0
    assert read_image(tmp_path / "o.png").shape == (256, 256)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]


def test_version_and_help(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("convcli ")
    code, out, _ = cli("--help")
    assert code == 0 and "apply" in out and "shape" in out
    code, _, err = cli()
    assert code == 2 and "Usage" in err


def test_kernels_list_json(cli):
    code, out, _ = cli("kernels", "list", "--json")
    doc = json.loads(out)
    kernels = {k["name"] for k in doc if k["kind"] == "kernel"}
    banks = {k["name"] for k in doc if k["kind"] == "bank"}
    assert code == 0 and kernels == set(builtin_registry().kernels)
    assert banks == set(builtin_registry().banks)
    assert {k["name"] for k in doc if k["kind"] == "parametric"} == {"gaussian", "box", "log", "dog", "motion",
                                                                    "unsharp"}
    code, out, _ = cli("kernels", "list")
    assert code == 0 and "sobel-x" in out


def test_python_dash_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "convcli", "shape", "--in", "32", "--k", "3"],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0 and "output           30x30" in proc.stdout


def test_the_quick_exit_keeps_every_byte_and_exit_code(tmp_path):
    """main() leaves with os._exit (no interpreter teardown): buffered stdout must still
    arrive whole through a pipe, and the exit codes stay 0, 1 and 2."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    run = [sys.executable, "-m", "convcli"]
    proc = subprocess.run([*run, "apply", str(SAMPLES / "camera.png"), "-k", "sobel-x", "-o", "-"],
                          capture_output=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    expected = read_image(SAMPLES / "camera.png").astype(float)
    with Image.open(io.BytesIO(proc.stdout)) as img:
        got = np.asarray(img).astype(float)
    want = np.clip(np.rint(np.abs(ndi_correlate_same(expected, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
                                                                           float), "reflect"))), 0, 255)
    np.testing.assert_array_equal(got, want)
    listing = subprocess.run([*run, "kernels", "list", "--json"], capture_output=True, text=True, env=env)
    assert listing.returncode == 0 and len(json.loads(listing.stdout)) > 20
    missing = subprocess.run([*run, "apply", "missing.png", "-k", "sobel-x"], capture_output=True, text=True,
                             cwd=tmp_path, env=env)
    assert missing.returncode == 1 and "missing.png" in missing.stderr
    usage = subprocess.run([*run, "apply", str(SAMPLES / "camera.png"), "-k", "sobel-x", "--stride", "0"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert usage.returncode == 2 and usage.stderr.startswith("convcli: error: ")


def test_every_command_has_help_and_is_in_the_readme():
    from typer.main import get_command

    from .conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    group = get_command(app)
    for name, command in group.commands.items():
        assert command.help, name
        assert f"convcli {name}" in readme, name


# --- found in review: damage, late usage errors, partial failures -----------------------------


def test_a_kernel_file_is_never_overwritten(cli, tmp_path):
    np.save(tmp_path / "k.npy", np.array([[1.0, 0, -1]]))
    before = (tmp_path / "k.npy").read_bytes()
    code, _, err = cli("apply", SAMPLES / "camera.png", "-k", "@k.npy", "-o", "k.npy")
    assert code == 2 and "never overwrites its inputs" in _one_error_line(err)
    assert (tmp_path / "k.npy").read_bytes() == before


def test_map_raw_with_image_outputs_is_refused_before_any_work(cli, tmp_path):
    code, _, err = cli("apply", SAMPLES / "camera.png", SAMPLES / "coffee.jpg", "-k", "sobel-x",
                       "--map", "raw", "-o", "out/")
    assert code == 2 and "raw keeps float values" in _one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_existing_file_without_suffix_as_output_is_a_usage_error(cli, tmp_path):
    (tmp_path / "noext").write_text("keep me")
    code, _, err = cli("apply", SAMPLES / "camera.png", "-k", "sobel-x", "-o", "noext")
    assert code == 2 and "without a suffix" in _one_error_line(err)
    assert (tmp_path / "noext").read_text() == "keep me"


def test_one_failing_kernel_does_not_stop_the_others(cli, tmp_path):
    code, _, err = cli("apply", MATRICES / "image4x4.txt", "-k", "box-blur-5", "-k", "sobel-x",
                       "--padding", "valid", "-o", "kk/", "-q")
    assert code == 1
    line = _one_error_line(err)
    assert "box-blur-5" in line and "floor((4 + 0 + 0 - 5) / 1) + 1 = 0" in line
    assert sorted(p.name for p in (tmp_path / "kk").iterdir()) == ["image4x4.sobel-x.npy"]


def test_absurd_padding_is_refused_before_allocating(cli, tmp_path):
    code, _, err = cli("apply", SAMPLES / "camera.png", "-k", "sobel-x", "--padding", "1000000000", "-o", "u.png")
    assert code == 1 and "reduce the padding" in _one_error_line(err)
    assert not (tmp_path / "u.png").exists()


def test_weights_beyond_float32_are_computed_in_float64(cli, tmp_path):
    code, _, err = cli("apply", SAMPLES / "camera.png", "-k", "1e39", "-o", "big.npy")
    assert code == 0 and "RuntimeWarning" not in err and "written as float64" in err
    got = np.load(tmp_path / "big.npy")
    photo = read_image(SAMPLES / "camera.png")
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, photo * 1e39, rtol=1e-12)


def test_sixteen_bit_pgm_stays_sixteen_bit(cli, tmp_path, rng):
    values = rng.integers(0, 65536, size=(10, 12), dtype=np.uint16)
    (tmp_path / "g16.pgm").write_bytes(b"P5\n12 10\n65535\n" + values.astype(">u2").tobytes())
    code, _, err = cli("apply", "g16.pgm", "-k", "identity", "-o", "o.png")
    assert code == 0 and "16-bit" in err
    np.testing.assert_array_equal(read_image(tmp_path / "o.png"), values)


def test_an_image_too_wide_for_the_format_is_one_line(cli, tmp_path):
    Image.new("L", (17000, 4)).save(tmp_path / "wide.png")
    code, _, err = cli("apply", "wide.png", "-k", "identity", "-o", "wide.webp")
    assert code == 1 and "WEBP cannot hold this 17000x4 result" in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.png"]


def test_a_failed_write_leaves_the_old_output_and_no_temporary_file(cli, tmp_path, monkeypatch):
    import convcli.pipeline as pipeline

    (tmp_path / "o.png").write_bytes(b"old")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline, "write_npy", broken)
    monkeypatch.setattr(pipeline, "encode_image", lambda *a, **k: b"partial")
    original = pipeline.atomic_write

    def failing_atomic(path, write):
        def half(fh):
            write(fh)
            raise OSError(28, "No space left on device")

        original(path, half)

    monkeypatch.setattr(pipeline, "atomic_write", failing_atomic)
    code, _, err = cli("apply", SAMPLES / "camera.png", "-k", "box-blur", "-o", "o.png")
    assert code == 1 and "No space left on device" in _one_error_line(err)
    assert (tmp_path / "o.png").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]


def test_sigterm_mid_run_leaves_no_partial_file(tmp_path):
    import signal
    import time

    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(3000, 3000, 3), dtype=np.uint8)).save(
        big, compress_level=0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "convcli", "apply", str(big), "-k", "1 2 3; 4 5 6; 7 8 10", "-k", "sobel-x",
         "-k", "laplacian", "-k", "emboss", "--engine", "direct", "-o", str(tmp_path / "out"), "-q"],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
