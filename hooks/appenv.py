"""What one cluster applies of an app repository: the build of the path its Flux Kustomization names.

An app on one cluster is applied from its repository root (Kustomization path ./). An app with
environments runs on several clusters (or ran on several: apps[].overlays), and the platform's
Kustomization on cluster C applies deploy/overlays/C of the app repository (platform template,
services/fluxcd/<app>.yaml): C's own image tag, replicas, hostnames and Secret. The offline admission model (hooks/check.py) must judge,
on each cluster, what that cluster's Flux applies and nothing else: the check's repository-wide
build sees each object once, as the root (the first environment) builds it, so another
environment's hostnames would be judged by the first environment's cluster, and the reverse.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from hooks.kustomize import build, build_command, kustomization_file, outside_references, outside_symlinks
from hooks.manifests import read_yaml_files, source_index, source_of

Located = tuple[str, dict]  # (repository-relative source file, object), as hooks.rules has it


def flux_path(kustomization: dict) -> str:
    """A Flux Kustomization's spec.path, relative to its source's root ('' for the root itself)."""
    spec = kustomization.get("spec") if isinstance(kustomization.get("spec"), dict) else {}
    path = posixpath.normpath(str(spec.get("path") or "./").strip("/") or ".")
    return "" if path == "." else path


def applied_objects(repo: Path, kustomization: dict, root_objects: list[Located]) -> tuple[list[Located], str | None]:
    """The objects Flux applies of the app repository `repo` for this Kustomization, each with its
    source file; or, when it could apply nothing, why (to report instead). The root's objects are
    the check's own build (`root_objects`): a repository without environments is built once."""
    path = flux_path(kustomization)
    if path == "":
        return root_objects, None
    folder = (repo / path).resolve()
    if not folder.is_relative_to(repo.resolve()) or not folder.is_dir():
        return [], (f"the platform applies ./{path} of this repository, which has no such folder (an app on several "
                    "clusters has one environment per cluster, deploy/overlays/<cluster>: app template answer environments)")
    if kustomization_file(folder) is None:
        return [], f"the platform applies ./{path} of this repository, which has no kustomization.yaml"
    if outside_symlinks(repo) or outside_references(folder, repo):
        return [], f"the platform applies ./{path} of this repository, which reads outside the repository (not built)"
    built = build(folder, build_command())
    if built.error is not None:
        return [], f"the platform applies ./{path} of this repository, which does not build: {built.error}"
    index = source_index(read_yaml_files(repo))
    root_file = f"{path}/{kustomization_file(folder).name}"
    return [(source_of(obj, index, path, root_file), obj) for obj in built.objects], None
