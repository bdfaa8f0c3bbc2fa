"""The offline admission model itself (hooks.rbac, hooks.admission), on hand-written cases.

Each gate is shown to allow and to deny, so that a verdict of the tenancy tests cannot come
from a model that answers the same whatever it is given.
"""

from __future__ import annotations

import base64
from fractions import Fraction

import pytest

from hooks import crds, podsecurity
from hooks.admission import Cluster, admit, pod_usage
from hooks.rbac import Authorizer, Identity, aggregate, builtin_roles, service_account

TENANT = service_account("flux-system", "tenant-shop")


def cluster_role(name: str, rules: list[dict], labels: dict | None = None, aggregation: list[dict] | None = None) -> dict:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels or {}}, "rules": rules}
    if aggregation is not None:
        role["aggregationRule"] = {"clusterRoleSelectors": aggregation}
    return role


def binding(role: str, namespace: str | None, subjects: list[dict], kind: str = "ClusterRole") -> dict:
    meta = {"name": f"bind-{role}"} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
            "metadata": meta, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": subjects}


SA = [{"kind": "ServiceAccount", "name": "tenant-shop", "namespace": "flux-system"}]
ROUTES = {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": ["create", "patch"]}


# RBAC ------------------------------------------------------------------------------------------


def test_builtin_admin_lacks_routes_until_a_role_aggregates_them():
    plain = Authorizer([binding("admin", "shop", SA)])
    assert plain.allows(TENANT, "create", "apps", "deployments", "shop")
    assert not plain.allows(TENANT, "create", "gateway.networking.k8s.io", "httproutes", "shop")
    # labelled into edit: reaches admin through edit's own aggregation label
    extra = cluster_role("routes", [ROUTES], {"rbac.authorization.k8s.io/aggregate-to-edit": "true"})
    assert Authorizer([binding("admin", "shop", SA), extra]).allows(TENANT, "create", "gateway.networking.k8s.io", "httproutes", "shop")


def test_a_rolebinding_grants_in_its_namespace_only_and_only_to_its_subjects():
    auth = Authorizer([cluster_role("routes", [ROUTES]), binding("routes", "shop", SA)])
    assert auth.allows(TENANT, "create", "gateway.networking.k8s.io", "httproutes", "shop")
    assert not auth.allows(TENANT, "create", "gateway.networking.k8s.io", "httproutes", "billing")
    assert not auth.allows(TENANT, "delete", "gateway.networking.k8s.io", "httproutes", "shop")
    assert not auth.allows(service_account("flux-system", "tenant-billing"), "create", "gateway.networking.k8s.io", "httproutes", "shop")
    assert not auth.allows(TENANT, "create", "gateway.networking.k8s.io", "httproutes", None)  # cluster scope


def test_groups_cluster_bindings_subresources_and_resource_names():
    auth = Authorizer([
        cluster_role("logs", [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                              {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["one"]}]),
        binding("logs", None, [{"kind": "Group", "name": "readers"}]),
    ])
    reader = Identity("alice", ("readers",))
    assert auth.allows(reader, "get", "", "pods/log", "any")
    assert not auth.allows(reader, "get", "", "pods", "any")
    assert auth.allows(reader, "get", "", "configmaps", "x", "one") and not auth.allows(reader, "get", "", "configmaps", "x", "two")
    assert not auth.allows(Identity("bob"), "get", "", "pods/log", "any")


@pytest.mark.parametrize(("rule", "request_", "allowed"), [
    # a rule resource is `*`, the requested resource/subresource exactly, or `*/<subresource>`
    ({"resources": ["*"]}, ("get", "", "pods/log", ""), True),
    ({"resources": ["pods/log"]}, ("get", "", "pods/log", ""), True),
    ({"resources": ["*/log"]}, ("get", "", "pods/log", ""), True),
    ({"resources": ["*/log"]}, ("get", "", "pods", ""), False),
    ({"resources": ["*/status"]}, ("get", "", "pods/log", ""), False),
    ({"resources": ["pods/*"]}, ("get", "", "pods/log", ""), False),  # no wildcard: a subresource named `*`
    ({"resources": ["pods/*"]}, ("get", "", "pods/*", ""), True),
    ({"resources": ["pods"]}, ("get", "", "pods/log", ""), False),
    # API groups and verbs: listed, or `*`
    ({"resources": ["pods"], "apiGroups": ["*"], "verbs": ["*"]}, ("delete", "apps", "pods", ""), True),
    ({"resources": ["pods"], "apiGroups": ["apps"]}, ("get", "", "pods", ""), False),
    ({"resources": ["pods"], "verbs": ["list"]}, ("get", "", "pods", ""), False),
    # resourceNames: the request must name one of them; a create without a name never matches
    ({"resources": ["pods"], "resourceNames": ["a"]}, ("get", "", "pods", "a"), True),
    ({"resources": ["pods"], "resourceNames": ["a"]}, ("get", "", "pods", "b"), False),
    ({"resources": ["pods"], "resourceNames": ["a"], "verbs": ["create"]}, ("create", "", "pods", ""), False),
])
def test_rule_matching_follows_rbac(rule, request_, allowed):
    verb, group, resource, name = request_
    rule = {"apiGroups": [""], "verbs": ["get"]} | rule
    auth = Authorizer([cluster_role("r", [rule]), binding("r", "shop", SA)])
    assert auth.allows(TENANT, verb, group, resource, "shop", name) is allowed


def test_aggregation_is_resolved_transitively_from_the_shipped_roles():
    roles = {role["metadata"]["name"]: role for role in builtin_roles()}
    rules = aggregate(roles)
    # view's own rules reach admin through edit
    assert any("configmaps" in r.get("resources", []) and "get" in r["verbs"] for r in rules["admin"])
    assert any("rolebindings" in r.get("resources", []) for r in rules["admin"])
    assert not any("rolebindings" in r.get("resources", []) for r in rules["edit"])


# RBAC escalation prevention: a Role or RoleBinding grants only what its writer holds ----------------

RBAC = "rbac.authorization.k8s.io"
HELD = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["token"]},
        {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]},
        {"apiGroups": [RBAC], "resources": ["roles", "rolebindings"], "verbs": ["create", "patch"]}]
DRY_RUN = " (a role of the same app is not there yet when Flux dry-runs the app's objects)"
GROUPS = '(groups=["system:serviceaccounts" "system:serviceaccounts:flux-system" "system:authenticated"])'


def role(name: str, rules: list[dict]) -> dict:
    return {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules}


def role_binding(name: str, role_kind: str, role_name: str) -> dict:
    return {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": "runner"}]}


def holding(*extra: dict, objects: tuple[dict, ...] = ()) -> Cluster:
    """A cluster where the tenant holds HELD (and `extra` rules) in namespace shop."""
    return Cluster([cluster_role("held", [*HELD, *extra]), binding("held", "shop", SA), namespace("shop"), *objects],
                   crds.load_bundle())


@pytest.mark.parametrize(("rules", "held"), [
    ([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}], True),
    ([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}], False),
    ([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}], False),  # a granted `*` needs a held `*`
    ([{"apiGroups": ["apps"], "resources": ["deployments", "daemonsets/scale", "*"], "verbs": ["get"]}], True),  # held `*`
    ([{"apiGroups": ["*"], "resources": ["deployments"], "verbs": ["get"]}], False),
    ([{"apiGroups": [""], "resources": ["pods/status", "*/status"], "verbs": ["get"]}], True),
    ([{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}], False),
    ([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["token"]}], True),
    ([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["token", "other"]}], False),
    ([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}], False),  # every name: more than one held
])
def test_a_role_may_grant_only_rules_its_writer_holds(rules, held):
    assert (denials(holding(), role("granted", rules)) == []) is held
    assert (holding().authorizer.ungranted(TENANT, rules, "shop") == []) is held


def test_a_role_granting_more_is_refused_naming_the_missing_rules_unless_its_writer_may_escalate():
    more = role("more", [{"apiGroups": ["", "batch"], "resources": ["configmaps", "pods/exec", "jobs"],
                          "verbs": ["get", "create"]}])
    (refusal,) = denials(holding(), more)
    assert refusal == ("rbac", "RBAC", f'roles.{RBAC} "more" is forbidden: user "system:serviceaccount:flux-system:tenant-shop" '
                                       f"{GROUPS} is attempting to grant RBAC permissions not currently held: "
                                       '{APIGroups:[""], Resources:["configmaps"], Verbs:["create"]}; '
                                       '{APIGroups:[""], Resources:["jobs"], Verbs:["get" "create"]}; '
                                       '{APIGroups:[""], Resources:["pods/exec"], Verbs:["get" "create"]}; and 3 more')
    escalate = {"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["escalate"], "resourceNames": ["more"]}
    assert denials(holding(escalate), more) == []
    assert len(denials(holding(escalate), role("other", more["rules"]))) == 1  # escalate names one Role
    assert denials(holding(), role("more", [])) == []


def test_a_rolebinding_may_refer_only_to_a_role_its_writer_holds_unless_it_may_bind_it():
    cluster = holding()
    assert denials(cluster, role_binding("own", "ClusterRole", "held")) == []  # its own role: every rule held
    (refusal,) = denials(cluster, role_binding("viewers", "ClusterRole", "view"))
    assert refusal[2].startswith(f'rolebindings.{RBAC} "viewers" is forbidden: user "system:serviceaccount:flux-system:tenant-shop" '
                                 f"{GROUPS} is attempting to grant RBAC permissions not currently held: "
                                 '{APIGroups:[""], Resources:["bindings"], Verbs:["get" "list" "watch"]}; ')
    bind = {"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["view"]}
    assert denials(holding(bind), role_binding("viewers", "ClusterRole", "view")) == []
    assert len(denials(holding(bind), role_binding("editors", "ClusterRole", "edit"))) == 1
    assert denials(holding(bind), role_binding("viewers", "Role", "view")) == [  # `bind` names the kind too
        ("rbac", "RBAC", f'roles.{RBAC} "view" not found{DRY_RUN}')]


def test_a_rolebinding_to_a_role_not_on_the_cluster_is_refused_unless_its_writer_may_bind_it():
    """The API server reads the role to compare: one the same app defines is not there yet when
    Flux dry-runs the app's objects (fluxcd/kustomize-controller#748)."""
    assert denials(holding(), role_binding("mine", "Role", "mine")) == [("rbac", "RBAC", f'roles.{RBAC} "mine" not found{DRY_RUN}')]
    readers = {**role("readers", [HELD[0]]), "metadata": {"name": "readers", "namespace": "shop"}}
    assert denials(holding(objects=(readers,)), role_binding("readers", "Role", "readers")) == []
    bind = {"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["bind"]}
    assert denials(holding(bind), role_binding("mine", "Role", "mine")) == []



# Bindings to Kubernetes' own ClusterRoles: their real rules, against what every identity holds -----

SELF_REVIEWS = ['{APIGroups:["authentication.k8s.io"], Resources:["selfsubjectreviews"], Verbs:["create"]}',
                '{APIGroups:["authorization.k8s.io"], Resources:["selfsubjectaccessreviews"], Verbs:["create"]}',
                '{APIGroups:["authorization.k8s.io"], Resources:["selfsubjectrulesreviews"], Verbs:["create"]}']


def not_held(name: str, missing: str, who: str = f'"system:serviceaccount:flux-system:tenant-shop" {GROUPS}') -> str:
    return f'rolebindings.{RBAC} "{name}" is forbidden: user {who} is attempting to grant RBAC permissions not currently held: {missing}'


@pytest.mark.parametrize("name", ["system:basic-user", "system:discovery", "system:public-info-viewer"])
def test_binding_a_role_every_authenticated_identity_holds_is_admitted(name):
    """The tenant holds none of these rules itself (HELD): the bootstrap ClusterRoleBindings to
    system:authenticated give them to it, as to every identity the API server authenticates."""
    assert denials(holding(), role_binding("everyone", "ClusterRole", name)) == []


def test_the_authenticated_groups_roles_are_held_through_the_group_only():
    auth = Authorizer([])
    basic_user = role_binding("self-reviews", "ClusterRole", "system:basic-user")
    assert auth.escalation(Identity("alice", ("system:authenticated",)), basic_user, "shop") is None
    assert auth.escalation(Identity("alice"), basic_user, "shop") == not_held(
        "self-reviews", "; ".join(SELF_REVIEWS), '"alice" (groups=[])')
    discovery = role_binding("discovery", "ClusterRole", "system:discovery")  # non-resource URLs only
    assert auth.escalation(Identity("alice"), discovery, "shop") == not_held(
        "discovery", '{NonResourceURLs:["/api"], Verbs:["get"]}; {NonResourceURLs:["/api/*"], Verbs:["get"]}; '
                     '{NonResourceURLs:["/apis"], Verbs:["get"]}; and 8 more', '"alice" (groups=[])')
    # the issuer discovery URLs are every ServiceAccount's, not every user's
    issuer = role_binding("issuer", "ClusterRole", "system:service-account-issuer-discovery")
    assert auth.escalation(TENANT, issuer, "shop") is None
    assert auth.escalation(Identity("alice", ("system:authenticated",)), issuer, "shop") is not None
    assert auth.allows(TENANT, "create", "authorization.k8s.io", "selfsubjectaccessreviews", None)
    assert not auth.allows(Identity("alice"), "create", "authorization.k8s.io", "selfsubjectaccessreviews", None)


@pytest.mark.parametrize(("name", "refusal"), [
    ("cluster-admin", not_held("privileged", '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}; '
                                             '{NonResourceURLs:["*"], Verbs:["*"]}')),
    ("system:controller:generic-garbage-collector", not_held(
        "privileged", '{APIGroups:[""], Resources:["events"], Verbs:["create" "patch" "update"]}; '
                      '{APIGroups:["*"], Resources:["*"], Verbs:["delete" "get" "list" "patch" "update" "watch"]}; '
                      '{APIGroups:["events.k8s.io"], Resources:["events"], Verbs:["create" "patch" "update"]}')),
    # held: /healthz, /livez and /readyz (system:discovery); not their subpaths nor the metrics
    ("system:monitoring", not_held(
        "privileged", '{NonResourceURLs:["/healthz/*"], Verbs:["get"]}; {NonResourceURLs:["/livez/*"], Verbs:["get"]}; '
                      '{NonResourceURLs:["/metrics"], Verbs:["get"]}; and 2 more')),
])
def test_binding_a_privileged_built_in_role_is_refused_with_the_rules_not_held(name, refusal):
    assert denials(holding(), role_binding("privileged", "ClusterRole", name)) == [("rbac", "RBAC", refusal)]


def test_binding_system_node_is_refused_and_a_controller_role_only_when_every_rule_is_held():
    ((_, _, refusal),) = denials(holding(), role_binding("kubelet", "ClusterRole", "system:node"))
    assert refusal.startswith(not_held("kubelet", '{APIGroups:[""], Resources:["configmaps"], Verbs:["watch"]}; '))
    assert refusal.endswith("; and 20 more")  # 23 groups and resources of its rules, none wholly held
    jobs = [{"apiGroups": ["batch"], "resources": ["jobs", "jobs/status", "jobs/finalizers"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]
    events = {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}
    job_controller = role_binding("jobs", "ClusterRole", "system:controller:job-controller")
    assert denials(holding(*jobs, events), job_controller) == [("rbac", "RBAC", not_held(
        "jobs", '{APIGroups:[""], Resources:["events"], Verbs:["update"]}; '
                '{APIGroups:["events.k8s.io"], Resources:["events"], Verbs:["update"]}'))]
    assert denials(holding(*jobs, events | {"verbs": ["create", "patch", "update"]}), job_controller) == []


@pytest.mark.parametrize(("held", "missing"), [
    (["/healthz/*", "/livez/*", "/readyz/*", "/metrics*"], None),  # `/metrics*` covers /metrics and /metrics/slis
    (["/healthz/*", "/livez/*", "/readyz/*", "/metrics/*"], '{NonResourceURLs:["/metrics"], Verbs:["get"]}'),
    (["*"], None),
])
def test_non_resource_urls_are_covered_by_the_same_url_or_a_held_prefix(held, missing):
    urls = {"nonResourceURLs": held, "verbs": ["get"]}
    expected = [] if missing is None else [("rbac", "RBAC", not_held("metrics", missing))]
    assert denials(holding(urls), role_binding("metrics", "ClusterRole", "system:monitoring")) == expected


# Admission policies -------------------------------------------------------------------------------


def namespace(name: str, labels: dict | None = None, annotations: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}}}


def policy(name: str, validations: list[dict], rules: list[dict] | None = None, **spec) -> list[dict]:
    vap = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
           "spec": {"failurePolicy": spec.pop("failurePolicy", "Fail"),
                    "matchConstraints": {"resourceRules": rules or [{"apiGroups": [""], "apiVersions": ["v1"],
                                                                       "operations": ["CREATE", "UPDATE"], "resources": ["services"]}]},
                    "validations": validations, **spec}}
    bind = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"],
                     "matchResources": {"namespaceSelector": {"matchLabels": {"tenant": "yes"}}}}}
    return [vap, bind]


def service(name: str = "web", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}


ADMIN = [binding("admin", "shop", SA), binding("admin", "other", SA)]
CLUSTER_IP = [{"expression": "object.spec.type == 'ClusterIP'", "message": "ClusterIP only"}]


def make(*objects) -> Cluster:
    return Cluster([*ADMIN, namespace("shop", {"tenant": "yes"}), namespace("other"), *objects], crds.load_bundle())


def denials(cluster: Cluster, obj: dict, ns: str = "shop", who: Identity = TENANT) -> list[tuple[str, str, str]]:
    return [(d.gate, d.source, d.message) for _, d in admit(cluster, [obj], who, ns)]


def test_a_policy_applies_after_defaulting_and_only_where_its_binding_selects():
    cluster = make(*policy("cluster-ip", CLUSTER_IP))
    assert denials(cluster, service()) == []  # type defaults to ClusterIP
    assert denials(cluster, service(type="NodePort")) == [("policy", "cluster-ip", "ClusterIP only")]
    assert denials(cluster, service(type="NodePort"), ns="other") == []  # namespace not selected


def test_match_conditions_variables_message_expressions_and_operations():
    cluster = make(*policy(
        "named", [{"expression": "object.metadata.name.startsWith(variables.prefix)",
                   "messageExpression": "'name must start with ' + variables.prefix"}],
        matchConditions=[{"name": "not-platform", "expression": "request.userInfo.username != 'platform'"}],
        variables=[{"name": "prefix", "expression": "namespaceObject.metadata.name + '-'"}],
    ))
    assert denials(cluster, service("web")) == [("policy", "named", "name must start with shop-")]
    assert denials(cluster, service("shop-web")) == []
    assert denials(cluster, service("web"), who=Identity("platform")) == [  # exempted from the policy, not from RBAC
        ("rbac", "RBAC", 'platform cannot create or patch resource "services" in API group "" in the namespace "shop"')]
    deletes_only = make(*policy("no-delete", [{"expression": "false", "message": "never"}],
                                rules=[{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["services"]}]))
    assert denials(deletes_only, service()) == []
    assert [d.message for d in deletes_only.policy_denials(None, TENANT, "shop", "DELETE", old=service())] == ["never"]


def test_policies_see_property_names_unescaped_as_the_api_server_passes_them():
    """A policy gets the object as a plain map (unlike a CRD rule's `self`): `namespace` is read as
    `x.namespace`; the CRD-rule spelling `x.__namespace__` names a key no object has."""
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"},
             "spec": {"hostnames": ["shop.example.com"], "parentRefs": [{"name": "gw", "namespace": "gateways"}]}}
    routes = [{"apiGroups": ["gateway.networking.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE"],
               "resources": ["httproutes"]}]
    allowed = [cluster_role("routes", [ROUTES]), binding("routes", "shop", SA)]
    plain = make(*policy("plain", [{"expression": "object.spec.parentRefs.all(p, has(p.namespace) && p.namespace == 'gateways')",
                                    "message": "gateways only"}], routes), *allowed)
    assert denials(plain, route) == []
    escaped = make(*policy("escaped", [{"expression": "object.spec.parentRefs.all(p, has(p.__namespace__))",
                                        "message": "never true on a real object"}], routes), *allowed)
    assert denials(escaped, route) == [("policy", "escaped", "never true on a real object")]


def test_built_in_objects_reach_policies_without_their_empty_lists_and_maps():
    """The API server converts a built-in object from its Go type for the policies: omitempty
    fields leave out empty lists and maps, never an empty struct (an empty selector selects all)."""
    rules = [{"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["networkpolicies"]}]
    cluster = make(*policy("peers", [{"expression": "object.spec.ingress.all(r, r.from.all(p, has(p.namespaceSelector) && "
                                                    "size(p.namespaceSelector) <= 1 && has(p.podSelector) && !has(p.podSelector.matchLabels)))",
                                      "message": "one namespace selector field, no pod labels"}], rules))

    def allowing(peer: dict) -> dict:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p"},
                "spec": {"podSelector": {}, "ingress": [{"from": [peer], "ports": []}]}}

    written_out = {"namespaceSelector": {"matchLabels": {"a": "b"}, "matchExpressions": []}, "podSelector": {"matchLabels": {}}}
    assert denials(cluster, allowing(written_out)) == []
    assert denials(cluster, allowing({"namespaceSelector": {}, "podSelector": {}})) == []  # empty structs stay
    both = {"namespaceSelector": {"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "c", "operator": "Exists"}]}, "podSelector": {}}
    assert denials(cluster, allowing(both)) == [("policy", "peers", "one namespace selector field, no pod labels")]


def test_an_expression_error_denies_under_fail_and_not_under_ignore():
    broken = [{"expression": "object.spec.missing.field == 1", "message": "unused"}]
    failing = denials(make(*policy("strict", broken)), service())
    assert [(gate, source) for gate, source, _ in failing] == [("policy", "strict")]
    assert "resulted in error: no such key: missing" in failing[0][2]
    assert denials(make(*policy("lenient", broken, failurePolicy="Ignore")), service()) == []


def test_rbac_refuses_what_no_role_grants():
    assert denials(make(), {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "x"},
                            "spec": {"interval": "1m", "chartRef": {"kind": "OCIRepository", "name": "x"}}}) == [
        ("rbac", "RBAC", 'system:serviceaccount:flux-system:tenant-shop cannot create or patch resource '
                         '"helmreleases.helm.toolkit.fluxcd.io" in API group "helm.toolkit.fluxcd.io" in the namespace "shop"')]
    cluster_scoped = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mine"}}
    assert "at the cluster scope" in denials(make(), cluster_scoped)[0][2]


def test_pods_get_the_default_tolerations_before_policies_see_them():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}
    defaulted = make().defaulted(pod, "shop")
    assert {t["key"] for t in defaulted["spec"]["tolerations"]} == {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}


# Quotas --------------------------------------------------------------------------------------------


def quota(hard: dict, scope: list | None = None) -> dict:
    spec = {"hard": hard} | ({"scopeSelector": {"matchExpressions": scope}} if scope else {})
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "shop"}, "spec": spec}


def deployment(replicas: int, cpu: str | None = None, priority: str | None = None) -> dict:
    container = {"name": "c", "image": "x:1"} | ({"resources": {"requests": {"cpu": cpu}}} if cpu else {})
    pod = {"containers": [container]} | ({"priorityClassName": priority} if priority else {})
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"d{replicas}"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod}}}


@pytest.mark.parametrize(("objects", "expected"), [
    ([deployment(2, "500m"), deployment(2, "500m")], []),
    # the second Deployment's pods are admitted one by one: the third one is refused
    ([deployment(2, "500m"), deployment(3, "500m")],
     ["exceeded quota: q, requested: requests.cpu=500m, used: requests.cpu=2, limited: requests.cpu=2"]),
])
def test_quota_counts_replicas_times_requests(objects, expected):
    cluster = make(quota({"requests.cpu": "2"}))
    found = [d.message for _, d in cluster.quota_denials([cluster.defaulted(o, "shop") for o in objects], "shop")]
    assert found == expected


def test_limit_range_defaults_count_and_scoped_quotas_count_their_class_only():
    limits = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": "shop"},
              "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "1"}}]}}
    cluster = make(quota({"requests.cpu": "2"}), limits)
    assert len(cluster.quota_denials([cluster.defaulted(deployment(3), "shop")], "shop")) == 1
    scoped = make(quota({"pods": "0"}, [{"scopeName": "PriorityClass", "operator": "In", "values": ["system-node-critical"]}]))
    assert scoped.quota_denials([deployment(1)], "shop") == []
    assert len(scoped.quota_denials([deployment(1, priority="system-node-critical")], "shop")) == 1


def test_load_balancers_and_node_ports_are_counted():
    cluster = make(quota({"services.loadbalancers": "0", "services.nodeports": "1"}))
    assert cluster.quota_denials([service(type="NodePort")], "shop") == []
    (_, denial), = cluster.quota_denials([service(type="LoadBalancer")], "shop")
    assert "services.loadbalancers=1" in denial.message


# Pods as the API server admits them: defaulting, validation, LimitRanger ---------------------------


def limit_range(*items: dict) -> dict:
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": "shop"},
            "spec": {"limits": list(items)}}


# As the platform renders it (services/tenants/<app>/tenant.yaml).
TENANT_LIMITS = limit_range({"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                             "default": {"cpu": "500m", "memory": "256Mi"}, "max": {"cpu": "2", "memory": "4Gi"}},
                            {"type": "PersistentVolumeClaim", "max": {"storage": "20Gi"}})


def workload(kind: str = "Deployment", replicas: int = 1, containers: list[dict] | None = None,
             init: list[dict] | None = None, **pod) -> dict:
    spec = {"containers": containers or [{"name": "c", "image": "x:1"}], **({"initContainers": init} if init else {}), **pod}
    return {"apiVersion": "v1" if kind == "Pod" else "apps/v1", "kind": kind, "metadata": {"name": kind.lower()},
            "spec": spec if kind == "Pod" else {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}},
                                                "template": {"metadata": {"labels": {"a": "b"}}, "spec": spec}}}


def container(name: str = "c", requests: dict | None = None, limits: dict | None = None, **fields) -> dict:
    resources = {**({"requests": requests} if requests else {}), **({"limits": limits} if limits else {})}
    return {"name": name, "image": "x:1", **({"resources": resources} if resources else {}), **fields}


def pod_denials(cluster: Cluster, obj: dict) -> list[tuple[str, str]]:
    return [(d.source, d.message) for d in cluster.pod_denials(cluster.defaulted(obj, "shop"), "shop")]


def test_a_limit_alone_is_also_the_request_before_the_limit_range_defaults():
    cluster = make(TENANT_LIMITS)
    (admitted,) = cluster.admitted_pod(workload(containers=[container(limits={"cpu": "1"})]), "shop")["containers"]
    assert admitted["resources"] == {"limits": {"cpu": "1", "memory": "256Mi"}, "requests": {"cpu": "1", "memory": "128Mi"}}
    (bare,) = cluster.admitted_pod(workload(), "shop")["containers"]
    assert bare["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    # a workload is stored as written (LimitRanger mutates pods); a Pod is defaulted itself
    assert "resources" not in cluster.defaulted(workload(), "shop")["spec"]["template"]["spec"]["containers"][0]
    assert cluster.defaulted(workload("Pod"), "shop")["spec"]["containers"][0]["resources"] == bare["resources"]


def test_limit_range_items_are_defaulted_per_resource_as_the_api_server_stores_them():
    # no defaultRequest for memory: the default limit; no default for cpu: the max
    cluster = make(limit_range({"type": "Container", "defaultRequest": {"cpu": "50m"}, "default": {"memory": "64Mi"},
                                "max": {"cpu": "1"}}))
    (admitted,) = cluster.admitted_pod(workload(), "shop")["containers"]
    assert admitted["resources"] == {"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}}


@pytest.mark.parametrize(("containers", "expected"), [
    ([container(requests={"cpu": "400m"})], []),
    ([container(requests={"cpu": "1"}, limits={"cpu": "1"})], []),
    # the LimitRange's default limit (500m) lands below the request the pod sets
    ([container(requests={"cpu": "1"})],
     [("Pod validation", 'spec.containers[0].resources.requests: Invalid value: "1": must be less than or equal to cpu limit of 500m')]),
    # written so in the template, the Deployment itself is invalid
    ([container(requests={"cpu": "2"}, limits={"cpu": "1"})],
     [("Deployment validation", 'spec.template.spec.containers[0].resources.requests: Invalid value: "2": '
                                "must be less than or equal to cpu limit of 1")]),
    ([container(limits={"cpu": "3000m"})], [("LimitRange/l", "maximum cpu usage per Container is 2, but limit is 3")]),
    ([container(limits={"cpu": "3"}), container("d", limits={"memory": "5Gi"}), container("e", limits={"cpu": "2"})],
     [("LimitRange/l", "[maximum cpu usage per Container is 2, but limit is 3, "
                       "maximum memory usage per Container is 4Gi, but limit is 5Gi]")]),
])
def test_requests_above_limits_are_invalid_and_limits_above_the_max_refused(containers, expected):
    assert pod_denials(make(TENANT_LIMITS), workload(containers=containers)) == expected


def test_a_config_map_over_one_mebibyte_is_invalid():
    """Its values count, not its keys, binaryData decoded: 1 MiB passes, a byte more is refused
    (a two-byte character counts two)."""
    mebibyte = 1024 * 1024

    def config_map(**fields) -> dict:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, **fields}

    cluster = make()
    full = config_map(data={"k" * 200: "a" * (mebibyte - 8)}, binaryData={"raw": base64.b64encode(b"\0" * 8).decode()})
    assert denials(cluster, full) == []
    assert denials(cluster, config_map(data={"a": "a" * (mebibyte - 1), "b": "\u00e9"})) == [
        ("validation", "ConfigMap validation", "[]: Too long: may not be more than 1048576 bytes")]


def test_the_limit_range_min_max_and_claims():
    cluster = make(limit_range({"type": "Container", "min": {"cpu": "100m"}}, {"type": "PersistentVolumeClaim", "max": {"storage": "20Gi"}}))
    assert pod_denials(cluster, workload(init=[container("i", requests={"cpu": "50m"})], containers=[container(requests={"cpu": "100m"})])) == [
        ("LimitRange/l", "minimum cpu usage per Container is 100m, but request is 50m")]
    assert pod_denials(cluster, workload(containers=[container(requests={"cpu": "100m"})])) == []
    assert pod_denials(make(limit_range({"type": "Container", "max": {"cpu": "2"}})), workload("Pod")) == []  # the max is the default limit
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "30Gi"}}}}
    assert pod_denials(cluster, claim) == [("LimitRange/l", "maximum storage usage per PersistentVolumeClaim is 20Gi, but request is 30Gi")]
    claim["spec"]["resources"]["requests"]["storage"] = "20Gi"
    assert pod_denials(cluster, claim) == []
    stateful = workload("StatefulSet", containers=[container(requests={"cpu": "100m"})])
    stateful["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "21Gi"}}}}]
    assert pod_denials(cluster, stateful) == [("LimitRange/l", "maximum storage usage per PersistentVolumeClaim is 20Gi, but request is 21Gi")]


# Quotas: what pods and claims count -------------------------------------------------------------


def quota_messages(cluster: Cluster, *objects: dict) -> list[str]:
    return [d.message for _, d in cluster.quota_denials([cluster.defaulted(o, "shop") for o in objects], "shop")]


def test_limits_alone_count_as_requests_against_the_quota():
    cluster = make(quota({"requests.cpu": "2"}), TENANT_LIMITS)
    assert quota_messages(cluster, workload(replicas=2, containers=[container(limits={"cpu": "1"})])) == []
    assert quota_messages(cluster, workload(replicas=3, containers=[container(limits={"cpu": "1"})])) == [
        "exceeded quota: q, requested: requests.cpu=1, used: requests.cpu=2, limited: requests.cpu=2"]


def test_a_pod_counts_its_largest_init_container_when_more_than_its_containers():
    cluster = make(quota({"requests.cpu": "1", "requests.memory": "1Gi"}))
    small_init = workload(containers=[container(requests={"cpu": "300m"}), container("d", requests={"cpu": "300m"})],
                          init=[container("i", requests={"cpu": "500m"})])
    assert quota_messages(cluster, small_init) == []
    big_init = workload(init=[container("i", requests={"cpu": "1500m", "memory": "2Gi"})])
    assert quota_messages(cluster, big_init) == [
        "exceeded quota: q, requested: requests.cpu=1500m,requests.memory=2Gi, used: requests.cpu=0,requests.memory=0, "
        "limited: requests.cpu=1,requests.memory=1Gi"]


def test_sidecars_count_with_the_containers_and_during_later_init_containers():
    pod = {"containers": [container(requests={"cpu": "100m"})],
           "initContainers": [container("sidecar", requests={"cpu": "200m"}, restartPolicy="Always"),
                              container("migrate", requests={"cpu": "250m"})]}
    assert pod_usage(pod)["requests.cpu"] == Fraction(450, 1000)  # migrate runs beside the sidecar
    pod["initContainers"][1]["resources"]["requests"]["cpu"] = "50m"
    assert pod_usage(pod)["requests.cpu"] == Fraction(300, 1000)  # the sidecar runs beside the container


def stateful_set(replicas: int, storage: str, storage_class: str | None = None) -> dict:
    stateful = workload("StatefulSet", replicas=replicas)
    claim_spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}
    stateful["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"},
                                                "spec": claim_spec | ({"storageClassName": storage_class} if storage_class else {})}]
    return stateful


def test_stateful_set_claims_count_per_replica_and_per_storage_class():
    cluster = make(quota({"requests.storage": "20Gi", "persistentvolumeclaims": "5"}))
    assert quota_messages(cluster, stateful_set(2, "10Gi")) == []
    assert quota_messages(cluster, stateful_set(3, "10Gi")) == [
        "exceeded quota: q, requested: requests.storage=10Gi, used: requests.storage=20Gi, limited: requests.storage=20Gi"]
    assert quota_messages(cluster, stateful_set(6, "1Gi")) == [
        "exceeded quota: q, requested: persistentvolumeclaims=1, used: persistentvolumeclaims=5, limited: persistentvolumeclaims=5"]
    gold = make(quota({"gold.storageclass.storage.k8s.io/requests.storage": "15Gi"}))
    assert quota_messages(gold, stateful_set(3, "10Gi", "silver")) == []
    assert quota_messages(gold, stateful_set(3, "10Gi", "gold")) == [
        "exceeded quota: q, requested: gold.storageclass.storage.k8s.io/requests.storage=10Gi, "
        "used: gold.storageclass.storage.k8s.io/requests.storage=10Gi, limited: gold.storageclass.storage.k8s.io/requests.storage=15Gi"]
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "16Gi"}}}}
    assert quota_messages(gold, claim) == [
        "exceeded quota: q, requested: gold.storageclass.storage.k8s.io/requests.storage=16Gi, "
        "used: gold.storageclass.storage.k8s.io/requests.storage=0, limited: gold.storageclass.storage.k8s.io/requests.storage=15Gi"]


def scratch(storage: str) -> list[dict]:
    """A generic ephemeral volume: the ephemeral volume controller creates its claim for each pod."""
    return [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}}}}]


def test_ephemeral_volume_claims_count_per_pod_after_it_and_meet_the_limit_range():
    cluster = make(quota({"requests.storage": "2Gi", "pods": "5"}), limit_range({"type": "PersistentVolumeClaim", "max": {"storage": "20Gi"}}))
    assert quota_messages(cluster, workload(replicas=2, volumes=scratch("1Gi"))) == []
    # the third pod is admitted, then its claim refused; a Pod's own claims likewise
    assert quota_messages(cluster, workload(replicas=3, volumes=scratch("1Gi")), workload("Pod", volumes=scratch("1Gi"))) == [
        "exceeded quota: q, requested: requests.storage=1Gi, used: requests.storage=2Gi, limited: requests.storage=2Gi",
        "exceeded quota: q, requested: requests.storage=1Gi, used: requests.storage=2Gi, limited: requests.storage=2Gi"]
    assert quota_messages(make(quota({"pods": "3"})), workload(replicas=3, volumes=scratch("1Gi")), workload("Pod", volumes=scratch("1Gi"))) == [
        "exceeded quota: q, requested: pods=1, used: pods=3, limited: pods=3"]
    assert pod_denials(cluster, workload(volumes=scratch("21Gi"))) == [
        ("LimitRange/l", "maximum storage usage per PersistentVolumeClaim is 20Gi, but request is 21Gi")]


def test_a_secret_over_one_mebibyte_is_invalid():
    """Its data counts decoded, with stringData merged over it (a key in both counts once, as
    stringData), and a SOPS-encrypted value by its ciphertext: 1 MiB passes, a byte more is refused."""
    mebibyte = 1024 * 1024

    def secret(**fields) -> dict:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "big"}, **fields}

    def sops(plain: str) -> str:
        return f"ENC[AES256_GCM,data:{base64.b64encode(b'x' * len(plain.encode())).decode()},iv:aXY=,tag:dGFn,type:str]"

    cluster = make()
    full = secret(data={"a": base64.b64encode(b"\0" * (mebibyte - 8)).decode(), "b": base64.b64encode(b"\0" * 9).decode()},
                  stringData={"b": "8 bytes!"})
    assert denials(cluster, full) == []
    assert denials(cluster, secret(stringData={"a": sops("a" * (mebibyte - 8)), "b": "8 bytes!"})) == []
    too_long = [("validation", "Secret validation", "data: Too long: may not be more than 1048576 bytes")]
    assert denials(cluster, secret(data={"a": base64.b64encode(b"\0" * mebibyte).decode()}, stringData={"b": "1"})) == too_long
    assert denials(cluster, secret(stringData={"a": sops("a" * mebibyte + "1")})) == too_long


def test_a_deployments_replica_set_and_a_stateful_sets_controller_revision_are_counted():
    cluster = make(quota({"count/replicasets.apps": "1", "count/controllerrevisions.apps": "0"}))
    assert quota_messages(cluster, workload()) == []
    assert quota_messages(cluster, workload(), {**workload(), "metadata": {"name": "second"}}, workload("StatefulSet")) == [
        "exceeded quota: q, requested: count/replicasets.apps=1, used: count/replicasets.apps=1, limited: count/replicasets.apps=1",
        "exceeded quota: q, requested: count/controllerrevisions.apps=1, used: count/controllerrevisions.apps=0, "
        "limited: count/controllerrevisions.apps=0"]


def test_what_a_quota_refuses_counts_nowhere():
    # the third pod is refused by the pod count: the cpu quota is charged for two
    cluster = make(quota({"pods": "2"}), {**quota({"requests.cpu": "10"}), "metadata": {"name": "cpu", "namespace": "shop"}})
    assert quota_messages(cluster, workload(replicas=3, containers=[container(requests={"cpu": "1"})]),
                          workload(replicas=9, containers=[container(requests={"cpu": "1"})])) == [
        "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2",
        "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"]
    cpu = make({**quota({"requests.cpu": "10"}), "metadata": {"name": "cpu", "namespace": "shop"}})
    assert quota_messages(cpu, workload(replicas=11, containers=[container(requests={"cpu": "1"})])) == [
        "exceeded quota: cpu, requested: requests.cpu=1, used: requests.cpu=10, limited: requests.cpu=10"]


# Pod Security Admission ----------------------------------------------------------------------------

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
BASELINE = {"pod-security.kubernetes.io/enforce": "baseline"}
HARDENED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def hardened(**fields) -> dict:
    """A pod spec restricted admits (the app template's settings), with `fields` on top."""
    return {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "x:1", "securityContext": dict(HARDENED)}], **fields}


def in_container(**context) -> dict:
    return hardened(containers=[{"name": "c", "image": "x:1", "securityContext": {**HARDENED, **context}}])


@pytest.mark.parametrize(("labels", "spec", "expected"), [
    (RESTRICTED, hardened(), None),
    ({}, {"hostNetwork": True, "containers": [{"name": "c"}]}, None),  # no label: privileged
    (RESTRICTED, {"containers": [{"name": "nginx", "image": "nginx"}]},
     'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "nginx" must set '
     'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "nginx" must set '
     'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "nginx" must set '
     'securityContext.runAsNonRoot=true), seccompProfile (pod or container "nginx" must set '
     'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'),
    # baseline checks first, restricted ones after, each by ID; restrictedVolumes replaces hostPathVolumes
    (RESTRICTED, hardened(hostNetwork=True, hostPID=True, volumes=[{"name": "root", "hostPath": {"path": "/"}}, {"name": "tmp"}]),
     'violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true, hostPID=true), '
     'restricted volume types (volume "root" uses restricted volume type "hostPath")'),
    (BASELINE, hardened(volumes=[{"name": "root", "hostPath": {"path": "/"}}, {"name": "nfs", "nfs": {"server": "x", "path": "/"}}]),
     'violates PodSecurity "baseline:latest": hostPath volumes (volume "root")'),
    (BASELINE, in_container(privileged=True, capabilities={"add": ["SYS_ADMIN", "CHOWN", "NET_RAW"]}),
     'violates PodSecurity "baseline:latest": non-default capabilities (container "c" must not include "NET_RAW", "SYS_ADMIN" '
     'in securityContext.capabilities.add), privileged (container "c" must not set securityContext.privileged=true)'),
    (RESTRICTED, in_container(capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CHOWN"]}, runAsUser=0),
     'violates PodSecurity "restricted:latest": unrestricted capabilities (container "c" must not include "CHOWN" in '
     'securityContext.capabilities.add), runAsUser=0 (container "c" must not set runAsUser=0)'),
    (BASELINE, hardened(containers=[{"name": "a", "ports": [{"containerPort": 80, "hostPort": 80}]},
                                    {"name": "b", "ports": [{"containerPort": 443, "hostPort": 443}]}]),
     'violates PodSecurity "baseline:latest": hostPort (containers "a", "b" use hostPorts 443, 80)'),
    (BASELINE, in_container(procMount="Unmasked", seccompProfile={"type": "Unconfined"}, appArmorProfile={"type": "Unconfined"},
                            seLinuxOptions={"type": "spc_t", "user": "system_u"}),
     'violates PodSecurity "baseline:latest": forbidden AppArmor profile (container "c" must not set AppArmor profile type to '
     '"Unconfined"), procMount (container "c" must not set securityContext.procMount to "Unmasked"), seLinuxOptions (container "c" '
     'set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set), seccompProfile (container "c" must not set '
     'securityContext.seccompProfile.type to "Unconfined")'),
    (BASELINE, hardened(securityContext={"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}, {"name": "kernel.msgmax", "value": "1"}]}),
     'violates PodSecurity "baseline:latest": forbidden sysctls (kernel.msgmax)'),
    # a version pins the checks: runAsUser from v1.23, net.ipv4.tcp_rmem safe from v1.32
    ({**RESTRICTED, "pod-security.kubernetes.io/enforce-version": "v1.22"}, in_container(runAsUser=0), None),
    ({**BASELINE, "pod-security.kubernetes.io/enforce-version": "v1.31"},
     hardened(securityContext={"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}]}),
     'violates PodSecurity "baseline:v1.31": forbidden sysctls (net.ipv4.tcp_rmem)'),
    # an invalid level fails closed
    ({"pod-security.kubernetes.io/enforce": "strict"}, {"containers": [{"name": "c", "securityContext": HARDENED}]},
     'violates PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
     'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'),
])
def test_pod_security_standards(labels, spec, expected):
    assert podsecurity.violation(labels, {}, spec) == expected


def test_pod_security_refuses_a_workloads_pods_where_the_namespace_enforces_it():
    cluster = Cluster([*ADMIN, namespace("shop", RESTRICTED), namespace("other")], crds.load_bundle())
    privileged = workload(hostNetwork=True, containers=[{"name": "c", "image": "x:1", "securityContext": {**HARDENED, "privileged": True}}],
                          securityContext=hardened()["securityContext"])
    assert denials(cluster, privileged) == [("podsecurity", "PodSecurity", 'violates PodSecurity "restricted:latest": host namespaces '
                                             '(hostNetwork=true), privileged (container "c" must not set securityContext.privileged=true)')]
    assert denials(cluster, privileged, ns="other") == []
    assert denials(cluster, workload(**hardened())) == []
    annotated = workload(**hardened())
    annotated["spec"]["template"]["metadata"]["annotations"] = {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}
    assert denials(cluster, annotated) == [("podsecurity", "PodSecurity", 'violates PodSecurity "restricted:latest": forbidden '
                                            'AppArmor profile (annotation must not set AppArmor profile type to '
                                            '"container.apparmor.security.beta.kubernetes.io/c="unconfined"")')]


def test_a_yaml_number_is_a_quantity_and_a_word_is_refused_before_admission():
    cluster = make(TENANT_LIMITS, quota({"limits.cpu": "2"}))
    assert quota_messages(cluster, workload(replicas=5, containers=[container(limits={"cpu": 0.5})])) == [
        "exceeded quota: q, requested: limits.cpu=500m, used: limits.cpu=2, limited: limits.cpu=2"]
    broken = workload(containers=[container(limits={"cpu": "lots"})])
    assert denials(cluster, broken) == [
        ("validation", "Deployment validation", 'Deployment in version "v1" cannot be handled as a Deployment: quantities '
                                                "must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
