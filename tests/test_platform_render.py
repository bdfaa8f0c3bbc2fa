"""Platform template: the default render and its Flux bootstrap files."""

from __future__ import annotations

import yaml

from conftest import load_all


def test_defaults_render_the_openCenter_layout(render_platform):
    repo = render_platform()
    overlay = repo / "applications/overlays/prod"
    for rel in (
        "kustomization.yaml",
        "flux-system/gotk-components.yaml",
        "flux-system/gotk-sync.yaml",
        "flux-system/kustomization.yaml",
        "services/sources/kustomization.yaml",
        "services/fluxcd/sources.yaml",
        "services/cert-manager/helm-values/override-values.yaml",
    ):
        assert (overlay / rel).is_file(), rel
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["apps"] == []
    assert answers["platform_services"] == ["cert-manager", "gateway-api", "gateway", "kyverno"]


def test_gitops_base_tag_stays_a_string(render_platform):
    repo = render_platform()
    sources = repo / "applications/overlays/prod/services/sources"
    repos = [doc for path in sources.glob("opencenter-*.yaml") for doc in load_all(path)]
    assert repos
    for doc in repos:
        assert doc["spec"]["ref"] == {"tag": "2026.01"}
