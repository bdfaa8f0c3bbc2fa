"""Registered applications: the `apps` answer of a platform repository, pure functions only
(`python -m hooks.apps` runs the day-two commands of hooks/app_admin.py: hooks/apps/__main__.py).

An entry of `apps` (the single source of truth; onboarding and offboarding change it, the platform
template renders it) is a mapping with exactly these keys:

  name         DNS-1123 label: the app's namespace and the name of its Flux objects
  url          ssh://user@host[:port]/path of the app repository (Flux pulls with a deploy key)
  branch       branch Flux reconciles
  secrets      true: the app repository holds SOPS-encrypted files; its Kustomization decrypts
               them with the app's own age key (Secret <name>-sops-age in flux-system, written
               by onboarding for every app), never with the platform's `sops-age`
  receiver     '' (poll every 5m) or the notification-controller Receiver type for instant
               reconciles: github, gitlab, bitbucket or generic
  known_hosts  '' for github.com, gitlab.com and bitbucket.org (their published host keys are
               used); for any other host the known_hosts lines of the Git server

and, optionally (absent when empty):

  clusters     the clusters the app runs on, by name (absent: the repository's first cluster);
               its files are rendered in each one's overlay (hooks/clusters.py)
  overlays     true: the app runs on one cluster but its repository has one environment per
               cluster (it ran on several and left the others), so that cluster's Flux keeps
               applying deploy/overlays/<cluster> instead of the root (which builds the FIRST
               environment). Set when the app leaves clusters; implied, never recorded, on several

set by the platform team (docs/tenancy.md):

  hostnames    hostnames under a cluster's domain the app may publish besides <name>.<domain> and
               its subdomains; never another app's on that cluster, nor a host a platform service
               selected there publishes (keycloak's auth.<domain>) or a name under it (Namespace
               annotation opencenter/hostnames, in each cluster's overlay the names under its domain)
  egress       CIDRs the team's NetworkPolicies may open egress to (opencenter/egress-cidrs)
  quota        ResourceQuota `hard` entries that replace the defaults, e.g. {requests.cpu: "8"}
               (keys as the API server accepts them: includes/quota.yml)

The same rules are mirrored in the `apps` validator of questions/platform.yml (Jinja), so a
hand-written `copier update --data apps=…` is refused as well; tests/test_onboard_units.py checks
that both refuse the same entries.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hooks import giturl, knownhosts
from hooks.errors import HookError, cut, shown
from hooks.manifests import FAST_LOADER
from hooks.quantity import is_quantity

# includes/ is shared with the templates; hooks/includes links to it so that an installed wheel
# (the check as CI installs it) carries the catalog as package data.
INCLUDES = Path(__file__).resolve().parents[1] / "includes"
SERVICES_FILE = INCLUDES / "services.yml"

KEYS = ("name", "url", "branch", "secrets", "receiver", "known_hosts")
OPTIONAL_KEYS = ("clusters", "overlays", "hostnames", "egress", "quota")
# Matched whole (fullmatch): `$` would also match before a final line break, and 'main\n' pass.
HOSTNAME_RE = re.compile(r"(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+")
NAME_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
NAME_MAX = 63
URL_RE = re.compile(r"ssh://([A-Za-z0-9._-]+)@([A-Za-z0-9.-]+)(:([0-9]{1,5}))?/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*")
BRANCH_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
RECEIVER_TYPES = ("github", "gitlab", "bitbucket", "generic")
RECEIVER_EVENTS = {
    "github": ["ping", "push"],
    "gitlab": ["Push Hook"],
    "bitbucket": ["repo:push"],
    "generic": [],
}
# Namespaces and Flux object names that belong to the platform, whatever services are selected.
RESERVED_FILE = INCLUDES / "reserved.yml"
# The ResourceQuota keys an app's quota may set: the `apps` validator matches the same pattern
# and says the same rule.
QUOTA_KEYS = yaml.safe_load((INCLUDES / "quota.yml").read_text())
QUOTA_KEY_RE = re.compile(QUOTA_KEYS["key_pattern"])


@functools.cache
def load_reserved(path: Path = RESERVED_FILE) -> dict[str, list[str]]:
    """Names refused for namespaces and apps (includes/reserved.yml, shared with the validators);
    read once: validate_entry asks for every registered app (0.35 s per 200 apps when re-read)."""
    return yaml.safe_load(path.read_text())


@dataclass(frozen=True)
class OnceFile:
    """A file that onboarding writes once (encrypted) and the template never renders."""

    kind: str  # deploy-key | sops-age | receiver-token
    path: str  # relative to the platform repository


def load_catalog(path: Path = SERVICES_FILE) -> dict[str, dict]:
    # libyaml's parser: a command reads the catalog several times (2 ms each, 20 ms in pure Python).
    return yaml.load(path.read_text(), Loader=FAST_LOADER)


def reserved_names(catalog: dict[str, dict], gateway_namespaces: list[str]) -> set[str]:
    """Names an app may not take: platform namespaces (every cluster's Gateway namespace among
    them), the names of platform Flux objects/files and the hosts platform services publish."""
    fixed = load_reserved()
    names = {*fixed["namespaces"], *fixed["flux_objects"], *gateway_namespaces}
    for svc, spec in catalog.items():
        names |= {svc, f"{svc}-base", f"{svc}-override"}
        for key in ("namespace", "source"):
            if spec.get(key):
                names.add(spec[key])
        names |= set(spec.get("extra_namespaces") or [])
        for key in ("prestages", "steps"):
            names |= {entry["name"] for entry in spec.get(key) or []}
        # A host a service publishes on every cluster's domain (keycloak's auth.<domain>) is no
        # app's: an app owns <name>.<domain> and everything under it.
        names |= {entry["hostname"]["host"] for entry in spec.get("steps") or [] if entry.get("hostname")}
    return names


def parse_url(url: str) -> tuple[str, str, int | None]:
    """(user, host, port) of an ssh:// URL, or a HookError naming the rule."""
    match = URL_RE.fullmatch(url or "")
    if not match:
        raise HookError(
            "url",
            f"must be ssh://user@host[:port]/path (Flux clones with the deploy key over ssh; "
            f"scp-style git@host:path and https:// are refused), got {shown(url)}",
        )
    port = int(match.group(4)) if match.group(4) else None
    if port is not None and not 1 <= port <= 65535:
        raise HookError("url", f"port must be between 1 and 65535, got {port}")
    return match.group(1), match.group(2), port


def is_quota_key(key: object) -> bool:
    """Whether the API server accepts `key` in a ResourceQuota's `hard` (includes/quota.yml)."""
    return isinstance(key, str) and QUOTA_KEY_RE.fullmatch(key) is not None


def entry_label(name: object) -> str:
    """How a message names an entry: apps[shop], apps[Cart] (a name refused, as given); a name that
    is not a short line of text (a 10 MB string, a line break, a list) quoted and cut (errors.shown)."""
    plain = isinstance(name, str) and len(name) <= NAME_MAX and name.isprintable()
    return f"apps[{name}]" if plain else f"apps[{shown(name)}]"


def default_receiver(host: str) -> str:
    """The Receiver type that matches a Git host's webhooks."""
    for kind in ("github", "gitlab", "bitbucket"):
        if kind in host.split("."):
            return kind
    return "generic"


def normalize(raw: Any) -> dict[str, Any]:
    """An entry with every key, in KEYS order and with defaults; unknown keys are refused."""
    if not isinstance(raw, dict):
        raise HookError("apps", f"every entry must be a mapping with keys {', '.join(KEYS)} (got {shown(raw)})")
    unknown = sorted(map(str, set(raw) - set(KEYS) - set(OPTIONAL_KEYS)))
    if unknown:
        raise HookError(entry_label(raw.get("name", "?")),
                        f"unknown keys {cut(', '.join(unknown))}; allowed: {', '.join(KEYS + OPTIONAL_KEYS)}")
    entry = {
        "name": raw.get("name", ""),
        "url": raw.get("url", ""),
        "branch": raw.get("branch", "main"),
        "secrets": raw.get("secrets", False),
        "receiver": raw.get("receiver", "") or "",
        "known_hosts": raw.get("known_hosts", "") or "",
    }
    # Kept when given, even empty: an empty value given to an update clears the setting
    # (plan_register drops it), an absent one keeps what the app had.
    entry.update({key: raw[key] for key in OPTIONAL_KEYS if key in raw})
    return entry


def branch_problem(branch: object) -> str | None:
    """Why `branch` is not a git branch name (None when it is): the rule of every branch answer
    (questions: app_repo_branch, platform_repo_branch, platform_check_branch)."""
    if (isinstance(branch, str) and BRANCH_RE.fullmatch(branch) and ".." not in branch
            and not branch.endswith(("/", ".lock", "."))):
        return None
    return (f"must be a git branch name: letters, digits, '.', '_', '-' and '/', no '..', not ending in "
            f"'/', '.' or '.lock' (got {shown(branch)})")


def validate_entry(entry: dict[str, Any], reserved: set[str]) -> None:
    """Refuse an entry that breaks a rule, naming the field and the rule (HookError)."""
    name = entry["name"]
    where = entry_label(name)
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or len(name) > NAME_MAX:
        raise HookError(
            f"{where}.name",
            f"must be a DNS-1123 label of at most {NAME_MAX} characters: lowercase letters, digits and '-', "
            f"starting with a letter, ending with a letter or digit (got {shown(name)})",
        )
    fixed = load_reserved()
    prefixes = (*fixed["namespace_prefixes"], *fixed["app_prefixes"])
    if name in reserved or name.startswith(prefixes):
        raise HookError(
            f"{where}.name",
            f"'{name}' is reserved by the platform (a system or platform-service namespace, the name of "
            f"a platform Flux object or of a host a platform service serves, or a {'/'.join(prefixes)} prefix); "
            "choose another name",
        )
    if not isinstance(entry["url"], str):
        raise HookError(f"{where}.url", f"must be a string (got {shown(entry['url'])})")
    try:
        _, host, port = parse_url(entry["url"])
    except HookError as error:
        raise HookError(f"{where}.url", error.rule) from None
    problem = branch_problem(entry["branch"])
    if problem is not None:
        raise HookError(f"{where}.branch", problem)
    if not isinstance(entry["secrets"], bool):
        raise HookError(f"{where}.secrets", f"must be true or false (got {shown(entry['secrets'])})")
    if entry["receiver"] not in ("",) + RECEIVER_TYPES:
        raise HookError(
            f"{where}.receiver", f"must be empty or one of {', '.join(RECEIVER_TYPES)} (got {shown(entry['receiver'])})"
        )
    known = entry["known_hosts"]
    if not isinstance(known, str):
        raise HookError(f"{where}.known_hosts", "must be a string of known_hosts lines")
    published = host in knownhosts.PUBLISHED and port in (None, 22)
    if published and known:
        raise HookError(
            f"{where}.known_hosts",
            f"must be empty for {host}: its published host keys are used (hooks/knownhosts.py)",
        )
    if not published:
        if not known:
            raise HookError(
                f"{where}.known_hosts",
                f"{knownhosts.host_pattern(host, port)} does not publish host keys this template knows; give "
                "its known_hosts lines (--known-hosts-file, checked out of band, e.g. with "
                "`ssh-keyscan` compared to the fingerprints your Git admin publishes). Trust on first "
                "use is never applied silently",
            )
        problem = knownhosts.check_lines(known, host, port)
        if problem:
            raise HookError(f"{where}.known_hosts", problem)
    _validate_tenancy_keys(entry, where)


def _validate_tenancy_keys(entry: dict[str, Any], where: str) -> None:
    placed = entry.get("clusters", [])
    if not isinstance(placed, list) or not all(isinstance(c, str) for c in placed) or len(set(placed)) != len(placed):
        raise HookError(f"{where}.clusters", f"must be a list of cluster names, each once (got {shown(placed)})")
    if not isinstance(entry.get("overlays", False), bool):
        raise HookError(f"{where}.overlays", f"must be true or false (got {shown(entry['overlays'])})")
    hostnames = entry.get("hostnames", [])
    if not isinstance(hostnames, list) or not all(isinstance(h, str) and HOSTNAME_RE.fullmatch(h) for h in hostnames):
        raise HookError(f"{where}.hostnames", f"must be a list of lowercase DNS names, optionally '*.'-prefixed (got {shown(hostnames)})")
    egress = entry.get("egress", [])
    for cidr in egress if isinstance(egress, list) else [None]:
        try:
            ok = isinstance(cidr, str) and "/" in cidr and str(ipaddress.ip_network(cidr)) == cidr
        except ValueError:
            ok = False
        if not ok:
            raise HookError(f"{where}.egress", f"must be a list of CIDRs in canonical form, e.g. 10.20.0.0/16 (got {shown(egress)})")
    quota = entry.get("quota", {})
    if not isinstance(quota, dict):
        raise HookError(f"{where}.quota", f"must be a mapping of ResourceQuota entries to quantities (got {shown(quota)})")
    for key, value in quota.items():
        if not is_quota_key(key):
            raise HookError(f"{where}.quota", f"{shown(key)} must be {QUOTA_KEYS['key_rule']}")
        # As the validator's pattern: no surrounding blanks (is_quantity reads manifests, which the
        # API server trims; an answer is rendered as given).
        if not isinstance(value, str) or value != value.strip() or not is_quantity(value):
            raise HookError(f"{where}.quota", f"{key}: {shown(value)} must be a quantity as a string, e.g. requests.cpu: \"4\"")


def zone(name: str, domain: str) -> str:
    """The hostnames every app owns: <name>.<domain> and its subdomains."""
    return f"{name}.{domain}"


def _overlap(a: str, b: str) -> bool:
    """Whether two hostnames ('*.x' wildcards included) can match one host (Gateway API: '*.x'
    matches any name ending in '.x')."""
    wild_a, wild_b = a.startswith("*."), b.startswith("*.")
    bare_a, bare_b = a.removeprefix("*."), b.removeprefix("*.")
    if wild_a and wild_b:
        return bare_a == bare_b or bare_a.endswith("." + bare_b) or bare_b.endswith("." + bare_a)
    if wild_a:
        return b.endswith("." + bare_a)
    if wild_b:
        return a.endswith("." + bare_b)
    return a == b


def placement(entry: dict[str, Any], domains: dict[str, str]) -> list[str]:
    """The clusters an app runs on: its `clusters`, else the first cluster (the first of `domains`)."""
    return list(entry.get("clusters") or list(domains)[:1])


def published_hosts(catalog: dict[str, dict], services: dict[str, list[str]],
                    domains: dict[str, str]) -> list[tuple[str, str, str]]:
    """(cluster, host, service) for every host a platform service selected on a cluster (`services`:
    each cluster's platform_services) publishes on that cluster's domain (keycloak's auth.<domain>)."""
    return [(cluster, f"{entry['hostname']['host']}.{domain}", svc)
            for cluster, domain in domains.items()
            for svc in services.get(cluster) or [] if svc in catalog
            for entry in catalog[svc].get("steps") or [] if entry.get("hostname")]


def hostname_conflicts(apps: list[dict[str, Any]], domains: dict[str, str],
                       published: Sequence[tuple[str, str, str]] = ()) -> list[str]:
    """Why an app would serve a hostname that is not its own on a cluster (empty: none). `domains`:
    every cluster's domain, the first cluster first; `published`: the hosts platform services
    publish (published_hosts). On each cluster every app owns its zone and every platform service
    its hosts, each with the names under it (a name under the login host could be sent its
    cookies); assigned names must lie under the domain of one of the app's clusters (a Gateway
    listener serves *.<domain> only) and, on each cluster whose domain they are under, in no other
    app's zone or assigned names and no platform service's host."""
    problems = []
    # (cluster, hostname or *.pattern, owner: "app <name>" or "platform service <name>"); the
    # platform's first, so that a clash with both names the platform service
    owners: list[tuple[str, str, str]] = [(cluster, name, f"platform service {svc}")
                                          for cluster, host, svc in published for name in (f"*.{host}", host)]
    for app in apps:
        for cluster in placement(app, domains):
            if cluster in domains:
                owners += [(cluster, f"*.{zone(app['name'], domains[cluster])}", f"app {app['name']}"),
                           (cluster, zone(app["name"], domains[cluster]), f"app {app['name']}")]
    for app in apps:
        placed = [cluster for cluster in placement(app, domains) if cluster in domains]
        for hostname in app.get("hostnames", []):
            bare = hostname.removeprefix("*.")
            under = [cluster for cluster in placed if bare.endswith("." + domains[cluster])]
            if placed and not under:
                served = " or ".join(domains[cluster] for cluster in placed)
                what = "the only domain the Gateway serves" if len(placed) == 1 else "the domains the Gateways of its clusters serve"
                problems.append(f"apps[{app['name']}].hostnames: {hostname} is not under {served}, {what}")
                continue
            for cluster, other, owner in owners:
                if owner != f"app {app['name']}" and cluster in under and _overlap(other, hostname):
                    on = f" on cluster {cluster}" if len(domains) > 1 else ""
                    problems.append(f"apps[{app['name']}].hostnames: {hostname} is also served by {owner} ({other}{on})")
                    break
            owners += [(cluster, hostname, f"app {app['name']}") for cluster in under]
    return problems


def validate_apps(apps: Any, reserved: set[str], domains: dict[str, str] | None = None,
                  published: Sequence[tuple[str, str, str]] = ()) -> list[dict[str, Any]]:
    """The whole `apps` answer: a list of valid entries with unique names, placed on clusters of
    `domains` (every cluster's domain, first cluster first), and hostnames of their own, never
    another app's or a host of `published` (published_hosts; normalized). Without `domains`,
    placements and hostnames are not checked."""
    if not isinstance(apps, list):
        raise HookError("apps", f"must be a YAML list of app entries (got {shown(apps)})")
    seen: set[str] = set()
    result = []
    for raw in apps:
        entry = normalize(raw)
        validate_entry(entry, reserved)
        if entry["name"] in seen:
            raise HookError(f"apps[{entry['name']}].name", "is registered twice; app names must be unique")
        seen.add(entry["name"])
        if domains and not set(placement(entry, domains)) <= set(domains):
            raise HookError(f"apps[{entry['name']}].clusters",
                            f"must name clusters of this repository: {', '.join(domains)} (got {shown(entry['clusters'])})")
        result.append(entry)
    conflicts = hostname_conflicts(result, domains or {}, published)
    if conflicts:
        field, _, why = conflicts[0].partition(": ")
        raise HookError(field, why)
    return result


def known_hosts_for(entry: dict[str, Any]) -> str:
    """The known_hosts text that goes into the deploy-key Secret."""
    _, host, port = parse_url(entry["url"])
    if host in knownhosts.PUBLISHED and port in (None, 22):
        return knownhosts.published_lines(host) or ""
    text = entry["known_hosts"]
    return text if text.endswith("\n") else text + "\n"


@dataclass(frozen=True)
class Registration:
    """What registering an entry does: the new apps list, and whether anything changes."""

    apps: list[dict[str, Any]]
    changed: bool
    previous: dict[str, Any] | None  # the entry it replaces (update), or None


def plan_register(apps: list[dict[str, Any]], entry: dict[str, Any], allow_update: bool = False) -> Registration:
    """Add entry to apps (sorted by name). Same settings again: no change. Other settings: refused
    unless allow_update, which replaces the entry."""
    current = {app["name"]: app for app in apps}
    old = current.get(entry["name"])
    if old is not None and allow_update:
        # Leaving clusters does not change the app repository: it keeps one environment per cluster,
        # and the clusters the app stays on keep applying theirs (their Kustomization's path).
        if len(old.get("clusters") or []) > 1 and "overlays" not in entry:
            entry = {**entry, "overlays": True}
    if len(entry.get("clusters") or []) > 1:
        entry = {key: value for key, value in entry.items() if key != "overlays"}  # on several clusters an app always has overlays
    entry = {key: value for key, value in entry.items() if key in KEYS or value}
    if old == entry:
        return Registration(apps, False, old)
    if old is not None and not allow_update:
        diffs = ", ".join(f"{key}: {shown(old.get(key))} -> {shown(entry.get(key))}" for key in KEYS + OPTIONAL_KEYS
                          if old.get(key) != entry.get(key))
        raise HookError(
            f"apps[{entry['name']}]",
            f"is already registered with other settings ({diffs}). To change the app, run the same "
            "onboarding command with --update (keeps its deploy key); to start over, offboard it first",
        )
    current[entry["name"]] = entry
    return Registration([current[name] for name in sorted(current)], True, old)


def carried_over(apps: list[dict[str, Any]], raw: Any) -> Any:
    """An update of a registered app: every setting it does not give keeps the app's value (given
    empty, an optional setting is cleared); anything else is returned as it is."""
    old = next((app for app in apps if isinstance(raw, dict) and app["name"] == raw.get("name")), None)
    return {**old, **raw} if old is not None else raw


def place(entry: dict[str, Any], current: list[dict[str, Any]], domains: dict[str, str]) -> dict[str, Any]:
    """The entry with its clusters: on a one-cluster repository none are recorded (the app runs on
    the first cluster); with several, a new app must name them, and an update that names none
    keeps the app's (carried_over)."""
    given = entry.get("clusters")
    if len(domains) == 1 and given in (None, list(domains)):
        return {key: value for key, value in entry.items() if key != "clusters"}
    registered = entry["name"] in {app["name"] for app in current}
    if given == [] or (given is None and len(domains) > 1 and not registered):
        raise HookError(f"apps[{entry['name']}].clusters",
                        f"this platform repository has clusters {', '.join(domains)}: say which the app runs on with "
                        "--cluster NAME (repeatable; in a file of entries: clusters: [NAME, ...])")
    return entry


@dataclass(frozen=True)
class Planned:
    """One entry of a registration: the entry as registered (with the settings it keeps) and its plan."""

    entry: dict[str, Any]
    plan: Registration


def plan_many(apps: list[dict[str, Any]], raw_entries: list[Any], reserved: set[str], domains: dict[str, str],
              allow_update: bool = False, published: Sequence[tuple[str, str, str]] = ()) -> tuple[list[dict[str, Any]], list[Planned]]:
    """Register entries one after the other (onboarding: one; a file: many, all or none). The new
    `apps` and each entry's plan; refuses an invalid entry, one named twice, and any clash of the
    result (names, hostnames, also with the hosts of `published`, placements)."""
    current = validate_apps(apps, reserved, domains, published)
    planned: list[Planned] = []
    for raw in raw_entries:
        if allow_update:
            raw = carried_over(current, raw)
            if isinstance(raw, dict) and "url" not in raw:
                raise HookError(f"{entry_label(raw.get('name'))}.url", f"required: {shown(raw.get('name'))} is not registered, so "
                                "there is no URL to keep (an update without --url changes a registered app)")
        entry = place(normalize(raw), current, domains)
        if entry["name"] in {item.entry["name"] for item in planned}:
            raise HookError(f"apps[{entry['name']}].name", "is given twice")
        validate_entry(entry, reserved)
        plan = plan_register(current, entry, allow_update)
        current = plan.apps
        planned.append(Planned(next(app for app in current if app["name"] == entry["name"]), plan))
    # The apps as they were first, then the entries in order: a clash is reported on the entry
    # that causes it, never on the registered app it collides with.
    given = {item.entry["name"] for item in planned}
    validate_apps([*(app for app in current if app["name"] not in given), *(item.entry for item in planned)],
                  reserved, domains, published)
    return current, planned


def repository_twins(apps: list[dict[str, Any]], entry: dict[str, Any]) -> list[str]:
    """The other apps that deploy the repository `entry` does (however its URL is spelled:
    hooks/giturl.py): meant only while an app is renamed (docs/day-two.md), else a mistake."""
    return [app["name"] for app in apps
            if app["name"] != entry["name"] and giturl.same_repository(app["url"], entry["url"])]


def plan_remove(apps: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    if name not in {app["name"] for app in apps}:
        registered = ", ".join(app["name"] for app in apps) or "none"
        raise HookError("name", f"{shown(name)} is not a registered app (registered: {registered})")
    return [app for app in apps if app["name"] != name]


def sources_dir(cluster: str) -> str:
    return f"applications/overlays/{cluster}/services/sources"


def fluxcd_dir(cluster: str) -> str:
    return f"applications/overlays/{cluster}/services/fluxcd"


def once_files(entry: dict[str, Any], cluster: str) -> list[OnceFile]:
    """The encrypted files an entry needs (written once by onboarding, listed by the template).

    The age key exists for every app, with or without secrets: its public half is known from the
    registration on, so enabling secrets later (--update --secrets) needs no new key and the app
    repository's .sops.yaml can name it from the first copy.
    """
    kinds = ["deploy-key", "sops-age"] + (["receiver-token"] if entry["receiver"] else [])
    return [OnceFile(kind, once_file(entry["name"], cluster, kind)) for kind in kinds]


def once_file(name: str, cluster: str, kind: str) -> str:
    """The path of one once-only file of an app."""
    return f"{sources_dir(cluster)}/{name}-{kind}.sops.yaml"


def all_once_files(name: str, cluster: str) -> list[str]:
    """Every once-only path an app may own (offboarding removes those that exist)."""
    return [once_file(name, cluster, kind) for kind in ("deploy-key", "sops-age", "receiver-token")]


def tenant_dir(name: str, cluster: str) -> str:
    """The folder of the app's tenant (namespace, identity, quota, baseline policies), applied on its own."""
    return f"applications/overlays/{cluster}/services/tenants/{name}"


def rendered_files(name: str, cluster: str) -> list[str]:
    """The files the template renders for an app."""
    return [f"{sources_dir(cluster)}/{name}.yaml", f"{fluxcd_dir(cluster)}/{name}.yaml",
            f"{tenant_dir(name, cluster)}/tenant.yaml"]
