"""App Kustomizations are reconciled by a kustomize-controller shard of their own.

A tenant's repository is built inside kustomize-controller before any admission. The tenants'
shard (flux-system/kustomize-controller-tenants) confines what that build can do: a kustomize bomb
OOM-kills the shard, not the controller applying the platform, and remote bases stay refused even
on a cluster that allows them for platform services (flux_allow_remote_bases).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from pyrage import x25519

from conftest import ROOT, commit_all, release_history
from hooks import onboard, rules
from hooks.check import check_repo
from hooks.kustomize import build_all
from reliability import copy_template, isolated

OVERLAY = "applications/overlays/prod"
FLUX_SYSTEM = f"{OVERLAY}/flux-system"
COMPONENTS = ROOT / "tests" / "samples" / "gotk-components.yaml"
SHOP = {"name": "shop", "url": "ssh://git@github.com/acme/shop"}
REMOTE = "https://169.254.169.254/latest/meta-data"
# The commit before the shard: registrations made then must reach it on `copier update`.
BEFORE_SHARD = "653a39cc425d3c095107bf6c8fd090d5a91d4322"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, template_snapshot: Path) -> dict[str, Path]:
    """A platform that allows remote bases (as olm, external-snapshotter and keycloak need) with
    app shop registered by onboarding, and shop's default app repository."""
    root = tmp_path_factory.mktemp("shard")
    repos = {"platform": root / "platform", "shop": root / "shop"}
    with isolated(root / "home"):
        copy_template(template_snapshot, repos["platform"], template="platform", flux_allow_remote_bases=True,
                      sops_age_recipients=str(x25519.Identity.generate().to_public()))
        commit_all(repos["platform"])
        assert onboard.register(repos["platform"], SHOP, out=lambda _line: None) == 0
        commit_all(repos["platform"], "onboard shop")
        copy_template(template_snapshot, repos["shop"], template="app", app_name="shop")
    return repos


def copied(repo: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(repo, tmp_path / repo.name, symlinks=True))


def flux_kustomizations(repo: Path) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for path in (repo / OVERLAY / "services/fluxcd").glob("*.yaml")
            for doc in yaml.safe_load_all(path.read_text())
            if doc and doc["apiVersion"].startswith("kustomize.toolkit.fluxcd.io/")}


def controllers(flux_system: Path) -> dict[str, dict]:
    """The Deployments the flux-system folder builds (as Flux builds it), by name, with a real
    `flux install` manifest in place of the placeholder."""
    shutil.copy(COMPONENTS, flux_system / "gotk-components.yaml")
    (build,) = build_all([flux_system])
    assert build.error is None, build.error
    names = [(obj["kind"], obj["metadata"]["name"]) for obj in build.objects]
    assert len(names) == len(set(names)), names  # the shard adds a Deployment, never a second copy of the rest
    return {obj["metadata"]["name"]: obj for obj in build.objects if obj["kind"] == "Deployment"}


def args(deployment: dict) -> list[str]:
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_every_app_kustomization_is_labelled_for_the_tenant_shard(fleet):
    found = flux_kustomizations(fleet["platform"])
    on_shard = {name for name, doc in found.items() if doc["metadata"]["labels"].get(rules.SHARD_KEY) == rules.TENANT_SHARD}
    assert on_shard == {"shop"}
    # Everything else applies as the platform and stays with the platform's controller.
    assert {doc["spec"]["serviceAccountName"] for name, doc in found.items() if name not in on_shard} == {"kustomize-controller"}
    assert found["shop"]["spec"]["serviceAccountName"] == "tenant-shop"


@pytest.mark.parametrize("allow_remote", [True, False])
def test_the_tenant_shard_refuses_remote_bases_whatever_the_answer(rendered, allow_remote):
    repo = rendered(template="platform", flux_allow_remote_bases=allow_remote)
    deployments = controllers(repo / FLUX_SYSTEM)
    assert set(deployments) == {"kustomize-controller", "kustomize-controller-tenants", "helm-controller"}
    main, shard = deployments["kustomize-controller"], deployments["kustomize-controller-tenants"]
    # The main controller keeps the answer's setting and leaves labelled Kustomizations alone.
    assert ("--no-remote-bases=true" in args(main)) is not allow_remote
    assert "--watch-label-selector=!sharding.fluxcd.io/key" in args(main)
    # The shard: only the tenants' Kustomizations, never a remote base, a memory limit of its own.
    assert "--no-remote-bases=true" in args(shard)
    assert [a for a in args(shard) if a.startswith("--watch-label-selector")] == ["--watch-label-selector=sharding.fluxcd.io/key=tenants"]
    assert shard["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "1Gi"
    # The lockdown both share, and Roles staged first (Flux 2.9): apps are the shard's.
    for flag in ("--no-cross-namespace-refs=true", "--default-service-account=default",
                 "--custom-apply-stage-kinds=rbac.authorization.k8s.io/Role"):
        assert args(main).count(flag) == args(shard).count(flag) == 1, flag
    # Two Deployments, two sets of pods: the selectors must not overlap.
    assert main["spec"]["selector"]["matchLabels"] != shard["spec"]["selector"]["matchLabels"]
    assert shard["spec"]["selector"]["matchLabels"].items() <= shard["spec"]["template"]["metadata"]["labels"].items()
    assert shard["spec"]["template"]["spec"]["serviceAccountName"] == "kustomize-controller"


def test_the_platform_with_a_real_flux_manifest_passes_the_check(fleet, tmp_path):
    """The shard folder builds (reading its parent's gotk-components.yaml, as Flux builds it) and
    every object validates."""
    platform = copied(fleet["platform"], tmp_path)
    shutil.copy(COMPONENTS, platform / FLUX_SYSTEM / "gotk-components.yaml")
    assert check_repo(platform) == []


def test_a_tenant_remote_base_is_refused_although_the_platform_allows_remote_bases(fleet, tmp_path):
    assert yaml.safe_load((fleet["platform"] / ".copier-answers.yml").read_text())["flux_allow_remote_bases"] is True
    shop = copied(fleet["shop"], tmp_path)
    kustomization = shop / "kustomization.yaml"
    doc = yaml.safe_load(kustomization.read_text())
    doc["resources"] = [*doc.get("resources", []), REMOTE]
    kustomization.write_text(yaml.safe_dump(doc))
    findings = [f for f in check_repo(fleet["platform"], tenants=[("shop", shop)]) if f.rule == "tenancy-remote-resource"]
    assert [f.message for f in findings] == [
        f"remote entry '{REMOTE}' (not built): an app repository may only hold its own files "
        "(kustomize-controller-tenants runs with --no-remote-bases=true whatever flux_allow_remote_bases says)"]
    # The same entry in the platform's own repository is allowed by the answer.
    assert rules.remote_findings({"kustomization.yaml": [REMOTE]}, "platform", True) == []


def test_a_tenant_kustomization_without_the_shard_label_is_a_finding(fleet, tmp_path):
    platform = copied(fleet["platform"], tmp_path)
    app_file = platform / OVERLAY / "services/fluxcd/shop.yaml"
    text = app_file.read_text()
    assert text.count("    sharding.fluxcd.io/key: tenants\n") == 1
    app_file.write_text(text.replace("    sharding.fluxcd.io/key: tenants\n", ""))
    assert [(f.file, f.object, f.rule) for f in check_repo(platform) if f.rule == "tenancy-shard"] == [
        (f"{OVERLAY}/services/fluxcd/shop.yaml", "Kustomization/flux-system/shop", "tenancy-shard")]


def test_update_hands_existing_registrations_to_the_shard_without_renaming_them(template_snapshot, tmp_path):
    import copier

    templates = release_history(BEFORE_SHARD, template_snapshot, tmp_path / "templates")
    repo = tmp_path / "platform"
    with isolated(tmp_path / "home"):
        copier.run_copy(str(templates), repo, data={"template": "platform", "flux_allow_remote_bases": True,
                                                    "sops_age_recipients": str(x25519.Identity.generate().to_public())},
                        defaults=True, unsafe=True, vcs_ref="1.0.0", quiet=True)
        commit_all(repo)
        assert onboard.register(repo, SHOP, out=lambda _line: None) == 0
        commit_all(repo, "onboard shop")
        before = flux_kustomizations(repo)
        assert rules.SHARD_KEY not in before["shop"]["metadata"]["labels"]
        copier.run_update(repo, defaults=True, overwrite=True, unsafe=True, vcs_ref="2.0.0", quiet=True)
    after = flux_kustomizations(repo)
    assert set(after) == set(before)  # no Flux object renamed (a rename would prune and recreate the app)
    assert after["shop"]["metadata"]["labels"][rules.SHARD_KEY] == rules.TENANT_SHARD
    assert {**after["shop"], "metadata": {**after["shop"]["metadata"], "labels": before["shop"]["metadata"]["labels"]}} == before["shop"]
    flux_system = yaml.safe_load((repo / FLUX_SYSTEM / "kustomization.yaml").read_text())
    assert "kustomize-controller-tenants" in flux_system["resources"]
    assert "--no-remote-bases=true" in args(controllers(repo / FLUX_SYSTEM)["kustomize-controller-tenants"])
