"""hooks.check on rendered repositories: clean renders pass, each seeded fault is caught by its rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHARED_CRDS
from hooks.check import Finding, check_repo

OVERLAY = "applications/overlays/prod"


def rules_of(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def edit(path: Path, old: str, new: str) -> None:
    """Replace one exact snippet; fail loudly when the rendered file no longer has it."""
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def platform_repo(render_platform) -> Path:
    return render_platform()


def test_default_platform_repo_passes(platform_repo, assert_check_passes):
    assert_check_passes(platform_repo)


def test_misspelt_kustomization_field_is_a_schema_finding(platform_repo):
    edit(platform_repo / OVERLAY / "services/fluxcd/kyverno.yaml", "  prune: true\n", "  prnue: true\n")
    findings = check_repo(platform_repo, crd_dir=SHARED_CRDS)
    assert Finding(
        f"{OVERLAY}/services/fluxcd/kyverno.yaml",
        "Kustomization/flux-system/kyverno-base",
        "schema",
        "spec: Additional properties are not allowed ('prnue' was unexpected)",
    ) in findings


def test_httproute_with_a_bad_path_type_is_a_schema_finding(platform_repo):
    route = platform_repo / OVERLAY / "services/gateway/http-redirect.yaml"
    edit(route, "    - filters:\n", "    - matches:\n        - path: {type: Prefix, value: /}\n      filters:\n")
    findings = check_repo(platform_repo, crd_dir=SHARED_CRDS)
    assert findings == [
        Finding(
            f"{OVERLAY}/services/gateway/http-redirect.yaml",
            "HTTPRoute/gateway-system/http-to-https",
            "schema",
            "spec.rules.0.matches.0.path.type: 'Prefix' is not one of ['Exact', 'PathPrefix', 'RegularExpression']",
        )
    ]


def test_a_root_that_does_not_build_names_the_root_and_the_error(platform_repo):
    edit(platform_repo / OVERLAY / "services/sources/kustomization.yaml", "resources:\n", "resources:\n  - missing.yaml\n")
    findings = check_repo(platform_repo, crd_dir=SHARED_CRDS)
    assert [(f.file, f.rule) for f in findings] == [(f"{OVERLAY}/services/sources/kustomization.yaml", "kustomize-build")]
    assert "missing.yaml: no such file or directory" in findings[0].message


def test_core_kinds_are_strict_and_follow_the_chosen_kubernetes_version(platform_repo):
    edit(platform_repo / OVERLAY / "services/gateway/namespace.yaml", "  labels:\n", "  lables:\n")
    findings = check_repo(platform_repo, crd_dir=SHARED_CRDS, kube_version="1.30")
    assert [(f.object, f.rule, f.message) for f in findings] == [
        ("Namespace/gateway-system", "schema", "metadata: Additional properties are not allowed ('lables' was unexpected)")
    ]


def test_a_kind_without_schema_is_a_finding(platform_repo):
    edit(
        platform_repo / OVERLAY / "services/fluxcd/sources.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\n",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1beta2\n",
    )
    findings = check_repo(platform_repo, crd_dir=SHARED_CRDS)
    assert ("Kustomization/flux-system/sources", "unknown-kind") in {(f.object, f.rule) for f in findings}
