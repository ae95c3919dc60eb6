"""The README stays true: its commands run, its test command is CI's, its kernel list is complete."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest
from typer.testing import CliRunner

from convcli.cli import app
from convcli.kernels import builtin_registry

from .conftest import ROOT

README = (ROOT / "README.md").read_text()


def _shell_lines() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    return [ln.strip() for b in blocks for ln in b.splitlines() if ln.strip().startswith("convcli ")]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci.startswith("python3 -m venv .venv") and "pytest" in ci
    # the README's test command, word for word, at the top of the README
    top = README.split("## ")[0]
    assert ci in top


@pytest.mark.parametrize("line", _shell_lines())
def test_every_readme_command_runs(line, tmp_path, monkeypatch):
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    monkeypatch.chdir(tmp_path)
    args = shlex.split(line.split("  #")[0])[1:]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, (line, result.stderr)


def test_every_registry_kernel_is_in_the_readme():
    for name in builtin_registry().kernels:
        assert f"`{name}`" in README, name


def test_every_public_name_resolves():
    import convcli

    for name in convcli.__all__:
        assert getattr(convcli, name) is not None, name
