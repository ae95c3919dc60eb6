"""`convcli kernels list|show` and the kernel options of `apply`: stdout, stderr and exit codes apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.ndimage as ndi
from PIL import Image
from typer.testing import CliRunner

from convcli.cli import app
from convcli.kernels import builtin_registry

from .conftest import SAMPLES, ndi_correlate_same, read_image

KERNELS = SAMPLES / "kernels"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run convcli in an empty temporary folder; returns (exit_code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVCLI_KERNELS", raising=False)
    runner = CliRunner()

    def invoke(*args: str, env: dict | None = None):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False, env=env)
        assert "Traceback" not in result.stderr
        return result.exit_code, result.stdout, result.stderr

    return invoke


@pytest.fixture
def image(tmp_path, rng):
    """A float array input, so that .npy output is the raw map."""
    x = rng.random((19, 23)) * 255
    np.save(tmp_path / "in.npy", x)
    return x


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("convcli: error: ")
    return lines[0]


def _expected(image: np.ndarray, doc: dict) -> np.ndarray:
    """scipy.ndimage.correlate with the JSON matrix (per member, combined, for a bank)."""
    if doc["kind"] == "kernel":
        return ndi_correlate_same(image, np.array(doc["matrix"]), "reflect") + doc["offset"]
    maps = [_expected(image, m) for m in doc["kernels"]]
    how = doc["combine"]
    if how == "magnitude":
        out = np.sqrt(sum(m**2 for m in maps))
    elif how == "max":
        out = np.max(np.abs(maps), axis=0)
    elif how == "sum":
        out = np.sum(np.abs(maps), axis=0)
    else:
        out = np.stack(maps, axis=-1)
    return out + doc["offset"]


SPECS = [
    *sorted(builtin_registry().kernels),
    *sorted(builtin_registry().banks),
    "sobel:max", "scharr:sum", "prewitt:stack",
    "gaussian:sigma=1.5", "box:4x3", "log:sigma=1.4", "dog:sigma1=1,sigma2=2", "motion:length=9,angle=30",
    "unsharp:sigma=1,amount=1.5",
    "3x3: 1,0,-1 2,0,-2 1,0,-1", "3x1+0+0: 1 2 3", "1 2; 3 4",
    f"@{KERNELS / 'sobel.mat'}", f"@{KERNELS / 'im-sobel.txt'}", str(KERNELS / "binomial5.csv"),
]


@pytest.mark.parametrize("convolve", [False, True], ids=["correlate", "convolve"])
@pytest.mark.parametrize("spec", SPECS)
def test_apply_equals_scipy_correlate_with_the_show_json_matrix(cli, tmp_path, image, spec, convolve):
    flag = ["--convolve"] if convolve else []
    code, out, err = cli("kernels", "show", spec, "--json", *flag)
    assert code == 0, err
    doc = json.loads(out)
    code, out, err = cli("apply", "in.npy", "-k", spec, "-o", "out.npy", "-q", *flag)
    assert (code, out) == (0, ""), err
    got = np.load(tmp_path / "out.npy")
    expected = _expected(image, doc)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_show_json_fields(cli):
    code, out, err = cli("kernels", "show", "gaussian-blur", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["name"] == "gaussian-blur" and doc["scale"] == 1 / 16 and doc["scale_text"] == "1/16"
    assert doc["as_written"] == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    assert doc["matrix"] == (np.array(doc["as_written"]) / 16).tolist()
    assert doc["sum"] == 1 and doc["normalized"] and not doc["zero_sum"]
    assert doc["separable"] and doc["rank"] == 1
    assert np.allclose(np.outer(doc["factors"]["column"], doc["factors"]["row"]), doc["matrix"])
    assert doc["response"]["8-bit"] == {"min": 0, "max": 255}
    assert doc["offset"] == 0 and doc["operation"] == "correlate" and doc["anchor"] == [1, 1]
    code, out, _ = cli("kernels", "show", "laplacian", "--json", "--convolve")
    doc = json.loads(out)
    assert doc["zero_sum"] and doc["sum"] == 0 and not doc["separable"] and doc["factors"] is None
    assert doc["operation"] == "convolve"


def test_show_text(cli):
    code, out, err = cli("kernels", "show", "sobel-x")
    assert code == 0 and err == ""
    assert out.splitlines()[0].startswith("sobel-x  3x3  Sobel horizontal gradient")
    for text in ("-1   0   1", "-2   0   2", "sum         0: zero-sum",
                 "rank        1, separable: column [1 2 1] times row [-1 0 1]",
                 "response    8-bit input: -1020 .. 1020", "map         abs",
                 "imagemagick -morphology Correlate '3x3: -1,0,1 -2,0,2 -1,0,1'"):
        assert text in out, text
    code, out, _ = cli("kernels", "show", "sobel-x", "--convolve")
    assert " 1   0  -1" in out and "rotated 180 degrees" in out
    code, out, _ = cli("kernels", "show", "box-blur")
    assert "as written, times 1/9" in out and "0.111111" in out and "1: normalised" in out
    code, out, _ = cli("kernels", "show", "sobel")
    assert "bank of 2 kernels" in out and "magnitude sqrt(a^2 + b^2) of sobel-x, sobel-y" in out
    assert "0 .. 1442.5 at most" in out
    code, out, _ = cli("kernels", "show", "-1 0 1")              # a spec may start with '-'
    assert code == 0 and out.startswith("custom  1x3")


def test_show_applies_scale_offset_normalize_like_apply(cli, tmp_path, image):
    args = ["1 2 1; 2 4 2; 1 2 1", "--normalize", "--scale", "2", "--offset", "-3"]
    code, out, _ = cli("kernels", "show", *args, "--json")
    doc = json.loads(out)
    assert doc["scale_text"] == "1/8" and doc["offset"] == -3 and doc["sum"] == 2
    code, _, _ = cli("apply", "in.npy", "-k", args[0], *args[1:], "-o", "o.npy", "-q")
    assert code == 0
    expected = 2 * ndi.correlate(image, np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16, mode="reflect") - 3
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), expected, atol=1e-9)


def test_show_plot_writes_a_png(cli, tmp_path):
    code, out, err = cli("kernels", "show", "sobel-x", "--plot", "k.png")
    assert code == 0 and out.startswith("sobel-x")
    assert err.startswith("wrote k.png (")
    with Image.open(tmp_path / "k.png") as img:
        assert img.format == "PNG" and img.mode == "RGB"
        colours = {tuple(c) for c in np.asarray(img).reshape(-1, 3)}
    assert (178, 24, 43) in colours and (33, 102, 172) in colours      # both ends of the diverging scale
    code, _, err = cli("kernels", "show", "sobel-x", "--plot", "k.npy")
    assert code == 2 and "give an image file name" in _one_error_line(err)


def test_show_save_round_trips_through_apply(cli, tmp_path, image):
    for suffix in (".txt", ".csv", ".npy", ".toml", ".mat"):
        code, _, err = cli("kernels", "show", "unsharp", "--convolve", "--save", f"k{suffix}")
        assert code == 0 and f"wrote k{suffix}" in err
        code, out, _ = cli("kernels", "show", f"@k{suffix}", "--json")
        assert json.loads(out)["matrix"] == json.loads(cli("kernels", "show", "unsharp", "--convolve", "--json")[1])["matrix"]
    code, _, err = cli("kernels", "show", "sobel", "--save", "k.txt")
    assert code == 2 and "is a bank of 2 kernels" in _one_error_line(err)
    code, _, err = cli("kernels", "show", "sobel-x", "--save", "k.png")
    assert code == 2 and "use one of .txt" in _one_error_line(err)
    code, _, err = cli("kernels", "show", "emboss", "--offset", "128", "--save", "e.csv")
    assert code == 0 and "note: offset 128 not saved" in err


def test_list_table_and_tags(cli):
    code, out, err = cli("kernels", "list")
    assert code == 0 and err == ""
    for name in [*builtin_registry().kernels, *builtin_registry().banks, "gaussian:sigma=S[,size=N]",
                 "motion:length=9,angle=30"]:
        assert name in out, name
    assert not any(line != line.rstrip() for line in out.splitlines())
    row = next(line for line in out.splitlines() if line.startswith("sobel-x "))
    assert "3x3" in row and "yes" in row and "edge,gradient" in row
    row = next(line for line in out.splitlines() if line.startswith("laplacian "))
    assert " no " in row and "(also: laplacian-4)" in row
    code, out, _ = cli("kernels", "list", "--tag", "blur", "--json")
    doc = json.loads(out)
    assert {d["name"] for d in doc} == {"box-blur", "box-blur-5", "gaussian-blur", "gaussian-blur-5", "motion-blur",
                                        "gaussian", "box", "motion"}
    code, _, err = cli("kernels", "list", "--tag", "nope")
    assert code == 2 and "no kernel has the tag 'nope'" in _one_error_line(err)


# --- user registries -------------------------------------------------------------------------------


def test_a_user_registry_wins_with_a_note_on_stderr(cli, tmp_path, image):
    mine = KERNELS / "mine.toml"
    code, out, err = cli("kernels", "show", "sharpen", "--kernels", mine, "--json")
    assert code == 0
    assert json.loads(out)["matrix"] == [[-1, -1, -1], [-1, 9, -1], [-1, -1, -1]]
    assert err == f"convcli: note: kernel 'sharpen' from {mine} replaces the built-in kernel 'sharpen'\n"
    # the same through the environment variable, for apply; -q silences the note
    code, out, err = cli("apply", "in.npy", "-k", "compass", "-o", "c.npy", "-q", env={"CONVCLI_KERNELS": str(mine)})
    assert (code, out, err) == (0, "", "")
    maps = [ndi.correlate(image, np.array(m), mode="reflect") for m in (
        [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
        [[-2, -1, 0], [-1, 0, 1], [0, 1, 2]], [[0, -1, -2], [1, 0, -1], [2, 1, 0]])]
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"), np.max(np.abs(maps), axis=0), atol=1e-9)
    code, out, err = cli("kernels", "list", env={"CONVCLI_KERNELS": str(mine)})
    assert "compass" in out and "from " in out and "replaces the built-in kernel 'sharpen'" in err
    # --kernels wins over the environment variable
    code, out, err = cli("kernels", "show", "sharpen", "--json", "--kernels", mine,
                         env={"CONVCLI_KERNELS": str(tmp_path / "missing.toml")})
    assert code == 0


def test_registry_errors(cli, tmp_path):
    code, out, err = cli("kernels", "list", env={"CONVCLI_KERNELS": str(tmp_path / "missing.toml")})
    assert code == 2 and out == ""
    assert "CONVCLI_KERNELS: kernel registry" in _one_error_line(err) and "does not exist" in err
    (tmp_path / "bad.toml").write_text("[kernels.x]\nmatrix = [[1, 2], [3]]\ndescription = 'x'\n")
    code, out, err = cli("apply", "in.npy", "-k", "x", "--kernels", "bad.toml")
    assert code == 2 and "ragged matrix" in _one_error_line(err)


# --- apply: banks and their output files --------------------------------------------------------------


def test_stacked_banks_write_one_array_or_one_image_per_member(cli, tmp_path):
    photo = SAMPLES / "astronaut.png"
    code, _, err = cli("apply", photo, "-k", "sobel:stack", "-o", "st.npy")
    assert code == 0 and "stacked maps on the last axis, in this order: sobel-x, sobel-y" in err
    stack = np.load(tmp_path / "st.npy")
    assert stack.shape == (256, 256, 3, 2) and stack.dtype == np.float32
    code, _, _ = cli("apply", SAMPLES / "camera.png", "-k", "sobel:stack", "-o", "gray.npy", "-q")
    assert np.load(tmp_path / "gray.npy").shape == (256, 256, 2)
    code, _, _ = cli("apply", photo, "-k", "sobel:stack", "-k", "sobel", "-o", "maps/", "-q")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == [
        "astronaut.sobel-x.png", "astronaut.sobel-y.png", "astronaut.sobel.png"]
    # each stacked image is the member alone; the combined map is the clipped magnitude
    x = read_image(photo).astype(np.float64)
    gx = ndi_correlate_same(x, builtin_registry().get("sobel-x").weights, "reflect")
    gy = ndi_correlate_same(x, builtin_registry().get("sobel-y").weights, "reflect")
    np.testing.assert_array_equal(read_image(tmp_path / "maps" / "astronaut.sobel-x.png"),
                                  np.clip(np.rint(np.abs(gx)), 0, 255))
    magnitude = read_image(tmp_path / "maps" / "astronaut.sobel.png").astype(np.float64)
    assert np.abs(magnitude - np.clip(np.rint(np.hypot(gx, gy)), 0, 255)).max() <= 1


def test_bank_report(cli):
    code, out, err = cli("apply", SAMPLES / "camera.png", "-k", "sobel", "-o", "e.png", "--json")
    run = json.loads(out)["results"][0]["runs"][0]
    assert run["kernel"] == "sobel" and run["map"] == "clip" and run["min"] >= 0
    assert any("bank sobel: magnitude" in n for n in run["notes"])


@pytest.mark.parametrize(
    "args,message",
    [
        (["-k", "sobel:stack", "-o", "one.png"], "a stacked bank fits in one .npy file"),
        (["-k", "sobel:stack", "-k", "sobel-x", "-o", "maps/"], "'sobel-x' is given twice"),
    ],
)
def test_bank_output_naming_errors(cli, tmp_path, args, message):
    code, out, err = cli("apply", SAMPLES / "camera.png", *args)
    assert code == 2 and out == "" and message in _one_error_line(err)
    assert not any(p.suffix in (".png", ".npy") for p in tmp_path.rglob("*"))


def test_generated_kernels_name_their_outputs(cli, tmp_path):
    code, _, _ = cli("apply", SAMPLES / "camera.png", "-k", "gaussian:sigma=2", "-k", "box:7", "-o", "out/", "-q")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "camera.box-size=7.png", "camera.gaussian-sigma=2.png"]


def test_vips_scale_and_offset_through_apply(cli, tmp_path, image):
    (tmp_path / "k.mat").write_text("3 1 2 10\n1 0 1\n")      # vips: sum / 2 + 10
    code, _, _ = cli("apply", "in.npy", "-k", "k.mat", "-o", "o.npy", "--padding", "valid", "-q")
    assert code == 0
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), (image[:, :-2] + image[:, 2:]) / 2 + 10, atol=1e-9)


def test_imagemagick_notes_on_stderr(cli):
    code, _, err = cli("apply", SAMPLES / "camera.png", "-k", "3x3: 1,-,-1 2,nan,-2 1,0,-1", "-o", "x.png")
    assert code == 0
    assert "convcli: note: custom: 2 cells given as nan or - left out" in err


# --- malformed input: exit 2, one line, nothing written --------------------------------------------------


MALFORMED = [
    (["-k", "1 2; 3"], "ragged matrix"),
    (["-k", ""], "empty spec"),
    (["-k", "1 x"], "'x' is not a number"),
    (["-k", "1 nan"], "NaN"),
    (["-k", "1 inf"], "NaN and infinite"),
    (["-k", "[[[1, 2]]]"], "a kernel is 2-D"),
    (["-k", "@k3d.npy"], "a kernel is 1-D or 2-D, but this matrix is 3-D"),
    (["-k", "@big.npy"], "a 1100x1 kernel is larger than 1025 per side; if you mean it, raise the limit with "
                         "--max-kernel-size 1100"),
    (["-k", "ragged.csv"], "ragged matrix"),
    (["-k", "@empty.txt"], "the matrix is empty"),
    (["-k", "bad.mat"], "vips header"),
    (["-k", "@missing.txt"], "does not exist"),
    (["-k", "3x3: 1 2 3"], "needs 9 values, got 3"),
    (["-k", "3x3+5+0: 1 2 3 4 5 6 7 8 9"], "lies outside"),
    (["-k", "gaussian:sigma=0"], "sigma must be greater than 0"),
    (["-k", "gaussian:sigma=1,size=4"], "odd whole number"),
    (["-k", "dog"], "dog needs sigma1"),
    (["-k", "box:2.5"], "whole number"),
    (["-k", "blur:3"], "unknown parametric kernel 'blur'"),
    (["-k", "sobel:bogus"], "combine 'bogus'"),
    (["-k", "sobel-x", "--normalize"], "--normalize: kernel 'sobel-x' sums to 0"),
    (["-k", "sobel", "--normalize"], "sums to 0"),
    (["-k", "box-blur", "--scale", "0"], "--scale 0 would make every output 0"),
    (["-k", "box-blur", "--scale", "x"], "--scale 'x' is not a number"),
    (["-k", "box-blur", "--offset", "nan"], "--offset 'nan'"),
    (["-k", "sobel-x", "--max-kernel-size", "0"], "--max-kernel-size"),
    (["-k", "sobel-x", "--kernels", "missing.toml"], "kernel registry 'missing.toml' does not exist"),
    (["-k", "@two.toml"], "holds 2 entries"),
]


@pytest.fixture
def bad_files(tmp_path):
    np.save(tmp_path / "k3d.npy", np.ones((2, 2, 2)))
    np.save(tmp_path / "big.npy", np.ones((1100, 1)))
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "bad.mat").write_text("1 2 3 4 5\n")
    (tmp_path / "two.toml").write_text("[kernels.a]\ndescription='a'\nmatrix=[[1]]\n"
                                       "[kernels.b]\ndescription='b'\nmatrix=[[2]]\n")


@pytest.mark.parametrize("args,message", MALFORMED)
def test_malformed_kernels_exit_2_with_one_line_and_write_nothing(cli, tmp_path, bad_files, args, message):
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = cli("apply", SAMPLES / "camera.png", *args, "-o", "out.png")
    assert code == 2 and out == ""
    assert message in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("args,message", MALFORMED)
def test_kernels_show_gives_the_same_one_line_errors(cli, bad_files, args, message):
    spec = args[1]
    code, out, err = cli("kernels", "show", spec, *args[2:])
    assert code == 2 and out == ""
    assert message in _one_error_line(err)


def test_the_size_limit_is_overridable_on_the_command_line(cli, bad_files):
    code, out, _ = cli("kernels", "show", "@big.npy", "--max-kernel-size", "1100", "--json")
    assert code == 0 and json.loads(out)["shape"] == [1100, 1]


def test_help_and_shape_do_not_import_numpy_pil_or_scipy():
    code = (
        "import sys\n"
        "from convcli.cli import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "r2 = CliRunner().invoke(app, ['shape', '--in', '32', '--k', '3'])\n"
        "r3 = CliRunner().invoke(app, ['kernels', '--help'])\n"
        "assert r.exit_code == r2.exit_code == r3.exit_code == 0\n"
        "print(sorted(m for m in ('numpy', 'PIL', 'scipy') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_apply_never_imports_scipy_signal(tmp_path):
    code = (
        "import sys\n"
        "from convcli.cli import app\n"
        "from typer.testing import CliRunner\n"
        f"r = CliRunner().invoke(app, ['apply', {str(SAMPLES / 'camera.png')!r}, '-k', 'sobel', '-k', "
        f"'gaussian:sigma=2', '-o', {str(tmp_path) + '/'!r}, '-q'])\n"
        "r2 = CliRunner().invoke(app, ['kernels', 'show', 'log:sigma=1.4', '--plot', "
        f"{str(tmp_path / 'k.png')!r}])\n"
        "assert r.exit_code == r2.exit_code == 0, (r.stderr, r2.stderr)\n"
        "print('scipy.signal' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
