"""Derive the compact listing of one openCenter-gitops-base release that ships in hooks/data/.

    python scripts/gitops_base_listing.py GITOPS_BASE_REPO --tag 2026.01     # a clone (or bare git dir): read at the tag
    python scripts/gitops_base_listing.py FOLDER --tag 2026.01 --commit SHA  # a plain copy of the release (no .git)

writes hooks/data/gitops-base-<tag>.json (--out DIR to write elsewhere). From a git repository
the files are read at the tag (`git archive`), whatever is checked out; the commit is the tag's.
Nothing is fetched: remote kustomize resources are recorded as they are written, never resolved.

The listing says, per component of the release (every directory under applications/base/ that
holds a kustomization file: what a Flux Kustomization on the release can point its spec.path
at), what kustomize would make of it locally: the Namespaces it creates, its HelmReleases (name,
namespace, chart source, valuesFrom in order: kind, name, key, optional), the Flux sources it
defines, the component directories it includes, its remote resources, and the resource entries
that resolve to nothing. The `namespace:` field of each kustomization is applied as kustomize
does (namespaced objects move, a Namespace object is renamed); patches and other transformers
are not (the base uses none of them in the fields listed). It also records the release tag, the
source repository URL, the commit and the licence. Per component that is the base of a catalog
service with an override-values comment (includes/override-values/<svc>.yaml), `values_keys` holds
the key paths (JSON pointers) of the values its HelmRelease starts from (the values Secrets it reads
before the override Secret; Istio's `_internal_defaults_do_not_set` read as top-level keys) that the
comment uses, with their kinds: only those, to keep the listing small, so a changed comment needs
the listing regenerated. tests/test_gitops_base.py proves the catalog (includes/services.yml), the
override-values comments and this listing agree; hooks/data/SOURCES.md says where the shipped
listing came from.

Output is deterministic: sorted keys, one component per line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import posixpath
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hooks import gitops_base  # noqa: E402
from hooks.kustomize import is_remote, kustomization_file  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "hooks" / "data"
DEFAULT_URL = "https://github.com/opencenter-cloud/openCenter-gitops-base.git"
BASE_DIR = "applications/base"
LICENCE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "COPYING")


# PURE (over a folder holding the release) ------------------------------------------------------


def components(root: Path) -> list[str]:
    """Every directory under applications/base/ with a kustomization file, repository-relative."""
    base = root / BASE_DIR
    found = [path.relative_to(root).as_posix() for path in [base, *sorted(base.rglob("*"))]
             if path.is_dir() and kustomization_file(path) is not None] if base.is_dir() else []
    return sorted(found)


def _documents(path: Path) -> tuple[list[dict], str | None]:
    try:
        return [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)], None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        return [], f"{path.name}: not valid YAML ({str(error).splitlines()[0]})"


def _with_namespace(obj: dict, namespace: str) -> dict:
    """kustomize's `namespace:` field: a Namespace object is renamed, every other object moved
    (cluster-scoped kinds keep none; the listing reads namespaces of HelmReleases only)."""
    meta = dict(obj.get("metadata") or {}) if isinstance(obj.get("metadata"), dict) else {}
    if obj.get("kind") == "Namespace" and obj.get("apiVersion") == "v1":
        meta["name"] = namespace
    else:
        meta["namespace"] = namespace
    return {**obj, "metadata": meta}


def build(root: Path, directory: str, stack: tuple[str, ...] = ()) -> dict:
    """What kustomize would build locally from one kustomization directory (relative to root):
    objects, included component directories, remote entries, unresolved entries."""
    out = {"objects": [], "includes": set(), "remote": set(), "unresolved": set(), "generated": {}}
    file = kustomization_file(root / directory)
    docs, problem = _documents(file) if file is not None else ([], f"{directory}: no kustomization file")
    if problem:
        out["unresolved"].add(problem)
    kustomization = docs[0] if docs else {}
    for key in ("resources", "bases", "components"):
        for entry in kustomization.get(key) or []:
            if not isinstance(entry, str):
                continue
            target = posixpath.normpath(posixpath.join(directory, entry))
            local = root / target
            if is_remote(entry, local):
                out["remote"].add(entry)
            elif target.startswith("../") or target == "..":
                out["unresolved"].add(f"{directory}: {entry} (outside the repository)")
            elif local.is_dir():
                if kustomization_file(local) is None:
                    out["unresolved"].add(f"{directory}: {entry} (a folder without a kustomization file)")
                elif target in stack:
                    out["unresolved"].add(f"{directory}: {entry} (includes itself)")
                else:
                    inner = build(root, target, (*stack, directory))
                    out["objects"] += inner["objects"]
                    out["includes"] |= {target} | inner["includes"]
                    out["remote"] |= inner["remote"]
                    out["unresolved"] |= inner["unresolved"]
                    out["generated"].update(inner["generated"])
            elif local.is_file():
                objects, problem = _documents(local)
                out["objects"] += objects
                if problem:
                    out["unresolved"].add(f"{target}: {problem.partition(': ')[2]}")
            else:
                out["unresolved"].add(f"{directory}: {entry} (does not exist)")
    for generator in kustomization.get("secretGenerator") or []:
        if isinstance(generator, dict):
            for entry in generator.get("files") or []:
                key, _, file = str(entry).rpartition("=")
                out["generated"][(str(generator.get("name")), key or posixpath.basename(file))] = \
                    posixpath.normpath(posixpath.join(directory, file))
    for chart in kustomization.get("helmCharts") or []:
        if isinstance(chart, dict):
            out["remote"].add(str(chart.get("repo") or "helmCharts"))
    if isinstance(kustomization.get("namespace"), str) and kustomization["namespace"]:
        out["objects"] = [_with_namespace(obj, kustomization["namespace"]) for obj in out["objects"]]
    return out


def _name(obj: dict, key: str = "name") -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return str(meta.get(key) or "")


def helm_release_entry(obj: dict) -> dict:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    chart = spec.get("chart") if isinstance(spec.get("chart"), dict) else {}
    chart_spec = chart.get("spec") if isinstance(chart.get("spec"), dict) else {}
    ref = chart_spec.get("sourceRef") if isinstance(chart_spec.get("sourceRef"), dict) else spec.get("chartRef")
    return {
        "name": _name(obj),
        "namespace": _name(obj, "namespace"),
        "chart": f"{ref.get('kind')}/{ref.get('name')}" if isinstance(ref, dict) else "",
        # In order (later entries override earlier ones); valuesKey defaults to values.yaml in Flux.
        "values_from": [{"kind": str(v.get("kind")), "name": str(v.get("name")),
                         "key": str(v.get("valuesKey") or "values.yaml"), "optional": v.get("optional") is True}
                        for v in spec.get("valuesFrom") or [] if isinstance(v, dict)],
    }


def values_keys(root: Path, directory: str, built: dict, releases: list[dict], asked: tuple[str, set[str]] | None) -> dict:
    """The key paths (and their kinds) of the values the HelmRelease reading `asked`'s override
    Secret starts from (the values Secrets it reads before that one), restricted to `asked`'s paths:
    what tests/test_gitops_base.py needs to prove the template's override-values comments use keys of
    the base, and no more (a chart's values have thousands of key paths)."""
    if asked is None:
        return {}
    secret, paths = asked
    for release in releases:
        names = [(entry["name"], entry["key"]) for entry in release["values_from"] if entry["kind"] == "Secret"]
        if not any(name == secret for name, _ in names):
            continue
        documents = []
        for name, key in names[:[name for name, _ in names].index(secret)]:
            file = built["generated"].get((name, key))
            if file is None or not (root / file).is_file():
                built["unresolved"].add(f"{directory}: values {key} of Secret {name} (not generated here)")
                continue
            docs, problem = _documents(root / file)
            documents += docs
            if problem:
                built["unresolved"].add(f"{file}: {problem.partition(': ')[2]}")
        kinds = gitops_base.value_kinds(gitops_base.base_values(documents))
        return {path: kind for path, kind in kinds.items() if path in paths}
    return {}


def component_entry(root: Path, directory: str, asked: tuple[str, set[str]] | None = None) -> dict:
    built = build(root, directory)
    objects = built["objects"]
    group = lambda obj: str(obj.get("apiVersion", "")).rpartition("/")[0]  # noqa: E731
    releases = sorted((helm_release_entry(o) for o in objects
                       if o.get("kind") == "HelmRelease" and group(o) == "helm.toolkit.fluxcd.io"),
                      key=lambda h: (h["namespace"], h["name"]))
    keys = values_keys(root, directory, built, releases, asked)
    return {
        "namespaces": sorted({_name(o) for o in objects if o.get("kind") == "Namespace" and o.get("apiVersion") == "v1"}),
        "helm_releases": releases,
        "sources": sorted({f"{o.get('kind')}/{_name(o)}" for o in objects if group(o) == "source.toolkit.fluxcd.io"}),
        "includes": sorted(built["includes"]),
        "remote_resources": sorted(built["remote"]),
        "unresolved": sorted(built["unresolved"]),
        "values_keys": keys,
    }


def licence_of(root: Path) -> str:
    """The SPDX identifier of the release's licence file (Apache-2.0 or MIT), else exit."""
    for name in LICENCE_FILES:
        if (root / name).is_file():
            text = (root / name).read_text(errors="replace")
            if "Apache License" in text and "Version 2.0" in text:
                return "Apache-2.0"
            if "Permission is hereby granted, free of charge" in text:
                return "MIT"
            sys.exit(f"error: {name} is neither Apache-2.0 nor MIT: read it and give --license SPDX-ID")
    sys.exit(f"error: no licence file ({', '.join(LICENCE_FILES)}): give --license SPDX-ID")


def template_questions(repo: Path) -> dict[str, tuple[str, set[str]]]:
    """Per component path, the override Secret of the catalog service whose base it is and the key
    paths that service's override-values comment uses (includes/ of this repository)."""
    catalog = yaml.safe_load((repo / gitops_base.CATALOG_FILE).read_text())
    asked = {}
    for svc, spec in catalog.items():
        secret = gitops_base.override_secret(svc, spec)
        comment = repo / "includes" / "override-values" / f"{svc}.yaml"
        if secret is not None and spec.get("path") and comment.is_file():
            asked[str(spec["path"])] = (secret, gitops_base.asked_paths(gitops_base.comment_values(comment.read_text())))
    return asked


def listing(root: Path, tag: str, commit: str, url: str, licence: str | None = None) -> dict:
    asked = template_questions(REPO)
    return {"tag": tag, "commit": commit, "source": url, "license": licence or licence_of(root),
            "components": {path: component_entry(root, path, asked.get(path)) for path in components(root)}}


def dump(data: dict) -> str:
    """Sorted keys, one component per line: readable diffs between releases."""
    lines = []
    for key in sorted(data):
        if key == "components":
            entries = [f"{json.dumps(path)}:{json.dumps(data[key][path], sort_keys=True, separators=(',', ':'))}"
                       for path in sorted(data[key])]
            lines.append(f'"components":{{\n' + ",\n".join(entries) + "\n}")
        else:
            lines.append(f"{json.dumps(key)}:{json.dumps(data[key], sort_keys=True, separators=(',', ':'))}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


# I/O --------------------------------------------------------------------------------------------


def git(repo: Path, *args: str, binary: bool = False) -> str | bytes:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if result.returncode != 0:
        sys.exit(f"error: git {' '.join(args)} in {repo}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout if binary else result.stdout.decode().strip()


def is_git_repository(folder: Path) -> bool:
    """A work tree or a bare repository at exactly `folder` (not a parent's)."""
    result = subprocess.run(["git", "-C", str(folder), "rev-parse", "--absolute-git-dir"], capture_output=True,
                            text=True, check=False,
                            env={**os.environ, "GIT_CEILING_DIRECTORIES": str(folder.resolve().parent)})
    return result.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="a clone or bare git directory of openCenter-gitops-base, "
                                                    "or a plain folder holding one release")
    parser.add_argument("--tag", required=True, help="the release tag, e.g. 2026.01")
    parser.add_argument("--commit", help="the tag's commit (only for a plain folder; read from git otherwise)")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the source repository recorded (default {DEFAULT_URL})")
    parser.add_argument("--license", help="SPDX identifier, when the licence file is not recognised")
    parser.add_argument("--out", type=Path, default=DATA, help="folder to write gitops-base-<tag>.json in (default hooks/data)")
    args = parser.parse_args(argv)
    if not args.checkout.is_dir():
        parser.error(f"{args.checkout} is not a directory")
    with tempfile.TemporaryDirectory(prefix="gitops-base-") as tmp:
        if is_git_repository(args.checkout):
            commit = git(args.checkout, "rev-parse", "--verify", f"refs/tags/{args.tag}^{{commit}}")
            if args.commit and args.commit != commit:
                sys.exit(f"error: tag {args.tag} is commit {commit}, not {args.commit}")
            archive = git(args.checkout, "archive", "--format=tar", f"refs/tags/{args.tag}", binary=True)
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(tmp, filter="data")
            root = Path(tmp)
        else:
            if not args.commit:
                parser.error("a plain folder needs --commit (the release tag's commit)")
            commit, root = args.commit, args.checkout
        data = listing(root, args.tag, commit, args.url, args.license)
    if not data["components"]:
        sys.exit(f"error: no component under {BASE_DIR}/ at {args.tag}: not openCenter-gitops-base?")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"gitops-base-{args.tag}.json"
    out.write_text(dump(data))
    print(f"wrote {len(data['components'])} components of openCenter-gitops-base {args.tag} ({commit[:12]}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
