"""hooks/migrate.py: the answer migrations are idempotent, exact and limited to their template kind.

Their run by Copier (version gate, `before` stage) is covered by tests/test_update_platform.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from hooks import migrate
from hooks.errors import HookError

ANSWERS = """\
# Answers of the openCenter platform template.
_commit: 1.0.0
_src_path: https://git.example.com/opencenter/templates.git
flux_version: 2.9.4
gitops_base_secret: ''
gitops_base_tag: '2026.04'
gitops_base_url: https://github.com/opencenter-cloud/openCenter-gitops-base.git
template: platform
"""


def test_rename_answer_moves_the_value_and_is_idempotent():
    once = migrate.rename_answer(ANSWERS, "gitops_base_tag", "gitops_base_release")
    assert yaml.safe_load(once)["gitops_base_release"] == "2026.04"
    assert "gitops_base_tag" not in yaml.safe_load(once)
    assert once.startswith("# Answers of")  # the rest of the file is untouched
    assert migrate.rename_answer(once, "gitops_base_tag", "gitops_base_release") == once


def test_rename_answer_refuses_two_recorded_names():
    both = ANSWERS + "gitops_base_release: '2026.01'\n"
    with pytest.raises(HookError, match="both gitops_base_tag and gitops_base_release"):
        migrate.rename_answer(both, "gitops_base_tag", "gitops_base_release")


@pytest.mark.parametrize(("recorded", "expected"), [("2.9.4", "2.10.0"), ("2.10.0", "2.10.0"), ("2.11.1", "2.11.1")])
def test_raise_version_only_raises(recorded, expected):
    text = ANSWERS.replace("flux_version: 2.9.4", f"flux_version: {recorded}")
    once = migrate.raise_version(text, "flux_version", "2.10.0")
    assert yaml.safe_load(once)["flux_version"] == expected
    assert migrate.raise_version(once, "flux_version", "2.10.0") == once
    assert once.replace(f"flux_version: {expected}", "") == text.replace(f"flux_version: {recorded}", "")


def test_the_command_leaves_other_template_kinds_alone(tmp_path):
    answers = tmp_path / ".copier-answers.yml"
    app = ANSWERS.replace("template: platform", "template: app")
    answers.write_text(app)
    command = [sys.executable, str(ROOT / "hooks/migrate.py"), f"--answers-file={answers}", "--template=platform",
               "rename-answer", "gitops_base_tag", "gitops_base_release"]
    subprocess.run(command, check=True)
    assert answers.read_text() == app
    answers.write_text(ANSWERS)
    subprocess.run(command, check=True)
    subprocess.run(command, check=True)
    assert yaml.safe_load(answers.read_text())["gitops_base_release"] == "2026.04"

