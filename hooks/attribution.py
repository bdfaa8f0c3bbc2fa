"""Which kustomizations gave a built object the value a finding is about.

A built object is located in the file that declares it (hooks.manifests.source_of), yet an
overlay between the built folder and that file may have patched it: a hostname set by
deploy/overlays/staging is wrong there, not in deploy/base/httproute.yaml. Each kustomization on
the way from the built folder down to the file is built on its own (the check has mostly built it
already); a kustomization whose own changes, undone in the final object, make the finding go
away is named beside the file (docs/check.md, "Where a finding points").
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path

import yaml

from hooks.kustomize import build, build_command, kustomization_file, local_entries
from hooks.manifests import FAST_LOADER
from hooks.rules import Located

_MISSING = object()
# Undoing these would judge another object (or the same one in no namespace), not an older value.
_IDENTITY = {("metadata", "name"), ("metadata", "namespace")}


# PURE -------------------------------------------------------------------------------------------


def differences(upper: object, lower: object, path: tuple = ()) -> list[tuple]:
    """The paths (keys and list indexes) where two versions of an object differ, as deep as both
    have the same shape; a key one of them lacks differs as a whole."""
    if isinstance(upper, dict) and isinstance(lower, dict):
        return [found for key in [*upper, *(key for key in lower if key not in upper)]
                for found in differences(upper.get(key, _MISSING), lower.get(key, _MISSING), (*path, key))]
    if isinstance(upper, list) and isinstance(lower, list) and len(upper) == len(lower):
        return [found for index, pair in enumerate(zip(upper, lower)) for found in differences(*pair, (*path, index))]
    return [] if upper == lower else [path]


def value_at(node: object, path: tuple) -> object:
    for step in path:
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            return _MISSING
    return node


def undone(final: dict, paths: list[tuple], lower: dict) -> dict:
    """`final` with the value at each path put back as `lower` has it (removed where it has none)."""
    result = copy.deepcopy(final)
    for path in paths:
        parent, value = value_at(result, path[:-1]), value_at(lower, path)
        if isinstance(parent, dict) and value is _MISSING:
            parent.pop(path[-1], None)
        elif isinstance(parent, dict) or (isinstance(parent, list) and path[-1] < len(parent)):
            parent[path[-1]] = copy.deepcopy(value)
    return result


def shapers(final: dict, levels: list[tuple[str | None, dict | None]], still_found: Callable[[dict], bool]) -> list[str]:
    """The kustomizations (of `levels`: each one's file and the object as it builds it, from the
    built folder down to the declaring file's document, which has no file) whose own changes to the
    object, where they reach `final`, cause the finding: undone, `still_found` says no."""
    named = []
    for (file, upper), (_, lower) in zip(levels, levels[1:]):
        if upper is None or lower is None:
            break  # not found at that level (a name prefix, a generated object): nothing to compare
        changed = [path for path in differences(upper, lower)
                   if path[:2] not in _IDENTITY and value_at(final, path) == value_at(upper, path)]
        if file is not None and changed and not still_found(undone(final, changed, lower)):
            named.append(file)
    return named


def shown(file: str, patched_by: list[str]) -> str:
    """How a finding names its file: `deploy/base/httproute.yaml (as patched by deploy/overlays/staging/kustomization.yaml)`."""
    return f"{file} (as patched by {', '.join(patched_by)})" if patched_by else file


def _same(obj: dict, other: object) -> bool:
    meta, others = obj.get("metadata") or {}, (other.get("metadata") or {}) if isinstance(other, dict) else {}
    return isinstance(other, dict) and other.get("kind") == obj.get("kind") and others.get("name") == meta.get("name")


# I/O --------------------------------------------------------------------------------------------


def chain(repo: Path, root: Path, target: Path) -> list[Path]:
    """The kustomization folders from `root` down to the one including the file `target`; [] when
    none does (an object a kustomization generates)."""
    target, repo = Path(os.path.realpath(target)), repo.resolve()
    seen: set[Path] = set()

    def walk(folder: Path) -> list[Path]:
        real = Path(os.path.realpath(folder))
        if real in seen or not real.is_relative_to(repo):
            return []
        seen.add(real)
        for entry in local_entries(real):
            path = Path(os.path.realpath(entry))
            if path == target:
                return [real]
            if path.is_dir() and kustomization_file(path) is not None and (below := walk(path)):
                return [real, *below]
        return []

    return walk(root)


class Attribution:
    """The kustomizations that shaped objects of one app repository: `built` are the check's builds
    of it by folder (hooks.check.Collected.built); a folder not built there is built once here."""

    def __init__(self, repo: Path, built: dict[str, list[Located]]):
        self.repo = repo.resolve()
        self.built = {folder: [obj for _, obj in located] for folder, located in built.items()}
        self.documents: dict[str, list] = {}

    def _objects(self, folder: Path) -> list[dict]:
        rel = "" if folder == self.repo else folder.relative_to(self.repo).as_posix()
        if rel not in self.built:
            result = build(folder, build_command())
            self.built[rel] = result.objects if result.error is None else []
        return self.built[rel]

    def patched_by(self, root: str, obj: dict, file: str, still_found: Callable[[dict], bool]) -> list[str]:
        """The kustomization files (repository-relative) between the folder `root` and `file` whose
        changes to `obj` (as `root` builds it) cause the finding `still_found` tests for."""
        folders = chain(self.repo, self.repo / root, self.repo / file) if not file.endswith("/") else []
        if not folders:
            return []
        documents = self._documents(file)
        levels: list[tuple[str | None, dict | None]] = [(self._file_of(folders[0]), obj)] + [
            (self._file_of(folder), next((o for o in self._objects(folder) if _same(obj, o)), None)) for folder in folders[1:]]
        levels.append((None, next((doc for doc in documents if _same(obj, doc)), None)))
        return shapers(obj, levels, still_found)

    def _documents(self, file: str) -> list:
        """The documents of a repository file, read once (an app may have a finding per object of one file)."""
        if file not in self.documents:
            try:
                self.documents[file] = list(yaml.load_all((self.repo / file).read_text(errors="replace"), Loader=FAST_LOADER))
            except (yaml.YAMLError, OSError, RecursionError):
                self.documents[file] = []
        return self.documents[file]

    def _file_of(self, folder: Path) -> str | None:
        file = kustomization_file(folder)
        return file.relative_to(self.repo).as_posix() if file is not None else None
