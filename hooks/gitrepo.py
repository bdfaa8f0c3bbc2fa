"""git adapter for onboarding: preconditions, staging, review branches, and exact restoration.

Everything is scoped to one folder (the platform repository may be a subproject of a larger git
repository, as Copier allows). Ignored files are never touched.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import math
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

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


def git_paths(repo: Path, args: list[str], paths: Iterable[str]) -> None:
    """`git ARGS` for exactly these paths, taken literally (no globs), given on stdin."""
    result = subprocess.run(["git", "--literal-pathspecs", *args, "--pathspec-from-file=-", "--pathspec-file-nul"],
                            cwd=repo, input="".join(f"{rel}\0" for rel in paths), capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise HookError(f"git {' '.join(args)}", result.stderr.strip() or f"exit status {result.returncode}")


def stage(repo: Path, paths: Iterable[str]) -> None:
    """Stage these paths of the folder as they are now (a removed file: its removal), nothing else."""
    indexed = index_entries(repo)
    present = sorted(rel for rel in paths if rel in indexed or os.path.lexists(repo / rel))
    if present:
        git_paths(repo, ["add", "-A"], present)


def commit(repo: Path, message: str, paths: Iterable[str]) -> None:
    """Commit those of these paths that differ from HEAD, and nothing else (what else is staged
    stays staged, uncommitted)."""
    listed = sorted(set(paths) & changed_paths(repo, "HEAD"))
    if not listed:
        raise HookError("git commit", "this run changed nothing to commit")
    git_paths(repo, ["commit", "-q", "-m", message], listed)


def unmerged(repo: Path) -> list[str]:
    return git(repo, "diff", "--name-only", "--diff-filter=U", "--", ".").stdout.split()


def changed_paths(repo: Path, base: str) -> set[str]:
    """Paths of the folder (relative to it) whose index entry or file differs from commit `base`,
    untracked files included, ignored ones not."""
    listings = (["diff", "--name-only", "--relative", "--no-renames", "-z", base, "--", "."],
                ["diff", "--cached", "--name-only", "--relative", "--no-renames", "-z", base, "--", "."],
                ["ls-files", "-z", "--others", "--exclude-standard", "--", "."])
    return {path for args in listings for path in git(repo, *args).stdout.split("\0") if path}


def index_entries(repo: Path) -> dict[str, list[str]]:
    """The folder's index: path (relative to the folder) -> its `git update-index --index-info`
    lines (paths from the top; several while a path is unmerged)."""
    prefix = git(repo, "rev-parse", "--show-prefix").stdout.strip()
    entries: dict[str, list[str]] = {}
    for line in git(repo, "ls-files", "-s", "-z", "--full-name", "--", ".").stdout.split("\0"):
        if line:
            entries.setdefault(line.split("\t", 1)[1].removeprefix(prefix), []).append(line)
    return entries


def file_state(path: Path) -> tuple | None:
    """What restore needs to put a file back: ("link", target), ("file", mode, bytes) or None (absent)."""
    if path.is_symlink():
        return ("link", os.readlink(path))
    if path.is_file():
        return ("file", path.stat().st_mode & 0o7777, path.read_bytes())
    return None


def snapshot(repo: Path, base: str) -> dict[str, tuple]:
    """The paths of the folder that differ from commit `base` (see changed_paths), each with its
    index entries and a digest of its file: comparing two snapshots tells what changed between
    them (a path missing from one is as in `base` there)."""
    index = index_entries(repo)
    found = {}
    for rel in changed_paths(repo, base):
        state = file_state(repo / rel)
        digest = (state[0], state[1], hashlib.sha256(state[2]).hexdigest()) if state and state[0] == "file" else state
        found[rel] = (tuple(index.get(rel, ())), digest)
    return found


@dataclass(frozen=True)
class Start:
    """The folder when a transaction starts: HEAD, the current branch, the index entries, the
    directories, and the files that already differ from HEAD then (normally none: the commands
    start from a clean tree, but a person may edit while the keys are generated)."""

    base: str
    position: list[str]
    prefix: str  # of the folder in its git repository ("" at the top)
    index: dict[str, list[str]]  # path -> its `git update-index --index-info` lines (paths from the top)
    directories: set[str]
    dirty: dict[str, tuple | None]

    @classmethod
    def of(cls, repo: Path) -> Start:
        base = git(repo, "rev-parse", "HEAD").stdout.strip()
        prefix = git(repo, "rev-parse", "--show-prefix").stdout.strip()
        dirty = {rel: file_state(repo / rel) for rel in changed_paths(repo, base)}
        return cls(base, current_position(repo), prefix, index_entries(repo), set(folders(repo)), dirty)


def folders(repo: Path) -> list[str]:
    """Every folder under repo but .git, relative to it, deepest first."""
    found = []
    for folder, subfolders, _ in os.walk(repo):
        subfolders[:] = [name for name in subfolders if name != ".git"]
        found.append(Path(folder).relative_to(repo).as_posix())
    return found[::-1]


class Transaction:
    """What one run changes in the folder: the paths it declares before writing them (wrote) and
    those a step it cannot list in advance changed (writing: a Copier render). Only these are
    staged, committed, and put back on failure; whatever else changes in the folder meanwhile (a
    person's edit, a new file of their own) is someone else's and left alone."""

    def __init__(self, repo: Path, start: Start) -> None:
        self.repo, self.start = repo, start
        self.paths: set[str] = set()

    def wrote(self, *paths: str) -> None:
        """Declare paths (relative to the folder) this run is about to write or remove."""
        self.paths.update(paths)

    @contextmanager
    def writing(self, scope: Iterable[str] | None = None) -> Iterator[None]:
        """A step whose writes are known only afterwards: the paths whose index entry or file it
        changed (only those in `scope`, the paths it can write, when given) become this run's,
        also when it fails half way. What someone else changes during the step, outside `scope`
        (all of the folder without one), cannot be told apart from the step's own."""
        before = snapshot(self.repo, self.start.base)
        try:
            yield
        finally:
            with uninterruptible():
                after = snapshot(self.repo, self.start.base)
                changed = {rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel)}
                self.paths |= changed if scope is None else changed & set(scope)

    def stage(self) -> None:
        stage(self.repo, self.paths)

    def commit(self, message: str) -> None:
        commit(self.repo, message, self.paths)


def restore(repo: Path, start: Start, created_branch: str | None, paths: Iterable[str]) -> None:
    """Put back what a transaction changed since `start`: the branch it created (HEAD returns to
    where it was), and the index entries and files of `paths`, its own, as they were at the start;
    every other path is left alone, so edits made meanwhile elsewhere in the folder are kept, and
    so are folders but the ones it made for its paths and left empty. Ignored files are never touched.
    """
    if created_branch:
        if git(repo, "rev-parse", "HEAD", check=False).stdout.strip() != start.base:
            git(repo, "reset", "-q", "--soft", start.base, check=False)  # its commit becomes staged changes
        git(repo, "switch", "-q", *start.position, check=False)
        git(repo, "branch", "-q", "-D", created_branch, check=False)
    paths = sorted(paths)
    if not paths:
        return
    # The index entries as they were. When .git is not writable this fails, and the index was not
    # changed either (git could not take index.lock).
    entries = "".join(f"0 {'0' * 40}\t{start.prefix}{rel}\0"  # every stage of the path gone first
                      + "".join(line + "\0" for line in start.index.get(rel, ())) for rel in paths)
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
    for rel in paths:  # files that differed from HEAD already: as they were
        if rel not in start.dirty:
            continue
        path, state = repo / rel, start.dirty[rel]
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
    made = {parent.as_posix() for rel in paths for parent in Path(rel).parents} - start.directories - {"."}
    for rel in sorted(made, key=lambda folder: folder.count("/"), reverse=True):  # deepest first
        folder = repo / rel
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()


@contextmanager
def all_or_nothing(repo: Path, review_branch: str | None = None) -> Iterator[Transaction]:
    """Changes made inside happen on a new branch review_branch (if given); on any failure or
    interruption (Ctrl-C, SIGTERM, SIGHUP: hooks.errors.run_main) what the run changed (the paths
    of the Transaction it yields, their index entries, and the current branch) is put back as it
    was, uninterruptibly. While it runs, no plain `copier update` undoes its files (kept_answers)."""
    with writing_lock(repo) as free:
        if not free:  # a plain update's files being put back (kept_answers): under a second at most
            raise HookError(str(repo), "a refused `copier update` is still putting its files back; nothing was "
                            "changed. Run this again")
        start = Start.of(repo)
        transaction = Transaction(repo, start)
        created = None
        try:
            if review_branch:
                create_branch(repo, review_branch)
                created = review_branch
            yield transaction
        except BaseException as error:
            with uninterruptible():
                restore(repo, start, created, transaction.paths)
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
# Held by a transaction (all_or_nothing) while it writes, and by kept_answers while it puts back the
# files of a plain `copier update` that another command's lock refused: never both at once.
WRITE_LOCK_FILE = "opencenter.write.lock"
# The lock's token in the environment of the holder and of the Copier runs it starts (their tasks).
TOKEN_ENV = "OPENCENTER_LOCK_TOKEN"
DEFAULT_LOCK_WAIT = 60.0


def lock_path(repo: Path, name: str = LOCK_FILE) -> Path | None:
    git_dir = git(repo, "rev-parse", "--absolute-git-dir", check=False).stdout.strip()
    return Path(git_dir) / name if git_dir else None


@dataclass(frozen=True)
class Holder:
    """The command holding a repository's lock: as the lock file describes it, and its token."""

    what: str  # e.g. "onboarding of app 'cart' (pid 4242, since 2026-12-02 10:00:00)"
    token: str

    @property
    def is_caller(self) -> bool:
        """Whether the process asking is that command, or one it started (a Copier run's task)."""
        return bool(self.token) and self.token == os.environ.get(TOKEN_ENV)


def described(text: str) -> Holder:
    lines = text.splitlines()
    token = next((line.removeprefix("token ").strip() for line in lines[1:] if line.startswith("token ")), "")
    return Holder((lines[0].strip() if lines else "") or "another command", token)


def holder(repo: Path) -> Holder | None:
    """Who holds `repo`'s lock (see exclusive) right now; None when nobody does."""
    path = lock_path(repo)
    if path is None or not path.is_file():
        return None
    try:
        handle = path.open("r")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return described(handle.read())
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


@contextmanager
def announced(token: str) -> Iterator[None]:
    """TOKEN_ENV=token in this process's environment, for the commands it starts: os.environ, and
    the copy of it that plumbum (Copier's task runner) made when it was imported."""

    def environments() -> list:
        plumbum = sys.modules.get("plumbum")
        return [os.environ, *([plumbum.local.env] if plumbum is not None else [])]

    previous = os.environ.get(TOKEN_ENV)
    for env in environments():
        env[TOKEN_ENV] = token
    try:
        yield
    finally:
        for env in environments():
            if previous is None:
                env.pop(TOKEN_ENV, None)
            else:
                env[TOKEN_ENV] = previous


@contextmanager
def writing_lock(repo: Path, wait: float = DEFAULT_LOCK_WAIT) -> Iterator[bool]:
    """The write lock (WRITE_LOCK_FILE), waiting up to `wait` seconds; yields whether this may
    write: False when another still holds it. A git directory that cannot be written cannot be
    locked either (nor its repository changed): then True, without a lock."""
    path = lock_path(repo, WRITE_LOCK_FILE)
    handle = open_lock(path) if path is not None else None
    if handle is None:
        yield True
        return
    with handle:
        if not flock_within(handle, wait, 0.05)[0]:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_lock(path: Path) -> TextIO | None:
    """A lock file opened for flock (created if need be); None when its folder cannot be written."""
    try:
        return path.open("a+")
    except OSError as error:
        if error.errno in (errno.EROFS, errno.EACCES):
            return None
        raise


def flock_within(handle: TextIO, wait: float, poll: float) -> tuple[bool, bool]:
    """An exclusive flock on `handle`, trying every `poll` seconds for up to `wait`: (taken, waited)."""
    deadline, waited = time.monotonic() + wait, False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True, waited
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False, waited
            waited = True
            time.sleep(poll)


def put_back_update(repo: Path) -> bool:
    """Put the folder back at HEAD after a plain `copier update` that another command's lock
    refused (kept_answers): every path that differs, untracked files included (Copier updates only
    a clean tree, so they are its own). Only while no transaction writes (the write lock, held
    meanwhile) and none has left changes (nothing staged); else False, having changed nothing: the
    other command's changes and Copier's can then not be told apart."""
    with writing_lock(repo, 0) as free:
        if not free or git(repo, "diff", "--cached", "--quiet", "HEAD", "--", ".", check=False).returncode != 0:
            return False
        index = index_entries(repo)
        tracked_folders = {parent.as_posix() for rel in index for parent in Path(rel).parents}
        start = Start(git(repo, "rev-parse", "HEAD").stdout.strip(), current_position(repo),
                      git(repo, "rev-parse", "--show-prefix").stdout.strip(), index, tracked_folders, {})
        with uninterruptible():
            restore(repo, start, None, changed_paths(repo, start.base))
        return True


@contextmanager
def exclusive(repo: Path, command: str, wait: float = DEFAULT_LOCK_WAIT) -> Iterator[bool]:
    """One writer at a time: an exclusive lock on the repository's git directory for the whole of a
    command that changes it (onboarding, offboarding). Waits up to `wait` seconds for another holder,
    then refuses, naming it; yields whether it waited. The lock is an flock on a file in the git
    directory: released by the kernel when its holder exits, however it exits, so it never goes stale.
    The lock file names the command and holds a random token, which the command puts in its
    environment (TOKEN_ENV): the update task of its own Copier runs knows it from another command's.
    """
    if not (math.isfinite(wait) and wait >= 0):  # nan would never reach the deadline
        raise HookError("--lock-wait", f"must be a number of seconds, 0 or more (got {wait})")
    if not is_work_tree(repo):
        raise HookError(str(repo), "is not inside a git repository (git init, add and commit it first)")
    path = Path(git(repo, "rev-parse", "--absolute-git-dir").stdout.strip()) / LOCK_FILE
    handle = open_lock(path)
    if handle is None:
        yield False  # nobody can change a repository we cannot even lock; the write fails clearly
        return
    head = where_head_is(repo)  # before waiting: the command meant to start from here
    with handle:
        taken, waited = flock_within(handle, wait, 0.1)
        if not taken:
            handle.seek(0)
            holder = described(handle.read()).what
            raise HookError(str(repo), f"{holder} holds this repository; nothing was changed. Run this again once it "
                                       f"has finished (it waited {wait:.0f} s)")
        if waited and where_head_is(repo) != head:
            # The command waited for, e.g. another --review-branch run, committed or switched
            # branches: going on would build on its unreviewed change (review branches stacked).
            raise HookError(str(repo), f"HEAD moved from {head} to {where_head_is(repo)} while this run waited for "
                            "another command; nothing was changed by this run. Review that change, go back to "
                            "the branch this should start from, then run this command again")
        token = secrets.token_hex(16)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{command} (pid {os.getpid()}, since {datetime.now():%Y-%m-%d %H:%M:%S})\ntoken {token}\n")
        handle.flush()
        try:
            with announced(token):
                yield waited
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
