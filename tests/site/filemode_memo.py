"""Test speed only: Copier asks git for core.fileMode once per render instead of once per file.

After writing each file, Copier 9.19 runs `git config --type=bool --get core.fileMode` in the
destination (Worker._sync_git_index_executable_bit): only where that setting is `false` does it go
on to fix the executable bit in git's index. That is about 16,000 git processes over the suite. The
setting cannot change during one render (Copier never sets it; the tasks run after the files are
written), so the memo asks once per Worker and destination folder and, unless the answer is
`false`, skips the file as Copier would; where it is `false`, Copier's own method runs as before.
"""

from __future__ import annotations

from copier import _main
from plumbum import ProcessExecutionError

ORIGINAL = _main.Worker._sync_git_index_executable_bit


def _file_mode(worker: _main.Worker) -> str | None:
    """core.fileMode at the worker's destination, as Copier reads it; None where git has none."""
    root = worker.subproject.local_abspath
    asked = vars(worker).setdefault("_file_mode_memo", {})
    if root not in asked:
        try:
            asked[root] = _main.get_git(context_dir=root)("config", "--type=bool", "--get", "core.fileMode").strip()
        except ProcessExecutionError:  # unset, or not a git repository: Copier returns
            asked[root] = None
    return asked[root]


def _sync_git_index_executable_bit(self, dst_relpath, src_mode) -> None:
    if _file_mode(self) == "false":
        ORIGINAL(self, dst_relpath, src_mode)


def install(on: bool = True) -> None:
    _main.Worker._sync_git_index_executable_bit = _sync_git_index_executable_bit if on else ORIGINAL
