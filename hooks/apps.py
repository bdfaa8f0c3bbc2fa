"""Registered applications: the `apps` answer of a platform repository, pure functions only.

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

The same rules are mirrored in the `apps` validator of questions/platform.yml (Jinja), so a
hand-written `copier update --data apps=…` is refused as well; tests/test_onboard_units.py checks
that both refuse the same entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hooks import knownhosts
from hooks.errors import HookError

SERVICES_FILE = Path(__file__).resolve().parent.parent / "includes" / "services.yml"

KEYS = ("name", "url", "branch", "secrets", "receiver", "known_hosts")
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
NAME_MAX = 63
URL_RE = re.compile(r"^ssh://([A-Za-z0-9._-]+)@([A-Za-z0-9.-]+)(:([0-9]{1,5}))?/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$")
BRANCH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
RECEIVER_TYPES = ("github", "gitlab", "bitbucket", "generic")
RECEIVER_EVENTS = {
    "github": ["ping", "push"],
    "gitlab": ["Push Hook"],
    "bitbucket": ["repo:push"],
    "generic": [],
}
# Namespaces and Flux object names that belong to the platform, whatever services are selected.
FIXED_RESERVED = (
    "default", "kube-system", "kube-public", "kube-node-lease", "flux-system",
    "sources", "kustomization",
)


@dataclass(frozen=True)
class OnceFile:
    """A file that onboarding writes once (encrypted) and the template never renders."""

    kind: str  # deploy-key | sops-age | receiver-token
    path: str  # relative to the platform repository


def load_catalog(path: Path = SERVICES_FILE) -> dict[str, dict]:
    return yaml.safe_load(path.read_text())


def reserved_names(catalog: dict[str, dict], gateway_namespace: str) -> set[str]:
    """Names an app may not take: platform namespaces and the names of platform Flux objects/files."""
    names = set(FIXED_RESERVED) | {gateway_namespace}
    for svc, spec in catalog.items():
        names |= {svc, f"{svc}-base", f"{svc}-override"}
        for key in ("namespace", "source"):
            if spec.get(key):
                names.add(spec[key])
        if "prestage" in spec:
            names.add(spec["prestage"]["name"])
    return names


def parse_url(url: str) -> tuple[str, str, int | None]:
    """(user, host, port) of an ssh:// URL, or a HookError naming the rule."""
    match = URL_RE.match(url or "")
    if not match:
        raise HookError(
            "url",
            f"must be ssh://user@host[:port]/path (Flux clones with the deploy key over ssh; "
            f"scp-style git@host:path and https:// are refused), got '{url}'",
        )
    port = int(match.group(4)) if match.group(4) else None
    if port is not None and not 1 <= port <= 65535:
        raise HookError("url", f"port must be between 1 and 65535, got {port}")
    return match.group(1), match.group(2), port


def default_receiver(host: str) -> str:
    """The Receiver type that matches a Git host's webhooks."""
    for kind in ("github", "gitlab", "bitbucket"):
        if kind in host.split("."):
            return kind
    return "generic"


def normalize(raw: Any) -> dict[str, Any]:
    """An entry with every key, in KEYS order and with defaults; unknown keys are refused."""
    if not isinstance(raw, dict):
        raise HookError("apps", f"every entry must be a mapping with keys {', '.join(KEYS)} (got {raw!r})")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise HookError(f"apps[{raw.get('name', '?')}]", f"unknown keys {unknown}; allowed: {', '.join(KEYS)}")
    entry = {
        "name": raw.get("name", ""),
        "url": raw.get("url", ""),
        "branch": raw.get("branch", "main"),
        "secrets": raw.get("secrets", False),
        "receiver": raw.get("receiver", "") or "",
        "known_hosts": raw.get("known_hosts", "") or "",
    }
    return entry


def validate_entry(entry: dict[str, Any], reserved: set[str]) -> None:
    """Refuse an entry that breaks a rule, naming the field and the rule (HookError)."""
    name = entry["name"]
    where = f"apps[{name}]"
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > NAME_MAX:
        raise HookError(
            f"{where}.name",
            f"must be a DNS-1123 label of at most {NAME_MAX} characters: lowercase letters, digits and '-', "
            f"starting with a letter, ending with a letter or digit (got '{name}')",
        )
    if name in reserved:
        raise HookError(
            f"{where}.name",
            f"'{name}' is reserved by the platform (a system or platform-service namespace, or the name of "
            "a platform Flux object); choose another name",
        )
    if not isinstance(entry["url"], str):
        raise HookError(f"{where}.url", f"must be a string (got {entry['url']!r})")
    try:
        _, host, port = parse_url(entry["url"])
    except HookError as error:
        raise HookError(f"{where}.url", error.rule) from None
    branch = entry["branch"]
    if (not isinstance(branch, str) or not BRANCH_RE.match(branch) or ".." in branch
            or branch.endswith(("/", ".lock", "."))):
        raise HookError(
            f"{where}.branch",
            f"must be a git branch name: letters, digits, '.', '_', '-' and '/', no '..', not ending in "
            f"'/', '.' or '.lock' (got '{branch}')",
        )
    if not isinstance(entry["secrets"], bool):
        raise HookError(f"{where}.secrets", f"must be true or false (got {entry['secrets']!r})")
    if entry["receiver"] not in ("",) + RECEIVER_TYPES:
        raise HookError(
            f"{where}.receiver", f"must be empty or one of {', '.join(RECEIVER_TYPES)} (got '{entry['receiver']}')"
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


def validate_apps(apps: Any, reserved: set[str]) -> list[dict[str, Any]]:
    """The whole `apps` answer: a list of valid entries with unique names (normalized)."""
    if not isinstance(apps, list):
        raise HookError("apps", f"must be a YAML list of app entries (got {apps!r})")
    seen: set[str] = set()
    result = []
    for raw in apps:
        entry = normalize(raw)
        validate_entry(entry, reserved)
        if entry["name"] in seen:
            raise HookError(f"apps[{entry['name']}].name", "is registered twice; app names must be unique")
        seen.add(entry["name"])
        result.append(entry)
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
    if old == entry:
        return Registration(apps, False, old)
    if old is not None and not allow_update:
        diffs = ", ".join(f"{key}: {old[key]!r} -> {entry[key]!r}" for key in KEYS if old[key] != entry[key])
        raise HookError(
            f"apps[{entry['name']}]",
            f"is already registered with other settings ({diffs}). To change the app, run the same "
            "onboarding command with --update (keeps its deploy key); to start over, offboard it first",
        )
    current[entry["name"]] = entry
    return Registration([current[name] for name in sorted(current)], True, old)


def plan_remove(apps: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    if name not in {app["name"] for app in apps}:
        registered = ", ".join(app["name"] for app in apps) or "none"
        raise HookError("name", f"'{name}' is not a registered app (registered: {registered})")
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


def rendered_files(name: str, cluster: str) -> list[str]:
    """The files the template renders for an app."""
    return [f"{sources_dir(cluster)}/{name}.yaml", f"{fluxcd_dir(cluster)}/{name}.yaml"]
