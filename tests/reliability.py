"""Shared by the reliability tests (tests/test_reliability_*.py): a workspace holding a platform
repository with one registered app and that app's repository, full-tree snapshots, and the entry
points run the way a user runs them.

The workspace is built once per module (module-scoped fixtures cannot use conftest's function-scoped
`isolated_env`, so conftest's `isolated` gives the build the same kind of throwaway HOME) and copied for
every test that changes anything.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import copier
import pytest
from pyrage import x25519

from conftest import commit_all, isolated  # noqa: F401  (isolated is re-exported)
from hooks import onboard
from hooks.gitrepo import LOCK_FILE, WRITE_LOCK_FILE

SHOP = {"name": "shop", "url": "ssh://git@github.com/acme/shop.git"}
OVERLAY = "applications/overlays/prod"
SOURCES = f"{OVERLAY}/services/sources"
FLUXCD = f"{OVERLAY}/services/fluxcd"


def copy_template(src: Path, dst: Path, **data) -> None:
    copier.run_copy(str(src), dst, data=data, defaults=True, unsafe=True, vcs_ref="0.0.1", quiet=True)


def build_workspace(root: Path, template: Path, age_key: x25519.Identity) -> Path:
    """root/platform: a committed platform repository (recipient: the test key) where app `shop` is
    registered and committed; root/app: shop's committed app repository, with an encrypted Secret and
    the deploy key's public half."""
    public = str(age_key.to_public())
    with isolated(root.parent / f"{root.name}-home"):
        copy_template(template, root / "platform", template="platform", sops_age_recipients=public)
        commit_all(root / "platform", "Platform repository")
        copy_template(template, root / "app", template="app", app_name="shop", secret_keys="API_TOKEN",
                      secrets_age_recipients=public)
        commit_all(root / "app", "App repository")
        onboard.register(root / "platform", SHOP, app_repo=root / "app", out=lambda line: None)
        commit_all(root / "platform", "Onboard shop")
        commit_all(root / "app", "Deploy key")
    return root


def copy_workspace(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


# SNAPSHOTS --------------------------------------------------------------------------------------

QUIET_GIT = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # reading must not refresh (rewrite) the index


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=QUIET_GIT).stdout


def git_state(repo: Path) -> dict[str, object]:
    """What a repository is besides its files: HEAD, config, every ref, the index's content and status.

    The index is compared by content (`ls-files --stage`), not bytes: git rewrites it to refresh
    cached stat data whenever a command looks at a copied tree, which changes nothing it records.
    Objects and reflogs are left out (an unreferenced object changes nothing either), and so is
    packed-refs, whose refs are compared as refs (`git branch -D` rewrites the file's header), and
    the commands' lock files (gitrepo.LOCK_FILE: held while a command runs, empty otherwise, and
    WRITE_LOCK_FILE, held while it writes; never removed, so that a flock cannot be split between
    two inodes).
    """
    dot = repo / ".git"
    meta = {
        path.relative_to(dot).as_posix(): path.read_bytes()
        for path in sorted(dot.rglob("*"))
        if path.is_file() and path.relative_to(dot).parts[0] not in ("objects", "logs", "index", "packed-refs",
                                                                                LOCK_FILE, WRITE_LOCK_FILE)
    }
    return {
        "meta": meta,
        "refs": _git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "index": _git(repo, "ls-files", "--stage"),
        "status": _git(repo, "status", "--porcelain", "--untracked-files=all", "--ignored"),
    }


def tree_state(root: Path) -> dict[str, object]:
    """Every directory, file (bytes and mode) and link under root, untracked and ignored ones
    included; for each git repository met, its git_state instead of its .git folder."""
    state: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel = here.relative_to(root).as_posix()
        if ".git" in dirnames:
            dirnames.remove(".git")
            state[f"{rel}/.git"] = git_state(here)
        state[f"{rel}/"] = ("dir", stat.S_IMODE(here.lstat().st_mode))
        for name in [*dirnames, *filenames]:
            path = here / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                state[f"{rel}/{name}"] = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                state[f"{rel}/{name}"] = ("file", stat.S_IMODE(info.st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
    return state


def _changed_parts(before: dict, after: dict) -> list[str]:
    """Which parts of a git_state differ (and, for .git metadata, which files)."""
    parts = [part for part in before if before[part] != after[part] and part != "meta"]
    meta_before, meta_after = before["meta"], after["meta"]
    parts += [f".git/{name}" for name in sorted({*meta_before, *meta_after}) if meta_before.get(name) != meta_after.get(name)]
    return parts


def differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """Readable list of what changed between two tree_state results (empty: byte-identical)."""
    changed = [
        f"changed: {key}" + (f" {_changed_parts(before[key], after[key])}" if isinstance(before[key], dict) else "")
        for key in before if key in after and before[key] != after[key]
    ]
    return ([f"removed: {key}" for key in before if key not in after]
            + [f"added: {key}" for key in after if key not in before] + changed)


# SECRETS ----------------------------------------------------------------------------------------

# Written in two pieces so that the repository's own leak scan (which greps tracked files for these
# markers) does not report the scanner itself.
AGE_SECRET_MARKER = "AGE-SECRET-" + "KEY-1"
PEM_PRIVATE_MARKER = "PRIVATE " + "KEY-----"
PRIVATE_KEY_MARKERS = (AGE_SECRET_MARKER.encode(), PEM_PRIVATE_MARKER.encode())
AGE_SECRET_KEY_PATTERN = AGE_SECRET_MARKER + "[0-9A-Z]{58}"


def decrypt(path: Path, age_keys: x25519.Identity | str) -> str:
    """The clear text of a SOPS file, with the test key(s) given in memory (never in a file)."""
    from hooks import sops

    env = {**os.environ, "SOPS_AGE_KEY": str(age_keys)}
    result = subprocess.run([sops.require_sops(), "decrypt", str(path)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def read_only(target: Path) -> list[str]:
    """A prefix that runs a command with `target` bind-mounted read-only in a private mount namespace
    (EROFS for every writer: the tests may run as root, for whom chmod changes nothing)."""
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("unshare -rm (unprivileged mount namespace) is not available here")
    return ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(target)]
