"""Test speed only: Copier clones a local template once per session for the same commit and changes.

Every `copier copy` and `copier update` clones its template (updates twice: the old and the new
version): `git clone`, `git checkout`, `git submodule update`, and for a dirty HEAD a commit of the
changes, about 0.1 s of git processes; the suite runs about a thousand. Copier only reads the
clone (its files, `git describe`, `git ls-files`) and removes the folder it made for it, so the
suite memoises it: keyed by the template's folder, the ref asked for, the commit it names now and,
for HEAD, the content of every changed or untracked file (what Copier's own "draft changes" commit
takes), Copier's clone is made once into the folder named by COPIER_CLONE_MEMO_DIR (conftest makes
one per session) and every later copy or update of the session reads that clone. Remote templates,
and a template folder git cannot read, go to Copier's own clone as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from copier import _template

ORIGINAL = _template.clone


def _git(folder: str, *args: str) -> bytes | None:
    result = subprocess.run(["git", "-C", folder, *args], capture_output=True, check=False)
    return result.stdout if result.returncode == 0 else None


def _changes(folder: str) -> bytes | None:
    """What Copier's draft-changes commit would take from a dirty HEAD: every changed or untracked
    path (as `git status` lists them) with its content."""
    status = _git(folder, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    if status is None:
        return None
    digest = hashlib.sha256(status)
    for entry in status.split(b"\0"):
        path = Path(folder, os.fsdecode(entry[3:] if entry[2:3] == b" " else entry))
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest().encode() if status else b""


def _key(url: str, ref: str) -> str | None:
    folder = os.path.realpath(url)
    if not os.path.isdir(folder) or not ref:
        return None
    commit = _git(folder, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    changes = _changes(folder) if ref == "HEAD" else b""
    if commit is None or changes is None:
        return None
    return hashlib.sha256(repr((folder, ref, commit, changes)).encode()).hexdigest()


def clone(url: str, ref: str = "HEAD", location: str | None = None) -> str:
    folder, key = os.environ.get("COPIER_CLONE_MEMO_DIR"), _key(url, ref)
    if not folder or key is None:
        return ORIGINAL(url, ref, location)
    made = Path(folder, key)
    if not made.is_dir():
        scratch = tempfile.mkdtemp(dir=folder)
        try:
            ORIGINAL(url, ref, scratch)
            os.rename(scratch, made)  # whole clones or none for concurrent readers
        except OSError:  # another process made it meanwhile
            shutil.rmtree(scratch, ignore_errors=True)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return str(made)


def install(on: bool = True) -> None:
    _template.clone = clone if on else ORIGINAL
