"""The kernel gallery and the apply preview sheet: tile counts, labels, colours."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from convcli.cli import app
from convcli.engine import correlate
from convcli.gallery import DEFAULT_KERNELS, contact_sheet, diverging, gallery, gallery_tiles
from convcli.kernelplot import NEGATIVE, POSITIVE
from convcli.kernels import builtin_registry, resolve_spec

from .conftest import SAMPLES


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")

    def invoke(*args: str):
        result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _has_ink(img: Image.Image, box) -> bool:
    region = np.asarray(img.crop((box[0], box[1], box[2] + 1, box[3] + 1)).convert("L"))
    return bool((region < 128).any())


def test_default_kernels_are_in_the_registry():
    registry = builtin_registry()
    for name in DEFAULT_KERNELS:
        assert registry.find(name) is not None, name
    assert resolve_spec("sobel").summary().startswith("magnitude")


def test_signed_maps_are_diverging_and_equal_the_engine():
    step = np.zeros((32, 32), dtype=np.uint8)
    step[:, 16:] = 200
    tiles = gallery_tiles(step, [resolve_spec("sobel-x"), resolve_spec("box-blur")], max_side=64)
    assert [t.title for t in tiles] == ["input", "sobel-x", "box-blur"]
    edge = tiles[1]
    assert edge.map == "diverging" and edge.pixels.shape == (32, 32, 3)
    values = correlate(step, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], border="reflect")
    np.testing.assert_array_equal(edge.pixels, diverging(values))
    assert tuple(edge.pixels[5, 15]) == POSITIVE  # brightness rises to the right: positive, red
    assert tuple(edge.pixels[5, 3]) == (255, 255, 255)  # flat: zero, white
    inverted = gallery_tiles(255 - step, [resolve_spec("sobel-x")], max_side=64)[1]
    assert tuple(inverted.pixels[5, 15]) == NEGATIVE
    blur = tiles[2]
    assert blur.map == "clip" and blur.pixels.ndim == 2
    assert blur.lines[-1].endswith("x 1/9")


def test_gallery_image_has_every_tile_and_label(tmp_path):
    photo = np.asarray(Image.open(SAMPLES / "astronaut.png"))
    items = [resolve_spec(n) for n in DEFAULT_KERNELS]
    sheet = gallery(photo, items, max_side=96)
    assert len(sheet.boxes) == len(sheet.label_boxes) == 10
    for box, label in zip(sheet.boxes, sheet.label_boxes, strict=True):
        assert box[2] - box[0] + 1 == 96 and box[3] - box[1] + 1 == 96
        assert _has_ink(sheet.image, label)
    # the input tile is the photo, in colour
    x0, y0 = sheet.boxes[0][:2]
    small = np.asarray(Image.fromarray(photo).resize((96, 96), Image.Resampling.BOX))
    assert abs(int(sheet.image.getpixel((x0 + 40, y0 + 40))[0]) - int(small[40, 40, 0])) <= 2


def test_gallery_cli_default_tag_and_list(cli, tmp_path):
    code, _, err = cli("gallery", SAMPLES / "camera.png", "-o", "g.png", "--size", "64")
    assert code == 0, err
    assert "10 tiles" in err
    with Image.open(tmp_path / "g.png") as img:
        assert img.mode == "RGB" and img.width > 4 * 64
    code, _, err = cli("gallery", SAMPLES / "camera.png", "-o", "edge.png", "--tag", "edge", "--size", "32")
    assert code == 0, err
    edge = [k for k in builtin_registry().kernels.values() if "edge" in k.tags]
    banks = [b for b in builtin_registry().banks.values() if "edge" in b.tags]
    assert f"{len(edge) + len(banks) + 1} tiles" in err
    code, _, err = cli("gallery", SAMPLES / "camera.png", "-o", "two.png", "-k", "sobel-x,laplacian",
                       "-k", "1 2 1; 2 4 2; 1 2 1", "--map", "rescale", "--size", "32")
    assert code == 0 and "4 tiles" in err, err


@pytest.mark.parametrize(
    "args, words",
    [
        (["--tag", "nosuch"], "no kernel has the tag"),
        (["-k", "nosuch"], "unknown kernel"),
        (["--map", "rainbow"], "not one of"),
        (["-k", "sobel-x", "--tag", "edge"], "not both"),
    ],
)
def test_gallery_usage_errors(args, words, cli, tmp_path):
    code, _, err = cli("gallery", SAMPLES / "camera.png", "-o", "g.png", *args)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "g.png").exists()


def test_gallery_never_overwrites_its_input(cli, tmp_path):
    import shutil

    shutil.copy(SAMPLES / "camera.png", tmp_path / "c.png")
    before = (tmp_path / "c.png").read_bytes()
    code, _, err = cli("gallery", "c.png", "-o", "c.png")
    assert code == 2 and "is the input" in err
    assert (tmp_path / "c.png").read_bytes() == before


def test_contact_sheet_is_capped():
    img = np.zeros((300, 200), dtype=np.uint8)
    rows = [(f"in{i}.png", img, [("a", img), ("b", img)]) for i in range(20)]
    sheet = contact_sheet(rows, thumb=50, max_rows=3)
    assert len(sheet.boxes) == 9
    assert max(b[3] - b[1] + 1 for b in sheet.boxes) == 50
    assert sheet.image.height < 600


def test_apply_preview_writes_a_sheet(cli, tmp_path):
    code, _, err = cli("apply", SAMPLES / "camera.png", SAMPLES / "coffee.jpg", "-k", "sobel-x", "-k",
                       "gaussian-blur", "-o", "out/", "--preview", "sheet.png", "-q")
    assert code == 0, err
    with Image.open(tmp_path / "sheet.png") as img:
        assert img.width <= 4000 and img.height <= 4000
        # 2 rows of (input + 2 maps); the first map of camera is sobel-x of camera, drawn grey
        assert img.getpixel((5, 5)) == (255, 255, 255)
    assert (tmp_path / "out" / "camera.sobel-x.png").exists()
