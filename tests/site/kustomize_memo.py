"""Test speed only: a kustomize build runs once per session for the same repository content.

The check builds every kustomization root of a repository with one `kubectl kustomize` process
each (hooks/kustomize.py), about 0.1 s apiece, mostly kubectl's start-up; the suite checks
copies of the same renders again and again and ran about 1,800 builds, a third of its time. A
successful build is a pure function of the files kustomize reads, all inside the repository (the
check refuses references that leave it before it builds, and the suite builds offline), so the
suite memoises it: keyed by the repository's content (every file but `.git`, by path relative to
its top folder, symlinks by their target), the root's place in it, whether Flux would generate its
kustomization, and kubectl's arguments. Folders built together (kustomize.build_together) are one
entry: their places, and each folder's objects. One check lists the repository once for all its
builds (build_all). Only the venv's own kubectl is memoised (a test's fake one runs every time),
and only builds that succeed: an error names the folder it failed in, and runs again. Entries live
in memory and in the folder named by KUSTOMIZE_MEMO_DIR (conftest makes one per session), shared
by every process the tests start (tests/site/sitecustomize.py).
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
ORIGINAL_TOGETHER = kustomize.build_together
ORIGINAL_ALL = kustomize.build_all
_KUBECTL = os.path.realpath(Path(sys.executable).parent / "kubectl")
_digests: dict[tuple, str] = {}  # by (top folder, every file's stat): the content digest
_lock = threading.Lock()  # builds run in a thread pool
_listed: dict[str, str] = {}  # top folder: its digest, while a build_all of it runs
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
    with _lock:
        if str(top) in _listed:  # within a build_all of it (below)
            return _listed[str(top)]
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


def _entry(command: list[str], roots: list[Path], generated: object) -> Path | None:
    folder = os.environ.get("KUSTOMIZE_MEMO_DIR")
    real_roots = [Path(os.path.realpath(root)) for root in roots]
    tops = {_top(real_root) for real_root in real_roots}
    if not folder or len(tops) != 1 or None in tops or os.path.realpath(command[0]) != _KUBECTL:
        return None
    top = tops.pop()
    key = repr((command[1:], [str(real_root.relative_to(top)) for real_root in real_roots], generated, _digest(top)))
    return Path(folder) / hashlib.sha256(key.encode()).hexdigest()


def _memoised(entry: Path | None, run, stored, restored):
    """`run()`'s result, from the memo `entry` when there is one; stored there when it succeeded
    (`stored` gives what to keep of it, None for a failure; `restored` makes a result of that)."""
    if entry is not None:
        try:
            return restored(pickle.loads(entry.read_bytes()))
        except (OSError, EOFError, pickle.UnpicklingError):
            pass
    result = run()
    if entry is not None and (kept := stored(result)) is not None:
        try:
            fd, tmp = tempfile.mkstemp(dir=entry.parent)
            with os.fdopen(fd, "wb") as out:
                pickle.dump(kept, out)
            os.replace(tmp, entry)  # whole entries or none for concurrent readers
        except OSError:
            pass  # a memo: a failed store only costs the next build its kubectl run
    return result


def _run_build(directory: Path, command: list[str], root: Path) -> kustomize.Build:
    generated = os.path.realpath(directory) != os.path.realpath(root)  # a scratch kustomization: Flux's
    return _memoised(_entry(command, [root], generated), lambda: ORIGINAL(directory, command, root),
                     lambda built: built.objects if built.error is None else None,
                     lambda objects: kustomize.Build(root, objects))


def build_together(folders: list[Path], command: list[str]) -> list[kustomize.Build] | None:
    return _memoised(_entry(command, folders, "together"), lambda: ORIGINAL_TOGETHER(folders, command),
                     lambda builds: None if builds is None else [built.objects for built in builds],
                     lambda found: [kustomize.Build(folder, objects) for folder, objects in zip(folders, found)])


def build_all(roots: list[Path]) -> list[kustomize.Build]:
    """kustomize's build_all, the repository listed once for all its roots, not once per build: the
    roots of one check are built from the same files (the check changes none), and listing a
    repository of many clusters took longer than its builds."""
    tops = {str(top) for root in roots if (top := _top(Path(os.path.realpath(root)))) is not None}
    digests = {top: _digest(Path(top)) for top in tops}
    with _lock:  # a build_all already running on the same top keeps its entry (and removes it)
        own = {top: digest for top, digest in digests.items() if top not in _listed}
        _listed.update(own)
    try:
        return ORIGINAL_ALL(roots)
    finally:
        with _lock:
            for top in own:
                del _listed[top]


def install(on: bool = True) -> None:
    kustomize._run_build = _run_build if on else ORIGINAL_RUN
    kustomize.build_together = build_together if on else ORIGINAL_TOGETHER
    kustomize.build_all = build_all if on else ORIGINAL_ALL
    if (check := sys.modules.get("hooks.check")) is not None:  # imported before: it holds its own name for it
        check.build_all = kustomize.build_all
