"""The built wheel carries kernels.toml and works from any folder, without the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile

import numpy as np
import pytest

from .conftest import ROOT, SAMPLES, read_image


@pytest.mark.slow
def test_wheel_installs_and_runs_from_another_folder(tmp_path):
    wheel_dir = tmp_path / "wheelhouse"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheel_dir), str(ROOT)],
        check=True, cwd=tmp_path,
    )
    wheel = next(wheel_dir.glob("convcli-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {"convcli/kernels.toml", "convcli/py.typed", "convcli/cli.py"} <= names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    inner_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # numpy, pillow, ... come from this test environment; convcli only from the wheel
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    with open(os.path.join(inner_site, "outer_deps.pth"), "w") as fh:
        fh.write("\n".join(sorted(outer)) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(python), "-c", "import convcli; print(convcli.__file__)"],
                           check=True, capture_output=True, text=True, cwd=work, env=env).stdout
    assert where.startswith(inner_site), where
    proc = subprocess.run(
        [str(bindir / "convcli"), "apply", str(SAMPLES / "astronaut.png"), "-k", "sobel-x", "-o", "edges.png"],
        capture_output=True, text=True, cwd=work, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "receptive field 3x3" in proc.stderr
    assert read_image(work / "edges.png").shape == (256, 256, 3)
    assert np.any(read_image(work / "edges.png") > 0)
