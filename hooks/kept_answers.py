"""Copier silently replaces a recorded answer that fails its question's validator with the
question's default (copier/_main.py, `_ask`): for `apps` that default is `[]`. A re-render whose
other answers changed so that the registered apps no longer validate (a Gateway namespace named
like an app, a cluster domain that clashes with an app's hostname, a validator tightened by a
template release) would render a platform repository without its apps, and Flux would prune
every tenant. Every render of a platform repository is therefore compared with what it was meant
to keep; this module says what was dropped, and why.

The commands that re-render (onboarding, offboarding, `opencenter-cluster`) compare with their own
plan and roll back. A plain `copier update` is checked by this module's task, run on every update:
no app or cluster committed at HEAD may be missing from the new answers (only offboarding and
`opencenter-cluster remove` drop one, and their renders skip tasks). The task cannot undo Copier's
writes, so it fails the update and says how to put the repository back (Copier updates only a
clean work tree: nothing else is lost).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hooks import apps as appsmod  # noqa: E402
from hooks import clusters as clustersmod  # noqa: E402
from hooks import gitrepo  # noqa: E402
from hooks.answers import ANSWERS_FILE, load_answers  # noqa: E402
from hooks.errors import HookError, run_main  # noqa: E402

def kept(answers: dict[str, Any]) -> dict[str, list[str]]:
    """What no render may lose by accident: the registered apps and the clusters, by name (a
    template release may migrate their entries; it never renames or drops one)."""
    return {"apps": [str(app.get("name")) for app in answers.get("apps") or [] if isinstance(app, dict)],
            "clusters": [str(cluster.get("cluster_name")) for cluster in clustersmod.cluster_list(answers)
                         if isinstance(cluster, dict)]}


def dropped(expected: dict[str, Any], rendered: dict[str, Any], exact: bool = True) -> list[str]:
    """The answers (apps, clusters) whose names differ between the expected and the rendered
    answers; with exact=False only those that lost a name (a plain update may add none either,
    but a template release could migrate new entries in)."""
    want, got = kept(expected), kept(rendered)
    return [key for key in want if (want[key] != got[key] if exact else not set(want[key]) <= set(got[key]))]


def apps_problem(apps: list[dict[str, Any]], answers: dict[str, Any]) -> str | None:
    """Why `apps` would not pass its validator beside `answers` (their clusters, domains and
    Gateway namespaces), as far as this package can tell; None when it would."""
    try:
        appsmod.validate_apps(apps, clustersmod.reserved(answers), clustersmod.domains(answers))
    except HookError as error:
        return f"{error.field}: {error.rule}"
    return None


def require_valid_apps(planned: dict[str, Any]) -> None:
    """Before a command renders new answers: refuse them when the registered apps would not pass."""
    problem = apps_problem(planned.get("apps") or [], planned)
    if problem:
        raise HookError("apps", f"these answers would make a registered app invalid, and Copier would drop them all: {problem}")


def why(expected: dict[str, Any], rendered: dict[str, Any]) -> str:
    return apps_problem(expected.get("apps") or [], rendered) or "a recorded answer no longer passes its question's validator"


def verify(expected: dict[str, Any], rendered: dict[str, Any], exact: bool = True) -> None:
    """Raise unless the render kept the apps and clusters as expected (see dropped)."""
    lost = dropped(expected, rendered, exact)
    if lost:
        raise HookError(
            "copier update",
            f"would drop the recorded {' and '.join(f'`{key}`' for key in lost)} answer (Copier replaces an "
            f"answer its validator refuses with the default; Flux would prune what it renders): {why(expected, rendered)}",
        )


def committed_answers(repo: Path) -> dict[str, Any] | None:
    """The answers at HEAD of `repo`, when it is a work tree of its own with a commit (not one of
    the temporary replays Copier runs update tasks in)."""
    if not gitrepo.is_work_tree(repo):
        return None
    top = gitrepo.git(repo, "rev-parse", "--show-toplevel", check=False).stdout.strip()
    shown = gitrepo.git(repo, "show", f"HEAD:{ANSWERS_FILE}", check=False)
    if Path(top).resolve() != repo.resolve() or shown.returncode != 0:
        return None
    return yaml.safe_load(shown.stdout) or {}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Fail an update that dropped the registered apps or clusters.")
    parser.add_argument("--operation", required=True)
    args = parser.parse_args(argv)
    repo = Path.cwd()
    before = committed_answers(repo) if args.operation == "update" else None
    if before is None:
        return 0
    try:
        verify(before, load_answers(repo), exact=False)
    except HookError as error:
        raise HookError(error.field, f"{error.rule}. Put the repository back with `git reset --hard && git clean -fd`"
                        " and correct the answer you changed") from None
    return 0


if __name__ == "__main__":
    run_main(main)
