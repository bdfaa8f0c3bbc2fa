"""Regenerate the upstream data the check ships with (hooks/data/): CRD schemas and Kubernetes roles.

    python scripts/regenerate_data.py --crd-dir DIR --rbac-dir DIR   # either alone regenerates its file
    python scripts/regenerate_data.py --download      # the pinned upstream URLs below (needs network)

--crd-dir holds every file of UPSTREAM_CRDS, --rbac-dir both files of UPSTREAM_ROLES, byte-identical
to the pinned refs (a team's reference folder may lack the newest: GRPCRoute was taken from the
gateway-api v1.6.1 tag itself). A folder lacking any of them stops the script with one line
naming what is missing; nothing is written unless every requested file was read and converted.

The project never reads upstream files at run time: the check, the tests and generated
repositories' CI all load hooks/data/. This script is how that data changes: bump a pin below,
regenerate, commit the result together with SOURCES.md.

What is kept: per served version of each CRD, its group/version, kind, scope, whether it has a
status subresource and openAPIV3Schema without `description` fields (prose, 80% of the bytes),
so types, enums, defaults and the CEL rules (`x-kubernetes-validations`) stay; of every bootstrap
ClusterRole, its name, rules, aggregationRule and aggregate-to-* labels (the rest of its metadata
is the same on all of them) and the groups every identity of a kind is in that the bootstrap
ClusterRoleBindings bind it to. Output is deterministic (sorted keys, one entry per line).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path

import yaml

DATA = Path(__file__).resolve().parent.parent / "hooks" / "data"

# The CRDs the templates render or tenants may create (GRPCRoute: tenant role), at the versions
# Flux 2.9.4, Gateway API 1.6.1 and Kyverno 1.19.0 ship. Pinned to commits or tags, so a download
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
    "gateway.networking.k8s.io_grpcroutes.yaml": f"{_GATEWAY_API}/gateway.networking.k8s.io_grpcroutes.yaml",
    "kyverno.io_clusterpolicies.yaml": f"{_KYVERNO}/kyverno/kyverno.io_clusterpolicies.yaml",
    "kyverno.io_policies.yaml": f"{_KYVERNO}/kyverno/kyverno.io_policies.yaml",
    "policies.kyverno.io_validatingpolicies.yaml": f"{_KYVERNO}/policies.kyverno.io/policies.kyverno.io_validatingpolicies.yaml",
}
# kubernetes/kubernetes bootstrap policy test data: the ClusterRoles the API server creates
# (bootstrappolicy.ClusterRoles() and ControllerRoles()).
_BOOTSTRAP_POLICY = ("https://raw.githubusercontent.com/kubernetes/kubernetes/025f2834a128798cef30018a5e6a6ae82b5ad885/"
                     "plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata")
UPSTREAM_ROLES: dict[str, str] = {
    "cluster-roles.yaml": f"{_BOOTSTRAP_POLICY}/cluster-roles.yaml",
    "controller-roles.yaml": f"{_BOOTSTRAP_POLICY}/controller-roles.yaml",
}
USER_FACING_ROLES = ("admin", "edit", "view", "system:aggregate-to-admin", "system:aggregate-to-edit", "system:aggregate-to-view")
AGGREGATE_LABEL = "rbac.authorization.k8s.io/aggregate-to-"
# The bootstrap ClusterRoleBindings to groups every identity of a kind is in (bootstrappolicy
# clusterRoleBindings() in policy.go; testdata/cluster-role-bindings.yaml records them too, but no
# copy of it at the pinned commit was at hand, so they are written here and checked against the roles).
# Other bootstrap bindings name the control plane's own users and groups (system:masters, system:nodes).
PUBLIC_BINDINGS: dict[str, tuple[str, ...]] = {
    "system:basic-user": ("system:authenticated",),
    "system:discovery": ("system:authenticated",),
    "system:public-info-viewer": ("system:authenticated", "system:unauthenticated"),
    "system:service-account-issuer-discovery": ("system:serviceaccounts",),
}


def _without_descriptions(node: object) -> object:
    if isinstance(node, dict):
        # A property may be *named* "description" (e.g. a CRD field); only drop the prose string.
        return {k: _without_descriptions(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [_without_descriptions(item) for item in node]
    return node


def crd_entries(documents: list) -> list[dict]:
    """One entry per served version of every CustomResourceDefinition among the documents."""
    entries = []
    for crd in documents:
        if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served", True):
                entries.append({
                    "apiVersion": f"{spec['group']}/{version['name']}",
                    "kind": spec["names"]["kind"],
                    "plural": spec["names"]["plural"],
                    "namespaced": spec.get("scope") == "Namespaced",
                    # With a status subresource the API server drops `status` from what is created.
                    "statusSubresource": "status" in (version.get("subresources") or {}),
                    "schema": _without_descriptions(version["schema"]["openAPIV3Schema"]),
                })
    return entries


def role_entries(documents: list[dict]) -> list[dict]:
    """Every ClusterRole of the bootstrap policy lists, sorted by name, with the groups the public
    bootstrap bindings give it to (`boundToGroups`)."""
    items = {item["metadata"]["name"]: item for document in documents for item in document["items"]}
    missing = [name for name in (*USER_FACING_ROLES, *PUBLIC_BINDINGS) if name not in items]
    if missing:
        sys.exit(f"error: the roles files lack {', '.join(missing)}")
    entries = []
    for name, item in sorted(items.items()):
        labels = {k: v for k, v in (item["metadata"].get("labels") or {}).items() if k.startswith(AGGREGATE_LABEL)}
        entry = {"name": name, "rules": item.get("rules") or []}
        entry.update({key: value for key, value in (("labels", labels), ("aggregationRule", item.get("aggregationRule")),
                                                    ("boundToGroups", list(PUBLIC_BINDINGS.get(name, ())))) if value})
        entries.append(entry)
    return entries


def one_per_line(entries: list[dict]) -> str:
    return "[\n" + ",\n".join(json.dumps(e, sort_keys=True, separators=(",", ":")) for e in entries) + "\n]\n"


def missing_files(option: str, folder: Path | None, names: list[str]) -> str | None:
    """One line naming what `folder` (given as `option`) lacks of `names`; None when it has them all."""
    if folder is None:
        return None
    if not folder.is_dir():
        return f"{option} {folder} is not a directory"
    absent = [name for name in names if not (folder / name).is_file()]
    return f"{option} {folder} lacks {', '.join(absent)}" if absent else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crd-dir", type=Path, help="folder holding the upstream CRD files named in UPSTREAM_CRDS")
    parser.add_argument("--rbac-dir", type=Path, help="folder holding Kubernetes' bootstrap policy files named in UPSTREAM_ROLES")
    parser.add_argument("--download", action="store_true", help="fetch both from the pinned upstream URLs")
    args = parser.parse_args(argv)
    if not args.download and not (args.crd_dir or args.rbac_dir):
        parser.error("give --crd-dir or --rbac-dir (or both), or --download")
    crd_dir, rbac_dir = (None, None) if args.download else (args.crd_dir, args.rbac_dir)
    problems = [problem for problem in (missing_files("--crd-dir", crd_dir, list(UPSTREAM_CRDS)),
                                        missing_files("--rbac-dir", rbac_dir, list(UPSTREAM_ROLES))) if problem]
    if problems:
        sys.exit(f"error: {'; '.join(problems)} (the pinned upstream files this script reads; add them at the "
                 "pinned refs, or run with --download to fetch them). Nothing was written.")

    def read(name_or_url: str, local: Path | None) -> str:
        if local is not None:
            return local.read_text()
        with urllib.request.urlopen(name_or_url, timeout=30) as response:  # noqa: S310 (pinned https URLs)
            return response.read().decode()

    # Everything is read and converted before anything is written: a failure writes nothing.
    outputs: dict[str, tuple[str, str]] = {}
    if args.download or crd_dir:
        entries = []
        for name, url in UPSTREAM_CRDS.items():
            text = read(url, None if args.download else crd_dir / name)
            entries += crd_entries(list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))))
        entries.sort(key=lambda e: (e["apiVersion"], e["kind"]))
        outputs["crds.json"] = (one_per_line(entries), f"{len(entries)} kind versions")
    if args.download or rbac_dir:
        roles = role_entries([yaml.safe_load(read(url, None if args.download else rbac_dir / name))
                              for name, url in UPSTREAM_ROLES.items()])
        outputs["k8s-roles.json"] = (one_per_line(roles), f"{len(roles)} roles")
    DATA.mkdir(parents=True, exist_ok=True)
    for name, (text, what) in outputs.items():
        (DATA / name).write_text(text)
        print(f"wrote {what} to {DATA / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
