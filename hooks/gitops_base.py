"""The link to openCenter-gitops-base: the catalog against a release's listing, and a platform
repository's references against the release it pins.

A release listing (hooks/data/gitops-base-<tag>.json, made by scripts/gitops_base_listing.py
from a checkout of the release, never edited by hand) names each component directory under
applications/base/ with the Namespaces it creates, its HelmReleases, the values Secrets they
read and the key paths of their base values the template's comments use. Three uses:

- `catalog_findings(catalog, listing)`: does includes/services.yml describe that release? Every
  path exists, every override Secret the cluster overlay generates is one a HelmRelease of the
  base reads, namespaces agree; plus, as information, the components no service applies and the
  chart sources a service's HelmRelease needs but none of its components defines.
- `values_findings(values, kinds)`: do the template's override-values comments use keys of the
  base's values (the listing's `values_keys`)?
- `reference_findings(...)` / `check_references(...)`: for `opencenter-check --gitops-base`, the
  tag of every GitRepository of a platform repository on gitops_base_url exists in a given
  checkout or URL, and every spec.path of a Flux Kustomization on it exists at that tag. What
  cannot be read is a note, not a finding.

Pure functions first; the git adapter (`look_up`) at the end.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hooks import giturl, rules
from hooks.errors import HookError
from hooks.manifests import object_label
from hooks.rules import Finding, Located

DATA = Path(__file__).resolve().parent / "data"
CATALOG_FILE = "includes/services.yml"
# Key and file the cluster overlay's secretGenerator writes (services/<svc>/kustomization.yaml).
OVERRIDE_KEY = "override.yaml"
# Stages whose cluster overlay generates a values Secret for the base's HelmRelease.
HELM_OVERLAY_STAGES = ("base-first", "override-first")


# Shipped listings ----------------------------------------------------------------------------


def listing_file(tag: str) -> Path:
    return DATA / f"gitops-base-{tag}.json"


def shipped_tags() -> list[str]:
    return sorted(path.name.removeprefix("gitops-base-").removesuffix(".json") for path in DATA.glob("gitops-base-*.json"))


def load_listing(tag: str) -> dict:
    """The shipped listing of one release (HookError when the project ships none for it)."""
    path = listing_file(tag)
    if not path.is_file():
        raise HookError("gitops_base_tag", f"no listing of openCenter-gitops-base {tag} ships with the check "
                                           f"(shipped: {', '.join(shipped_tags()) or 'none'}); "
                                           "generate it with scripts/gitops_base_listing.py")
    return json.loads(path.read_text())


# The catalog against a release ---------------------------------------------------------------


def override_secret(svc: str, spec: dict) -> str | None:
    """The values Secret the cluster overlay of a service generates (None: no Helm overlay).
    The template names it <svc>-values-override; a catalog entry may name it (values_secret)."""
    if spec.get("stages") not in HELM_OVERLAY_STAGES:
        return None
    return str(spec.get("values_secret") or f"{svc}-values-override")


NUMBERED_RE = re.compile(r"/(\d+)-[^/]+$")


def _paths(spec: dict) -> list[tuple[str, str]]:
    """(catalog key, path) of the base folders a service's Flux Kustomizations apply."""
    out = [("path", str(spec["path"]))] if spec.get("path") else []
    for key in ("prestages", "steps"):
        for index, entry in enumerate(spec.get(key) or []):
            if isinstance(entry, dict) and entry.get("path"):
                out.append((f"{key}[{index}].path", str(entry["path"])))
    return out


def _closure(components: dict, paths: list[str]) -> list[str]:
    """The components applied from these paths: themselves and every component they include."""
    seen: list[str] = []
    for path in paths:
        for item in [path, *(components.get(path) or {}).get("includes", [])]:
            if item in components and item not in seen:
                seen.append(item)
    return seen


@dataclass
class CatalogReport:
    """The catalog against one release. `findings` are disagreements; `unreached` (components
    no service applies) and `chart_gaps` (a HelmRelease's chart source defined by none of the
    service's components) are information: they shrink as the catalog grows."""

    findings: list[Finding] = field(default_factory=list)
    unreached: list[str] = field(default_factory=list)
    chart_gaps: list[str] = field(default_factory=list)


def catalog_findings(catalog: dict[str, dict], listing: dict) -> CatalogReport:
    """Does the catalog describe this release? Rules: `catalog-path` (a path is not a component
    of the release), `catalog-values-secret` (the overlay's Secret is not one a HelmRelease of the
    base reads, under that key, optionally where the base installs first), `catalog-namespace`
    (the service's namespace is not the one the base's HelmReleases are in, or nothing the
    service applies creates it), `catalog-order` (numbered folders applied out of their order)."""
    components: dict[str, dict] = listing["components"]
    tag = listing.get("tag", "?")
    report = CatalogReport()

    def finding(svc: str, rule: str, message: str) -> None:
        report.findings.append(Finding(CATALOG_FILE, svc, rule, message))

    reached: set[str] = set()
    for svc, spec in catalog.items():
        paths = _paths(spec)
        # A base numbers the folders of a staged install (keycloak/00-postgres … 30-oidc-rbac): the
        # catalog applies them in that order, each step after the one before (dependsOn).
        numbered = [(int(match.group(1)), path) for _, path in paths if (match := NUMBERED_RE.search(path))]
        if [number for number, _ in numbered] != sorted(number for number, _ in numbered):
            finding(svc, "catalog-order", "applies " + ", ".join(path for _, path in numbered)
                    + " out of the order their numbers give")
        for key, path in paths:
            if path not in components:
                finding(svc, "catalog-path", f"{key} {path} is not a component of openCenter-gitops-base {tag} "
                                             "(no such folder with a kustomization file)")
        applied = _closure(components, [path for _, path in paths])
        reached |= set(applied)
        base = components.get(str(spec.get("path")))
        if base is None:
            continue
        releases = base["helm_releases"]
        secret = override_secret(svc, spec)
        if secret is not None:
            reads = [(release, entry) for release in releases for entry in release["values_from"]
                     if entry["kind"] == "Secret" and entry["name"] == secret]
            if not reads:
                expected = sorted({entry["name"] for release in releases for entry in release["values_from"]
                                   if entry["kind"] == "Secret" and entry["optional"]})
                finding(svc, "catalog-values-secret",
                        f"the cluster overlay generates Secret {secret}, which no HelmRelease of {spec['path']} reads "
                        f"(its optional valuesFrom Secrets: {', '.join(expected) or 'none'})")
            for release, entry in reads:
                where = f"HelmRelease {release['namespace']}/{release['name']} reads Secret {secret}"
                if entry["key"] != OVERRIDE_KEY:
                    finding(svc, "catalog-values-secret",
                            f"{where} under key {entry['key']}; the cluster overlay writes {OVERRIDE_KEY}")
                if spec.get("stages") == "base-first" and not entry["optional"]:
                    finding(svc, "catalog-values-secret",
                            f"{where} without optional: true, but the base installs before the overlay creates it "
                            "(stages: base-first)")
        namespace = str(spec.get("namespace") or "")
        if namespace:
            for release in releases:
                if release["namespace"] and release["namespace"] != namespace:
                    finding(svc, "catalog-namespace",
                            f"namespace {namespace}, but HelmRelease {release['name']} of {spec['path']} is in "
                            f"{release['namespace']} (its chart source and values Secrets are looked up there)")
            created = {ns for path in applied if path != spec["path"] for ns in components[path]["namespaces"]}
            # A base of remote resources (olm) creates what the listing cannot see.
            if not base["namespaces"] and not base["remote_resources"] and namespace not in created:
                finding(svc, "catalog-namespace",
                        f"nothing the service applies creates namespace {namespace} "
                        f"({spec['path']} has no Namespace; a prestage must create it)")
        defined = {source for path in applied for source in components[path]["sources"]}
        for release in releases:
            if release["chart"] and release["chart"] not in defined:
                elsewhere = sorted(path for path, entry in components.items() if release["chart"] in entry["sources"])
                report.chart_gaps.append(
                    f"{svc}: HelmRelease {release['namespace']}/{release['name']} needs {release['chart']}, defined by "
                    f"{', '.join(elsewhere) or 'no component'}, which the service does not apply")
    report.unreached = sorted(set(components) - reached)
    return report


# Override values against the base's values ----------------------------------------------------

# Istio's charts keep their defaults under this key and merge it beneath what a user sets at the top
# level (the values file says so): its keys are top-level keys.
ISTIO_DEFAULTS = "_internal_defaults_do_not_set"


def _pointer(prefix: str, key: object) -> str:
    """JSON pointer (RFC 6901) of a key: keys may hold dots and slashes (host names, annotations)."""
    return f"{prefix}/{str(key).replace('~', '~0').replace('/', '~1')}"


def merge_values(values: dict, over: dict) -> dict:
    """Helm's merge of two values documents: maps merge key by key, anything else replaces."""
    out = dict(values)
    for key, value in over.items():
        out[key] = merge_values(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def base_values(documents: list[dict]) -> dict:
    """The values a chart starts from, from the base's values files in valuesFrom order."""
    merged: dict = {}
    for doc in documents:
        defaults = doc.get(ISTIO_DEFAULTS)
        rest = {key: value for key, value in doc.items() if key != ISTIO_DEFAULTS}
        merged = merge_values(merge_values(merged, defaults if isinstance(defaults, dict) else {}), rest)
    return merged


def value_kinds(values: dict, prefix: str = "") -> dict[str, str]:
    """Every key path of a values document (JSON pointer) and the kind of its value: `map` (its keys
    are listed too), `open` ({} or null: a free-form map or an unset value, anything fits), `list`,
    `scalar`."""
    kinds: dict[str, str] = {}
    for key, value in values.items():
        path = _pointer(prefix, key)
        if isinstance(value, dict) and value:
            kinds[path] = "map"
            kinds.update(value_kinds(value, path))
        else:
            kinds[path] = "open" if value is None or isinstance(value, dict) else "list" if isinstance(value, list) else "scalar"
    return kinds


def comment_values(text: str) -> dict:
    """The values an override-values comment (includes/override-values/<svc>.yaml) shows, uncommented."""
    values = yaml.safe_load("\n".join(re.sub(r"^# ?", "", line) for line in text.splitlines()))
    return values if isinstance(values, dict) else {}


def asked_paths(values: dict, prefix: str = "") -> set[str]:
    """The key paths of a values document down to its leaves (what a listing records of the base)."""
    paths = set()
    for key, value in values.items():
        path = _pointer(prefix, key)
        paths.add(path)
        if isinstance(value, dict):
            paths |= asked_paths(value, path)
    return paths


def values_findings(values: dict, kinds: dict[str, str], prefix: str = "") -> list[str]:
    """Where override values leave the base's values: a key the base values do not have, or a value
    of another kind than the base's (a list or a scalar where the base has a map, or the reverse).
    Under an `open` key anything fits."""
    found = []
    for key, value in values.items():
        path = _pointer(prefix, key)
        kind = kinds.get(path)
        if kind is None:
            found.append(f"{path}: not a key of the base values")
        elif kind == "open":
            continue
        elif isinstance(value, dict) and value:
            if kind == "map":
                found += values_findings(value, kinds, path)
            else:
                found.append(f"{path}: a map, but the base values have a {kind} there")
        elif kind == "map" and not isinstance(value, dict):
            found.append(f"{path}: a {'list' if isinstance(value, list) else 'scalar'}, but the base values have a map there")
    return found


# A platform repository against a release -----------------------------------------------------


def _meta(obj: dict) -> dict:
    return obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}


def _spec(obj: dict) -> dict:
    return obj["spec"] if isinstance(obj.get("spec"), dict) else {}


@dataclass(frozen=True)
class BaseSource:
    """A GitRepository of the platform repository on openCenter-gitops-base."""

    file: str
    label: str
    namespace: str
    name: str
    tag: str | None  # None: the ref is not a tag
    ref: str  # the ref as written, for notes


@dataclass(frozen=True)
class BasePath:
    """A Flux Kustomization applying a folder of a BaseSource."""

    file: str
    label: str
    path: str  # repository-relative, '' for the root


def base_references(objects: list[Located], url: str) -> list[tuple[BaseSource, list[BasePath]]]:
    """Per cluster overlay, each GitRepository on `url` and the Kustomizations on it: a cluster's
    Kustomizations use its own GitRepositories (each cluster may pin another tag)."""
    found = []
    for _cluster, located in rules.by_cluster(objects).items():
        for file, obj in located:
            if obj.get("kind") != "GitRepository" or not str(obj.get("apiVersion", "")).startswith("source.toolkit.fluxcd.io/"):
                continue
            if not giturl.same_repository(str(_spec(obj).get("url", "")), url):
                continue
            ref = _spec(obj).get("ref") if isinstance(_spec(obj).get("ref"), dict) else {}
            tag = ref.get("tag")
            source = BaseSource(file, object_label(obj), str(_meta(obj).get("namespace", "")), str(_meta(obj).get("name")),
                                str(tag) if tag not in (None, "") else None, json.dumps(ref, sort_keys=True))
            paths = []
            for k_file, k in located:
                if k.get("kind") != "Kustomization" or not str(k.get("apiVersion", "")).startswith("kustomize.toolkit.fluxcd.io/"):
                    continue
                sref = _spec(k).get("sourceRef") if isinstance(_spec(k).get("sourceRef"), dict) else {}
                if (sref.get("kind"), str(sref.get("namespace") or _meta(k).get("namespace", "")), str(sref.get("name"))) \
                        != ("GitRepository", source.namespace, source.name):
                    continue
                path = posixpath.normpath(str(_spec(k).get("path") or ".").strip() or ".").strip("/")
                paths.append(BasePath(k_file, object_label(k), "" if path == "." else path))
            found.append((source, paths))
    return found


@dataclass
class Release:
    """What was looked up in a gitops-base checkout or URL: its tags, and the directories at
    each tag that was asked for and exists."""

    tags: set[str]
    directories: dict[str, set[str]]


def reference_findings(references: list[tuple[BaseSource, list[BasePath]]], release: Release, shown: str) -> list[Finding]:
    """`gitops-base-tag`: a GitRepository's tag is not in the release repository; `gitops-base-path`:
    a Kustomization's spec.path is not a folder at its source's tag. Paths on a missing tag are not
    judged (the tag finding says it)."""
    findings = []
    for source, paths in references:
        if source.tag is None:
            continue
        if source.tag not in release.tags:
            using = ", ".join(sorted(p.label.rsplit("/", 1)[-1] for p in paths))
            findings.append(Finding(source.file, source.label, "gitops-base-tag",
                                    f"spec.ref.tag {source.tag} does not exist in {shown}"
                                    + (f" (Kustomizations on it: {using})" if using else "")))
            continue
        directories = release.directories.get(source.tag, set())
        for path in paths:
            if path.path and path.path not in directories:
                findings.append(Finding(path.file, path.label, "gitops-base-path",
                                        f"spec.path ./{path.path} does not exist in {shown} at tag {source.tag} "
                                        f"(GitRepository {source.name})"))
    return findings


def check_references(objects: list[Located], url: str, where: Path | str, cleanup: ExitStack, notes: list[str]) -> list[Finding]:
    """The `--gitops-base` check of a platform repository's built objects against `where` (a
    checkout or a git URL of openCenter-gitops-base); what cannot be looked up goes to `notes`."""
    references = base_references(objects, url)
    if not references:
        notes.append(f"--gitops-base: no GitRepository points at {url} (answer gitops_base_url): nothing looked up")
        return []
    for source, _ in references:
        if source.tag is None:
            notes.append(f"{source.file}: {source.label} is not pinned to a tag (ref {source.ref}): its paths were "
                         "not looked up in openCenter-gitops-base")
    tags = sorted({source.tag for source, _ in references if source.tag is not None})
    if not tags:
        return []
    release = look_up(where, tags, cleanup)
    if isinstance(release, str):
        notes.append(f"openCenter-gitops-base not looked up (tags {', '.join(tags)} and their paths unchecked): "
                     f"cannot read {where} ({release})")
        return []
    return reference_findings(references, release, str(where))


# I/O: git --------------------------------------------------------------------------------------

GIT_URL = re.compile(r"^(ssh|https?|git|file)://|^[\w.-]+@[\w.-]+:")  # as hooks.check.GIT_URL
GIT_TIMEOUT = 120.0


def _git(args: list[str], cwd: Path | None = None, ceiling: Path | None = None) -> tuple[str | None, str]:
    """(stdout, '') when git succeeded, (None, why not) otherwise; never prompts."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=15")
    if ceiling is not None:
        env["GIT_CEILING_DIRECTORIES"] = str(ceiling)  # never a parent folder's repository
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env,
                                timeout=GIT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None, f"git {args[0]} did not finish in {GIT_TIMEOUT:.0f} s"
    if result.returncode == 0:
        return result.stdout, ""
    said = " ".join(line.strip() for line in result.stderr.splitlines() if line.strip())
    return None, said[:300] or f"git {args[0]} exited with {result.returncode}"


def _directories(repo: Path, commitish: str) -> tuple[set[str] | None, str]:
    out, problem = _git(["ls-tree", "-r", "-t", "-z", commitish], cwd=repo)
    if out is None:
        return None, problem
    entries = (line.split("\t", 1) for line in out.split("\0") if "\t" in line)
    return {path for meta, path in entries if meta.split()[1] == "tree"}, ""


def look_up(where: Path | str, tags: list[str], cleanup: ExitStack) -> Release | str:
    """The tags of a gitops-base repository (a local clone or bare git directory, or a git URL)
    and the directories at each of `tags` that exists; a string says why it could not be read.
    A URL is asked for its tags (ls-remote), then each needed tag is cloned shallow, without blobs."""
    local = Path(where)
    if local.is_dir():
        repo = local.resolve()
        out, problem = _git(["for-each-ref", "--format=%(refname:strip=2)", "refs/tags"], cwd=repo, ceiling=repo.parent)
        if out is None:
            return f"not a git repository: {problem}"
        existing = set(out.split())
        release = Release(existing, {})
        for tag in tags:
            if tag in existing:
                directories, problem = _directories(repo, f"refs/tags/{tag}")
                if directories is None:
                    return problem
                release.directories[tag] = directories
        return release
    if not GIT_URL.match(str(where)):
        raise HookError("--gitops-base", f"{where} is neither a directory nor a git URL (openCenter-gitops-base)")
    url = str(where)
    out, problem = _git(["ls-remote", "--tags", "--refs", url])
    if out is None:
        return problem
    existing = {line.split("\t", 1)[1].removeprefix("refs/tags/") for line in out.splitlines() if "\t" in line}
    release = Release(existing, {})
    tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="opencenter-gitops-base-")))
    for index, tag in enumerate(tag for tag in tags if tag in existing):
        dest = tmp / str(index)
        cloned, problem = _git(["clone", "-q", "--bare", "--depth", "1", "--filter=blob:none", "--branch", tag,
                                "--", url, str(dest)])
        if cloned is None:
            return problem
        directories, problem = _directories(dest, "HEAD")
        if directories is None:
            return problem
        release.directories[tag] = directories
    return release
