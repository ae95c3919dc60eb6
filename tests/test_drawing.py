"""The sliding-window animation: one frame per output position, the engine's numbers drawn."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from convcli.cli import app
from convcli.drawing import PAD_FILL, PATCH_FILL, slide_frames, strip
from convcli.engine import correlate
from convcli.explain import explain
from convcli.kernelplot import colour

from .conftest import SAMPLES

LAB = [[1, 2, 0, 0], [5, 3, 0, 4], [2, 1, 3, 1], [0, 2, 1, 2]]
SOBEL_INPUT = np.loadtxt(SAMPLES / "matrices" / "sobel5x5.txt")


def _centre(box):
    return ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)


def test_frames_fill_in_the_engine_output():
    e = explain(SOBEL_INPUT, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    frames = slide_frames(e)
    assert len(frames) == 9
    assert len({f.image.size for f in frames}) == 1
    np.testing.assert_array_equal(frames[-1].shown, correlate(SOBEL_INPUT, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
                                                              padding="valid"))
    assert frames[-1].shown[0, 0] == 160
    # frame k shows exactly the first k+1 outputs
    for k, f in enumerate(frames):
        assert np.count_nonzero(~np.isnan(f.shown)) == k + 1
    assert frames[0].text[0].startswith("output[0, 0] = (-10) + 0 + 30")
    assert " ".join(frames[0].text).endswith("= 160")


def test_patch_highlight_and_output_colours_are_drawn():
    e = explain(LAB, [[1, 0], [0, -1]], padding=1, stride=2)
    frames = slide_frames(e)
    assert len(frames) == e.output.size == 9
    first = frames[0]
    # the patch at output (0, 0) covers padded cells (0,0), (0,1), (1,0) and input cell (1,1)
    pixel = first.image.getpixel(_centre(first.input_boxes[(1, 1)]))
    assert pixel != PATCH_FILL  # the number is drawn at the centre; check the fill near the corner
    box = first.input_boxes[(1, 1)]
    assert first.image.getpixel((box[2] - 3, box[3] - 3)) == PATCH_FILL
    box = first.input_boxes[(5, 5)]  # a padded cell far from the patch
    assert first.image.getpixel((box[2] - 3, box[3] - 3)) == PAD_FILL
    last = frames[-1]
    span = float(np.max(np.abs(e.output)))
    for (r, c), box in last.output_boxes.items():
        assert last.image.getpixel((box[0] + 4, box[3] - 4)) == colour(float(e.output[r, c]), span)
    # not yet computed cells are white in the first frame
    box = first.output_boxes[(2, 2)]
    assert first.image.getpixel((box[0] + 4, box[3] - 4)) == (255, 255, 255)


def test_explain_writes_gif_and_strip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["explain", "--input", str(SAMPLES / "matrices" / "signal1d.txt"), "-k",
                                      "2 -1 1", "--gif", "slide.gif", "--png", "strip.png"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    with Image.open(tmp_path / "slide.gif") as gif:
        assert gif.n_frames == 4
        frames = slide_frames(explain([1, 2, 0, -1, 3, 1], [2, -1, 1]))
        assert gif.size == frames[0].image.size
        np.testing.assert_array_equal(frames[-1].shown, [[0, 3, 4, -4]])
    with Image.open(tmp_path / "strip.png") as png:
        w, h = frames[0].image.size
        assert png.size == (4 * w + 3 * 8, h)
    assert "wrote slide.gif (4 frames" in result.stderr


def test_strip_wraps_rows():
    frames = slide_frames(explain(LAB, [[1, 0], [0, -1]]))
    sheet = strip(frames, per_row=4)
    w, h = frames[0].image.size
    assert sheet.size == (4 * w + 24, 3 * h + 16)


@pytest.mark.parametrize("name", ["slide.png", "slide"])
def test_gif_needs_a_gif_name(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["explain", "--input", "1 2 3", "-k", "1 1", "--gif", name])
    assert result.exit_code == 2 and ".gif" in result.stderr and not (tmp_path / name).exists()
