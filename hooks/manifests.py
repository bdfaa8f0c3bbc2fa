"""The YAML files of a rendered repository, parsed once, and where each object came from."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hooks.errors import HookError, one_line

# libyaml when PyYAML was built with it: rendered manifests are parsed by the thousand, and a
# platform's answers grow with every app (500 apps: 70 KB).
FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml_file(path: Path) -> object:
    """The YAML document of a file a command reads (answers, .sops.yaml, a file of app entries), or
    a HookError naming the file: unreadable, not UTF-8, not YAML."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=FAST_LOADER)
    except OSError as error:
        raise HookError(str(path), f"cannot be read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise HookError(str(path), "is not UTF-8 text") from None
    except yaml.YAMLError as error:
        # libyaml stops at its nesting limit where the Python parser would exhaust the stack
        reason = "nested too deeply" if "maximum nesting depth" in str(error) else one_line(str(error))
        raise HookError(str(path), f"is not valid YAML ({reason})") from None
    except RecursionError:  # nested collections are built recursively: 20 000 '[' exhaust the stack
        raise HookError(str(path), "is not valid YAML (nested too deeply)") from None


@dataclass
class YamlFile:
    """One YAML file: its path relative to the repository, its documents, or its parse error."""

    path: str
    documents: list = field(default_factory=list)
    error: str | None = None


def object_label(obj: dict) -> str:
    """Kind/namespace/name, the way reviewers name an object."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    parts = [str(obj.get("kind", "?")), meta.get("namespace"), str(meta.get("name", "?"))]
    return "/".join(part for part in parts if part)


def is_object(doc: object) -> bool:
    """A Kubernetes object (helm values files and the like are not)."""
    return isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


def source_index(files: list[YamlFile]) -> dict[tuple[str, str], list[str]]:
    """(kind, name) -> files that declare such an object, to point a finding at its source."""
    index: dict[tuple[str, str], list[str]] = {}
    for yaml_file in files:
        for doc in yaml_file.documents:
            if is_object(doc) and isinstance(doc.get("metadata"), dict):
                index.setdefault((doc["kind"], str(doc["metadata"].get("name"))), []).append(yaml_file.path)
    return index


def under(path: str, root: str) -> bool:
    """Whether a repository-relative path lies in root ('' or '.' is the repository itself)."""
    return root in ("", ".") or path.startswith(root + "/")


def source_of(obj: dict, index: dict[tuple[str, str], list[str]], root: str, root_file: str) -> str:
    """The file an object of a build came from; generated objects belong to the root's kustomization."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    candidates = index.get((str(obj.get("kind")), str(meta.get("name"))), [])
    inside = [path for path in candidates if under(path, root)]
    return (inside or candidates or [root_file])[0]


# I/O --------------------------------------------------------------------------------------------


def read_yaml_files(repo: Path) -> list[YamlFile]:
    """Every *.yaml / *.yml outside hidden files and folders (.git, .github, .sops.yaml, answers)."""
    found = []
    real_repo = repo.resolve()
    for directory, subdirs, files in os.walk(repo):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not name.endswith((".yaml", ".yml")):
                continue
            path = Path(directory) / name
            if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(real_repo):
                continue  # never read outside the repository (hooks.kustomize.outside_symlinks reports it)
            rel = path.relative_to(repo).as_posix()
            try:
                docs = [doc for doc in yaml.load_all(path.read_text(), Loader=FAST_LOADER) if doc is not None]
            except (yaml.YAMLError, UnicodeDecodeError) as error:
                found.append(YamlFile(rel, error=str(error)))
                continue
            except RecursionError:  # as read_yaml_file
                found.append(YamlFile(rel, error="nested too deeply"))
                continue
            found.append(YamlFile(rel, docs))
    return found
