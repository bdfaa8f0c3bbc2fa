"""The upstream data shipped in hooks/data: what scripts/regenerate_data.py makes of its sources."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from conftest import ROOT
from hooks import crds

spec = importlib.util.spec_from_file_location("regenerate_data", ROOT / "scripts" / "regenerate_data.py")
regenerate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(regenerate)


def test_served_versions_keep_rules_and_defaults_and_lose_the_prose():
    crd = {
        "kind": "CustomResourceDefinition",
        "spec": {
            "group": "example.com", "scope": "Cluster", "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [
                {"name": "v1", "served": True, "subresources": {"status": {}}, "schema": {"openAPIV3Schema": {
                    "type": "object", "description": "A widget.",
                    "properties": {"spec": {
                        "type": "object", "description": "prose",
                        "x-kubernetes-validations": [{"rule": "self.a > 0", "message": "a must be positive"}],
                        "properties": {"a": {"type": "integer", "default": 1},
                                       "description": {"type": "string", "description": "a field named description"}},
                    }},
                }}},
                {"name": "v0", "served": False, "schema": {"openAPIV3Schema": {"type": "object"}}},
            ],
        },
    }
    (entry,) = regenerate.crd_entries([crd, {"kind": "ConfigMap"}])
    assert entry == {
        "apiVersion": "example.com/v1", "kind": "Widget", "plural": "widgets", "namespaced": False, "statusSubresource": True,
        "schema": {"type": "object", "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [{"rule": "self.a > 0", "message": "a must be positive"}],
            "properties": {"a": {"type": "integer", "default": 1}, "description": {"type": "string"}},
        }}},
    }


def test_the_shipped_crd_bundle_is_in_the_script_output_form():
    text = (ROOT / "hooks" / "data" / "crds.json").read_text()
    entries = json.loads(text)
    assert regenerate.one_per_line(entries) == text  # deterministic, one kind per line: readable diffs
    assert entries == sorted(entries, key=lambda e: (e["apiVersion"], e["kind"]))
    assert '"description":"' not in text
    kinds = {(e["apiVersion"], e["kind"]) for e in entries}
    assert {
        ("source.toolkit.fluxcd.io/v1", "GitRepository"), ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
        ("helm.toolkit.fluxcd.io/v2", "HelmRelease"), ("notification.toolkit.fluxcd.io/v1", "Receiver"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"), ("gateway.networking.k8s.io/v1", "Gateway"),
        ("gateway.networking.k8s.io/v1", "GRPCRoute"),
        ("kyverno.io/v1", "ClusterPolicy"),
    } <= kinds
    assert len(crds.load_bundle()) == len(entries)


def bootstrap_role(name: str, labels: dict | None = None, **fields) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
                         "labels": {"kubernetes.io/bootstrapping": "rbac-defaults", **(labels or {})}}, **fields}


def test_role_entries_keep_rules_aggregation_and_public_bindings_of_every_listed_role(monkeypatch):
    monkeypatch.setattr(regenerate, "USER_FACING_ROLES", ("view",))
    monkeypatch.setattr(regenerate, "PUBLIC_BINDINGS", {"system:basic-user": ("system:authenticated",)})
    selector = {"clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]}
    self_reviews = {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"], "verbs": ["create"]}
    cluster_roles = {"items": [bootstrap_role("view", {"rbac.authorization.k8s.io/aggregate-to-edit": "true"},
                                              aggregationRule=selector, rules=None),
                               bootstrap_role("system:basic-user", rules=[self_reviews])]}
    controller_roles = {"items": [bootstrap_role("system:controller:x", rules=[{"nonResourceURLs": ["/x"], "verbs": ["get"]}])]}
    assert regenerate.role_entries([cluster_roles, controller_roles]) == [  # sorted by name, from both lists
        {"name": "system:basic-user", "rules": [self_reviews], "boundToGroups": ["system:authenticated"]},
        {"name": "system:controller:x", "rules": [{"nonResourceURLs": ["/x"], "verbs": ["get"]}]},
        {"name": "view", "rules": [], "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"},
         "aggregationRule": selector},
    ]
    with pytest.raises(SystemExit, match="lack system:basic-user$"):
        regenerate.role_entries([{"items": cluster_roles["items"][:1]}])


def test_the_shipped_roles_are_the_bootstrap_roles_with_their_aggregation_and_public_bindings():
    text = (ROOT / "hooks" / "data" / "k8s-roles.json").read_text()
    entries = json.loads(text)
    assert regenerate.one_per_line(entries) == text
    roles = {role["name"]: role for role in entries}
    assert list(roles) == sorted(roles)
    assert set(regenerate.USER_FACING_ROLES) | {"cluster-admin", "system:node", "system:basic-user"} <= set(roles)
    assert len([name for name in roles if name.startswith("system:controller:")]) > 20  # controller-roles.yaml too
    assert roles["admin"]["rules"] == []  # filled by aggregation only
    assert roles["admin"]["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}]
    assert roles["edit"]["labels"] == {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}
    assert any("rolebindings" in rule["resources"] for rule in roles["system:aggregate-to-admin"]["rules"])
    assert roles["cluster-admin"]["rules"] == [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                                               {"nonResourceURLs": ["*"], "verbs": ["*"]}]
    assert {name: role["boundToGroups"] for name, role in roles.items() if "boundToGroups" in role} == {
        name: list(groups) for name, groups in regenerate.PUBLIC_BINDINGS.items()}


SOURCE_FILES = "(the pinned upstream files this script reads; add them at the pinned refs, or run with --download to fetch them)"


@pytest.mark.parametrize(
    ("crd_files", "rbac_files", "expected"),
    [
        pytest.param([name for name in regenerate.UPSTREAM_CRDS if "grpcroutes" not in name], None,
                     "--crd-dir {crd} lacks gateway.networking.k8s.io_grpcroutes.yaml", id="crd-dir-lacks-one"),
        # The CRDs are all there: crds.json is not written either, as the roles cannot be.
        pytest.param(list(regenerate.UPSTREAM_CRDS), ["controller-roles.yaml"],
                     "--rbac-dir {rbac} lacks cluster-roles.yaml", id="rbac-dir-lacks-one"),
        pytest.param([], [], f"--crd-dir {{crd}} lacks {', '.join(regenerate.UPSTREAM_CRDS)}; "
                     "--rbac-dir {rbac} lacks cluster-roles.yaml, controller-roles.yaml", id="both-empty"),
        pytest.param(None, None, "--crd-dir {crd} is not a directory", id="no-such-folder"),
    ],
)
def test_a_source_folder_without_a_file_it_needs_stops_with_one_line_and_writes_nothing(
        tmp_path, monkeypatch, crd_files, rbac_files, expected):
    monkeypatch.setattr(regenerate, "DATA", tmp_path / "data")
    crd, rbac = tmp_path / "crds", tmp_path / "rbac"
    argv = ["--crd-dir", str(crd)]
    for folder, names in ((crd, crd_files), (rbac, rbac_files)):
        if names is not None:
            folder.mkdir()
            for name in names:
                (folder / name).write_text("")  # an empty file is read as no documents
    if rbac_files is not None:
        argv += ["--rbac-dir", str(rbac)]
    with pytest.raises(SystemExit) as stopped:
        regenerate.main(argv)
    assert stopped.value.code == f"error: {expected.format(crd=crd, rbac=rbac)} {SOURCE_FILES}. Nothing was written."
    assert not (tmp_path / "data").exists()


def test_the_script_run_from_the_shell_prints_that_line_and_no_traceback(tmp_path):
    (tmp_path / "crds").mkdir()
    data = {path.name: path.read_bytes() for path in (ROOT / "hooks" / "data").iterdir() if path.is_file()}
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "regenerate_data.py"), "--crd-dir",
                             str(tmp_path / "crds")], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: --crd-dir {tmp_path / 'crds'} lacks source.toolkit.fluxcd.io_gitrepositories.yaml, ")
    assert "--download" in line
    assert {path.name: path.read_bytes() for path in (ROOT / "hooks" / "data").iterdir() if path.is_file()} == data
