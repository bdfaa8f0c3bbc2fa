"""Every kubectl build of the check is bounded (hooks.kustomize MEMORY_LIMIT_MIB, TIME_LIMIT_SECONDS):
a "kustomize bomb" in an app repository is a failed root with its finding, not a stalled or
OOM-killed CI. The limits are lowered here so that a small bomb trips them in about a second."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hooks import kustomize
from hooks.check import check_repo

# 2^3 copies of an 8 MB ConfigMap: unbounded, kubectl peaks at 110 MB (one copy) to 360 MB per root
# and the check takes about 12 s; every root is stopped by the lowered limits below.
LEVELS = 3
SIZE = 8_000_000
DELETE_ALL = ("  - target: {kind: ConfigMap}\n    patch: |-\n      $patch: delete\n"
              "      apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: any\n")


def bomb_repo(root: Path, levels: int = LEVELS) -> Path:
    """An app repository whose root doubles a ConfigMap `levels` times (namePrefix a-/b-), then deletes
    every copy: an empty build (a real bomb's ConfigMap is small in git, its levels more)."""
    (root / "l0").mkdir(parents=True)
    (root / ".copier-answers.yml").write_text("_commit: test\ntemplate: app\napp_name: shop\n")
    (root / "l0" / "cm.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: {'x' * SIZE}\n")
    (root / "l0" / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    for level in range(1, levels + 1):
        for prefix in "ab":
            (root / f"l{level}" / prefix).mkdir(parents=True)
            (root / f"l{level}" / prefix / "kustomization.yaml").write_text(f"namePrefix: {prefix}-\nresources: [../../l{level - 1}]\n")
        (root / f"l{level}" / "kustomization.yaml").write_text("resources: [a, b]\n")
    (root / "kustomization.yaml").write_text(f"resources: [l{levels}]\npatches:\n{DELETE_ALL}")
    return root


def timed_check(repo: Path) -> tuple[dict[str, set[str]], float]:
    """The check's findings (rule and message by file), and how long it took."""
    start = time.monotonic()
    findings: dict[str, set[str]] = {}
    for finding in check_repo(repo):
        findings.setdefault(finding.file, set()).add(f"[{finding.rule}] {finding.message}")
    return findings, time.monotonic() - start


STOPPED_MEMORY = ("kustomize build used more than 100 MiB of memory (stopped): Flux's tenants' "
                  "kustomize-controller is limited to 1Gi and would be OOM-killed building it")


@pytest.mark.parametrize(("levels", "limits", "file", "expected"), [
    pytest.param(LEVELS, {"MEMORY_LIMIT_MIB": 100}, "kustomization.yaml", STOPPED_MEMORY, id="memory"),
    pytest.param(LEVELS, {"TIME_LIMIT_SECONDS": 0.5}, "kustomization.yaml",
                 "kustomize build took longer than 0.5 s (stopped)", id="time"),
    # One copy, deleted by the root: only l0 prints it.
    pytest.param(0, {"OUTPUT_LIMIT_MIB": 1}, "l0/kustomization.yaml",
                 "kustomize build printed more than 1 MiB of manifests (stopped)", id="output"),
])
def test_a_kustomize_bomb_is_stopped_and_reported(tmp_path, monkeypatch, levels, limits, file, expected):
    for name, value in limits.items():
        monkeypatch.setattr(kustomize, name, value)
    repo = bomb_repo(tmp_path / "shop", levels)
    # Twice: a stopped build is never memoised as a success (tests/site/kustomize_memo.py).
    for _ in range(2):
        findings, took = timed_check(repo)
        # Every level of the bomb is a root of its own: the ones stopped say so, and nothing else.
        assert findings[file] == {f"[kustomize-build] {expected}"}
        assert set().union(*findings.values()) == {f"[kustomize-build] {expected}"}
        assert took < 6  # half the unbounded check's time
