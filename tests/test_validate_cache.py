"""hooks.validate builds each core kind's strict validator once (issue 7: the check of a 500-app
repository spent most of its time re-reading kubernetes-validate's schemas for every object).
The cached validator must give exactly kubernetes_validate.validate()'s verdict and first error."""

from __future__ import annotations

import kubernetes_validate
import pytest

from hooks.validate import DEFAULT_KUBE_VERSION, Problem, Validator, _field_path

META = {"name": "shop", "namespace": "shop"}
OBJECTS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"a": "b"}}},
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": META, "bogus": True},
    {"apiVersion": "v1", "kind": "Service", "metadata": META, "spec": {"ports": [{"port": "eighty"}]}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": META,
     "spec": {"selector": {"matchLabels": {"app": "shop"}}, "template": {"spec": {"containers": [{"name": "c", "imagePullPolicy": 3}]}}}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": META,
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
     "subjects": [{"kind": "ServiceAccount", "name": "tenant-shop", "namespace": "flux-system"}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": META, "subjects": []},
    {"apiVersion": "v1", "kind": "Secret", "metadata": META, "stringData": {"k": "v"}, "type": "Opaque"},
    {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": META},
]


def reference(obj: dict) -> list[Problem]:
    """What the uncached kubernetes_validate.validate() says, in the Validator's words."""
    try:
        kubernetes_validate.validate(obj, DEFAULT_KUBE_VERSION + ".0", strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [Problem("unknown-kind", "")]
    except kubernetes_validate.ValidationError as error:
        return [Problem("schema", error.message, _field_path(error.absolute_path))]
    return []


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: f"{o['kind']}-{len(o)}")
def test_cached_core_validation_matches_kubernetes_validate(obj):
    got = Validator({}).problems(obj)
    want = reference(obj)
    if want and want[0].rule == "unknown-kind":
        assert [p.rule for p in got] == ["unknown-kind"]
    else:
        assert got == want
    assert Validator({}).problems(obj) == got  # second time from the cache, same answer
