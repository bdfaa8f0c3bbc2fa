"""yamllint run in this process, as `yamllint -f parsable ARGS` runs from a repository's root (what
its pre-commit hook runs): the command line's parsing and output without a Python start per run."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from yamllint import cli


def yamllint(repo: Path, *args: str) -> tuple[int, str]:
    """(exit status, parsable output) of `yamllint -f parsable ARGS` run from `repo`."""
    out, cwd = io.StringIO(), os.getcwd()
    try:
        os.chdir(repo)
        with contextlib.redirect_stdout(out):
            try:
                cli.run(["-f", "parsable", *args])
            except SystemExit as done:
                return done.code or 0, out.getvalue()
    finally:
        os.chdir(cwd)
    raise AssertionError("yamllint returned without an exit status")
