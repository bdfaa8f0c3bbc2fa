"""Copier `_migrations` of both templates: small, idempotent edits of a project's answers file.

Run by Copier on `copier update` (never on copy), once, in the real project, from the NEW template
version, for the entries whose `version` lies in (old version, new version]: see
questions/migrations.yml. They run in the `before` stage, i.e. before the new version renders, so
the new version reads the migrated answers. Each command is safe to run again: a second run finds
nothing to change.

  rename-answer OLD NEW      an answer was renamed: move its recorded value to the new name
                             (the new question would otherwise start from its default)
  raise-version ANSWER MIN   a release raised the standard's minimum (e.g. flux_version): a
                             recorded version below MIN becomes MIN; newer ones are kept
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hooks.errors import HookError, run_main  # noqa: E402


def _key_line(key: str) -> re.Pattern[str]:
    """A top-level key of the answers file (Copier writes it as block YAML, one key per line)."""
    return re.compile(rf"^{re.escape(key)}:(?=[ \n])", re.MULTILINE)


def _scalar_line(key: str, value: str) -> str:
    """`key: value` quoted exactly as Copier's answers file (to_nice_yaml) would write it."""
    return yaml.safe_dump({key: value}, default_flow_style=False).rstrip("\n")


def rename_answer(text: str, old: str, new: str) -> str:
    """Rename a recorded answer. No-op when `old` is absent; `new` already recorded wins."""
    answers = yaml.safe_load(text) or {}
    if old not in answers:
        return text
    if new in answers:
        raise HookError(old, f"both {old} and {new} are recorded; keep one (copier update --data {new}=…)")
    return _key_line(old).sub(f"{new}:", text, count=1)


def raise_version(text: str, key: str, minimum: str) -> str:
    """Raise a recorded version answer to `minimum`; absent, newer or non-version answers stay."""
    answers = yaml.safe_load(text) or {}
    current = answers.get(key)
    if current is None:
        return text
    try:
        if Version(str(current)) >= Version(minimum):
            return text
    except InvalidVersion:
        return text
    line = re.compile(rf"^{re.escape(key)}:[^\n]*$", re.MULTILINE)
    return line.sub(_scalar_line(key, minimum), text, count=1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers-file", type=Path, default=Path(".copier-answers.yml"))
    # Migrations see no answers in their `when` (only _stage and the versions), so the kind of
    # repository is checked here: a platform-only migration leaves app repositories alone.
    parser.add_argument("--template", choices=["platform", "app"], help="only for this template kind")
    sub = parser.add_subparsers(dest="action", required=True)
    rename = sub.add_parser("rename-answer")
    rename.add_argument("old")
    rename.add_argument("new")
    raise_ = sub.add_parser("raise-version")
    raise_.add_argument("answer")
    raise_.add_argument("minimum")
    args = parser.parse_args(argv)

    path = args.answers_file
    if not path.is_file():
        raise HookError(str(path), "no answers file here: run migrations from the project root")
    text = path.read_text()
    if args.template and (yaml.safe_load(text) or {}).get("template") != args.template:
        return 0
    if args.action == "rename-answer":
        migrated = rename_answer(text, args.old, args.new)
        change = f"renamed answer {args.old} to {args.new}"
    else:
        migrated = raise_version(text, args.answer, args.minimum)
        change = f"raised {args.answer} to {args.minimum}"
    if migrated != text:
        path.write_text(migrated)
        print(f"migration: {change} in {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
