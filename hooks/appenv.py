"""What one cluster applies of an app repository: the build of the path its Flux Kustomization names.

An app on one cluster is applied from its repository root (Kustomization path ./). An app with
environments runs on several clusters (or ran on several: apps[].overlays), and the platform's
Kustomization on cluster C applies deploy/overlays/C of the app repository (platform template,
services/fluxcd/<app>.yaml): C's own image tag, replicas, hostnames and Secret. The offline admission model (hooks/check.py) must judge,
on each cluster, what that cluster's Flux applies and nothing else: the check's repository-wide
build sees each object once, as the root (the first environment) builds it, so another
environment's hostnames would be judged by the first environment's cluster, and the reverse; and
a kustomization no applied folder includes (unused/) is never applied, so never judged.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from hooks.kustomize import (build, build_command, kustomization_file, outside_references, outside_symlinks,
                             remote_references)
from hooks.manifests import read_yaml_files, source_index, source_of

Located = tuple[str, dict]  # (repository-relative source file, object), as hooks.rules has it


def flux_path(kustomization: dict) -> str:
    """A Flux Kustomization's spec.path, relative to its source's root ('' for the root itself)."""
    spec = kustomization.get("spec") if isinstance(kustomization.get("spec"), dict) else {}
    path = posixpath.normpath(str(spec.get("path") or "./").strip("/") or ".")
    return "" if path == "." else path


def applied_paths(answers: dict) -> list[str]:
    """The folders of an app repository the platform's Flux applies, from the app's answers: the
    root with one environment, deploy/overlays/<cluster> for each of several."""
    names = [name.strip() for name in str(answers.get("environments") or "").split(",") if name.strip()]
    return [f"deploy/overlays/{name}" for name in names] if len(names) > 1 else [""]


def applied_objects(repo: Path, kustomization: dict, built: dict[str, list[Located]]) -> tuple[list[Located], str | None]:
    """The objects Flux applies of the app repository `repo` for this Kustomization, each with its
    source file; or, when it could apply nothing, why (to report instead). Only that folder's build
    counts: a kustomization elsewhere in the repository that it does not include is never applied.
    `built` are the check's own builds by folder (hooks.check.Collected.built): a folder built
    there is not built again. A folder without a kustomization file is built through the one Flux
    generates (hooks.kustomize.build)."""
    path = flux_path(kustomization)
    if path in built:
        return built[path], None
    applies = f"the platform applies ./{path} of this repository"
    folder = (repo / path).resolve()
    if not folder.is_relative_to(repo.resolve()) or not folder.is_dir():
        return [], (f"{applies}, which has no such folder (an app on several clusters has one environment per "
                    "cluster, deploy/overlays/<cluster>: app template answer environments)")
    reached: set[Path] = set()
    if outside_symlinks(repo) or outside_references(folder, repo, reached):
        return [], f"{applies}, which reads outside the repository (not built)"
    if any(remote_references(included) for included in reached):
        return [], f"{applies}, which names a remote base (not built: an app repository may only hold its own files)"
    result = build(folder, build_command())
    if result.error is not None:
        generated = "" if kustomization_file(folder) else " (no kustomization file: Flux generates one listing every YAML file below)"
        return [], f"{applies}{generated}, which does not build: {result.error.replace(f'{repo.resolve()}/', '')}"
    index = source_index(read_yaml_files(repo))
    root_file = f"{path}/{kustomization_file(folder).name}" if kustomization_file(folder) else f"{path or '.'}/"
    return [(source_of(obj, index, path, root_file), obj) for obj in result.objects], None
