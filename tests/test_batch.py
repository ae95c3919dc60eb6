"""Batches: folders, patterns, --files-from, --name, --skip-existing, -j, --manifest, Ctrl-C, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from convcli.batch import check_name_template, expand_inputs, read_list
from convcli.cli import app
from convcli.errors import ParameterError

from .conftest import SAMPLES


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: object, input: bytes | None = None):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False, input=input)
        assert "Traceback" not in result.stderr
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _convcli(*args: object, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convcli", *map(str, args)], cwd=cwd, capture_output=True,
                          timeout=300, **kw)


@pytest.fixture
def tree(tmp_path) -> Path:
    """photos/ with nested folders, a corrupt PNG, a non-image and a hidden leftover file."""
    root = tmp_path / "photos"
    (root / "cats" / "old").mkdir(parents=True)
    (root / "mugs").mkdir()
    (root / "coffee.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    (root / "camera.png").write_bytes((SAMPLES / "camera.png").read_bytes())
    (root / "cats" / "chelsea.jpg").write_bytes((SAMPLES / "chelsea.jpg").read_bytes())
    (root / "cats" / "old" / "astronaut.png").write_bytes((SAMPLES / "astronaut.png").read_bytes())
    (root / "mugs" / "broken.png").write_bytes((SAMPLES / "camera.png").read_bytes()[:300])
    (root / "notes.txt").write_text("not a matrix\n")
    (root / "mugs" / "README").write_text("hello\n")
    (root / "cats" / ".chelsea.sobel-x.png.1a2b3c4d.tmp").write_bytes(b"half")
    return root


GOOD = ["camera.png", "coffee.jpg", "cats/chelsea.jpg", "cats/old/astronaut.png"]


def _outputs(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --- the scenario -------------------------------------------------------------------


def test_a_tree_with_a_bad_file_writes_every_good_one_and_exits_1(cli, tmp_path, tree):
    code, out, err = cli("apply", "photos", "-r", "-k", "sobel-x", "-o", "out", "--manifest", "run.jsonl")
    assert code == 1 and out == ""
    assert _outputs(tmp_path / "out") == sorted(str(Path(g).with_suffix("")) + ".sobel-x.png" for g in GOOD)
    assert "convcli: error: cannot read 'photos/mugs/broken.png'" in err
    assert "5 files: 4 done, 1 failed, 0 skipped" in err and "3 non-image file(s) ignored" in err
    lines = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert sorted(r["input"] for r in lines) == sorted(["photos/" + g for g in GOOD] + ["photos/mugs/broken.png"])
    bad = next(r for r in lines if r["input"].endswith("broken.png"))
    assert bad["status"] == "failed" and "damaged or truncated" in bad["error"] and bad["outputs"] == []
    good = next(r for r in lines if r["input"].endswith("camera.png"))
    assert good["status"] == "ok" and good["outputs"] == ["out/camera.sobel-x.png"]
    assert good["input_shape"] == [256, 256] and good["output_shapes"] == [[256, 256]]
    assert good["min"] < 0 < good["max"] and good["clipped"] > 0 and good["seconds"] > 0
    # the maps are the ones a single run writes
    cli("apply", "photos/cats/chelsea.jpg", "-k", "sobel-x", "-o", "single.png")
    assert (tmp_path / "single.png").read_bytes() == (tmp_path / "out/cats/chelsea.sobel-x.png").read_bytes()


def test_rerun_with_skip_existing_does_nothing_new(cli, tmp_path, tree):
    cli("apply", "photos", "-r", "-k", "sobel-x", "-k", "box:5", "-o", "out")
    before = {p: (tmp_path / "out" / p).stat().st_mtime_ns for p in _outputs(tmp_path / "out")}
    assert len(before) == 8
    time.sleep(0.01)
    code, _, err = cli("apply", "photos", "-r", "-k", "sobel-x", "-k", "box:5", "-o", "out", "--skip-existing",
                       "--manifest", "again.jsonl")
    assert code == 1  # the broken file still fails
    assert "5 files: 0 done, 1 failed, 4 skipped" in err
    after = {p: (tmp_path / "out" / p).stat().st_mtime_ns for p in _outputs(tmp_path / "out")}
    assert after == before
    statuses = sorted(json.loads(line)["status"] for line in (tmp_path / "again.jsonl").read_text().splitlines())
    assert statuses == ["failed"] + ["skipped"] * 4
    # one missing output is made again, and only that one
    (tmp_path / "out" / "coffee.box-size=5.png").unlink()
    code, _, err = cli("apply", "photos", "-r", "-k", "sobel-x", "-k", "box:5", "-o", "out", "--skip-existing",
                       "--exclude", "broken.png")
    assert code == 0 and "4 files: 1 done, 0 failed, 3 skipped" in err
    assert (tmp_path / "out" / "coffee.box-size=5.png").is_file()
    assert (tmp_path / "out" / "coffee.sobel-x.png").stat().st_mtime_ns == before["coffee.sobel-x.png"]


def test_jobs_1_and_2_write_byte_identical_files(cli, tmp_path, tree):
    kernels = ["-k", "sobel", "-k", "gaussian:sigma=2", "-k", "log:sigma=1.4", "-k", "box:31",
               "-k", "1 2 3 4 5; 5 4 3 2 1; 0 1 0 1 0; 2 2 2 2 2; 9 1 8 2 7"]
    code1, _, _ = cli("apply", "photos", "-r", *kernels, "-o", "j1", "-j", "1", "--exclude", "broken*")
    code2, _, _ = cli("apply", "photos", "-r", *kernels, "-o", "j2", "-j", "2", "--exclude", "broken*")
    assert code1 == code2 == 0
    names = _outputs(tmp_path / "j1")
    assert names == _outputs(tmp_path / "j2") and len(names) == 4 * 5
    for name in names:
        assert (tmp_path / "j1" / name).read_bytes() == (tmp_path / "j2" / name).read_bytes(), name


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    with Image.open(SAMPLES / "astronaut.png") as im:
        big = im.convert("RGB").resize((900, 900))
    for i in range(40):
        big.rotate(i * 9).save(src / f"p{i:02d}.png", compress_level=1)
    args = ["apply", "in", "-k", "gaussian:sigma=4", "-k", "sobel", "-k", "laplacian", "-o", "out", "-j", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "convcli", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any((tmp_path / "out").glob("*.png")) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and out == ""
    assert "convcli: interrupted:" in err and "of 40 file(s) finished" in err
    left = sorted(p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp"))
    assert left == []
    written = sorted((tmp_path / "out").glob("*.png"))
    assert 0 < len(written) < 120
    for path in written:  # each file there is whole
        with Image.open(path) as im:
            im.load()
    code = _convcli(*args, "--skip-existing", "-q", cwd=tmp_path).returncode
    assert code == 0 and len(list((tmp_path / "out").glob("*.png"))) == 120
    fresh = _convcli("apply", "in/p39.png", "in/p00.png", "-k", "gaussian:sigma=4", "-k", "sobel", "-k",
                     "laplacian", "-o", "fresh", "-j", "1", "-q", cwd=tmp_path)
    assert fresh.returncode == 0
    for path in (tmp_path / "fresh").iterdir():
        assert path.read_bytes() == (tmp_path / "out" / path.name).read_bytes()


def test_files_from_standard_input_through_a_pipe(tmp_path, tree):
    listing = "photos/coffee.jpg\n\nphotos/cats/chelsea.jpg\n"
    res = _convcli("apply", "--files-from", "-", "-k", "emboss", "-o", "out", cwd=tmp_path, input=listing.encode())
    assert res.returncode == 0, res.stderr
    assert _outputs(tmp_path / "out") == ["chelsea.emboss.png", "coffee.emboss.png"]
    assert res.stdout == b"" and b"2 files: 2 done, 0 failed" in res.stderr
    find = subprocess.run(["find", "photos", "-name", "*.jpg", "-print0"], cwd=tmp_path, capture_output=True)
    res = _convcli("apply", "--files-from", "-", "-k", "emboss", "-o", "out0", "--name", "{dir}/{stem}{ext}",
                   cwd=tmp_path, input=find.stdout)
    assert res.returncode == 0, res.stderr
    assert _outputs(tmp_path / "out0") == ["photos/cats/chelsea.png", "photos/coffee.png"]


# --- inputs -------------------------------------------------------------------------------------


def test_a_folder_without_r_takes_its_own_images_only(cli, tmp_path, tree):
    code, _, err = cli("apply", "photos", "-k", "sharpen", "-o", "out", "-v")
    assert code == 0
    assert _outputs(tmp_path / "out") == ["camera.sharpen.png", "coffee.sharpen.png"]
    assert "done     photos/camera.png -> out/camera.sharpen.png" in err
    assert "1 non-image file(s) ignored" in err


def test_patterns_the_shell_did_not_expand(cli, tmp_path, tree):
    code, _, _ = cli("apply", "photos/**/*.jpg", "-k", "sobel-y", "-o", "out")
    assert code == 0 and _outputs(tmp_path / "out") == ["cats/chelsea.sobel-y.png", "coffee.sobel-y.png"]
    code, _, err = cli("apply", "photos/*.gif", "-k", "sobel-y", "-o", "out2")
    assert code == 2 and "no input image to process ('photos/*.gif' matches no file)" in err
    assert not (tmp_path / "out2").exists()


def test_include_and_exclude(cli, tmp_path, tree):
    code, _, err = cli("apply", "photos", "-r", "-k", "sobel-x", "-o", "out", "--include", "*.png",
                       "--exclude", "mugs/*")
    assert code == 0 and _outputs(tmp_path / "out") == ["camera.sobel-x.png", "cats/old/astronaut.sobel-x.png"]
    assert "excluded" in err


def test_earlier_outputs_and_the_output_folder_are_not_read_again(cli, tmp_path, tree):
    code, _, _ = cli("apply", "photos", "-k", "sobel-x", "--exclude", "broken.png")
    assert code == 0 and (tree / "coffee.sobel-x.png").is_file()
    code, _, err = cli("apply", "photos", "-k", "sobel-x", "-v")
    assert code == 0 and "sobel-x.sobel-x" not in err and "2 output(s) of earlier runs left out" in err
    code, _, _ = cli("apply", "photos", "-r", "-k", "emboss", "-o", "photos/maps", "--exclude", "broken.png")
    code, _, err = cli("apply", "photos", "-r", "-k", "emboss", "-o", "photos/maps", "--exclude", "broken.png", "-v")
    assert code == 0 and "photos/maps/" not in err.replace("-> photos/maps/", "")
    assert not list((tree / "maps").rglob("*.emboss.emboss.png"))


def test_empty_folder_is_a_usage_error(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "sub").mkdir()
    (tmp_path / "empty" / "sub" / "x.png").write_bytes((SAMPLES / "camera.png").read_bytes())
    code, _, err = cli("apply", "empty", "-k", "sobel-x")
    assert code == 2 and "no input image to process" in err and "-r descends into subfolders" in err


def test_files_from_a_file_and_errors(cli, tmp_path, tree):
    (tmp_path / "list.txt").write_text("photos/camera.png\nphotos/missing.png\n")
    code, _, err = cli("apply", "--files-from", "list.txt", "-k", "sobel-x", "-o", "out")
    assert code == 1 and "missing.png" in err and _outputs(tmp_path / "out") == ["camera.sobel-x.png"]
    code, _, err = cli("apply", "--files-from", "nope.txt", "-k", "sobel-x")
    assert code == 2 and "'nope.txt' does not exist" in err
    code, _, err = cli("apply", "-k", "sobel-x")
    assert code == 2 and "give at least one INPUT" in err
    code, _, err = cli("apply", "-", "--files-from", "-", "-k", "sobel-x", input=b"photos/camera.png\n")
    assert code == 2 and "both read standard input" in err


# --- names ---------------------------------------------------------------------------------------


def test_name_template_fields(cli, tmp_path, tree):
    code, _, err = cli("apply", "photos", "-r", "-k", "sobel-x", "-k", "emboss", "-o", "out", "--exclude", "broken*",
                       "--name", "{kernel}/{parent}-{stem}{ext}", "--format", "jpeg")
    assert code == 0, err
    assert _outputs(tmp_path / "out") == sorted(
        f"{sub}{k}/{parent}-{stem}.jpg"
        for k in ("sobel-x", "emboss")
        for sub, parent, stem in (("", "photos", "camera"), ("", "photos", "coffee"), ("cats/", "cats", "chelsea"),
                                  ("cats/old/", "old", "astronaut"))
    )


def test_name_collisions_are_found_before_any_work(cli, tmp_path, tree):
    code, _, err = cli("apply", "photos", "-r", "-k", "sobel-x", "-o", "out", "--name", "{kernel}{ext}")
    assert code == 2 and "would both write" in err and not (tmp_path / "out").exists()
    code, _, err = cli("apply", "photos/camera.png", "-k", "sobel-x", "-k", "emboss", "-o", "out",
                       "--name", "{stem}{ext}")
    assert code == 2 and "put {kernel} in it" in err
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in "ab":
        (tmp_path / d / "x.png").write_bytes((SAMPLES / "camera.png").read_bytes())
    code, _, err = cli("apply", "a/x.png", "b/x.png", "-k", "emboss", "-o", "out")
    assert code == 2 and "{parent} or {dir}" in err and not (tmp_path / "out").exists()
    code, _, err = cli("apply", "a/x.png", "b/x.png", "-k", "emboss", "-o", "out", "--name", "{parent}_{stem}{ext}")
    assert code == 0 and _outputs(tmp_path / "out") == ["a_x.png", "b_x.png"]


@pytest.mark.parametrize("template,message", [
    ("{stem}.{colour}{ext}", "unknown field {colour}"),
    ("{stem", "expected '}'"),
    ("../{stem}{ext}", "give a file name"),
    ("/tmp/{stem}{ext}", "give a file name"),
])
def test_bad_name_templates(template, message):
    with pytest.raises(ParameterError, match=message.replace("{", r"\{").replace("(", r"\(")):
        check_name_template(template)


def test_name_with_one_output_file_is_refused(cli, tmp_path):
    code, _, err = cli("apply", SAMPLES / "camera.png", "-k", "sobel-x", "-o", "x.png", "--name", "{stem}{ext}")
    assert code == 2 and "give -o a folder" in err


# --- running -------------------------------------------------------------------------------------


def test_fail_fast_starts_nothing_after_a_failure(cli, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes(b"not a png")
    for i in range(5):
        (src / f"b{i}.png").write_bytes((SAMPLES / "camera.png").read_bytes())
    code, _, err = cli("apply", "in", "-k", "sobel-x", "-o", "out", "--fail-fast", "-j", "1")
    assert code == 1 and "6 files: 0 done, 1 failed, 0 skipped" in err and "5 not started (--fail-fast)" in err
    assert not (tmp_path / "out").exists()


def test_quiet_batch_prints_errors_only_and_no_progress_bar_off_a_terminal(cli, tmp_path, tree):
    code, out, err = cli("apply", "photos", "-r", "-k", "sobel-x", "-o", "out", "-q")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == ["convcli: error: cannot read 'photos/mugs/broken.png': damaged or truncated "
                                        + err.split("damaged or truncated ", 1)[1].strip()]
    code, out, err = cli("apply", "photos", "-r", "-k", "sobel-x", "-o", "out2", "--exclude", "broken*")
    assert code == 0 and "\r" not in err and "\x1b[" not in err
    assert err.strip().splitlines()[-1].startswith("4 files: 4 done, 0 failed, 0 skipped in ")


def test_manifest_and_report_cannot_replace_inputs_or_outputs(cli, tmp_path, tree):
    code, _, err = cli("apply", "photos/camera.png", "-k", "sobel-x", "-o", "out.png", "--manifest", "out.png")
    assert code == 2 and "--manifest" in err
    code, _, err = cli("apply", "photos/camera.png", "-k", "sobel-x", "-o", "out.png", "--manifest", "m.csv")
    assert code == 2 and "ending in .jsonl" in err


def test_the_json_report_keeps_input_order_with_two_jobs(cli, tmp_path, tree):
    code, out, _ = cli("apply", "photos", "-r", "-k", "sobel-x", "-o", "out", "-j", "2", "--json",
                       "--exclude", "broken*")
    doc = json.loads(out)
    assert code == 0 and [r["input"] for r in doc["results"]] == ["photos/" + g for g in
                                                                   ["camera.png", "coffee.jpg", "cats/chelsea.jpg",
                                                                    "cats/old/astronaut.png"]]


# --- the pure parts --------------------------------------------------------------------------------


def test_expand_inputs_orders_dedups_and_counts(tmp_path, tree):
    os.chdir(tmp_path)
    found = expand_inputs(["photos/camera.png", "photos"], recursive=True)
    assert [s.path.as_posix() for s in found.sources] == ["photos/camera.png", "photos/coffee.jpg",
                                                         "photos/cats/chelsea.jpg", "photos/cats/old/astronaut.png",
                                                         "photos/mugs/broken.png"]
    assert [s.subdir for s in found.sources] == ["", "", "cats", "cats/old", "mugs"]
    assert found.ignored == 3  # notes.txt, README, the hidden .tmp
    assert expand_inputs(["photos/nothing*"]).unmatched == ("photos/nothing*",)


def test_read_list_handles_lines_and_nul():
    assert read_list("a.png\n  b c.png  \n\n") == ["a.png", "b c.png"]
    assert read_list("a.png\0b\nc.png\0") == ["a.png", "b\nc.png"]
