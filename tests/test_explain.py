"""`convcli explain`: the seeds' worked examples as golden text, every number from the engine."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from convcli.cli import app
from convcli.engine import correlate
from convcli.explain import explain, number_text, sum_text

from .conftest import SAMPLES

GOLDEN = Path(__file__).parent / "data" / "golden" / "explain"
MATRICES = SAMPLES / "matrices"

RAMP = [[10, 20, 30, 40, 50], [60, 70, 80, 90, 100], [110, 120, 130, 140, 150],
        [160, 170, 180, 190, 200], [210, 220, 230, 240, 250]]
SOBEL_INPUT = [[10, 20, 30, 40, 50], [20, 40, 60, 80, 100], [30, 60, 90, 120, 150],
               [40, 80, 120, 160, 200], [50, 100, 150, 200, 250]]
LAB = [[1, 2, 0, 0], [5, 3, 0, 4], [2, 1, 3, 1], [0, 2, 1, 2]]

#: golden case -> the explain arguments (run from a folder holding a copy of samples/)
CASES = {
    "ramp": 'explain --input "10 20 30 40 50; 60 70 80 90 100; 110 120 130 140 150; '
            '160 170 180 190 200; 210 220 230 240 250" -k "1 0 -1; 1 0 -1; 1 0 -1" --at 0,1 --all',
    "sobel": "explain --input samples/matrices/sobel5x5.txt -k sobel-x --at 0,0",
    "lab4x4": 'explain --input samples/matrices/image4x4.txt -k "1 0; 0 -1" --all',
    "signal1d": 'explain --input samples/matrices/signal1d.txt -k "2 -1 1" --all --at 3',
    "padded": 'explain --input samples/matrices/image4x4.txt -k "1 0; 0 -1" --padding 1 --stride 2 --at 0,0',
    "convolve": 'explain --input samples/matrices/image4x4.txt -k "1 2; 3 4" --convolve --at 1,1',
}


@pytest.fixture
def run(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(SAMPLES / "matrices", tmp_path / "samples" / "matrices")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")

    def invoke(line: str):
        result = CliRunner().invoke(app, shlex.split(line), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_text(case, run, update_golden):
    code, out, err = run(CASES[case])
    assert code == 0, err
    path = GOLDEN / f"{case}.txt"
    if update_golden:
        path.write_text(out)
    assert out == path.read_text()
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "\x1b" not in out


# --- the goldens say what the seeds say ------------------------------------------------------


def _output_block(text: str) -> np.ndarray:
    """The matrix printed under 'output  HxW'."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if re.match(r"output  \d+x\d+$", ln))
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append([float(v) for v in line.split()])
    return np.array(rows)


def _vector_after(text: str, label: str) -> np.ndarray:
    m = re.search(rf"{label} = \[([^\]]*)\]", text)
    assert m, text
    return np.array([float(v) for v in m.group(1).split(",")])


def test_golden_ramp_matches_the_seed():
    text = (GOLDEN / "ramp.txt").read_text()
    np.testing.assert_array_equal(_output_block(text), np.full((3, 3), -60.0))
    assert "floor((5 + 0 + 0 - 3) / 1) + 1 = 3" in text
    # the seed's position (0,1): 20 0 -40 / 70 0 -90 / 120 0 -140, sum -60
    assert "20 + 0 + (-40) + 70 + 0 + (-90) + 120 + 0 + (-140) = -60" in text.replace("\n      ", " ")
    assert "output[0, 1] = -60" in text


def test_golden_sobel_matches_the_seed():
    text = (GOLDEN / "sobel.txt").read_text()
    assert "sum = (-10) + 0 + 30 + (-40) + 0 + 120 + (-30) + 0 + 90 = 160" in text
    assert "output[0, 0] = 160" in text
    assert _output_block(text)[0, 0] == 160


def test_golden_lab_matches_the_seed():
    text = (GOLDEN / "lab4x4.txt").read_text()
    np.testing.assert_array_equal(_output_block(text), [[-2, 2, -4], [4, 0, -1], [0, 0, 1]])
    assert "(0, 0)  rows 0..1, columns 0..1: 1 + 0 + 0 + (-3) = -2" in text


def test_golden_1d_matches_the_seed():
    text = (GOLDEN / "signal1d.txt").read_text()
    np.testing.assert_array_equal(_vector_after(text, "y"), [0, 3, 4, -4])
    assert "floor((6 + 0 + 0 - 3) / 1) + 1 = 4" in text
    # the seed: y[3] = 2(-1) + (-1)3 + 1*1 = -2 - 3 + 1 = -4
    assert "y[3] = 2*(-1) + (-1)*3 + 1*1 = (-2) + (-3) + 1 = -4" in text


# --- every printed number is the engine's ----------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--input", str(MATRICES / "ramp5x5.txt"), "-k", "vertical-edge"],
        ["--input", str(MATRICES / "sobel5x5.txt"), "-k", "sobel-y", "--padding", "same", "--border", "reflect"],
        ["--input", str(MATRICES / "image4x4.txt"), "-k", "gaussian-blur", "--padding", "1", "--stride", "2"],
        ["--input", str(MATRICES / "sobel5x5.txt"), "-k", "laplacian", "--dilation", "2", "--padding", "full"],
        ["--input", str(MATRICES / "image4x4.txt"), "-k", "1 2; 3 4", "--convolve", "--border", "wrap",
         "--padding", "same"],
    ],
)
def test_printed_output_is_the_engines(args, run):
    import shlex as _shlex

    code, out, err = run("explain " + " ".join(_shlex.quote(a) for a in args))
    assert code == 0, err
    from convcli.images import read_input
    from convcli.kernels import resolve_kernel

    x = read_input(args[1]).data
    k = resolve_kernel(args[3])
    opts = dict(zip(args[4::2], args[5::2]))
    convolve = "--convolve" in args
    if convolve:
        opts = dict(zip(args[5::2], args[6::2]))
    expected = correlate(x, k.weights, stride=opts.get("--stride", 1), padding=opts.get("--padding", "valid"),
                         dilation=opts.get("--dilation", 1), border=opts.get("--border", "zero"),
                         convolve=convolve)
    printed = _output_block(out)
    assert printed.shape == expected.shape
    np.testing.assert_array_equal(printed, [[float(number_text(v)) for v in row] for row in expected])


def test_every_sum_of_products_is_the_engine_output():
    rng = np.random.default_rng(8)
    x = rng.integers(-9, 10, size=(7, 6))
    k = rng.integers(-3, 4, size=(3, 2))
    for border in ("zero", "reflect", "replicate", "wrap", "reflect101", "constant=5"):
        for stride, padding, dilation in ((1, "valid", 1), (2, "same", 1), (1, "full", 2), ((2, 1), "2,1,0,3", 1)):
            e = explain(x, k, stride=stride, padding=padding, dilation=dilation, border=border, convolve=True)
            engine = correlate(x.astype(float), k, stride=stride, padding=padding, dilation=dilation,
                               border=border, convolve=True)
            np.testing.assert_array_equal(e.output, engine)
            for p in e.positions():
                assert p.products.sum() == p.total
                # padded cells are exactly the taps outside the input
                rows = np.array(p.rows)[:, None]
                cols = np.array(p.cols)[None, :]
                outside = (rows < 0) | (rows >= 7) | (cols < 0) | (cols >= 6)
                np.testing.assert_array_equal(p.padded, outside)
                inside = ~outside
                np.testing.assert_array_equal(
                    p.patch[inside], x[np.broadcast_to(rows, outside.shape)[inside],
                                       np.broadcast_to(cols, outside.shape)[inside]])


def test_padded_cells_come_from_the_border_mode():
    e = explain([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[1, 1], [1, 1]], padding=1, border="replicate")
    p = e.position(0, 0)
    assert p.patch.tolist() == [[1, 1], [1, 1]] and p.padded.tolist() == [[True, True], [True, False]]
    assert sum_text(p) == "1 + 1 + 1 + 1 = 4"
    e = explain([[1, 2, 3]], [[1, 1, 1]], padding=1, border="constant=7")
    assert e.one_d and e.output.tolist() == [[10.0, 6.0, 12.0]]


def test_padded_cells_are_marked_in_the_text(run):
    code, out, _ = run('explain --input "1 2; 3 4" -k "1 1; 1 1" --padding 1 --at 0,0')
    assert code == 0
    assert "padded input  4x4" in out
    assert "[0]  [0]  [0]  [0]" in out
    assert " 1    2   [0]" in out


@pytest.mark.parametrize(
    "line, code, words",
    [
        ('explain --input "1 2; 3 4" -k sobel', 2, "bank"),
        ('explain --input "1 2; 3 4" -k nosuch', 2, "unknown kernel"),
        ('explain --input "1 2; 3 4" -k "1 1" --at 5,5', 2, "outside the 2x1 output"),
        ('explain --input "1 2; 3 4" -k "1 1" --at x', 2, "ROW,COL"),
        ('explain --input "1 2; 3 4" -k "1 1 1; 1 1 1; 1 1 1"', 2, "output height would be empty"),
        ('explain --input "1 2; 3" -k "1 1"', 2, "--input"),
        ("explain --input samples/matrices/nothere.txt -k sobel-x", 1, "does not exist"),
    ],
)
def test_errors_are_one_line(line, code, words, run):
    got, out, err = run(line)
    assert got == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convcli: error: ") and words in lines[0], err


def test_images_need_a_small_crop(run, tmp_path):
    import shutil

    shutil.copy(SAMPLES / "camera.png", tmp_path / "camera.png")
    code, _, err = run("explain --input camera.png -k sobel-x")
    assert code == 2 and "--crop X,Y,W,H" in err and "256x256" in err
    code, _, err = run("explain --input camera.png -k sobel-x --crop 0,0,40,40")
    assert code == 2 and "at most 16x16" in err
    code, _, err = run("explain --input camera.png -k sobel-x --crop 500,0,16,16")
    assert code == 2 and "reaches past" in err
    code, out, err = run("explain --input camera.png -k sobel-x --crop 100,80,6,5 --at 1,1")
    assert code == 0, err
    from convcli.images import read_input

    crop = read_input(tmp_path / "camera.png").data[80:85, 100:106]
    expected = correlate(crop, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], padding="valid")
    np.testing.assert_array_equal(_output_block(out), expected)
    assert "input  5x6" in out


def test_colour_crop_explains_one_channel(run, tmp_path):
    import shutil

    shutil.copy(SAMPLES / "astronaut.png", tmp_path / "a.png")
    code, out, err = run("explain --input a.png -k box-blur --crop 10,10,4,4 --channel 2")
    assert code == 0, err
    from convcli.images import read_input

    blue = read_input(tmp_path / "a.png").data[10:14, 10:14, 2]
    np.testing.assert_allclose(_output_block(out), correlate(blue, np.ones((3, 3)) / 9, padding="valid"),
                               rtol=1e-5)
    assert "times 1/9 gives the weights:" in out


def test_narrow_terminal_keeps_lines_short(run, monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    code, out, _ = run("explain --input samples/matrices/sobel5x5.txt -k log-9 --padding full --all --at 4,4")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 50
    assert "columns 0..7:" in out  # the 21x21 padded grid in column blocks
