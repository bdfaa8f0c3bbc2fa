"""hooks.check tenancy rules on small app repositories written in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from hooks.check import Finding, check_repo

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  MODE: prod\n"
CLUSTER_ROLE = (
    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: shop-reader\n"
    "rules:\n  - apiGroups: ['']\n    resources: [pods]\n    verbs: [get]\n"
)
FOREIGN = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: spy\n  namespace: kube-system\ndata: {}\n"
REMOTE = "https://github.com/acme/shared//base?ref=v1"


def app_repo(root: Path, resources: dict[str, str], extra_entries: tuple[str, ...] = ()) -> Path:
    """An app repository for app `shop`: answers file, root kustomization, the given files."""
    root.mkdir()
    (root / ".copier-answers.yml").write_text("_commit: test\ntemplate: app\napp_name: shop\n")
    entries = [*resources, *extra_entries]
    (root / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
        + "".join(f"  - {entry}\n" for entry in entries)
    )
    for name, text in resources.items():
        (root / name).write_text(text)
    return root


def test_a_clean_app_repo_passes(tmp_path):
    repo = app_repo(tmp_path / "shop", {"configmap.yaml": CONFIGMAP})
    assert check_repo(repo) == []


@pytest.mark.parametrize(
    ("resources", "extra", "expected"),
    [
        pytest.param(
            {"configmap.yaml": CONFIGMAP, "clusterrole.yaml": CLUSTER_ROLE}, (),
            Finding("clusterrole.yaml", "ClusterRole/shop-reader", "tenancy-cluster-scoped",
                    "ClusterRole is cluster-scoped; an app repository only holds objects of namespace shop"),
            id="cluster-role",
        ),
        pytest.param(
            {"configmap.yaml": CONFIGMAP, "spy.yaml": FOREIGN}, (),
            Finding("spy.yaml", "ConfigMap/kube-system/spy", "tenancy-namespace",
                    "metadata.namespace is kube-system; an app repository only holds objects of namespace shop"),
            id="foreign-namespace",
        ),
        pytest.param(
            {"configmap.yaml": CONFIGMAP}, (REMOTE,),
            Finding("kustomization.yaml", "", "tenancy-remote-resource",
                    f"remote entry '{REMOTE}' (not built): an app repository may only hold its own files"),
            id="remote-base",
        ),
        pytest.param(
            {"configmap.yaml": CONFIGMAP}, ("github.com/acme/shared/base",),
            Finding("kustomization.yaml", "", "tenancy-remote-resource",
                    "remote entry 'github.com/acme/shared/base' (not built): an app repository may only hold its own files"),
            id="scheme-less-remote-base",
        ),
    ],
)
def test_tenancy_faults_are_caught_with_their_rule(tmp_path, resources, extra, expected):
    repo = app_repo(tmp_path / "shop", resources, extra)
    assert check_repo(repo) == [expected]


def test_a_local_folder_named_like_a_host_is_not_remote(tmp_path):
    repo = app_repo(tmp_path / "shop", {"configmap.yaml": CONFIGMAP}, ("example.com/",))
    (repo / "example.com").mkdir()
    (repo / "example.com/kustomization.yaml").write_text("resources: []\n")
    assert check_repo(repo) == []
