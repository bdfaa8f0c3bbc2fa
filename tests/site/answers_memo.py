"""Test speed only: Copier combines its answers once per render instead of once per file.

While it writes the files (Worker._render_template), Copier 9.19 builds the Jinja context of every
path and file anew: it merges its answers' seven layers into one dict (AnswersMap.combined) and
filters them into the answers it records (Worker._answers_to_remember), a few thousand times per
render, about 40 % of a render's own time. The answers cannot change while the files are written
(Copier changes them only while asking, and on update before it renders), so the memo computes
both once when writing starts and hands out the same merge (every caller copies it) and a copy of
the recorded answers until writing ends. Asking, tasks and messages run as before.
"""

from __future__ import annotations

from copier import _main
from copier._user_data import AnswersMap

ORIGINAL_RENDER = _main.Worker._render_template
ORIGINAL_REMEMBER = _main.Worker._answers_to_remember
ORIGINAL_COMBINED = AnswersMap.combined


def _combined(self: AnswersMap):
    fixed = vars(self).get("_combined_memo")
    return ORIGINAL_COMBINED.fget(self) if fixed is None else fixed


def _answers_to_remember(self: _main.Worker):
    fixed = vars(self).get("_remember_memo")
    return ORIGINAL_REMEMBER(self) if fixed is None else dict(fixed)


def _render_template(self: _main.Worker) -> None:
    answers = vars(self.answers)
    answers["_combined_memo"] = ORIGINAL_COMBINED.fget(self.answers)
    vars(self)["_remember_memo"] = ORIGINAL_REMEMBER(self)
    try:
        ORIGINAL_RENDER(self)
    finally:
        answers.pop("_combined_memo", None)
        vars(self).pop("_remember_memo", None)


def install(on: bool = True) -> None:
    _main.Worker._render_template = _render_template if on else ORIGINAL_RENDER
    _main.Worker._answers_to_remember = _answers_to_remember if on else ORIGINAL_REMEMBER
    AnswersMap.combined = property(_combined) if on else ORIGINAL_COMBINED
