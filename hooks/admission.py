"""What a cluster set up by a platform repository would answer to a tenant's objects, offline.

No API server can run here, so the check models the gates an object passes on its way in, and
those the pods and claims it makes its controller create pass:

1. **RBAC** (hooks.rbac): may the identity `create` and `patch` (Flux applies server-side) this
   resource in this namespace?
2. **Admission policies**: every ValidatingAdmissionPolicy of the platform whose binding and
   match rules select the request, evaluated as the API server does (hooks.cel): the object is
   first defaulted (CRD schema defaults; built-in defaults the policies look at: Service type,
   workload replicas, the tolerations DefaultTolerationSeconds adds to pods, a Pod's resources
   defaulted as below) and bound as the plain map the API server passes (pruned; property names
   never escaped, unlike in CRD rules: here `x.__namespace__` is a key no object has; a built-in
   kind's empty lists and maps left out, as its conversion from the Go type does), then
   matchConditions, variables and validations run with `object`, `oldObject`, `request`,
   `namespaceObject` and `variables` bound. An object the platform renders in the namespace is
   an UPDATE of it (`oldObject`), anything else a CREATE. `params` and `authorizer` are not
   modelled (the platform's policies use neither).
3. **Pods and claims** (Kubernetes 1.32): each pod a workload creates (or a Pod) is defaulted as
   the API server does (a limit without a request is also the request; then LimitRanger's
   defaults, `default` for limits, `defaultRequest` else the default limit), validated (no
   request above its limit), held to the LimitRange `min`/`max` per Container (claims: per
   PersistentVolumeClaim) and to the namespace's Pod Security level (hooks.podsecurity).
4. **ResourceQuota**: what the tenant's objects would consume, admitted one at a time: the object,
   then each replica's claims (StatefulSet volumeClaimTemplates), pod (its containers' requests
   and limits, or its largest init container's if more) and the claims of its generic ephemeral
   volumes, Services by type, storage (also per storage class), object counts (a Deployment's
   ReplicaSet and a StatefulSet's ControllerRevision too), against every quota of the namespace.

Each refusal is a Denial naming the gate and the rule, in the API server's words where it has them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from hooks import cel, celrules, podsecurity
from hooks.crds import KindSchema
from hooks.quantity import canonical, format_quantity, is_quantity, parse_quantity
from hooks.rbac import CORE_RESOURCES, RBAC_GROUP, Authorizer, Identity, selector_matches, service_account
from hooks.validate import CLUSTER_SCOPED_CORE_KINDS, DEFAULT_KUBE_VERSION, core_schema, kube_schema_version

# DefaultTolerationSeconds admission: every pod tolerates these for 300 s unless it says otherwise.
DEFAULT_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
)
MAX_PAYLOAD_BYTES = 1024 * 1024  # k8s.io/kubernetes pkg/apis/core MaxSecretSize, also ConfigMaps'
# Where validation reports a payload over it: ConfigMap validation the whole object, Secret validation its data.
_PAYLOAD_PATHS = {"ConfigMap": "[]", "Secret": "data"}
# A value SOPS encrypted: AES-GCM's ciphertext (base64 after `data:`) is as long as the plaintext.
_SOPS_VALUE = re.compile(r"ENC\[AES256_GCM,data:([A-Za-z0-9+/=]*),")
# What a workload's controller stores for its first revision: a ReplicaSet, a ControllerRevision.
_REVISION_KINDS = {"Deployment": "count/replicasets.apps", "StatefulSet": "count/controllerrevisions.apps"}
_WORKLOADS = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController", "DaemonSet", "Job", "CronJob", "Pod"}


@dataclass(frozen=True)
class Denial:
    """One gate refusing an object: rbac, policy (source = the policy), validation, limitrange (the
    LimitRange), podsecurity or quota (the quota)."""

    gate: str
    source: str
    message: str


def _name(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _identity(obj: dict, namespace: str) -> tuple[str, str, str, str]:
    """What the API server tells objects apart by: group, kind, namespace and name."""
    return str(obj.get("apiVersion", "")).rpartition("/")[0], str(obj.get("kind", "")), namespace, _name(obj)


def pod_template(obj: dict) -> dict | None:
    """The pod a workload's controller creates (its template: metadata and spec), or a Pod itself;
    None for other kinds."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    kind = obj.get("kind")
    if kind == "Pod":
        return obj
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec") or {})
    template = spec.get("template") if kind in _WORKLOADS else None
    return template if isinstance(template, dict) else None


def pod_spec(obj: dict) -> dict | None:
    """The pod spec of a workload (its template), or of a Pod; None for other kinds."""
    spec = (pod_template(obj) or {}).get("spec")
    return spec if isinstance(spec, dict) else None


def claims(obj: dict) -> list[dict]:
    """The PersistentVolumeClaims applying an object creates: a claim itself, or one per
    volumeClaimTemplate of each StatefulSet replica and one per generic ephemeral volume of each
    pod (listed once here)."""
    return [*_stored_claims(obj), *ephemeral_claims(obj)]


def _stored_claims(obj: dict) -> list[dict]:
    """A claim itself, or a StatefulSet's volumeClaimTemplates (its controller creates them before each pod)."""
    if obj.get("kind") == "PersistentVolumeClaim":
        return [obj]
    if obj.get("kind") == "StatefulSet":
        return [c for c in (obj.get("spec") or {}).get("volumeClaimTemplates") or [] if isinstance(c, dict)]
    return []


def ephemeral_claims(obj: dict) -> list[dict]:
    """The claims the ephemeral volume controller creates for each pod of an object, after the pod:
    one per generic ephemeral volume (`volumes[].ephemeral.volumeClaimTemplate`)."""
    volumes = (pod_spec(obj) or {}).get("volumes") or []
    templates = [(volume.get("ephemeral") or {}).get("volumeClaimTemplate") for volume in volumes if isinstance(volume, dict)]
    return [template for template in templates if isinstance(template, dict)]


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

    def __init__(self, objects: list[dict], custom: dict[tuple[str, str], KindSchema], roles_first: bool = False,
                 kube_version: str = DEFAULT_KUBE_VERSION) -> None:
        self.custom = custom
        self.kube_version = kube_schema_version(kube_version)  # the built-in kinds' schemas (omit_empty)
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
        """The object as the validating admission stage sees it: defaults and mutations applied.
        A Pod's resources are defaulted as in admitted_pod; a workload's template is stored as
        written (LimitRanger mutates pods only)."""
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
        if kind == "Pod":
            self._default_resources(spec, namespace)
            present = {(t.get("key"), t.get("effect")) for t in spec.get("tolerations") or []}
            extra = [dict(t) for t in DEFAULT_TOLERATIONS if (t["key"], t["effect"]) not in present]
            if extra:
                spec["tolerations"] = [*(spec.get("tolerations") or []), *extra]
        return obj

    def admitted_pod(self, obj: dict, namespace: str) -> dict | None:
        """The spec of the pods an object creates (or of a Pod) as the API server admits them;
        None for kinds without pods."""
        spec = pod_spec(obj)
        if spec is None:
            return None
        spec = copy.deepcopy(spec)
        self._default_resources(spec, namespace)
        return spec

    def _default_resources(self, pod: dict, namespace: str) -> None:
        # Pod defaulting (before admission, Pods only): a limit without a request is also the
        # request. Then LimitRanger fills in what is still missing.
        for container in _containers(pod):
            resources = container.get("resources") or {}
            if resources.get("limits"):
                resources["requests"] = {**resources["limits"], **(resources.get("requests") or {})}
                container["resources"] = resources
        self._limit_range_defaults(pod, namespace)

    def _limit_range_defaults(self, pod: dict, namespace: str) -> None:
        # Each LimitRange in turn sets what no earlier one did (LimitRanger's mutation).
        for limit_range in self.limit_ranges.get(namespace, []):
            limits, requests = _container_defaults(limit_range)
            for container in _containers(pod):
                resources = container.get("resources") or {}
                for field, defaults in (("limits", limits), ("requests", requests)):
                    missing = {name: value for name, value in defaults.items() if name not in (resources.get(field) or {})}
                    if missing:
                        resources[field] = {**(resources.get(field) or {}), **missing}
                if resources:
                    container["resources"] = resources

    # RBAC and admission policies -----------------------------------------------------------------

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
        core = core_schema(str(obj.get("apiVersion", "")), str(obj.get("kind", "")), self.kube_version)
        return obj if core is None else omit_empty(*core, obj)

    # What the pods and claims an object creates meet --------------------------------------------
    # A Pod or PersistentVolumeClaim is refused itself; a workload is stored, and its controller's
    # pods and claims are refused instead (the workload never becomes ready): both are reported
    # against the object applied.

    def pod_denials(self, obj: dict, namespace: str) -> list[Denial]:
        """Validation, LimitRanger and Pod Security refusing the pods or claims an object creates
        (validation also a ConfigMap or Secret over its size)."""
        return [*self.validation_denials(obj, namespace), *self.limit_range_denials(obj, namespace),
                *self.pod_security_denials(obj, namespace)]

    def validation_denials(self, obj: dict, namespace: str) -> list[Denial]:
        """Requests above limits, in the API server's words: in a workload's own template (the
        workload is invalid), else in its pods as admitted (a limit the LimitRange defaults can
        be below a request the pod sets). A ConfigMap's data and binaryData together, and a
        Secret's data, hold at most 1 MiB (the API server stores each object in one etcd value)."""
        kind = str(obj.get("kind"))
        if kind in _PAYLOAD_PATHS and _payload_bytes(obj) > MAX_PAYLOAD_BYTES:
            return [Denial("validation", f"{kind} validation",
                           f"{_PAYLOAD_PATHS[kind]}: Too long: may not be more than {MAX_PAYLOAD_BYTES} bytes")]
        template = pod_spec(obj)
        if template is None:
            return []
        if kind != "Pod":
            path = "spec.jobTemplate.spec.template.spec" if kind == "CronJob" else "spec.template.spec"
            if problems := _requests_over_limits(template, path):
                return [Denial("validation", f"{kind} validation", _aggregate(problems))]
        problems = _requests_over_limits(self.admitted_pod(obj, namespace) or {}, "spec")
        return [Denial("validation", "Pod validation", _aggregate(problems))] if problems else []

    def limit_range_denials(self, obj: dict, namespace: str) -> list[Denial]:
        """LimitRanger's refusals: each claim the object creates against the PersistentVolumeClaim
        min and max, its pods (as admitted) against the Container min and max. The first LimitRange
        refusing one names it, as LimitRanger stops there."""
        pod = self.admitted_pod(obj, namespace)
        subjects = [*((claim, _claim_problems) for claim in claims(obj)), *([(pod, _pod_problems)] if pod is not None else [])]
        denials = []
        for subject, problems_of in subjects:
            for limit_range in self.limit_ranges.get(namespace, []):
                if problems := problems_of(limit_range, subject):
                    denials.append(Denial("limitrange", f"LimitRange/{_name(limit_range)}", _aggregate(problems)))
                    break
        return denials

    def pod_security_denials(self, obj: dict, namespace: str) -> list[Denial]:
        """The namespace's Pod Security level refusing the object's pods (hooks.podsecurity)."""
        template = pod_template(obj)
        spec = pod_spec(obj)
        if template is None or spec is None:
            return []
        labels = self.namespace_object(namespace)["metadata"].get("labels") or {}
        message = podsecurity.violation(labels, template.get("metadata") or {}, spec)
        return [Denial("podsecurity", "PodSecurity", message)] if message else []

    def quota_denials(self, objects: list[dict], namespace: str) -> list[tuple[dict, Denial]]:
        """The objects that would take the namespace over one of its quotas. What each creates is
        admitted one at a time (charges), as on the API server: a refusal states what the first
        refused pod or claim asks, what is refused counts nowhere, and a controller gets no further
        than its first refused pod or claim (the next would ask the same)."""
        quotas = [_QuotaUsage(quota) for quota in self.quotas.get(namespace, [])]
        denials = []
        for obj in objects:
            for use, pod in self.charges(obj, namespace):
                counting = [quota for quota in quotas if _in_scope(quota.spec, pod)]
                refused = [denial for quota in counting if (denial := quota.refusal(use)) is not None]
                if refused:
                    denials += [(obj, denial) for denial in refused]
                    break
                for quota in counting:
                    quota.add(use)
        return denials

    def charges(self, obj: dict, namespace: str) -> Iterator[tuple[dict[str, Fraction], dict | None]]:
        """What applying an object creates, in order, each with what it counts against quota keys
        and its pod spec if it is a pod: the object itself, its first revision (a Deployment's
        ReplicaSet, a StatefulSet's ControllerRevision), then for each replica of a workload its
        claims (StatefulSet volumeClaimTemplates), its pod and its pod's ephemeral volume claims.
        A Pod is its own pod, followed by its ephemeral volume claims."""
        pod = self.admitted_pod(obj, namespace)
        if obj.get("kind") == "Pod" and pod is not None:
            yield pod_usage(pod), pod
            yield from ((claim_usage(claim), None) for claim in ephemeral_claims(obj))
            return
        yield self.object_usage(obj), None
        if revision := _REVISION_KINDS.get(str(obj.get("kind"))):
            yield {revision: Fraction(1)}, None
        if pod is None:
            return
        for _ in range(replicas(obj)):
            for claim in _stored_claims(obj):
                yield claim_usage(claim), None
            yield pod_usage(pod), pod
            yield from ((claim_usage(claim), None) for claim in ephemeral_claims(obj))

    def object_usage(self, obj: dict) -> dict[str, Fraction]:
        """What an object counts against quota keys by itself (not the pods it creates)."""
        group, _, resource, _ = self.resource_of(obj)
        use: dict[str, Fraction] = {f"count/{resource}.{group}" if group else f"count/{resource}": Fraction(1)}
        kind, spec = obj.get("kind"), obj.get("spec") or {}
        if kind in ("Service", "Secret", "ConfigMap", "ReplicationController", "ResourceQuota"):
            use[resource] = Fraction(1)
        if kind == "PersistentVolumeClaim":
            use.update(claim_usage(obj))
        if kind == "Service":
            if spec.get("type") == "LoadBalancer":
                use["services.loadbalancers"] = Fraction(1)
            if spec.get("type") in ("LoadBalancer", "NodePort"):
                use["services.nodeports"] = Fraction(len(spec.get("ports") or []))
        return use


def omit_empty(schema: dict, definitions: dict, value: object) -> object:
    """A built-in object as admission policies get it: the API server converts the typed object
    to a map, leaving out the struct fields tagged omitempty that are empty. Modelled for lists and
    maps (nearly all of them carry the tag): `matchExpressions: []` and `matchLabels: {}` are
    absent, an empty struct such as `podSelector: {}` or `namespaceSelector: {}` stays (a
    pointer, or untagged). `schema` and `definitions` as validate.core_schema gives them."""
    schema = _resolved(schema, definitions)
    if isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [omit_empty(items, definitions, item) for item in value]
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties")
    if properties is None:  # a map: its entries all stay
        values = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else {}
        return {key: omit_empty(values, definitions, item) for key, item in value.items()}
    kept = {}
    for key, item in value.items():
        field = _resolved(properties.get(key, {}), definitions)
        item = omit_empty(field, definitions, item)
        if item == [] or (item == {} and "properties" not in field and isinstance(field.get("additionalProperties"), dict)):
            continue
        kept[key] = item
    return kept


def _resolved(schema: dict, definitions: dict) -> dict:
    reference = schema.get("$ref")
    return definitions.get(reference.rpartition("/")[2], {}) if isinstance(reference, str) else schema


def pod_usage(pod: dict) -> dict[str, Fraction]:
    """What one pod counts against quota keys (the quota's pod evaluator): requests and limits of
    CPU, memory and ephemeral storage, requests of hugepages and extended resources; pod overhead
    is not counted."""
    requests, limits = _pod_total(pod, "requests"), _pod_total(pod, "limits")
    use = {"pods": Fraction(1), "count/pods": Fraction(1)}
    for name, value in requests.items():
        if name in _COMPUTE or name.startswith("hugepages-"):
            use[name] = use[f"requests.{name}"] = value
        elif "/" in name and "kubernetes.io/" not in name and not name.startswith("requests."):
            use[f"requests.{name}"] = value  # an extended resource
    use.update({f"limits.{name}": value for name, value in limits.items() if name in _COMPUTE})
    return use


def claim_usage(claim: dict) -> dict[str, Fraction]:
    """What one PersistentVolumeClaim counts against quota keys: the claim and its storage, both
    also under its storage class when it names one (the class a cluster would default an
    unnamed one to is unknown here)."""
    spec = claim.get("spec") or {}
    use = {"persistentvolumeclaims": Fraction(1), "count/persistentvolumeclaims": Fraction(1)}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is not None:
        use["requests.storage"] = parse_quantity(storage)
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    storage_class = annotations.get("volume.beta.kubernetes.io/storage-class", spec.get("storageClassName"))
    if storage_class:
        use.update({f"{storage_class}.storageclass.storage.k8s.io/{key}": value for key, value in list(use.items())
                    if key in ("persistentvolumeclaims", "requests.storage")})
    return use


_COMPUTE = ("cpu", "memory", "ephemeral-storage")


def _containers(pod: dict) -> list[dict]:
    """A pod's containers, then its init containers (the order defaulting and LimitRanger use)."""
    return [c for field in ("containers", "initContainers") for c in pod.get(field) or [] if isinstance(c, dict)]


def _resources(container: object, field: str) -> dict[str, Fraction]:
    resources = (container.get("resources") if isinstance(container, dict) else None) or {}
    return {name: parse_quantity(value) for name, value in (resources.get(field) or {}).items()}


def _pod_total(pod: dict, field: str) -> dict[str, Fraction]:
    """A pod's requests or limits as the scheduler and the quota add them up: its containers'
    sum, or the largest init container if more (with the sidecars started before it), sidecars
    (init containers with restartPolicy Always) counting with the containers."""
    total: dict[str, Fraction] = {}
    for container in pod.get("containers") or []:
        total = _combine(total, _resources(container, field), sum)
    sidecars: dict[str, Fraction] = {}
    peak: dict[str, Fraction] = {}
    for container in pod.get("initContainers") or []:
        own = _resources(container, field)
        if container.get("restartPolicy") == "Always":
            total, sidecars = _combine(total, own, sum), _combine(sidecars, own, sum)
            peak = _combine(peak, sidecars, max)
        else:
            peak = _combine(peak, _combine(own, sidecars, sum), max)
    return _combine(total, peak, max)


def _combine(a: dict[str, Fraction], b: dict[str, Fraction], how) -> dict[str, Fraction]:
    return {**a, **b, **{name: how((a[name], b[name])) for name in a.keys() & b.keys()}}


def _items(limit_range: dict, kind: str) -> list[dict]:
    return [item for item in (limit_range.get("spec") or {}).get("limits") or []
            if isinstance(item, dict) and item.get("type") == kind]


def _container_defaults(limit_range: dict) -> tuple[dict, dict]:
    """A LimitRange's (default limits, default requests) for containers, as the API server stores
    its Container items: a missing default limit is the max, a missing default request the
    default limit, else the min."""
    limits: dict = {}
    requests: dict = {}
    for item in _items(limit_range, "Container"):
        item_limits = {**(item.get("max") or {}), **(item.get("default") or {})}
        limits.update(item_limits)
        requests.update({**(item.get("min") or {}), **item_limits, **(item.get("defaultRequest") or {})})
    return limits, requests


def _pod_problems(limit_range: dict, pod: dict) -> list[str]:
    """LimitRanger's complaints about a pod's containers against a LimitRange's Container min and
    max (Pod totals and maxLimitRequestRatio are not modelled: the platform sets neither)."""
    problems = []
    for item in _items(limit_range, "Container"):
        for container in _containers(pod):
            resources = container.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            problems += [_below_min("Container", name, bound, requests, limits) for name, bound in (item.get("min") or {}).items()]
            problems += [_above_max("Container", name, bound, requests, limits) for name, bound in (item.get("max") or {}).items()]
    return [problem for problem in problems if problem]


def _claim_problems(limit_range: dict, claim: dict) -> list[str]:
    """LimitRanger's complaints about a claim's storage request against PersistentVolumeClaim min
    and max (a claim's limits are not looked at)."""
    requests = (((claim.get("spec") or {}).get("resources") or {}).get("requests")) or {}
    problems = []
    for item in _items(limit_range, "PersistentVolumeClaim"):
        problems += [_below_min("PersistentVolumeClaim", name, bound, requests, {}) for name, bound in (item.get("min") or {}).items()]
        problems += [_above_max("PersistentVolumeClaim", name, bound, requests) for name, bound in (item.get("max") or {}).items()]
    return [problem for problem in problems if problem]


def _below_min(kind: str, name: str, bound: object, requests: dict, limits: dict) -> str | None:
    if name not in requests:
        return f"minimum {name} usage per {kind} is {canonical(bound)}.  No request is specified"
    for word, values in (("request", requests), ("limit", limits)):
        if name in values and parse_quantity(values[name]) < parse_quantity(bound):
            return f"minimum {name} usage per {kind} is {canonical(bound)}, but {word} is {canonical(values[name])}"
    return None


def _above_max(kind: str, name: str, bound: object, requests: dict, limits: dict | None = None) -> str | None:
    """Above a max: a container must have the limit (limits given), a claim the request (None)."""
    required = ("limit", limits) if limits is not None else ("request", requests)
    if name not in required[1]:
        return f"maximum {name} usage per {kind} is {canonical(bound)}.  No {required[0]} is specified"
    for word, values in (("limit", limits or {}), ("request", requests)):
        if name in values and parse_quantity(values[name]) > parse_quantity(bound):
            return f"maximum {name} usage per {kind} is {canonical(bound)}, but {word} is {canonical(values[name])}"
    return None


def _requests_over_limits(pod: dict, path: str) -> list[str]:
    """Pod validation's errors for requests above limits (containers, then init containers)."""
    problems = []
    for field in ("containers", "initContainers"):
        for index, container in enumerate(pod.get(field) or []):
            resources = (container.get("resources") if isinstance(container, dict) else None) or {}
            limits = resources.get("limits") or {}
            problems += [f'{path}.{field}[{index}].resources.requests: Invalid value: "{canonical(request)}": '
                         f"must be less than or equal to {name} limit of {canonical(limits[name])}"
                         for name, request in (resources.get("requests") or {}).items()
                         if name in limits and parse_quantity(request) > parse_quantity(limits[name])]
    return problems


def _payload_bytes(obj: dict) -> int:
    """What validation counts against a ConfigMap's or Secret's limit: the bytes of every value
    (keys not counted). A ConfigMap's data as text and binaryData decoded; a Secret's data decoded,
    stringData merged over it as text (the API server merges it into data before validating)."""
    if obj.get("kind") == "Secret":
        sizes = {key: _decoded_bytes(value) for key, value in (obj.get("data") or {}).items()}
        sizes.update({key: _text_bytes(value) for key, value in (obj.get("stringData") or {}).items()})
        return sum(sizes.values())
    return (sum(_text_bytes(value) for value in (obj.get("data") or {}).values())
            + sum(_decoded_bytes(value) for value in (obj.get("binaryData") or {}).values()))


def _text_bytes(value: object) -> int:
    """A value's bytes; a SOPS-encrypted one's (Flux decrypts it before applying) by its ciphertext."""
    text = str(value)
    if encrypted := _SOPS_VALUE.match(text):
        return len(base64.b64decode(encrypted.group(1)))
    return len(text.encode())


def _decoded_bytes(value: object) -> int:
    """A base64 value's bytes once decoded; a SOPS-encrypted one's from its plaintext's length
    (at most 2 bytes over: the padding is not known before decryption)."""
    text = str(value)
    if _SOPS_VALUE.match(text):
        return _text_bytes(text) * 3 // 4
    try:
        return len(base64.b64decode(text, validate=True))
    except binascii.Error:
        return len(text)  # not base64: schema validation reports it


def _aggregate(messages: list[str]) -> str:
    """Several errors as Kubernetes joins them: '[a, b]' (one alone as is)."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


class _QuotaUsage:
    """One ResourceQuota and what the objects admitted so far use of it."""

    def __init__(self, quota: dict) -> None:
        self.name = _name(quota)
        self.spec = quota.get("spec") or {}
        self.hard = {key: parse_quantity(value) for key, value in (self.spec.get("hard") or {}).items()}
        self.used = {key: Fraction(0) for key in self.hard}

    def refusal(self, use: dict[str, Fraction]) -> Denial | None:
        """The quota's refusal of one more thing using `use`, in the API server's words."""
        over = sorted(key for key, value in use.items() if key in self.hard and value and self.used[key] + value > self.hard[key])
        if not over:
            return None

        def listed(values: dict[str, Fraction]) -> str:
            return ",".join(f"{key}={_fmt(key, values[key])}" for key in over)

        return Denial("quota", f"ResourceQuota/{self.name}", f"exceeded quota: {self.name}, requested: {listed(use)}, "
                                                             f"used: {listed(self.used)}, limited: {listed(self.hard)}")

    def add(self, use: dict[str, Fraction]) -> None:
        for key in self.hard.keys() & use.keys():
            self.used[key] += use[key]


def _fmt(key: str, value: Fraction) -> str:
    # The API server keeps the suffix a quantity was written with; byte counts print binary here.
    resource = key.rpartition("/")[2].rpartition(".")[2]
    return format_quantity(value, binary=resource in ("memory", "storage", "ephemeral-storage") or resource.startswith("hugepages-"))


def _affinity_terms(pod: dict) -> list[dict]:
    """Every pod (anti-)affinity term of a pod spec, required and preferred."""
    affinity = pod.get("affinity") or {}
    terms = []
    for kind in ("podAffinity", "podAntiAffinity"):
        spec = affinity.get(kind) or {}
        terms += spec.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        terms += [w.get("podAffinityTerm") or {} for w in spec.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
    return terms


def _in_scope(quota_spec: dict, pod: dict | None) -> bool:
    """Whether a (scoped) quota counts a pod (None: not a pod): PriorityClass scopes count pods of
    those classes, CrossNamespacePodAffinity pods with a term naming namespaces or a namespace
    selector (Kubernetes' crossNamespacePodAffinityTerm)."""
    expressions = (quota_spec.get("scopeSelector") or {}).get("matchExpressions") or []
    if not expressions:
        return True
    if pod is None:
        return False
    for expression in expressions:
        if expression.get("scopeName") == "CrossNamespacePodAffinity":
            if not any(term.get("namespaces") or "namespaceSelector" in term for term in _affinity_terms(pod)):
                return False
            continue
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


def admit(cluster: Cluster, objects: list[dict], who: Identity, namespace: str,
          only: dict | None = None) -> list[tuple[dict, Denial]]:
    """Every refusal of applying `objects` (one app's build) as `who` into `namespace`, and of
    the pods and claims they create. An object the platform itself renders there (a baseline
    NetworkPolicy, the quota) is an UPDATE of the platform's; everything else a CREATE. Where Flux
    applies Roles first, a RoleBinding may refer to a Role of the same app. Each gate judges every
    object as if the others had let it through (the quota counts an object another gate refuses).
    `only` (one of `objects`): the refusals of that object alone, judged among the others (they
    lend their Roles and count toward the quota), without the cost of judging each of them."""
    found = []
    counted = []
    own_roles = {_name(obj): obj.get("rules") or [] for obj in objects
                 if cluster.roles_first and obj.get("kind") == "Role" and str(obj.get("apiVersion", "")).startswith(f"{RBAC_GROUP}/")}
    for obj in objects:
        ready = cluster.defaulted(obj, namespace)
        judged = only is None or obj is only
        if judged:
            found += [(obj, d) for d in cluster.rbac_denials(ready, who, namespace, own_roles)]
            old = cluster.existing(ready, namespace)
            found += [(obj, d) for d in cluster.policy_denials(ready, who, namespace, "UPDATE" if old else "CREATE", old)]
        if all(is_quantity(value) for value in _quantities(ready)):
            found += [(obj, d) for d in cluster.pod_denials(ready, namespace)] if judged else []
            counted.append((ready, obj))
        elif judged:
            found.append((obj, _undecodable(ready)))
    by_id = {id(ready): obj for ready, obj in counted}
    found += [(by_id[id(ready)], denial) for ready, denial in cluster.quota_denials([ready for ready, _ in counted], namespace)
              if only is None or by_id[id(ready)] is only]
    return found


def _quantities(obj: dict) -> list[object]:
    """The resource quantities of an object's pods and claims."""
    holders = [c.get("resources") for c in _containers(pod_spec(obj) or {})]
    holders += [(claim.get("spec") or {}).get("resources") for claim in claims(obj)]
    return [value for resources in holders if isinstance(resources, dict) for field in ("requests", "limits")
            for value in (resources.get(field) or {}).values()]


def _undecodable(obj: dict) -> Denial:
    # The API server refuses such an object when decoding it, before any admission.
    kind, version = obj.get("kind"), str(obj.get("apiVersion", "")).rpartition("/")[2]
    return Denial("validation", f"{kind} validation", f'{kind} in version "{version}" cannot be handled as a {kind}: quantities '
                                                      "must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
