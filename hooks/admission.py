"""What a cluster set up by a platform repository would answer to a tenant's objects, offline.

No API server can run here, so the check models the three gates an object passes on its way in:

1. **RBAC** (hooks.rbac): may the identity `create` and `patch` (Flux applies server-side) this
   resource in this namespace?
2. **Admission policies**: every ValidatingAdmissionPolicy of the platform whose binding and
   match rules select the request, evaluated as the API server does (hooks.cel): the object is
   first defaulted (CRD schema defaults; built-in defaults the policies look at: Service type,
   workload replicas, the tolerations DefaultTolerationSeconds adds to pods, LimitRange
   container defaults) and bound as the plain map the API server passes (pruned; property names
   never escaped, unlike in CRD rules: here `x.__namespace__` is a key no object has), then matchConditions, variables and validations run with `object`,
   `oldObject`, `request`, `namespaceObject` and `variables` bound. `params` and `authorizer` are
   not modelled (the platform's policies use neither).
3. **ResourceQuota**: what the tenant's objects would consume (pods and their requests and limits
   times replicas, Services by type, storage, object counts), against every quota of the namespace.

Each refusal is a Denial naming the gate and the rule, in the API server's words where it has them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from fractions import Fraction

from hooks import cel, celrules
from hooks.crds import KindSchema
from hooks.quantity import parse_quantity
from hooks.rbac import CORE_RESOURCES, Authorizer, Identity, selector_matches, service_account
from hooks.validate import CLUSTER_SCOPED_CORE_KINDS

# DefaultTolerationSeconds admission: every pod tolerates these for 300 s unless it says otherwise.
DEFAULT_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
)
_WORKLOADS = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController", "DaemonSet", "Job", "CronJob", "Pod"}


@dataclass(frozen=True)
class Denial:
    """One gate refusing an object: rbac, policy (source = the policy) or quota (the quota)."""

    gate: str
    source: str
    message: str


def _name(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _identity(obj: dict, namespace: str) -> tuple[str, str, str, str]:
    """What the API server tells objects apart by: group, kind, namespace and name."""
    return str(obj.get("apiVersion", "")).rpartition("/")[0], str(obj.get("kind", "")), namespace, _name(obj)


def pod_spec(obj: dict) -> dict | None:
    """The pod spec of a workload (its template), or of a Pod; None for other kinds."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    kind = obj.get("kind")
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec") or {})
    if kind in _WORKLOADS:
        return (spec.get("template") or {}).get("spec")
    return None


def replicas(obj: dict) -> int:
    """How many pods a workload runs (DaemonSets: one per node, counted as one)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") in ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"):
        return int(spec.get("replicas", 1))
    if obj.get("kind") == "Job":
        return int(spec.get("parallelism", 1))
    return 1


class Cluster:
    """A cluster as a platform repository sets it up: roles, bindings, tenant namespaces,
    admission policies, quotas and limit ranges (the platform's built objects)."""

    def __init__(self, objects: list[dict], custom: dict[tuple[str, str], KindSchema], roles_first: bool = False) -> None:
        self.custom = custom
        self.roles_first = roles_first  # Flux applies an app's Roles before the rest (hooks.clusters.stages_roles)
        self.authorizer = Authorizer(objects)
        self.namespaces: dict[str, dict] = {}
        self.policies: dict[str, dict] = {}
        self.policy_bindings: list[dict] = []
        self.quotas: dict[str, list[dict]] = {}
        self.limit_ranges: dict[str, list[dict]] = {}
        self.flux_kustomizations: dict[str, dict] = {}
        self._platform_owned: dict[tuple[str, str, str, str], dict] = {}
        for obj in objects:
            kind, meta = obj.get("kind"), obj.get("metadata") or {}
            if meta.get("namespace"):
                self._platform_owned[_identity(obj, meta["namespace"])] = obj
            if kind == "Namespace":
                self.namespaces[meta.get("name")] = obj
            elif kind == "ValidatingAdmissionPolicy":
                self.policies[meta.get("name")] = obj
            elif kind == "ValidatingAdmissionPolicyBinding":
                self.policy_bindings.append(obj)
            elif kind == "ResourceQuota":
                self.quotas.setdefault(meta.get("namespace", ""), []).append(obj)
            elif kind == "LimitRange":
                self.limit_ranges.setdefault(meta.get("namespace", ""), []).append(obj)
            elif kind == "Kustomization" and str(obj.get("apiVersion", "")).startswith("kustomize.toolkit.fluxcd.io/"):
                self.flux_kustomizations[meta.get("name")] = obj

    # Who applies an app, and where ------------------------------------------------------------

    def tenant(self, app: str) -> tuple[Identity, str] | None:
        """The identity and namespace Flux applies app `app` with (its Kustomization in flux-system)."""
        kustomization = self.flux_kustomizations.get(app)
        if kustomization is None:
            return None
        spec = kustomization.get("spec") or {}
        namespace = spec.get("targetNamespace") or (kustomization.get("metadata") or {}).get("namespace", "")
        account = spec.get("serviceAccountName") or "default"
        return service_account((kustomization.get("metadata") or {}).get("namespace", "flux-system"), account), namespace

    def namespace_object(self, namespace: str) -> dict:
        """The Namespace as the API server holds it (the kubernetes.io/metadata.name label included)."""
        obj = copy.deepcopy(self.namespaces.get(namespace) or {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = namespace
        return obj

    def existing(self, obj: dict, namespace: str) -> dict | None:
        """The platform's own object that applying `obj` in `namespace` would change, as the API
        server holds it: the tenant's apply is then an UPDATE of it, not a CREATE."""
        owned = self._platform_owned.get(_identity(obj, namespace))
        return None if owned is None else self.defaulted(owned, namespace)

    def resource_of(self, obj: dict) -> tuple[str, str, str, bool]:
        """(group, version, resource, namespaced) of an object's kind."""
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        group, _, version = api_version.rpartition("/")
        schema = self.custom.get((api_version, kind))
        if schema is not None:
            return group, version, schema.plural or kind.lower() + "s", schema.namespaced
        resource = CORE_RESOURCES.get(kind, (group, kind.lower() + "s"))[1]
        return group, version, resource, kind not in CLUSTER_SCOPED_CORE_KINDS

    # Defaulting ---------------------------------------------------------------------------------

    def defaulted(self, obj: dict, namespace: str) -> dict:
        """The object as the validating admission stage sees it: defaults and mutations applied."""
        obj = copy.deepcopy(obj)
        schema = self.custom.get((obj.get("apiVersion"), obj.get("kind")))
        if schema is not None:
            obj = celrules.apply_defaults(schema.structural, obj)
        if self.resource_of(obj)[3]:
            obj.setdefault("metadata", {})["namespace"] = namespace
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else None
        if spec is None:
            return obj
        kind = obj.get("kind")
        if kind == "Service":
            spec.setdefault("type", "ClusterIP")
        if kind in ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"):
            spec.setdefault("replicas", 1)
        pod = pod_spec(obj)
        if isinstance(pod, dict):
            self._limit_range_defaults(pod, namespace)
            if kind == "Pod":
                present = {(t.get("key"), t.get("effect")) for t in pod.get("tolerations") or []}
                extra = [dict(t) for t in DEFAULT_TOLERATIONS if (t["key"], t["effect"]) not in present]
                if extra:
                    pod["tolerations"] = [*(pod.get("tolerations") or []), *extra]
        return obj

    def _limit_range_defaults(self, pod: dict, namespace: str) -> None:
        for limit_range in self.limit_ranges.get(namespace, []):
            for item in (limit_range.get("spec") or {}).get("limits") or []:
                if item.get("type") != "Container":
                    continue
                for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
                    res = container.setdefault("resources", {})
                    for field, default in (("requests", item.get("defaultRequest") or item.get("default")),
                                           ("limits", item.get("default"))):
                        for resource, value in (default or {}).items():
                            res.setdefault(field, {}).setdefault(resource, value)

    # The three gates ----------------------------------------------------------------------------

    def rbac_denials(self, obj: dict, who: Identity, namespace: str, applied_roles: dict[str, list[dict]] | None = None) -> list[Denial]:
        """RBAC's refusals, the escalation check included; `applied_roles` (name -> rules) are the
        app's own Roles, already on the cluster when a RoleBinding is applied."""
        group, _, resource, namespaced = self.resource_of(obj)
        where = namespace if namespaced else None
        # Flux applies server-side: a PATCH to the object's name, authorized as `create` of that
        # name when the object is new, so resourceNames rules count for both verbs
        missing = [verb for verb in ("create", "patch")
                   if not self.authorizer.allows(who, verb, group, resource, where, _name(obj))]
        if not missing:
            # only a request RBAC lets through reaches the Role/RoleBinding storage's escalation check
            refusal = self.authorizer.escalation(who, obj, namespace, applied_roles) if namespaced else None
            return [Denial("rbac", "RBAC", refusal)] if refusal else []
        scope = f'in the namespace "{namespace}"' if namespaced else "at the cluster scope"
        resource_name = f"{resource}.{group}" if group else resource
        return [Denial("rbac", "RBAC", f'{who.username} cannot {" or ".join(missing)} resource "{resource_name}" '
                                       f'in API group "{group}" {scope}')]

    def policy_denials(self, obj: dict | None, who: Identity, namespace: str,
                       operation: str = "CREATE", old: dict | None = None) -> list[Denial]:
        subject = obj if obj is not None else old
        group, version, resource, namespaced = self.resource_of(subject)
        ns_obj = self.namespace_object(namespace) if namespaced else None
        request = {
            "operation": operation,
            "kind": {"group": group, "version": version, "kind": subject.get("kind")},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": _name(subject), "namespace": namespace if namespaced else "",
            "userInfo": {"username": who.username, "groups": list(who.groups)},
        }
        bindings = {
            "object": self._as_cel(obj), "oldObject": self._as_cel(old), "request": request,
            "namespaceObject": ns_obj, "params": None,
        }
        denials = []
        for binding in self.policy_bindings:
            spec = binding.get("spec") or {}
            policy = self.policies.get(spec.get("policyName"))
            if policy is None or "Deny" not in (spec.get("validationActions") or ["Deny"]):
                continue
            if not (_matches(spec.get("matchResources"), request, ns_obj, subject, empty_matches=True)
                    and _matches((policy.get("spec") or {}).get("matchConstraints"), request, ns_obj, subject)):
                continue
            denials += _evaluate_policy(policy, bindings)
        return denials

    def _as_cel(self, obj: dict | None) -> object:
        if obj is None:
            return None
        schema = self.custom.get((obj.get("apiVersion"), obj.get("kind")))
        if schema is not None:
            return celrules.as_cel(schema.structural, obj, escape=False)
        return obj

    def quota_denials(self, objects: list[dict], namespace: str) -> list[tuple[dict, Denial]]:
        """The objects that would take the namespace over one of its quotas (each object in order)."""
        denials = []
        for quota in self.quotas.get(namespace, []):
            spec = quota.get("spec") or {}
            hard = {key: parse_quantity(value) for key, value in (spec.get("hard") or {}).items()}
            used = {key: Fraction(0) for key in hard}
            for obj in objects:
                if not _in_scope(spec, obj):
                    continue
                asked = {key: value for key, value in self.usage(obj).items() if key in hard and value}
                over = [key for key, value in asked.items() if used[key] + value > hard[key]]
                for key, value in asked.items():
                    used[key] += value
                if over:
                    name = _name(quota)
                    detail = ", ".join(f"{key}={_fmt(asked[key])}" for key in over)
                    limits = ", ".join(f"{key}={_fmt(hard[key])}" for key in over)
                    usage = ", ".join(f"{key}={_fmt(used[key] - asked[key])}" for key in over)
                    denials.append((obj, Denial("quota", f"ResourceQuota/{name}",
                                                f"exceeded quota: {name}, requested: {detail}, used: {usage}, limited: {limits}")))
        return denials

    def usage(self, obj: dict) -> dict[str, Fraction]:
        """What one (defaulted) object counts against quota keys."""
        group, _, resource, _ = self.resource_of(obj)
        count_key = f"count/{resource}.{group}" if group else f"count/{resource}"
        use: dict[str, Fraction] = {count_key: Fraction(1)}
        kind, spec = obj.get("kind"), obj.get("spec") or {}
        if kind in ("Service", "Secret", "ConfigMap", "PersistentVolumeClaim", "ReplicationController", "ResourceQuota"):
            use[resource] = Fraction(1)
        if kind == "Service":
            ports = len(spec.get("ports") or [])
            if spec.get("type") == "LoadBalancer":
                use["services.loadbalancers"] = Fraction(1)
            if spec.get("type") in ("LoadBalancer", "NodePort"):
                use["services.nodeports"] = Fraction(ports)
        if kind == "PersistentVolumeClaim":
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            if storage is not None:
                use["requests.storage"] = parse_quantity(storage)
        pod = pod_spec(obj)
        if isinstance(pod, dict):
            count = Fraction(replicas(obj))
            use["pods"] = count
            for container in pod.get("containers") or []:
                res = container.get("resources") or {}
                for field in ("requests", "limits"):
                    for name, value in (res.get(field) or {}).items():
                        key = f"{field}.{name}"
                        use[key] = use.get(key, Fraction(0)) + count * parse_quantity(value)
                        if field == "requests" and name in ("cpu", "memory", "ephemeral-storage"):
                            use[name] = use.get(name, Fraction(0)) + count * parse_quantity(value)
        return use


def _fmt(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    milli = value * 1000
    return f"{int(milli)}m" if milli.denominator == 1 else str(float(value))


def _in_scope(quota_spec: dict, obj: dict) -> bool:
    """Whether a (scoped) quota counts this object: PriorityClass scopes count pods of those classes."""
    expressions = (quota_spec.get("scopeSelector") or {}).get("matchExpressions") or []
    if not expressions:
        return True
    pod = pod_spec(obj)
    if not isinstance(pod, dict):
        return False
    for expression in expressions:
        if expression.get("scopeName") != "PriorityClass":
            return False  # other scopes (Terminating, BestEffort…) are not modelled: not counted
        labels = {"priority": pod.get("priorityClassName")} if pod.get("priorityClassName") else {}
        rule = {"key": "priority", "operator": expression.get("operator"), "values": expression.get("values")}
        if not selector_matches({"matchExpressions": [rule]}, labels):
            return False
    return True


def _rule_matches(rule: dict, request: dict) -> bool:
    def has(field: str, value: str) -> bool:
        listed = rule.get(field)
        return listed is None or "*" in listed or value in listed

    # Requests here never name a subresource: `*` and `*/*` match them, `pods/*` (pods'
    # subresources only) does not.
    resources = rule.get("resources") or ["*"]
    return (has("apiGroups", request["resource"]["group"]) and has("apiVersions", request["resource"]["version"])
            and has("operations", request["operation"])
            and bool({"*", "*/*", request["resource"]["resource"]} & set(resources)))


def _matches(constraints: dict | None, request: dict, ns_obj: dict | None, obj: dict, empty_matches: bool = False) -> bool:
    """A policy's matchConstraints or a binding's matchResources against a request."""
    if constraints is None:
        return empty_matches
    rules = constraints.get("resourceRules")
    if rules is not None and not any(_rule_matches(rule, request) for rule in rules):
        return False
    if rules is None and not empty_matches:
        return False
    if any(_rule_matches(rule, request) for rule in constraints.get("excludeResourceRules") or []):
        return False
    if ns_obj is not None and not selector_matches(constraints.get("namespaceSelector"), ns_obj["metadata"].get("labels")):
        return False
    return selector_matches(constraints.get("objectSelector"), (obj.get("metadata") or {}).get("labels"))


def _evaluate_policy(policy: dict, bindings: dict) -> list[Denial]:
    name = _name(policy)
    spec = policy.get("spec") or {}
    fail_closed = spec.get("failurePolicy", "Fail") == "Fail"

    def error(expression: str, problem: Exception) -> list[Denial]:
        if not fail_closed:
            return []
        return [Denial("policy", name, f"expression '{expression.strip()}' resulted in error: {problem}")]

    for condition in spec.get("matchConditions") or []:
        try:
            if cel.evaluate(condition["expression"], bindings) is not True:
                return []
        except cel.CelError as problem:
            return error(condition["expression"], problem)
    variables: dict[str, object] = {}
    scope = {**bindings, "variables": variables}
    for variable in spec.get("variables") or []:
        try:
            variables[variable["name"]] = cel.evaluate(variable["expression"], scope)
        except cel.CelError:
            pass  # evaluated lazily by the API server: only an error where a validation uses it
    denials = []
    for validation in spec.get("validations") or []:
        try:
            passed = cel.evaluate(validation["expression"], scope)
        except cel.CelError as problem:
            denials += error(validation["expression"], problem)
            continue
        if passed is True:
            continue
        message = validation.get("message") or f"failed expression: {validation['expression'].strip()}"
        if validation.get("messageExpression"):
            try:
                message = str(cel.evaluate(validation["messageExpression"], scope))
            except cel.CelError:
                pass
        denials.append(Denial("policy", name, message))
    return denials


def admit(cluster: Cluster, objects: list[dict], who: Identity, namespace: str) -> list[tuple[dict, Denial]]:
    """Every refusal of applying `objects` (one app's build) as `who` into `namespace`. An object
    the platform itself renders there (a baseline NetworkPolicy, the quota) is an UPDATE of the
    platform's; everything else a CREATE. Where Flux applies Roles first, a RoleBinding may
    refer to a Role of the same app."""
    found = []
    defaulted = []
    own_roles = {_name(obj): obj.get("rules") or [] for obj in objects
                 if cluster.roles_first and obj.get("kind") == "Role" and str(obj.get("apiVersion", "")).startswith("rbac.")}
    for obj in objects:
        ready = cluster.defaulted(obj, namespace)
        defaulted.append(ready)
        found += [(obj, d) for d in cluster.rbac_denials(ready, who, namespace, own_roles)]
        old = cluster.existing(ready, namespace)
        found += [(obj, d) for d in cluster.policy_denials(ready, who, namespace, "UPDATE" if old else "CREATE", old)]
    by_id = {id(ready): obj for ready, obj in zip(defaulted, objects)}
    found += [(by_id[id(ready)], denial) for ready, denial in cluster.quota_denials(defaulted, namespace)]
    return found
