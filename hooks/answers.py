"""The answers file Copier writes into every rendered repository: its name, how it is read, and
the rule every answer but known_hosts text keeps: one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hooks.errors import HookError
from hooks.manifests import FAST_LOADER, read_yaml_file

ANSWERS_FILE = ".copier-answers.yml"


def load_answers(repo: Path) -> Any:
    """The parsed answers of `repo` ({} for an empty file); OSError and yaml.YAMLError propagate."""
    return yaml.load((repo / ANSWERS_FILE).read_text(), Loader=FAST_LOADER) or {}


def has_line_break(text: str) -> bool:
    """Whether text holds a line break anywhere (str.splitlines' breaks: \\n, \\r, \\x85, \\u2028 …).
    A pattern's `$` misses one at the end: 'main\\n' matches ^main$."""
    return text.splitlines() not in ([], [text])


def read_answers_file(repo: Path) -> dict[str, Any]:
    """The answers of `repo` as a mapping, or a HookError naming the file and what is wrong with it
    (unreadable, not UTF-8, not YAML, not a mapping): every command reads them before anything else."""
    path = repo / ANSWERS_FILE
    answers = read_yaml_file(path) or {}
    if not isinstance(answers, dict):
        raise HookError(str(path), f"must be a mapping of answers, got a {type(answers).__name__} (restore it from the "
                                    "repository's history)")
    return answers
