"""Clusters of a platform repository, pure functions only.

One repository per customer organisation, one overlay per cluster (applications/overlays/<name>/,
that cluster's Flux bootstrap path). The top-level answers describe the repository's first
cluster, the one `copier copy` asks about (cluster_name, cluster_domain, flux_version, …); the
`clusters` answer lists the others, each a mapping with exactly the same per-cluster keys, so that
every cluster has its own domain, Flux version, gitops-base tag, services, Gateway and age key, and
a change to one is a change to that cluster only. No value is inherited from the first cluster:
a Flux upgrade of the first cluster must not move the others.

`opencenter-cluster` (hooks/cluster_admin.py) adds, changes and removes clusters with these
functions; the `clusters` validator of questions/platform.yml mirrors validate_clusters, so a
hand-written `copier update --data clusters=…` is refused as well.
"""

from __future__ import annotations

import re
from typing import Any

from hooks import apps
from hooks.errors import HookError, shown

PER_CLUSTER = (
    "cluster_name", "cluster_domain", "flux_version", "flux_allow_remote_bases", "gitops_base_tag",
    "infrastructure", "platform_services", "gateway_name", "gateway_namespace", "gateway_class", "gateway_listener",
    "gateway_listener_port", "gateway_tls_secret", "sops_age_recipients",
)
# A cluster name is a path segment (its overlay) and part of key file names. Matched whole
# (fullmatch): `$` would also match before a final line break, and make the folder 'qa\n/'.
NAME_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
# From Flux 2.8 (kustomize-controller 1.8) flux-system/kustomization.yaml has both kustomize-controllers
# (the platform's and kustomize-controller-tenants, which applies the apps) apply Roles in a stage of
# their own (--custom-apply-stage-kinds): before, a tenant's RoleBinding to a Role of the same app
# failed the dry-run of the whole app ("role not found").
STAGED_ROLES_SINCE = (2, 8)


def first(answers: dict[str, Any]) -> dict[str, Any]:
    """The first cluster, from the top-level answers."""
    return {key: answers[key] for key in PER_CLUSTER if key in answers}


def cluster_list(answers: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cluster, the first one first."""
    return [first(answers), *(answers.get("clusters") or [])]


def names(answers: dict[str, Any]) -> list[str]:
    return [cluster["cluster_name"] for cluster in cluster_list(answers)]


def domains(answers: dict[str, Any]) -> dict[str, str]:
    """Every cluster's domain by cluster name, the first cluster first (hooks/apps.py's placement)."""
    return {str(c.get("cluster_name", "")): str(c.get("cluster_domain", "")) for c in cluster_list(answers)
            if isinstance(c, dict)}


def find(answers: dict[str, Any], name: str) -> dict[str, Any]:
    for cluster in cluster_list(answers):
        if cluster["cluster_name"] == name:
            return cluster
    raise HookError("cluster", f"{shown(name)} is not a cluster of this repository (clusters: {', '.join(names(answers))})")


def stages_roles(cluster: dict[str, Any]) -> bool:
    """Whether Flux on this cluster applies an app's Roles before the rest of the app."""
    try:
        version = tuple(int(part) for part in str(cluster.get("flux_version", "")).split(".")[:2])
    except ValueError:
        return False
    return version >= STAGED_ROLES_SINCE


def validate_clusters(answers: dict[str, Any]) -> None:
    """The `clusters` answer: mappings with exactly the per-cluster keys, names unique (HookError)."""
    extra = answers.get("clusters") or []
    if not isinstance(extra, list):
        raise HookError("clusters", f"must be a list of cluster mappings (got {shown(extra)})")
    seen = {answers.get("cluster_name")}
    for index, cluster in enumerate(extra):
        if not isinstance(cluster, dict):
            raise HookError(f"clusters[{index}]", f"must be a mapping with keys {', '.join(PER_CLUSTER)}")
        name = cluster.get("cluster_name", "")
        plain = isinstance(name, str) and len(name) <= apps.NAME_MAX and name.isprintable()  # as apps.entry_label
        where = f"clusters[{name or index}]" if plain else f"clusters[{index}]"
        missing = [key for key in PER_CLUSTER if key not in cluster]
        unknown = sorted(str(key) for key in set(cluster) - set(PER_CLUSTER))  # keys YAML read as numbers too
        if missing or unknown:
            raise HookError(where, f"needs exactly the per-cluster keys: missing {missing}, unknown {shown(unknown)}")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise HookError(f"{where}.cluster_name",
                            f"must be a DNS-1123 label (got {shown(name)})")
        if name in seen:
            raise HookError(f"{where}.cluster_name", f"'{name}' is a cluster already; cluster names are unique")
        seen.add(name)


def validate_answers(answers: dict[str, Any]) -> None:
    """What every command reads of a platform repository's answers, checked once before it reads
    them (HookError naming the answer): the first cluster's name, the `clusters` answer, and the
    registered apps, each a valid entry with a name of its own (hooks/apps validate_apps; their
    placements and hostnames are onboarding's to check, beside the entries it adds)."""
    name = answers.get("cluster_name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise HookError("cluster_name", f"must be a DNS-1123 label (got {shown(name)})")
    validate_clusters(answers)
    apps.validate_apps(answers.get("apps") or [], reserved(answers))


def apps_on(answers: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The registered apps that run on cluster `name`."""
    return [app for app in answers.get("apps") or [] if name in apps.placement(app, domains(answers))]


def default_domain(answers: dict[str, Any], name: str) -> str | None:
    """<name>.<rest> when the first cluster's domain is <first name>.<rest>; None otherwise."""
    prefix = f"{answers['cluster_name']}."
    domain = answers.get("cluster_domain", "")
    return name + "." + domain[len(prefix):] if domain.startswith(prefix) else None


def plan_add(answers: dict[str, Any], name: str, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The `clusters` answer with a new cluster: the first cluster's settings, overridden by
    `settings` (domain and age recipients at least; HookError when the domain cannot be derived)."""
    if name in names(answers):
        raise HookError("cluster", f"'{name}' is a cluster of this repository already")
    bad = sorted(set(settings) - set(PER_CLUSTER[1:]))
    if bad:
        raise HookError("cluster", f"cannot set {shown(bad)}; per-cluster settings: {', '.join(PER_CLUSTER[1:])}"
                        + (f" (the new cluster's name is the NAME argument, {shown(name)})" if "cluster_name" in bad else ""))
    domain = settings.get("cluster_domain") or default_domain(answers, name)
    if not domain:
        raise HookError("cluster_domain", f"give the domain of cluster {shown(name)} (--domain): the first cluster's "
                                          f"domain {shown(answers.get('cluster_domain'))} does not start with its name")
    cluster = {**first(answers), **settings, "cluster_name": name, "cluster_domain": domain}
    result = [*(answers.get("clusters") or []), cluster]
    validate_clusters({**answers, "clusters": result})
    return result


def plan_set(answers: dict[str, Any], name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The answers that change one cluster's settings: top-level keys for the first cluster, the
    `clusters` answer for the others. Renaming a cluster (its bootstrap path) is refused."""
    find(answers, name)
    bad = sorted(set(settings) - set(PER_CLUSTER[1:]))
    if bad:
        raise HookError("cluster", f"cannot set {shown(bad)}; per-cluster settings: {', '.join(PER_CLUSTER[1:])}"
                        + (" (a cluster's name is its bootstrap path: add a new cluster instead)"
                           if "cluster_name" in bad else ""))
    if name == answers["cluster_name"]:
        return dict(settings)
    return {"clusters": [{**cluster, **settings} if cluster["cluster_name"] == name else cluster
                         for cluster in answers.get("clusters") or []]}


def plan_remove(answers: dict[str, Any], name: str) -> dict[str, Any]:
    """The answers without cluster `name`: refused while apps run on it, and for the last cluster.
    Removing the first cluster makes the next one first (its settings become the top-level answers)."""
    find(answers, name)
    placed = [app["name"] for app in apps_on(answers, name)]
    if placed:
        raise HookError("cluster", f"'{name}' still runs apps {', '.join(placed)}: offboard them from it first "
                                   f"(opencenter-offboard --cluster {name})")
    rest = [cluster for cluster in cluster_list(answers) if cluster["cluster_name"] != name]
    if not rest:
        raise HookError("cluster", f"'{name}' is the only cluster of this repository")
    if name != answers["cluster_name"]:
        return {"clusters": rest[1:]}
    # Apps without a `clusters` key ran on the removed first cluster; none are left (checked above),
    # so every app's placement names its clusters explicitly and stays valid.
    return {**rest[0], "clusters": rest[1:]}


def reserved(answers: dict[str, Any]) -> set[str]:
    """Names no app may take on this repository: the platform's (every cluster's Gateway namespace among them)."""
    return apps.reserved_names(apps.load_catalog(), [str(cluster.get("gateway_namespace", ""))
                                                     for cluster in cluster_list(answers)])


def published_hosts(answers: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(cluster, host, service) for every host a platform service selected on a cluster publishes
    there (keycloak's auth.<domain>): no app may be assigned it (hooks/apps hostname_conflicts)."""
    return apps.published_hosts(apps.load_catalog(), {str(c.get("cluster_name", "")): list(c.get("platform_services") or [])
                                                      for c in cluster_list(answers) if isinstance(c, dict)},
                                domains(answers))
