"""Custom resource schemas: a cache of upstream CRD manifests, and CRD -> strict JSON Schema.

The cache is a folder of unmodified CRD YAML files. It is filled from a local folder of CRDs
(`--crd-dir`) or, when online, downloaded from the upstream release refs below. CRDs are never
copied into this project or into a rendered repository.

A CRD's openAPIV3Schema is turned into a JSON Schema that rejects what the API server would
reject structurally: unknown fields, wrong types (int-or-string, nullable understood). CEL rules
(x-kubernetes-validations) are not evaluated.
"""

from __future__ import annotations

import copy
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from hooks.errors import HookError
from hooks.manifests import FAST_LOADER

# The CRDs the templates render, at the versions Flux 2.9.4, Gateway API 1.6.1 and Kyverno 1.19.0
# ship (the same refs as ../shared/crds/SOURCES.md). Pinned to commits or tags, so a download
# always yields the same bytes.
_SOURCE_CONTROLLER = "https://raw.githubusercontent.com/fluxcd/source-controller/c4adb7f9a2feeb9dccf6150bae4be291e846c130/config/crd/bases"
_KUSTOMIZE_CONTROLLER = "https://raw.githubusercontent.com/fluxcd/kustomize-controller/v1.9.4/config/crd/bases"
_HELM_CONTROLLER = "https://raw.githubusercontent.com/fluxcd/helm-controller/v1.6.3/config/crd/bases"
_NOTIFICATION_CONTROLLER = "https://raw.githubusercontent.com/fluxcd/notification-controller/v1.9.3/config/crd/bases"
_GATEWAY_API = "https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/v1.6.1/config/crd/standard"
_KYVERNO = "https://raw.githubusercontent.com/kyverno/kyverno/v1.19.0/config/crds"
UPSTREAM_CRDS: dict[str, str] = {
    "source.toolkit.fluxcd.io_gitrepositories.yaml": f"{_SOURCE_CONTROLLER}/source.toolkit.fluxcd.io_gitrepositories.yaml",
    "source.toolkit.fluxcd.io_ocirepositories.yaml": f"{_SOURCE_CONTROLLER}/source.toolkit.fluxcd.io_ocirepositories.yaml",
    "source.toolkit.fluxcd.io_helmrepositories.yaml": f"{_SOURCE_CONTROLLER}/source.toolkit.fluxcd.io_helmrepositories.yaml",
    "kustomize.toolkit.fluxcd.io_kustomizations.yaml": f"{_KUSTOMIZE_CONTROLLER}/kustomize.toolkit.fluxcd.io_kustomizations.yaml",
    "helm.toolkit.fluxcd.io_helmreleases.yaml": f"{_HELM_CONTROLLER}/helm.toolkit.fluxcd.io_helmreleases.yaml",
    "notification.toolkit.fluxcd.io_receivers.yaml": f"{_NOTIFICATION_CONTROLLER}/notification.toolkit.fluxcd.io_receivers.yaml",
    "notification.toolkit.fluxcd.io_alerts.yaml": f"{_NOTIFICATION_CONTROLLER}/notification.toolkit.fluxcd.io_alerts.yaml",
    "notification.toolkit.fluxcd.io_providers.yaml": f"{_NOTIFICATION_CONTROLLER}/notification.toolkit.fluxcd.io_providers.yaml",
    "gateway.networking.k8s.io_httproutes.yaml": f"{_GATEWAY_API}/gateway.networking.k8s.io_httproutes.yaml",
    "gateway.networking.k8s.io_gateways.yaml": f"{_GATEWAY_API}/gateway.networking.k8s.io_gateways.yaml",
    "kyverno.io_clusterpolicies.yaml": f"{_KYVERNO}/kyverno/kyverno.io_clusterpolicies.yaml",
    "kyverno.io_policies.yaml": f"{_KYVERNO}/kyverno/kyverno.io_policies.yaml",
    "policies.kyverno.io_validatingpolicies.yaml": f"{_KYVERNO}/policies.kyverno.io/policies.kyverno.io_validatingpolicies.yaml",
}

# metadata of a custom resource is not in its CRD schema; the API server checks it as ObjectMeta.
# Only the fields a manifest may carry are listed, so a misspelt `namspace` is refused.
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
    },
}


@dataclass(frozen=True)
class KindSchema:
    """The strict JSON Schema of one served version of one custom resource kind."""

    api_version: str  # group/version
    kind: str
    namespaced: bool
    schema: dict


# PURE: CRD -> strict JSON Schema ----------------------------------------------------------------

_JUNCTORS = ("anyOf", "allOf", "oneOf", "not")


def strictify(node: object, in_junctor: bool = False) -> None:
    """Rewrite Kubernetes OpenAPI extensions in place into plain JSON Schema, refusing unknown fields.

    Inside anyOf/allOf/oneOf/not, structural schemas only restate constraints on fields declared
    outside, so no additionalProperties is added there (it would refuse the declared siblings).
    """
    if isinstance(node, list):
        for item in node:
            strictify(item, in_junctor)
        return
    if not isinstance(node, dict):
        return
    if node.get("x-kubernetes-int-or-string"):
        node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable"):
        if "type" in node:
            node["type"] = [node["type"], "null"]
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
    if node.get("x-kubernetes-embedded-resource"):
        props = node.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if (
        "properties" in node
        and not in_junctor
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in node
    ):
        node["additionalProperties"] = False
    for key, value in node.items():
        if key in ("enum", "default", "example", "required"):
            continue  # data, not schemas
        if key == "properties":
            for sub in value.values():
                strictify(sub, in_junctor)
        else:
            strictify(value, in_junctor or key in _JUNCTORS)


def kind_schemas(crd: dict) -> list[KindSchema]:
    """One strict schema per served version of a CustomResourceDefinition."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    found = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
        api_version = f"{group}/{version['name']}"
        strictify(schema)
        schema.setdefault("properties", {}).update(apiVersion={"const": api_version}, kind={"const": kind})
        schema["properties"]["metadata"] = OBJECT_META
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
        found.append(KindSchema(api_version, kind, spec.get("scope") == "Namespaced", schema))
    return found


def crds_in(documents: list) -> list[dict]:
    """The CustomResourceDefinitions among parsed YAML documents."""
    return [doc for doc in documents if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"]


# I/O: the cache ---------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """$OPENCENTER_CRD_CACHE, else $XDG_CACHE_HOME/opencenter-templates/crds (~/.cache when unset)."""
    if env := os.environ.get("OPENCENTER_CRD_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opencenter-templates" / "crds"


def _read_crds(path: Path) -> list[dict]:
    # The C loader: the Kyverno CRDs are 1.4 MB each, the pure-Python loader takes seconds.
    with path.open() as handle:
        return crds_in(list(yaml.load_all(handle, Loader=FAST_LOADER)))


def fill_from_dir(cache: Path, crd_dir: Path) -> None:
    """Copy every CRD manifest of crd_dir into the cache (replacing same-named files)."""
    files = [path for path in sorted(crd_dir.glob("*.y*ml")) if _read_crds(path)]
    if not files:
        raise HookError(str(crd_dir), "holds no CustomResourceDefinition manifests (*.yaml)")
    cache.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copyfile(path, cache / path.name)


def download(cache: Path, timeout: float = 20.0) -> None:
    """Fetch the pinned upstream CRDs into the cache; all or nothing (written after every fetch)."""
    fetched = {}
    for name, url in UPSTREAM_CRDS.items():
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https URLs)
            fetched[name] = response.read()
    cache.mkdir(parents=True, exist_ok=True)
    for name, body in fetched.items():
        (cache / name).write_bytes(body)


def ensure_cache(cache: Path, crd_dir: Path | None = None) -> Path:
    """A cache holding CRDs: refreshed from crd_dir when given, else as is, else downloaded."""
    if crd_dir is not None:
        fill_from_dir(cache, crd_dir)
    elif not any(cache.glob("*.y*ml")):
        try:
            download(cache)
        except (urllib.error.URLError, OSError) as error:
            raise HookError(
                "CRDs",
                f"the CRD cache {cache} is empty and downloading the upstream CRDs failed ({error}). "
                "Pass --crd-dir DIR (a folder of CustomResourceDefinition manifests, e.g. ../shared/crds), "
                "or run once online to fill the cache, or point OPENCENTER_CRD_CACHE at a filled cache.",
            ) from None
    return cache


def load_cache(cache: Path) -> dict[tuple[str, str], KindSchema]:
    """Every served kind in the cache, keyed by (apiVersion, kind)."""
    schemas = {}
    for path in sorted(cache.glob("*.y*ml")):
        for crd in _read_crds(path):
            for found in kind_schemas(crd):
                schemas[(found.api_version, found.kind)] = found
    return schemas
