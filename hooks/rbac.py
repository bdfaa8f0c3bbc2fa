"""Kubernetes RBAC, offline: would this identity be allowed this verb on this resource?

The cluster's roles are every ClusterRole Kubernetes' bootstrap policy creates (`admin`, `edit`,
`view` and the roles that aggregate into them, `cluster-admin`, `system:node`, the
`system:controller:*` roles…; hooks/data/k8s-roles.json, from kubernetes/kubernetes) plus every
ClusterRole, Role, RoleBinding and ClusterRoleBinding a repository renders. Its bindings are those
of the repository plus the bootstrap ClusterRoleBindings to the groups every identity of a kind is
in (`system:authenticated`: `system:basic-user`, `system:discovery`, `system:public-info-viewer`;
`system:serviceaccounts`: `system:service-account-issuer-discovery`), so a tenant holds what every
authenticated identity holds.
ClusterRole aggregation is resolved as the aggregation controller does: a ClusterRole with an
aggregationRule holds the rules of every ClusterRole whose labels match one of its selectors,
transitively (`view` into `edit` into `admin`).

Role and RoleBinding writes also pass the API server's escalation check (`escalation`): an
identity may only grant what it already holds in the namespace (non-resource URLs included: a
role granting `/metrics` may be bound only by who holds `/metrics`), unless it may `escalate` the
Role or `bind` the role a binding refers to.

Not modelled: the escalation check on ClusterRole and ClusterRoleBinding writes (plain RBAC
already refuses them to tenants), requests to non-resource URLs (only the escalation check weighs
them), the bootstrap bindings of the control plane's own users and groups (`system:masters`,
`system:nodes`, `system:kube-scheduler`…: no tenant is one of them), and roles that charts create
at install time (they are not in the repository; the tenant role aggregates nothing, so they cannot
reach tenants).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import NamedTuple

RBAC_GROUP = "rbac.authorization.k8s.io"

# kind -> (API group, resource) of the built-in kinds an app or platform repository holds.
# Custom kinds take theirs from the CRD bundle (hooks.crds).
CORE_RESOURCES = {
    "ConfigMap": ("", "configmaps"), "Secret": ("", "secrets"), "Service": ("", "services"),
    "ServiceAccount": ("", "serviceaccounts"), "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "Pod": ("", "pods"), "ReplicationController": ("", "replicationcontrollers"),
    "Endpoints": ("", "endpoints"), "Event": ("", "events"), "LimitRange": ("", "limitranges"),
    "ResourceQuota": ("", "resourcequotas"), "Namespace": ("", "namespaces"), "Node": ("", "nodes"),
    "PersistentVolume": ("", "persistentvolumes"),
    "Deployment": ("apps", "deployments"), "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"), "ReplicaSet": ("apps", "replicasets"),
    "Job": ("batch", "jobs"), "CronJob": ("batch", "cronjobs"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"), "Ingress": ("networking.k8s.io", "ingresses"),
    "IngressClass": ("networking.k8s.io", "ingressclasses"),
    "Role": ("rbac.authorization.k8s.io", "roles"), "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
    "ClusterRole": ("rbac.authorization.k8s.io", "clusterroles"),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io", "clusterrolebindings"),
    "PriorityClass": ("scheduling.k8s.io", "priorityclasses"), "StorageClass": ("storage.k8s.io", "storageclasses"),
    "CustomResourceDefinition": ("apiextensions.k8s.io", "customresourcedefinitions"),
    "ValidatingAdmissionPolicy": ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
    "ValidatingAdmissionPolicyBinding": ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
    "ValidatingWebhookConfiguration": ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    "MutatingWebhookConfiguration": ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    "Lease": ("coordination.k8s.io", "leases"),
}


@dataclass(frozen=True)
class Identity:
    """Who sends a request: the user name and groups the authenticator gives it."""

    username: str
    groups: tuple[str, ...] = ()


def service_account(namespace: str, name: str) -> Identity:
    return Identity(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) against labels; {} matches all."""
    selector, labels = selector or {}, labels or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


@lru_cache(maxsize=1)
def _bootstrap_entries() -> tuple[dict, ...]:
    return tuple(json.loads(resources.files("hooks").joinpath("data/k8s-roles.json").read_text()))


def builtin_roles() -> tuple[dict, ...]:
    """Kubernetes' bootstrap ClusterRoles as ClusterRole objects (hooks/data/k8s-roles.json)."""
    return tuple(
        {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole",
         "metadata": {"name": e["name"], "labels": e.get("labels") or {}},
         **({"aggregationRule": e["aggregationRule"]} if e.get("aggregationRule") else {}), "rules": e["rules"]}
        for e in _bootstrap_entries()
    )


def builtin_bindings() -> tuple[dict, ...]:
    """The bootstrap ClusterRoleBindings of those roles to groups every identity of a kind is in
    (`system:authenticated`, `system:serviceaccounts`…), as ClusterRoleBinding objects."""
    return tuple(
        {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": e["name"]},
         "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": e["name"]},
         "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group} for group in e["boundToGroups"]]}
        for e in _bootstrap_entries() if e.get("boundToGroups")
    )


def _rule_allows(rule: dict, verb: str, group: str, resource: str, name: str) -> bool:
    """Whether a rule grants a request, as RBAC matches them (k8s.io/kubernetes pkg/apis/rbac/v1
    RuleAllows). `resource` is "resource" or "resource/subresource"; `name` is "" when the request
    names no object (a plain create), which a rule listing resourceNames never grants."""
    def has(field: str, value: str) -> bool:
        listed = rule.get(field) or []
        return "*" in listed or value in listed

    if not (has("verbs", verb) and has("apiGroups", group)):
        return False
    listed = rule.get("resources") or []
    _, _, sub = resource.partition("/")
    # `*/log` stands for every resource's log; `pods/*` is no wildcard, only a subresource named `*`
    if not ("*" in listed or resource in listed or (sub and f"*/{sub}" in listed)):
        return False
    names = rule.get("resourceNames") or []
    return not names or name in names


class Atom(NamedTuple):
    """A rule of one API group, resource, verb and resource name ("": any name), or of one
    non-resource URL (`url`, the other fields but the verb empty) and verb."""

    group: str
    resource: str
    verb: str
    name: str
    url: str = ""


def _atoms(rule: dict) -> list[Atom]:
    """A rule broken into atoms, as the escalation check does (component-helpers BreakdownRule)."""
    return [Atom(group, resource, verb, name)
            for group in rule.get("apiGroups") or [] for resource in rule.get("resources") or []
            for verb in rule.get("verbs") or [] for name in rule.get("resourceNames") or [""]] + [
        Atom("", "", verb, "", url) for url in rule.get("nonResourceURLs") or [] for verb in rule.get("verbs") or []]


def _covers(owner: dict, atom: Atom) -> bool:
    """Whether a held rule covers an atom (component-helpers ruleCovers): as a request would be
    granted for a resource atom; for a URL, the same URL or a held `prefix*` (`*`: every URL)."""
    if not atom.url:
        return _rule_allows(owner, atom.verb, atom.group, atom.resource, atom.name)
    verbs = owner.get("verbs") or []
    return ("*" in verbs or atom.verb in verbs) and any(
        held == atom.url or (held.endswith("*") and atom.url.startswith(held.rstrip("*")))
        for held in owner.get("nonResourceURLs") or [])


def _compact(atoms: list[Atom]) -> list[str]:
    """Atoms as the API server lists missing rights: verbs merged per group, resource and name
    (CompactRules; a URL's atoms stay one per verb), each in PolicyRule's compact form
    (CompactString), sorted, once each."""
    verbs: dict[tuple[str, str, str], list[str]] = {}
    for atom in atoms:
        if atom.url:
            continue
        merged = verbs.setdefault((atom.group, atom.resource, atom.name), [])
        if atom.verb not in merged:
            merged.append(atom.verb)

    def quoted(values: list[str]) -> str:
        return "[" + " ".join(json.dumps(value) for value in values) + "]"

    return sorted({f"{{APIGroups:{quoted([group])}, Resources:{quoted([resource])}, "
                   + (f"ResourceNames:{quoted([name])}, " if name else "") + f"Verbs:{quoted(listed)}}}"
                   for (group, resource, name), listed in verbs.items()}
                  | {f"{{NonResourceURLs:{quoted([atom.url])}, Verbs:{quoted([atom.verb])}}}" for atom in atoms if atom.url})


class Authorizer:
    """The RBAC decisions of a cluster that holds the bootstrap roles and bindings and the given objects."""

    def __init__(self, objects: list[dict]) -> None:
        cluster_roles: dict[str, dict] = {}
        self.roles: dict[tuple[str, str], list[dict]] = {}
        self.bindings: list[tuple[str | None, dict, list[dict]]] = []  # (namespace or None, roleRef, subjects)
        for obj in [*builtin_roles(), *builtin_bindings(), *objects]:
            kind, meta = obj.get("kind"), obj.get("metadata") or {}
            if kind == "ClusterRole":
                cluster_roles[meta.get("name")] = obj
            elif kind == "Role":
                self.roles[(meta.get("namespace", ""), meta.get("name"))] = obj.get("rules") or []
            elif kind in ("RoleBinding", "ClusterRoleBinding"):
                namespace = meta.get("namespace", "") if kind == "RoleBinding" else None
                self.bindings.append((namespace, obj.get("roleRef") or {}, obj.get("subjects") or []))
        self.cluster_roles = aggregate(cluster_roles)

    def rules_of(self, role_ref: dict, namespace: str | None) -> list[dict] | None:
        """The rules of the role a binding refers to; None when there is no such role."""
        if role_ref.get("kind") == "ClusterRole":
            return self.cluster_roles.get(role_ref.get("name"))
        return self.roles.get((namespace or "", role_ref.get("name")))

    def rules_for(self, who: Identity, namespace: str | None) -> list[dict]:
        """Every rule `who` holds in the namespace (None: at the cluster scope), cluster-wide bindings included."""
        return [
            rule
            for bound_in, role_ref, subjects in self.bindings
            if (bound_in is None or bound_in == namespace) and any(_subject_is(s, who, bound_in) for s in subjects)
            for rule in self.rules_of(role_ref, bound_in) or []
        ]

    def allows(self, who: Identity, verb: str, group: str, resource: str, namespace: str | None, name: str = "") -> bool:
        """Whether any binding that names `who` grants the verb (namespace None: cluster-scoped)."""
        return any(_rule_allows(rule, verb, group, resource, name) for rule in self.rules_for(who, namespace))

    def ungranted(self, who: Identity, rules: list[dict], namespace: str) -> list[Atom]:
        """The atoms of `rules` that `who` does not hold in the namespace (component-helpers Covers).
        A resource atom is held when a held rule would grant it as a request: a held `*` covers
        anything, an atom's `*` only a held `*`, and held resourceNames only those names."""
        held = self.rules_for(who, namespace)
        return [atom for rule in rules for atom in _atoms(rule) if not any(_covers(owner, atom) for owner in held)]

    def escalation(self, who: Identity, obj: dict, namespace: str,
                   applied_roles: dict[str, list[dict]] | None = None) -> str | None:
        """Why the API server would refuse `who` writing this Role or RoleBinding into the namespace
        (None: not refused, or not such an object), in its words where it has them.

        A Role may hold only what `who` holds, unless `who` may `escalate` it; a RoleBinding may
        refer only to a role whose every rule `who` holds, unless `who` may `bind` that role. To
        compare, the API server reads the role: a binding to a role that does not exist yet is
        refused. Flux dry-runs every object of an app's stage before applying any, so a Role and
        its RoleBinding in one app apply only where Flux stages Roles first (`applied_roles`: the
        app's Roles, name -> rules; fluxcd/kustomize-controller#748)."""
        if not str(obj.get("apiVersion", "")).startswith(f"{RBAC_GROUP}/"):
            return None
        kind, name = obj.get("kind"), str((obj.get("metadata") or {}).get("name", ""))
        if kind == "Role" and not self.allows(who, "escalate", RBAC_GROUP, "roles", namespace, name):
            return self._not_held(who, obj.get("rules") or [], namespace, f'roles.{RBAC_GROUP} "{name}"')
        if kind != "RoleBinding":
            return None
        role_ref = obj.get("roleRef") or {}
        resource = "clusterroles" if role_ref.get("kind") == "ClusterRole" else "roles"
        if self.allows(who, "bind", RBAC_GROUP, resource, namespace, str(role_ref.get("name", ""))):
            return None
        rules = self.rules_of(role_ref, namespace)
        if rules is None and role_ref.get("kind") == "Role":
            rules = (applied_roles or {}).get(str(role_ref.get("name", "")))
        if rules is None:
            return (f'{resource}.{RBAC_GROUP} "{role_ref.get("name")}" not found (a role of the same app is not there '
                    f"yet when Flux dry-runs the app's objects)")
        return self._not_held(who, rules, namespace, f'rolebindings.{RBAC_GROUP} "{name}"')

    def _not_held(self, who: Identity, rules: list[dict], namespace: str, what: str) -> str | None:
        missing = _compact(self.ungranted(who, rules, namespace))
        if not missing:
            return None
        more = f"; and {len(missing) - 3} more" if len(missing) > 3 else ""
        groups = " ".join(json.dumps(group) for group in who.groups)
        return (f'{what} is forbidden: user "{who.username}" (groups=[{groups}]) is attempting to grant RBAC '
                f'permissions not currently held: {"; ".join(missing[:3])}{more}')


def _subject_is(subject: dict, who: Identity, binding_namespace: str | None) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == who.username
    if kind == "Group":
        return name in who.groups
    if kind == "ServiceAccount":
        return who.username == f"system:serviceaccount:{subject.get('namespace') or binding_namespace}:{name}"
    return False


def aggregate(cluster_roles: dict[str, dict]) -> dict[str, list[dict]]:
    """The effective rules of every ClusterRole, aggregation resolved to a fixed point."""
    rules = {name: list(role.get("rules") or []) for name, role in cluster_roles.items()}
    for _ in range(len(cluster_roles) + 1):
        changed = False
        for name, role in cluster_roles.items():
            selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors")
            if not selectors:
                continue
            gathered = [
                rule
                for other, other_role in cluster_roles.items()
                if other != name and any(selector_matches(s, (other_role.get("metadata") or {}).get("labels")) for s in selectors)
                for rule in rules[other]
            ]
            if gathered != rules[name]:
                rules[name], changed = gathered, True
        if not changed:
            break
    return rules
