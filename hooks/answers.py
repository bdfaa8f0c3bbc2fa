"""The answers file Copier writes into every rendered repository: its name and one way to parse it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hooks.manifests import FAST_LOADER

ANSWERS_FILE = ".copier-answers.yml"


def load_answers(repo: Path) -> Any:
    """The parsed answers of `repo` ({} for an empty file); OSError and yaml.YAMLError propagate."""
    return yaml.load((repo / ANSWERS_FILE).read_text(), Loader=FAST_LOADER) or {}
