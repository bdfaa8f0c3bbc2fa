"""Strict schema validation of one Kubernetes object.

Core kinds are checked by kubernetes-validate's strict schemas for the chosen Kubernetes
version; custom resources, once defaulted from their CRD (hooks.celrules), by the strict schemas
derived from it (hooks.crds) and, once structurally valid, by its CEL rules (hooks.celrules). A kind known to
neither is a finding: a misspelt apiVersion must not pass unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import jsonschema
import kubernetes_validate
from kubernetes_validate import utils as kv
from kubernetes_validate.utils import all_versions
from referencing import Registry, Resource

from hooks.celrules import RuleEvaluator, apply_defaults
from hooks.crds import FORMAT_CHECKER, KindSchema, list_duplicates
from hooks.errors import HookError

DEFAULT_KUBE_VERSION = "1.34"

# Cluster-scoped built-in kinds (kubectl api-resources --namespaced=false, Kubernetes 1.34).
# kubernetes-validate's schemas do not say which kinds are namespaced; custom kinds take their
# scope from the CRD.
CLUSTER_SCOPED_CORE_KINDS = frozenset({
    "APIService", "CertificateSigningRequest", "ClusterRole", "ClusterRoleBinding",
    "ClusterTrustBundle", "ComponentStatus", "CSIDriver", "CSINode", "CustomResourceDefinition",
    "DeviceClass", "FlowSchema", "IngressClass", "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding", "MutatingWebhookConfiguration", "Namespace", "Node",
    "PersistentVolume", "PriorityClass", "PriorityLevelConfiguration", "RuntimeClass",
    "StorageClass", "StorageVersionMigration", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration", "VolumeAttachment",
    "VolumeAttributesClass",
})


@dataclass(frozen=True)
class Problem:
    """One reason an object is invalid: the rule it broke, the field (Kubernetes' path; "" for
    none) and the message."""

    rule: str
    message: str
    path: str = ""


def kube_schema_version(version: str) -> str:
    """'1.34' or '1.34.2' -> '1.34.0' when kubernetes-validate bundles that minor; else a HookError."""
    match = re.fullmatch(r"v?(1\.\d+)(\.\d+)?", version)
    supported = sorted({v.rsplit(".", 1)[0] for v in all_versions()}, key=lambda v: int(v.split(".")[1]))
    if not match or match.group(1) not in supported:
        raise HookError("--kube-version", f"'{version}' is not a Kubernetes version kubernetes-validate "
                        f"{kubernetes_validate.__version__} bundles ({', '.join(supported)})")
    return f"{match.group(1)}.0"


def _field_path(path) -> str:
    return ".".join(str(part) for part in path) or "(object)"


def is_sops_encrypted(doc: object) -> bool:
    """SOPS writes its metadata as a top-level `sops:` key."""
    return isinstance(doc, dict) and isinstance(doc.get("sops"), dict)


def validatable(obj: dict) -> dict:
    """The object as the API server would see it after Flux decrypts it.

    The `sops` block is removed by Flux before applying; encrypted values are ciphertext, so a
    SOPS-encrypted object's data/stringData are left out (metadata is still checked).
    """
    if not is_sops_encrypted(obj):
        return obj
    return {key: value for key, value in obj.items() if key not in ("sops", "data", "stringData")}


@lru_cache(maxsize=None)
def _definitions(schema_dir: str, version: str) -> Resource:
    return Resource.from_contents(kv.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", version))


@lru_cache(maxsize=None)
def core_validator(api_version: str, kind: str, version: str) -> jsonschema.protocols.Validator:
    """The strict validator kubernetes_validate.validate() builds for one kind, built once.

    kubernetes_validate.validate() reads the kind's schema and the whole `_definitions.json` (a
    few MB of JSON) again for every object, which made schema validation most of the check's
    time on large repositories (500 apps: 5,000 reads). Same files, same lookup (the newest bundled
    schema version not newer than `version`), same Draft 2020-12 validator; only the reading is
    cached. Raises kubernetes_validate.SchemaNotFoundError for an unknown kind.
    """
    schema_dir, schema = _kind_schema(api_version, kind, version)
    registry = _definitions(schema_dir, version) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _kind_schema(api_version: str, kind: str, version: str) -> tuple[str, dict]:
    """(schema folder, schema) of a built-in kind: the newest bundled schema version not newer than
    `version`. Raises kubernetes_validate.SchemaNotFoundError for an unknown kind."""
    wanted = kv.major_minor(version)
    schema_version = [v for v in kv.all_versions() if kv.major_minor(v) <= wanted][-1]
    schema_dir = f"v{schema_version}-local-strict"
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        return schema_dir, kv.schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{api}.json", version)
    except FileNotFoundError:
        raise kubernetes_validate.SchemaNotFoundError(version=wanted, kind=kind, api_version=api_version) from None


@lru_cache(maxsize=None)
def core_schema(api_version: str, kind: str, version: str) -> tuple[dict, dict] | None:
    """A built-in kind's schema and the definitions (`$defs`) its `$ref`s name, by their last path
    segment; None for a kind the bundled schemas do not know."""
    try:
        schema_dir, schema = _kind_schema(api_version, kind, version)
    except kubernetes_validate.SchemaNotFoundError:
        return None
    return schema, _definitions(schema_dir, version).contents["$defs"]


class Validator:
    """Validates objects against core schemas (one Kubernetes version) and custom kind schemas."""

    def __init__(self, custom: dict[tuple[str, str], KindSchema], kube_version: str = DEFAULT_KUBE_VERSION) -> None:
        self.custom = custom
        self.kube_version = kube_schema_version(kube_version)
        self._compiled: dict[tuple[str, str], jsonschema.Draft7Validator] = {}
        self.rules = RuleEvaluator()
        self.rules_evaluated = 0
        self.transition_rules_skipped = 0

    def cluster_scoped(self, obj: dict) -> bool:
        """Whether the object's kind lives outside namespaces (custom kinds: the CRD's scope)."""
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in self.custom:
            return not self.custom[key].namespaced
        return obj.get("kind") in CLUSTER_SCOPED_CORE_KINDS

    def problems(self, obj: dict) -> list[Problem]:
        if not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
            return [Problem("schema", "apiVersion and kind must be strings")]
        obj = validatable(obj)
        key = (obj["apiVersion"], obj["kind"])
        if key in self.custom:
            return self._custom_problems(self.custom[key], obj)
        try:
            core_validator(key[0], key[1], self.kube_version).validate(obj)
        except kubernetes_validate.SchemaNotFoundError:
            return [Problem("unknown-kind", f"no schema for {key[1]} {key[0]}: neither a Kubernetes "
                            f"{self.kube_version[:-2]} kind nor a kind of a CRD in the cache")]
        except jsonschema.ValidationError as error:
            # Like kubernetes-validate: the first error of an object.
            return [Problem("schema", error.message, _field_path(error.absolute_path))]
        return []

    def _custom_problems(self, kind: KindSchema, obj: dict) -> list[Problem]:
        """What the API server refuses of a custom object it creates, checked in its order: `status`
        dropped (a status subresource), defaults applied, then the defaulted object's structure
        (every error), then, once that is valid, its CEL rules."""
        if kind.status_subresource and "status" in obj:
            obj = {name: value for name, value in obj.items() if name != "status"}
        obj = apply_defaults(kind.structural, obj)
        key = (kind.api_version, kind.kind)
        validator = self._compiled.get(key)
        if validator is None:
            validator = self._compiled[key] = jsonschema.Draft7Validator(kind.schema, format_checker=FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
        problems = [Problem("schema", e.message, _field_path(e.absolute_path)) for e in errors]
        problems += [Problem("schema", message, _field_path(path)) for path, message in list_duplicates(kind.structural, obj)]
        return problems or self._rule_problems(kind.structural, obj)

    def _rule_problems(self, structural: dict, obj: dict) -> list[Problem]:
        """The CRD's CEL rules the defaulted object breaks, as the API server reports them."""
        outcome = self.rules.check(structural, obj)
        self.rules_evaluated += outcome.evaluated
        self.transition_rules_skipped += outcome.transition_rules_skipped
        return [Problem("cel-unevaluable" if f.unevaluable else "cel", f.message, f.path) for f in outcome.failures]
