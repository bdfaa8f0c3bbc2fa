"""Copier silently replaces a recorded answer that fails its question's validator with the
question's default (copier/_main.py, `_ask`): for `apps` that default is `[]`. A re-render whose
other answers changed so that the registered apps no longer validate (a Gateway namespace named
like an app, a cluster domain that clashes with an app's hostname, a validator tightened by a
template release) would render a platform repository without its apps, and Flux would prune
every tenant. Every render of a platform repository is therefore compared with what it was meant
to keep; this module says what was dropped, and why.

The commands that re-render (onboarding, offboarding, `opencenter-cluster`) compare with their own
plan and roll back. A plain `copier update` is checked by this module's task, run on every update
but the render of the command holding the repository's lock (its token in the task's environment:
gitrepo.exclusive). Run while another command holds the lock, an update is refused, naming it, and
its files are put back (Copier has no hook before it writes). Otherwise no app or cluster
committed at HEAD may be missing from the new answers, and no cluster's platform services may
have become the question's default (what a validator tightened by a template release, e.g. a new
dependency between services, would do to them) unless the update was given them with --data or
--data-file: Copier refuses a given answer that fails its validator, never replacing it, so a
given default is the user's choice. An app or cluster left out of a given `apps` or `clusters` is
refused too, naming the command that removes it whole. The task cannot undo Copier's writes, so
it fails the update and says how to put the repository back (Copier updates only a clean work
tree: nothing else is lost).

An app repository has no registry to lose, but answers whose validators read other answers: the
documented move of an app from one cluster to several (`--data environments=staging,prod --data
app_domain=…`) makes the recorded age key (flux_age_recipient, one plain key) and hostnames (under
the old app_domain) invalid, and Copier would record '' and `<app>.<new domain>`. So an update run
with --defaults (nothing asked, every answer Copier's) fails when an answer recorded at HEAD and not
given changed, unless it changed into what the recorded value means beside the new answers (see
carried): the key of the environment it was for, the hostnames under the new app_domain. The
message gives the exact --data to pass instead. An interactive update showed each answer it asked.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":  # a template task: say what is missing before anything imports it
    from hooks.preflight import require

    require([])  # Copier's own dependencies (PyYAML) suffice: it runs on every update of a platform repository

import yaml  # noqa: E402

from hooks import app_setup  # noqa: E402
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


def dropped(expected: dict[str, Any], rendered: dict[str, Any], exact: bool = True) -> dict[str, list[str]]:
    """The answers (apps, clusters) whose names differ between the expected and the rendered
    answers, each with the names it lost; with exact=False only those that lost a name (a plain
    update may add none either, but a template release could migrate new entries in)."""
    want, got = kept(expected), kept(rendered)
    return {key: [name for name in want[key] if name not in got[key]] for key in want
            if (want[key] != got[key] if exact else not set(want[key]) <= set(got[key]))}


def services_reset(before: dict[str, Any], after: dict[str, Any], default: list[str]) -> dict[str, list[str]]:
    """The clusters in both answers (by name: removing the first cluster makes the next one first)
    whose recorded platform services were replaced by the default, losing some: their recorded
    services by cluster name. Every cluster is compared, whatever rewrote its services: Copier's
    fallback for the first cluster's own answer, a release migration of the entries of `clusters`."""
    was, now = services(before), services(after)
    return {name: old for name, old in was.items()
            if name in now and now[name] == default and not set(old) <= set(now[name])}


def services(answers: dict[str, Any]) -> dict[str, list[str]]:
    """Every cluster's recorded platform services, by cluster name."""
    return {str(cluster.get("cluster_name")): list(cluster.get("platform_services") or [])
            for cluster in clustersmod.cluster_list(answers) if isinstance(cluster, dict)}


def problem(check: Callable[[], None]) -> str | None:
    """What `check` refuses, as `field: rule`; None when it passes."""
    try:
        check()
    except HookError as error:
        return f"{error.field}: {error.rule}"
    return None


def apps_problem(apps: list[dict[str, Any]], answers: dict[str, Any]) -> str | None:
    """Why `apps` would not pass its validator beside `answers` (their clusters, domains and
    Gateway namespaces), as far as this package can tell; None when it would."""
    return problem(lambda: appsmod.validate_apps(apps, clustersmod.reserved(answers), clustersmod.domains(answers),
                                                 clustersmod.published_hosts(answers)))


def require_valid_apps(planned: dict[str, Any]) -> None:
    """Before a command renders new answers: refuse them when the registered apps would not pass."""
    found = apps_problem(planned.get("apps") or [], planned)
    if found:
        raise HookError("apps", f"these answers would make a registered app invalid, and Copier would drop them all: {found}")


def why(expected: dict[str, Any], rendered: dict[str, Any]) -> str:
    """Why the render lost them: the expected apps or clusters beside the rendered answers, as far as
    this package can tell (the clusters' structure and unique names, not each value's validator)."""
    clusters = expected.get("clusters") or []
    return (apps_problem(expected.get("apps") or [], rendered)
            or problem(lambda: clustersmod.validate_clusters({**rendered, "clusters": clusters}))
            or "a recorded answer no longer passes its question's validator")


def verify(expected: dict[str, Any], rendered: dict[str, Any], exact: bool = True) -> None:
    """Raise unless the render kept the apps and clusters as expected (see dropped), naming what it lost."""
    lost = dropped(expected, rendered, exact)
    if lost:
        what = " and ".join(f"{key} ({', '.join(names)})" if names else
                            f"{key} (rendered {kept(rendered)[key]}, expected {kept(expected)[key]})"
                            for key, names in lost.items())
        raise HookError(
            "copier update",
            f"would drop the recorded {what} (Copier replaces an answer its validator refuses with the default; "
            f"Flux would prune what it renders): {why(expected, rendered)}",
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


def given_services(after: dict[str, Any], given: set[str]) -> set[str]:
    """The clusters whose platform services this update's --data (or --data-file) gave. Copier
    refuses the update when a given answer fails its validator, never replacing it: a default there
    is the user's choice. The first cluster's services are the top-level answer, the others' are
    entries of `clusters`."""
    first = {str(after.get("cluster_name"))} if "platform_services" in given else set()
    return first | ({str(cluster.get("cluster_name")) for cluster in after.get("clusters") or []
                     if isinstance(cluster, dict)} if "clusters" in given else set())


# APP REPOSITORIES ----------------------------------------------------------------------------


def environments(answers: dict[str, Any]) -> list[tuple[str | None, str]]:
    """An app's environments as (name, domain), the first one first. One environment: its name is
    not recorded (the flat layout does not depend on it), only its domain, app_domain."""
    names = [name.strip() for name in str(answers.get("environments") or "").split(",") if name.strip()]
    domain = str(answers.get("app_domain") or "")
    if len(names) < 2:
        return [(None, domain)]
    others = answers.get("environment_domains") or {}
    return [(names[0], domain)] + [(name, str(others.get(name) or "")) for name in names[1:]]


def carried_flux_key(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What the recorded flux_age_recipient means for the new environments: each key stays with its
    environment, found by name, or by domain where one side has a single, unnamed environment (the
    cluster a one-environment app ran on is the one whose domain was app_domain); one environment
    before and after: the same cluster. An environment
    without a key has none yet. When the recorded keys belong to none of the new environments: the
    form to fill in, `staging=age1…,prod=age1…` (never a valid answer, so never what was rendered)."""
    recorded = str(before.get("flux_age_recipient") or "")
    old, new = environments(before), environments(after)
    if len(old) == len(new) == 1:  # its one cluster, whatever its domain became
        return recorded
    keys = {old[0]: recorded} if len(old) == 1 else {env: app_setup.cluster_keys(recorded).get(str(env[0]), "")
                                                     for env in old}

    def key_of(env: tuple[str | None, str]) -> str:
        same = [key for (name, domain), key in keys.items()
                if (name == env[0] if name and env[0] else domain == env[1])]
        return same[0] if len(same) == 1 else ""

    found = {env: key_of(env) for env in new}
    if recorded and not any(found.values()):
        return ",".join(f"{name}=age1…" for name, _ in new) if len(new) > 1 else "age1…"
    if len(new) == 1:
        return found[new[0]]
    return ",".join(f"{name}={key}" for (name, _), key in found.items() if key)


def carried_hostnames(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The recorded hostnames under the new app_domain: the first environment's names, each of
    which the others serve under their own domain (questions/app.yml, hostnames)."""
    old, new = str(before.get("app_domain") or ""), str(after.get("app_domain") or "")
    names = [name.strip() for name in str(before.get("hostnames") or "").split(",") if name.strip()]
    return ",".join(name[:len(name) - len(old)] + new if name.endswith("." + old) else name for name in names)


CARRIED: dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]] = {
    "flux_age_recipient": carried_flux_key, "hostnames": carried_hostnames}


def answers_reset(before: dict[str, Any], after: dict[str, Any], given: set[str]) -> dict[str, tuple[Any, Any]]:
    """The answers recorded in both, not given, that changed into something else than what the
    recorded value means beside the new answers (CARRIED; other answers mean themselves): by name,
    (what to give instead, what was rendered)."""
    reset = {}
    for name, old in before.items():
        if name.startswith("_") or name in given or name not in after or after[name] == old:
            continue
        meant = CARRIED[name](before, after) if name in CARRIED else old
        if after[name] != meant:
            reset[name] = (meant, after[name])
    return reset


def data_option(name: str, value: Any) -> str:
    """`--data name=value` as a shell word; Copier reads the value as YAML (JSON is YAML)."""
    text = value if isinstance(value, str) and "\n" not in value else json.dumps(value)  # one line
    return "--data " + shlex.quote(f"{name}={text}")


def require_app_answers_kept(before: dict[str, Any], after: dict[str, Any], given: set[str], recover: str) -> None:
    """Refuse an app update whose recorded answers Copier replaced (answers_reset), naming each."""
    reset = answers_reset(before, after, given)
    if reset:
        raise HookError("copier update", "replaced the recorded "
                        + ", ".join(f"{name} {before[name]!r} with {now!r}" for name, (_, now) in reset.items())
                        + " (Copier does that when a recorded answer no longer passes its validator beside the "
                        f"answers you changed). {recover}, then run the update again with "
                        + " ".join(data_option(name, meant) for name, (meant, _) in reset.items()))


# THE TASK ------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Fail an update that lost recorded answers (apps, clusters, app keys).")
    parser.add_argument("--operation", required=True)
    # The answers the update was given (`_copier_conf.data`: --data and --data-file), comma-separated.
    parser.add_argument("--given", default="")
    # Whether the update ran with --defaults (`_copier_conf.defaults`): then it asked nothing.
    parser.add_argument("--defaults", default="False")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    before = committed_answers(repo) if args.operation == "update" else None
    if before is None:
        return 0
    holder = gitrepo.holder(repo)
    if holder is not None:
        if holder.is_caller:  # the command's own render: it compares with its own plan
            return 0
        raise refused_while_held(repo, holder)
    after, recover = load_answers(repo), "Put the repository back with `git reset --hard && git clean -fd`"
    given = set(filter(None, args.given.split(",")))
    if after.get("template") == "app":
        if args.defaults == "True":
            require_app_answers_kept(before, after, given, recover)
        return 0
    left_out = {key: names for key, names in dropped(before, after, exact=False).items() if key in given}
    if left_out:
        raise HookError("--data", " and ".join(f"the given {key} leave out {', '.join(names)}"
                                               for key, names in left_out.items())
                        + ": an app leaves with `opencenter-offboard`, a cluster with `opencenter-cluster remove` "
                        f"(they also remove its keys and files). {recover}")
    try:
        verify(before, after, exact=False)
    except HookError as error:
        raise HookError(error.field, f"{error.rule}. {recover} and correct the answer you changed") from None
    default = default_services()
    chosen = given_services(after, given)
    reset = {name: old for name, old in services_reset(before, after, default).items() if name not in chosen}
    if reset:
        raise HookError("copier update", "replaced the recorded platform_services of "
                        + ", ".join(f"cluster {name} {old}" for name, old in reset.items())
                        + f" with the default {default}: Copier does that when a recorded answer no longer passes "
                        "its validator (a service now needs another one: see CHANGELOG.md), and Flux would remove the "
                        f"others. {recover}, then select the services, the default too, with "
                        + " and ".join(f"`opencenter-cluster set {name} platform_services=…`" for name in reset))
    return 0


def refused_while_held(repo: Path, holder: gitrepo.Holder) -> HookError:
    """A plain update run while another command holds the repository's lock: refused, and its
    files put back when they can be told apart from that command's (gitrepo.put_back_update)."""
    if gitrepo.put_back_update(repo):
        return HookError(str(repo), f"{holder.what} holds this repository; this copier update was refused and its "
                                    "files put back: nothing was changed. Run it again once that has finished")
    return HookError(str(repo), f"{holder.what} holds this repository and was changing it while Copier rendered; this "
                                "copier update was refused, its files left as Copier wrote them. Once that has "
                                "finished, put back what it did not stage: git checkout -- . && git clean -fd")


def default_services() -> list[str]:
    """The platform_services question's default, from this template version's questions."""
    questions = yaml.safe_load((Path(__file__).resolve().parents[1] / "questions" / "platform.yml").read_text())
    return list(questions["platform_services"]["default"])


if __name__ == "__main__":
    run_main(main)
