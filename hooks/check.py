"""Validate a rendered platform or app repository: one command for developers and for CI.

    python -m hooks.check PATH [--crd-dir DIR] [--kube-version 1.34] [--format text|json]
    opencenter-check PATH ...            (console script of this package)

Builds every kustomization root, validates every built object strictly against its schema,
and exits 1 on any finding (2 when the check itself cannot run, e.g. no CRDs available).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from hooks import crds
from hooks.errors import HookError
from hooks.kustomize import Build, build_all, find_roots, kustomization_file, remote_references
from hooks.manifests import YamlFile, object_label, read_yaml_files, source_index, source_of
from hooks.validate import DEFAULT_KUBE_VERSION, Validator

ANSWERS_FILE = ".copier-answers.yml"


@dataclass(frozen=True)
class Finding:
    """One rule broken: where (file relative to the repository, object), which rule, and why."""

    file: str
    object: str
    rule: str
    message: str


@dataclass
class Report:
    """The findings of one check and what was looked at (for the summary line)."""

    findings: list[Finding] = field(default_factory=list)
    roots: int = 0
    objects: int = 0


# PURE: rules ------------------------------------------------------------------------------------


def build_findings(build: Build, root_file: str, repo_prefix: str) -> list[Finding]:
    """A root kustomize cannot build, with kustomize's own error (absolute paths made relative)."""
    if build.error is None:
        return []
    message = build.error.replace(repo_prefix, "").removeprefix("Error: ")
    return [Finding(root_file, "", "kustomize-build", message)]


def schema_findings(objects: list[tuple[str, dict]], validator: Validator) -> list[Finding]:
    """Every object that its strict schema refuses, or whose kind has no schema at all."""
    return [
        Finding(file, object_label(obj), problem.rule, problem.message)
        for file, obj in objects
        for problem in validator.problems(obj)
    ]


def parse_findings(files: list[YamlFile]) -> list[Finding]:
    return [Finding(f.path, "", "yaml", f.error) for f in files if f.error]


def unique(findings: list[Finding]) -> list[Finding]:
    """Drop repeats: a root included by another root is built, and its objects seen, twice."""
    return list(dict.fromkeys(findings))


# I/O: gather the repository, run the rules ------------------------------------------------------


def read_answers(repo: Path) -> dict:
    path = repo / ANSWERS_FILE
    if not path.is_file():
        raise HookError(str(repo), f"has no {ANSWERS_FILE}: not a repository rendered from these templates")
    answers = yaml.safe_load(path.read_text()) or {}
    if answers.get("template") not in ("platform", "app"):
        raise HookError(str(path), f"template must be 'platform' or 'app' (got {answers.get('template')!r})")
    return answers


def run_checks(
    repo: Path,
    crd_dir: Path | None = None,
    kube_version: str = DEFAULT_KUBE_VERSION,
    cache_dir: Path | None = None,
) -> Report:
    repo = repo.resolve()
    read_answers(repo)
    cache = crds.ensure_cache(cache_dir or crds.default_cache_dir(), crd_dir.resolve() if crd_dir else None)
    validator = Validator(crds.load_cache(cache), kube_version)
    files = read_yaml_files(repo)
    index = source_index(files)
    roots = find_roots(repo)
    # Remote entries are never fetched: the check stays hermetic (and a tenant may not use them).
    local_roots = [root for root in roots if not remote_references(root)]

    report = Report(parse_findings(files), roots=len(roots))
    objects: list[tuple[str, dict]] = []
    for build in build_all(local_roots):
        rel_root = build.root.relative_to(repo).as_posix()
        root_file = kustomization_file(build.root).relative_to(repo).as_posix()
        report.findings += build_findings(build, root_file, f"{repo}/")
        objects += [(source_of(obj, index, rel_root, root_file), obj) for obj in build.objects]
    report.objects = len({(file, object_label(obj)) for file, obj in objects})
    report.findings += schema_findings(objects, validator)
    report.findings = unique(report.findings)
    return report


def check_repo(
    path: Path,
    crd_dir: Path | None = None,
    kube_version: str = DEFAULT_KUBE_VERSION,
    cache_dir: Path | None = None,
) -> list[Finding]:
    """Every finding of the check on a rendered repository (empty: the repository passes).

    crd_dir refreshes the CRD cache (cache_dir, default crds.default_cache_dir()) from a folder
    of CRD manifests; without it the cache is used as is, or downloaded when empty.
    """
    return run_checks(path, crd_dir, kube_version, cache_dir).findings


# CLI --------------------------------------------------------------------------------------------


def format_text(report: Report) -> str:
    lines = [
        f"{f.file}: [{f.rule}] {f.object + ': ' if f.object else ''}{f.message}" for f in report.findings
    ]
    verdict = f"{len(report.findings)} finding(s)" if report.findings else "OK"
    lines.append(f"{verdict}: {report.roots} kustomization root(s), {report.objects} object(s) checked")
    return "\n".join(lines)


def format_json(report: Report) -> str:
    return json.dumps(
        {"findings": [asdict(f) for f in report.findings], "roots": report.roots, "objects": report.objects},
        indent=2,
    )


def main(argv: list[str] | None = None) -> int:
    """The console script (`opencenter-check`); returns the exit status, 2 when the check cannot run."""
    parser = argparse.ArgumentParser(prog="opencenter-check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="the rendered repository to check")
    parser.add_argument("--crd-dir", type=Path, help="folder of CRD manifests to fill the CRD cache from (default: cache, else download)")
    parser.add_argument("--crd-cache", type=Path, help="CRD cache folder (default: $OPENCENTER_CRD_CACHE, else $XDG_CACHE_HOME/opencenter-templates/crds)")
    parser.add_argument("--kube-version", default=DEFAULT_KUBE_VERSION, help=f"Kubernetes version of the core schemas (default {DEFAULT_KUBE_VERSION})")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    try:
        report = run_checks(args.path, args.crd_dir, args.kube_version, args.crd_cache)
    except HookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_json(report) if args.format == "json" else format_text(report))
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
