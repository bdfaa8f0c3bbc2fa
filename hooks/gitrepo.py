"""git adapter for onboarding: preconditions, staging, review branches, and exact restoration.

Everything is scoped to one folder (the platform repository may be a subproject of a larger git
repository, as Copier allows). Ignored files are never touched.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from hooks.errors import HookError


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise HookError(f"git {' '.join(args)}", result.stderr.strip() or f"exit status {result.returncode}")
    return result


def is_work_tree(folder: Path) -> bool:
    return git(folder, "rev-parse", "--is-inside-work-tree", check=False).stdout.strip() == "true"


def require_clean_repo(repo: Path, waited: bool = False) -> None:
    """A git work tree with at least one commit and nothing uncommitted (untracked files count).
    `waited`: this run waited for another command's lock, whose changes are then the likely cause."""
    if not is_work_tree(repo):
        raise HookError(str(repo), "is not inside a git repository (git init, add and commit it first)")
    if git(repo, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode != 0:
        raise HookError(str(repo), "has no commit yet; commit the rendered platform repository first")
    status = git(repo, "status", "--porcelain", "--untracked-files=all", "--", ".").stdout
    if status.strip():
        first = status.strip().splitlines()[:5]
        if waited:
            raise HookError(
                str(repo),
                "was changed by the onboarding or offboarding this run waited for, which left its changes "
                f"to review ({'; '.join(first)}); nothing was changed by this run. Commit those changes, "
                "then run this command again",
            )
        raise HookError(
            str(repo),
            "has uncommitted changes; commit or stash them first so that onboarding's changes stay "
            f"reviewable on their own: {'; '.join(first)}",
        )


def current_position(repo: Path) -> list[str]:
    """`git switch` arguments that come back here: the current branch, or the commit of a detached HEAD."""
    branch = git(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False).stdout.strip()
    return [branch] if branch else ["--detach", git(repo, "rev-parse", "HEAD").stdout.strip()]


def branch_exists(repo: Path, branch: str) -> bool:
    return git(repo, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False).returncode == 0


def create_branch(repo: Path, branch: str) -> None:
    git(repo, "switch", "-q", "-c", branch)


def stage_all(repo: Path) -> None:
    git(repo, "add", "-A", "--", ".")


def commit(repo: Path, message: str) -> None:
    git(repo, "commit", "-q", "-m", message, "--", ".")


def unmerged(repo: Path) -> list[str]:
    return git(repo, "diff", "--name-only", "--diff-filter=U", "--", ".").stdout.split()


def restore(repo: Path, position_before: list[str], created_branch: str | None) -> None:
    """Put a folder that was clean at HEAD back exactly as it was: index, tracked and new files.

    Used after a failure; ignored files are kept (no `git clean -x`).
    """
    git(repo, "reset", "-q", "--", ".", check=False)
    if git(repo, "checkout", "-q", "--", ".", check=False).returncode != 0:
        # .git is not writable (no index.lock), so the index was not changed either: write the
        # files back from it without taking the lock.
        tracked = git(repo, "ls-files", "-z", "--", ".", check=False).stdout
        subprocess.run(["git", "checkout-index", "-f", "-z", "--stdin"], cwd=repo, input=tracked, text=True,
                       capture_output=True, check=False)
    git(repo, "clean", "-fdq", "--", ".", check=False)
    if created_branch:
        git(repo, "switch", "-q", *position_before, check=False)
        git(repo, "branch", "-q", "-D", created_branch, check=False)


@contextmanager
def all_or_nothing(repo: Path, review_branch: str | None = None) -> Iterator[None]:
    """Changes made inside happen on a new branch review_branch (if given); on any failure the
    folder, its index and the current branch are put back as they were (it must start clean)."""
    before = current_position(repo)
    created = None
    try:
        if review_branch:
            create_branch(repo, review_branch)
            created = review_branch
        yield
    except BaseException as error:
        restore(repo, before, created)
        retry = f"{repo} was put back exactly as it was; fix the cause, then run the same command again"
        if isinstance(error, HookError):
            raise HookError(error.field, f"{error.rule}. {retry}") from None
        if isinstance(error, Exception):  # e.g. OSError from a read-only file system
            raise HookError(type(error).__name__, f"{error}. {retry}") from None
        print(f"interrupted: {retry}", file=sys.stderr)
        raise


def shallow_clone(url: str, branch: str | None, dest: Path, timeout: float = 120.0) -> str | None:
    """Clone one branch of `url` into `dest` (depth 1) without ever prompting: None when it worked,
    else why not (git's own words). The check uses it for repositories it may not be able to read."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=15")
    command = ["git", "clone", "-q", "--depth", "1", *(["--branch", branch] if branch else []), url, str(dest)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"git clone did not finish in {timeout:.0f} s"
    if result.returncode == 0:
        return None
    said = " ".join(line.strip() for line in result.stderr.splitlines() if line.strip())
    return said[:300] or f"git clone exited with {result.returncode}"


LOCK_FILE = "opencenter.lock"
DEFAULT_LOCK_WAIT = 60.0


@contextmanager
def exclusive(repo: Path, command: str, wait: float = DEFAULT_LOCK_WAIT) -> Iterator[bool]:
    """One writer at a time: an exclusive lock on the repository's git directory for the whole of a
    command that changes it (onboarding, offboarding). Waits up to `wait` seconds for another holder,
    then refuses, naming it; yields whether it waited. The lock is an flock on a file in the git
    directory: released by the kernel when its holder exits, however it exits, so it never goes stale.
    """
    if not (math.isfinite(wait) and wait >= 0):  # nan would never reach the deadline
        raise HookError("--lock-wait", f"must be a number of seconds, 0 or more (got {wait})")
    if not is_work_tree(repo):
        raise HookError(str(repo), "is not inside a git repository (git init, add and commit it first)")
    path = Path(git(repo, "rev-parse", "--absolute-git-dir").stdout.strip()) / LOCK_FILE
    try:
        handle = path.open("a+")
    except OSError as error:
        if error.errno in (errno.EROFS, errno.EACCES):
            yield False  # nobody can change a repository we cannot even lock; the write fails clearly
            return
        raise
    with handle:
        waited, deadline = False, time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another command"
                    raise HookError(str(repo), f"{holder} holds this repository; nothing was changed. Run this again once it "
                                               f"has finished (it waited {wait:.0f} s)") from None
                waited = True
                time.sleep(0.1)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{command} (pid {os.getpid()}, since {datetime.now():%Y-%m-%d %H:%M:%S})")
        handle.flush()
        try:
            yield waited
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
