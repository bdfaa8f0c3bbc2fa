"""The answers file Copier writes into every rendered repository: its name, one way to parse it,
and the rule every answer but known_hosts text keeps: one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hooks.manifests import FAST_LOADER

ANSWERS_FILE = ".copier-answers.yml"


def load_answers(repo: Path) -> Any:
    """The parsed answers of `repo` ({} for an empty file); OSError and yaml.YAMLError propagate."""
    return yaml.load((repo / ANSWERS_FILE).read_text(), Loader=FAST_LOADER) or {}


def has_line_break(text: str) -> bool:
    """Whether text holds a line break anywhere (str.splitlines' breaks: \\n, \\r, \\x85, \\u2028 …).
    A pattern's `$` misses one at the end: 'main\\n' matches ^main$."""
    return text.splitlines() not in ([], [text])
