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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hooks.errors import HookError, uninterruptible


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise HookError(f"git {' '.join(args)}", result.stderr.strip() or f"exit status {result.returncode}")
    return result


def is_work_tree(folder: Path) -> bool:
    return git(folder, "rev-parse", "--is-inside-work-tree", check=False).stdout.strip() == "true"


def require_clean_repo(repo: Path, waited: bool = False, command: str = "onboarding") -> None:
    """A git work tree with at least one commit and nothing uncommitted (untracked files count).
    `waited`: this run waited for another command's lock, whose changes are then the likely cause.
    `command`: what this run does, as the refusal names it (e.g. "adding cluster 'staging'")."""
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
                "was changed by the command this run waited for (onboarding, offboarding, a cluster change …), "
                "which left its changes "
                f"to review ({'; '.join(first)}); nothing was changed by this run. Commit those changes, "
                "then run this command again",
            )
        raise HookError(
            str(repo),
            f"has uncommitted changes; commit or stash them first so that the changes of {command} stay "
            f"reviewable on their own: {'; '.join(first)}",
        )


def current_position(repo: Path) -> list[str]:
    """`git switch` arguments that come back here: the current branch, or the commit of a detached HEAD."""
    branch = git(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False).stdout.strip()
    return [branch] if branch else ["--detach", git(repo, "rev-parse", "HEAD").stdout.strip()]


def where_head_is(repo: Path) -> str:
    """HEAD as a person reads it: `branch main at 1a2b3c4`, or `detached at 1a2b3c4`."""
    commit = git(repo, "rev-parse", "--short", "HEAD", check=False).stdout.strip() or "no commit"
    branch = git(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False).stdout.strip()
    return f"branch {branch} at {commit}" if branch else f"detached at {commit}"


def branch_exists(repo: Path, branch: str) -> bool:
    return git(repo, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False).returncode == 0


def require_identity(repo: Path) -> None:
    """A committer and author git can name: checked before anything is generated or written when a
    command is to commit (--review-branch), not found missing by the commit at the end."""
    for who in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
        found = git(repo, "var", who, check=False)
        if found.returncode != 0:
            said = next((line for line in found.stderr.splitlines() if line.startswith("fatal:")), found.stderr.strip())
            raise HookError("--review-branch", f"commits, but git has no identity here ({said}); set one with "
                            "git config user.name and user.email, or leave out --review-branch to stage the changes")


def create_branch(repo: Path, branch: str) -> None:
    git(repo, "switch", "-q", "-c", branch)


def stage_all(repo: Path) -> None:
    git(repo, "add", "-A", "--", ".")


def commit(repo: Path, message: str) -> None:
    git(repo, "commit", "-q", "-m", message, "--", ".")


def unmerged(repo: Path) -> list[str]:
    return git(repo, "diff", "--name-only", "--diff-filter=U", "--", ".").stdout.split()


def changed_paths(repo: Path, base: str) -> set[str]:
    """Paths of the folder (relative to it) whose index entry or file differs from commit `base`,
    untracked files included, ignored ones not."""
    listings = (["diff", "--name-only", "--relative", "--no-renames", "-z", base, "--", "."],
                ["diff", "--cached", "--name-only", "--relative", "--no-renames", "-z", base, "--", "."],
                ["ls-files", "-z", "--others", "--exclude-standard", "--", "."])
    return {path for args in listings for path in git(repo, *args).stdout.split("\0") if path}


def file_state(path: Path) -> tuple | None:
    """What restore needs to put a file back: ("link", target), ("file", mode, bytes) or None (absent)."""
    if path.is_symlink():
        return ("link", os.readlink(path))
    if path.is_file():
        return ("file", path.stat().st_mode & 0o7777, path.read_bytes())
    return None


@dataclass(frozen=True)
class Start:
    """The folder when a transaction starts: HEAD, the current branch, the index entries, the
    directories, and the files that already differ from HEAD then (normally none: the commands
    start from a clean tree, but a person may edit while the keys are generated)."""

    base: str
    position: list[str]
    prefix: str  # of the folder in its git repository ("" at the top)
    index: dict[str, str]  # path -> its `git update-index --index-info` line (paths from the top)
    directories: set[str]
    dirty: dict[str, tuple | None]

    @classmethod
    def of(cls, repo: Path) -> Start:
        base = git(repo, "rev-parse", "HEAD").stdout.strip()
        prefix = git(repo, "rev-parse", "--show-prefix").stdout.strip()
        index = {}
        for line in git(repo, "ls-files", "-s", "-z", "--full-name", "--", ".").stdout.split("\0"):
            if line:
                index[line.split("\t", 1)[1].removeprefix(prefix)] = line
        dirty = {rel: file_state(repo / rel) for rel in changed_paths(repo, base)}
        return cls(base, current_position(repo), prefix, index, set(folders(repo)), dirty)


def folders(repo: Path) -> list[str]:
    """Every folder under repo but .git, relative to it, deepest first."""
    found = []
    for folder, subfolders, _ in os.walk(repo):
        subfolders[:] = [name for name in subfolders if name != ".git"]
        found.append(Path(folder).relative_to(repo).as_posix())
    return found[::-1]


def restore(repo: Path, start: Start, created_branch: str | None) -> None:
    """Put back what a transaction changed since `start`: the branch it created (HEAD returns to
    where it was), and the index entry and file of every path that differs from the start; paths
    it did not change are left alone, so edits made meanwhile elsewhere in the folder are kept.
    Ignored files are never touched.
    """
    if created_branch:
        if git(repo, "rev-parse", "HEAD", check=False).stdout.strip() != start.base:
            git(repo, "reset", "-q", "--soft", start.base, check=False)  # its commit becomes staged changes
        git(repo, "switch", "-q", *start.position, check=False)
        git(repo, "branch", "-q", "-D", created_branch, check=False)
    paths = sorted(changed_paths(repo, start.base) | set(start.dirty))
    if not paths:
        return
    # The index entries as they were. When .git is not writable this fails, and the index was not
    # changed either (git could not take index.lock).
    entries = "".join(start.index.get(rel, f"0 {'0' * 40}\t{start.prefix}{rel}") + "\0" for rel in paths)
    subprocess.run(["git", "update-index", "-z", "--index-info"], cwd=repo, input=entries, text=True,
                   capture_output=True, check=False)
    clean = [rel for rel in paths if rel not in start.dirty]
    for rel in clean:
        if rel not in start.index:
            (repo / rel).unlink(missing_ok=True)
    tracked = "".join(f"{rel}\0" for rel in clean if rel in start.index)
    # Files from the index without taking its lock (works with a read-only .git too).
    subprocess.run(["git", "checkout-index", "-f", "-z", "--stdin"], cwd=repo, input=tracked, text=True,
                   capture_output=True, check=False)
    for rel, state in start.dirty.items():  # files that differed from HEAD already: as they were
        path = repo / rel
        if file_state(path) == state:
            continue
        path.unlink(missing_ok=True)
        if state is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if state[0] == "link":
                os.symlink(state[1], path)
            else:
                path.write_bytes(state[2])
                path.chmod(state[1])
    for rel in folders(repo):  # folders the transaction made, left empty
        if rel not in start.directories and not any((repo / rel).iterdir()):
            (repo / rel).rmdir()


@contextmanager
def all_or_nothing(repo: Path, review_branch: str | None = None) -> Iterator[None]:
    """Changes made inside happen on a new branch review_branch (if given); on any failure or
    interruption (Ctrl-C, SIGTERM, SIGHUP: hooks.errors.run_main) what they changed in the folder,
    its index and the current branch is put back as it was, uninterruptibly."""
    start = Start.of(repo)
    created = None
    try:
        if review_branch:
            create_branch(repo, review_branch)
            created = review_branch
        yield
    except BaseException as error:
        with uninterruptible():
            restore(repo, start, created)
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


def held(repo: Path) -> bool:
    """Whether a command holds `repo`'s lock (see exclusive) right now."""
    git_dir = git(repo, "rev-parse", "--absolute-git-dir", check=False).stdout.strip()
    path = Path(git_dir) / LOCK_FILE if git_dir else None
    if path is None or not path.is_file():
        return False
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


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
    head = where_head_is(repo)  # before waiting: the command meant to start from here
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
        if waited and where_head_is(repo) != head:
            # The command waited for, e.g. another --review-branch run, committed or switched
            # branches: going on would build on its unreviewed change (review branches stacked).
            raise HookError(str(repo), f"HEAD moved from {head} to {where_head_is(repo)} while this run waited for "
                            "another command; nothing was changed by this run. Review that change, go back to "
                            "the branch this should start from, then run this command again")
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
