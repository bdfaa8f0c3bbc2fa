"""Test speed only: a kustomize build runs once per session for the same repository content.

The check builds every kustomization root of a repository with one `kubectl kustomize` process
each (hooks/kustomize.py), about 0.1 s apiece, mostly kubectl's start-up; the suite checks
copies of the same renders again and again and ran about 1,800 builds, a third of its time. A
successful build is a pure function of the files kustomize reads, all inside the repository (the
check refuses references that leave it before it builds, and the suite builds offline), so the
suite memoises it: keyed by the repository's content (every file but `.git`, by path relative to
its top folder, symlinks by their target), the root's place in it, whether Flux would generate its
kustomization, and kubectl's arguments. Only the venv's own kubectl is memoised (a test's fake
one runs every time), and only builds that succeed: an error names the folder it failed in, and
runs again. Entries live in memory and in the folder named by KUSTOMIZE_MEMO_DIR (conftest makes
one per session), shared by every process the tests start (tests/site/sitecustomize.py).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import sys
import tempfile
import threading
from pathlib import Path

from hooks import kustomize

ORIGINAL = ORIGINAL_RUN = kustomize._run_build  # ORIGINAL: what a miss calls (a test may count them)
_KUBECTL = os.path.realpath(Path(sys.executable).parent / "kubectl")
_digests: dict[tuple, str] = {}  # by (top folder, every file's stat): the content digest
_lock = threading.Lock()  # builds run in a thread pool
# Copier's answers name no manifest, but some record a path of the test's own (the platform
# repository an app was copied with): leaving them out lets such copies share builds.
_ANSWERS = re.compile(r"^\.copier-answers.*\.yml$")


def _top(folder: Path) -> Path | None:
    """The repository folder holding `folder`: the nearest one with a `.git`, or with Copier's
    answers (a render not made a git repository)."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists() or next(candidate.glob(".copier-answers*.yml"), None):
            return candidate
    return None


def _listing(top: Path) -> list[tuple[str, os.stat_result | str]]:
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(name for name in dirnames if name != ".git")
        for name in sorted(name for name in filenames if not _ANSWERS.match(name)) + [name for name in dirnames if os.path.islink(os.path.join(dirpath, name))]:
            path = os.path.join(dirpath, name)
            relative = os.path.relpath(path, top)
            found.append((relative, os.readlink(path) if os.path.islink(path) else os.stat(path)))
    return found


def _digest(top: Path) -> str:
    """The content of every file under `top` (but .git); read again only when a file's stat changed."""
    listing = _listing(top)
    signature = (str(top), tuple((name, info if isinstance(info, str) else
                                  (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino))
                                 for name, info in listing))
    with _lock:
        known = _digests.get(signature)
    if known is None:
        digest = hashlib.sha256()
        for name, info in listing:
            content = info.encode() if isinstance(info, str) else (top / name).read_bytes()
            digest.update(f"{name}\0{'link' if isinstance(info, str) else 'file'}\0{len(content)}\0".encode() + content)
        known = digest.hexdigest()
        with _lock:
            _digests[signature] = known
    return known


def _entry(directory: Path, command: list[str], root: Path) -> Path | None:
    folder = os.environ.get("KUSTOMIZE_MEMO_DIR")
    real_root = Path(os.path.realpath(root))
    top = _top(real_root)
    if not folder or top is None or os.path.realpath(command[0]) != _KUBECTL:
        return None
    generated = os.path.realpath(directory) != str(real_root)  # a scratch kustomization: Flux's
    key = repr((command[1:], str(real_root.relative_to(top)), generated, _digest(top)))
    return Path(folder) / hashlib.sha256(key.encode()).hexdigest()


def _run_build(directory: Path, command: list[str], root: Path) -> kustomize.Build:
    entry = _entry(directory, command, root)
    if entry is not None:
        try:
            return kustomize.Build(root, pickle.loads(entry.read_bytes()))
        except (OSError, EOFError, pickle.UnpicklingError):
            pass
    built = ORIGINAL(directory, command, root)
    if entry is not None and built.error is None:
        try:
            fd, tmp = tempfile.mkstemp(dir=entry.parent)
            with os.fdopen(fd, "wb") as out:
                pickle.dump(built.objects, out)
            os.replace(tmp, entry)  # whole entries or none for concurrent readers
        except OSError:
            pass  # a memo: a failed store only costs the next build its kubectl run
    return built


def install(on: bool = True) -> None:
    kustomize._run_build = _run_build if on else ORIGINAL_RUN
