"""Files of app entries, and onboarding requests: an app team asks for onboarding by pull request.

A file of entries (`opencenter-onboard --platform P --from-file FILE`) holds one `apps` entry (a
mapping) or a YAML list of them, with the keys of an `apps` entry (hooks/apps); only `name` and
`url` are required, the rest take onboarding's defaults.

A request is such a file under onboarding-requests/ of the platform repository, added by an app
team in a pull request. The platform repository's check (its CI) validates every request with
onboarding's own rules, against the registered apps and the other requests (names, clusters,
hostnames), and fails while a request is pending, printing the command that registers it. That
registration removes the request in the same change, so the pull request passes once it carries
the registration (deploy keys generated and encrypted on the platform engineer's machine, never in
CI); merging it is the platform team's review.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hooks import apps as appsmod
from hooks import clusters
from hooks.errors import HookError, shown
from hooks.manifests import read_yaml_file

REQUESTS_DIR = "onboarding-requests"


def read_entries(path: Path) -> list[dict[str, Any]]:
    """The entries of a file: one mapping or a list of them, each with at least name and url."""
    data = read_yaml_file(path)
    entries = [data] if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise HookError(str(path), "must hold an app entry (a mapping with at least name and url) or a list of them")
    for number, entry in enumerate(entries, 1):
        missing = [key for key in ("name", "url")
                   if not isinstance(entry, dict) or not isinstance(entry.get(key), str) or not entry[key]]
        if missing:
            has = f"it has keys {shown(sorted(map(str, entry)))}" if isinstance(entry, dict) else f"got {shown(entry)}"
            raise HookError(f"{path}: entry {number}", f"needs {' and '.join(missing)} as text ({has})")
    return entries


def request_path(repo: Path, path: Path) -> str | None:
    """The path of a request relative to the platform repository; None for a file elsewhere."""
    try:
        rel = path.resolve().relative_to(repo.resolve())
    except ValueError:
        return None
    return rel.as_posix() if rel.parts[:1] == (REQUESTS_DIR,) else None


def request_files(repo: Path) -> list[Path]:
    folder = repo / REQUESTS_DIR
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix in (".yaml", ".yml")) \
        if folder.is_dir() else []


def request_problems(repo: Path, answers: dict[str, Any]) -> list[tuple[str, str]]:
    """(request file, message) for every request: why it cannot be registered, or the command that
    registers it (the check reports them as findings: a pending request fails CI)."""
    domains = clusters.domains(answers)
    reserved = clusters.reserved(answers)
    published = clusters.published_hosts(answers)
    registered = answers.get("apps") or []
    accepted: list[dict[str, Any]] = []  # the valid requests so far: they must not clash with each other
    asked_in: dict[str, str] = {}  # app name -> the request that asked for it first
    problems = []
    for path in request_files(repo):
        rel = path.relative_to(repo).as_posix()
        try:
            entries = read_entries(path)
            for entry in entries:
                if entry["name"] in asked_in:
                    raise HookError(f"apps[{entry['name']}]", f"is requested in {asked_in[entry['name']]} already")
            _, planned = appsmod.plan_many(registered, [*accepted, *entries], reserved, domains, published=published)
        except HookError as error:
            field = error.field.replace(str(path), "").lstrip(": ")  # the finding names the file already
            problems.append((rel, f"{field}: {error.rule}" if field else error.rule))
            continue
        accepted += entries
        asked_in.update((entry["name"], rel) for entry in entries)
        done = [item.entry["name"] for item in planned[-len(entries):] if not item.plan.changed]
        if len(done) == len(entries):
            problems.append((rel, f"{', '.join(done)} already registered with these settings: delete this request "
                                  f"(git rm {rel})"))
        else:  # registering the file registers the rest and leaves the registered ones as they are
            known = f" ({', '.join(done)} registered with these settings already)" if done else ""
            problems.append((rel, f"valid, not registered yet{known}: on this branch a platform engineer runs "
                                  f"`opencenter-onboard --platform . --from-file {rel}` (it registers the apps and "
                                  "removes this file), commits and pushes"))
    return problems
