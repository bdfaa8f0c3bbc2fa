"""Folders Flux applies without a kustomization file (a platform's services/tenants/<app>) are built
several to a kubectl process (hooks.kustomize.build_all, build_together): each folder's objects, the
check's findings and a broken folder's own error are exactly those of building each folder alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import kustomize_memo
from conftest import cluster_entry
from hooks import kustomize
from hooks.check import collect

KEY = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
TENANTS = "applications/overlays/prod/services/tenants"
# Every app on both clusters: the same objects in prod's and in staging's tenant folder.
APPS = [{"name": name, "url": f"ssh://git@github.com/acme/{name}", "branch": "main", "secrets": False, "receiver": "",
         "known_hosts": "", "clusters": ["prod", "staging"]} for name in ("shop", "cart", "billing", "search")]


@pytest.fixture
def kubectl_runs(monkeypatch) -> list[Path]:
    """The folders kubectl builds, memo off: every build runs kubectl."""
    monkeypatch.setattr(kustomize, "_run_build", kustomize_memo.ORIGINAL_RUN)
    monkeypatch.setattr(kustomize, "build_together", kustomize_memo.ORIGINAL_TOGETHER)
    runs: list[Path] = []
    real = kustomize._kustomize
    monkeypatch.setattr(kustomize, "_kustomize", lambda directory, command: runs.append(directory) or real(directory, command))
    return runs


@pytest.fixture
def platform(rendered) -> Path:
    return rendered(template="platform", sops_age_recipients=KEY, clusters=[cluster_entry("staging", KEY)], apps=APPS)


def alone(folders: list[Path]) -> list[tuple[Path, list[dict], str | None]]:
    command = kustomize.build_command()
    return [(built.root, built.objects, built.error) for built in (kustomize.build(folder, command) for folder in folders)]


def together(folders: list[Path]) -> list[tuple[Path, list[dict], str | None]]:
    return [(built.root, built.objects, built.error) for built in kustomize.build_all(folders)]


def tenant_folders(repo: Path) -> list[Path]:
    return sorted((repo / TENANTS).iterdir())


def test_a_clusters_tenant_folders_build_in_one_kubectl_process_into_each_folders_own_objects(platform, kubectl_runs):
    folders = sorted(platform.glob("applications/overlays/*/services/tenants/*"))
    assert [folder.relative_to(platform / "applications/overlays").parts[::3] for folder in folders] == [
        (cluster, app) for cluster in ("prod", "staging") for app in sorted(app["name"] for app in APPS)]
    assert all(kustomize.joinable(folder) for folder in folders)
    expected = alone(folders)
    assert len(kubectl_runs) == len(folders)
    assert all(error is None and objects for _, objects, error in expected)
    assert together(folders) == expected
    assert len(kubectl_runs) == len(folders) + 2  # one per cluster


def test_the_check_collects_the_same_objects_and_findings_with_and_without_joint_builds(platform, monkeypatch, kubectl_runs):
    joint = collect(platform, "platform")
    runs = len(kubectl_runs)
    monkeypatch.setattr(kustomize, "_TOGETHER", 1)  # groups of one: every folder alone, as before
    single = collect(platform, "platform")
    assert len(kubectl_runs) - runs == runs + 2 * (len(APPS) - 1)  # 8 tenant folders, not 2 joint builds
    assert {folder for folder in single.built if folder.startswith(TENANTS)} == {f"{TENANTS}/{app['name']}" for app in APPS}
    assert joint.built == single.built
    assert (joint.findings, joint.failed_roots, joint.objects) == (single.findings, single.failed_roots, single.objects)


def test_a_broken_folder_gets_its_own_error_and_the_others_their_objects(platform, monkeypatch, kubectl_runs):
    folders = tenant_folders(platform)
    broken = folders[1] / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: [not, a, mapping]\n")
    expected = alone(folders)
    assert [error is None for _, _, error in expected] == [True, False, True, True]
    assert "broken.yaml" in expected[1][2]
    assert together(folders) == expected
    joint = collect(platform, "platform")
    monkeypatch.setattr(kustomize, "_TOGETHER", 1)
    single = collect(platform, "platform")
    assert (joint.findings, joint.failed_roots, joint.built) == (single.findings, single.failed_roots, single.built)
    (finding,) = [finding for finding in joint.findings if finding.file.startswith(TENANTS)]
    assert (finding.file, finding.rule) == (f"{TENANTS}/{folders[1].name}/", "kustomize-build")
    assert "tenants/cart/broken.yaml': missing metadata.name" in finding.message


def test_an_object_two_folders_define_is_each_folders_own(platform, kubectl_runs):
    """kustomize refuses an object twice in one build: the joint build fails, each folder builds alone."""
    folders = tenant_folders(platform)
    shutil.copy(folders[0] / "tenant.yaml", folders[2] / f"copy-of-{folders[0].name}.yaml")
    expected = alone(folders)
    assert all(error is None for _, _, error in expected)
    assert together(folders) == expected
    assert len(kubectl_runs) == 2 * len(folders) + 1


CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: common
  annotations:
    internal.config.kubernetes.io/needsHashSuffix: enabled
data:
  MODE: prod
"""
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: common
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx
          envFrom:
            - configMapRef: {name: settings}
"""
GENERATOR = """namespace: common
configMapGenerator:
  - name: settings
    literals: [MODE=prod]
"""


def renaming_folders(where: Path, renamer: str) -> list[Path]:
    """A folder renaming ConfigMap common/settings (a hash suffix), one whose Deployment names
    ConfigMap `settings`, one with a ConfigMap of that name elsewhere."""
    renaming, referring, plain = where / "renaming", where / "referring", where / "plain"
    for folder in (renaming, referring, plain):
        folder.mkdir()
    if renamer == "annotated-manifest":
        (renaming / "configmap.yaml").write_text(CONFIGMAP)
    else:
        (renaming / "settings").mkdir()
        (renaming / "settings/kustomization.yaml").write_text(GENERATOR)
    (referring / "deployment.yaml").write_text(DEPLOYMENT)
    (plain / "configmap.yaml").write_text(CONFIGMAP.replace("internal.config.kubernetes.io/needsHashSuffix: enabled",
                                                            "note: plain").replace("common", "other"))
    return [renaming, referring, plain]


def env_from(deployment: dict) -> list[dict]:
    return deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]


@pytest.mark.parametrize("renamer", ["annotated-manifest", "own-kustomization"])
def test_a_folder_renaming_an_object_is_built_alone(tmp_path, kubectl_runs, renamer):
    folders = renaming_folders(tmp_path, renamer)
    assert [kustomize.joinable(folder) for folder in folders] == [False, True, True]
    expected = alone(folders)
    (_, renamed, _), (_, (deployment,), _) = expected[:2]
    assert renamed[0]["metadata"]["name"].startswith("settings-")
    assert env_from(deployment) == [{"configMapRef": {"name": "settings"}}]
    assert together(folders) == expected
    assert len(kubectl_runs) == 3 + 2  # the renaming folder alone, the two others together


def test_built_together_a_renamed_object_would_change_another_folders_reference(tmp_path, kubectl_runs):
    """Why joinable refuses such folders: kustomize points references to a renamed object at its
    new name once over the whole build, so the Deployment would name a ConfigMap it never saw."""
    renaming, referring, plain = renaming_folders(tmp_path, "annotated-manifest")
    joint = kustomize.build_together([renaming, referring, plain], kustomize.build_command())
    assert env_from(joint[1].objects[0]) == [{"configMapRef": {"name": joint[0].objects[0]["metadata"]["name"]}}] != [
        {"configMapRef": {"name": "settings"}}]
    assert kustomize.build_together([referring, plain], kustomize.build_command()) == kustomize.build_all([referring, plain])


def test_an_object_of_no_listed_file_leaves_the_joint_build_unattributed():
    origin = {"config.kubernetes.io/origin": "path: 0/a.yaml\n"}
    objects = [{"kind": "ConfigMap", "metadata": {"name": "a", "annotations": {**origin, "keep": "x"}}},
               {"kind": "ConfigMap", "metadata": {"name": "b", "annotations": dict(origin)}}]
    assert kustomize.attribute(objects, {"0/a.yaml": 1}, 2) == [
        [], [{"kind": "ConfigMap", "metadata": {"name": "a", "annotations": {"keep": "x"}}},
             {"kind": "ConfigMap", "metadata": {"name": "b"}}]]
    generated = {"config.kubernetes.io/origin": "configuredIn: 0/kustomization.yaml\nconfiguredBy: {kind: ConfigMapGenerator}\n"}
    for annotations in ({}, {"config.kubernetes.io/origin": "path: 1/b.yaml\n"}, generated):
        assert kustomize.attribute([{"kind": "ConfigMap", "metadata": {"name": "c", "annotations": annotations}}],
                                   {"0/a.yaml": 0}, 1) is None
