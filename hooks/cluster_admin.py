"""Add, change, list and remove the clusters of a platform repository (docs/multi-cluster.md).

    opencenter-cluster list   --platform PATH
    opencenter-cluster add    --platform PATH NAME [--domain D] [--age-recipients age1…] [KEY=VALUE …]
    opencenter-cluster set    --platform PATH NAME KEY=VALUE …
    opencenter-cluster remove --platform PATH NAME

Each command changes the answers (hooks/clusters.py computes how) and re-renders the repository
with `copier update --vcs-ref=:current:` (the template version stays), then stages the result for
review; nothing is committed or pushed. Like onboarding it holds the repository's lock, needs a
clean checkout and puts everything back when any step fails. `add` generates the new cluster's
age key outside the repository unless recipients are given; `remove` is refused while apps run on
the cluster. flux_allow_remote_bases takes true or false (yes/no, on/off, 1/0), gateway_listener_port
a number, platform_services a comma-separated list; the other values are text.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hooks import agekeys, clusters, gitrepo, kept_answers, sops  # noqa: E402
from hooks import apps as appsmod  # noqa: E402
from hooks.answers import has_line_break  # noqa: E402
from hooks.errors import HookError, copier_error, run_main, shown  # noqa: E402
from hooks.onboard import parse_bool, read_platform  # noqa: E402

PORT_RE = re.compile(r"[0-9]{1,5}")


def parse_settings(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE arguments: flux_allow_remote_bases a boolean word, gateway_listener_port a
    number, platform_services a comma-separated list, the others text (versions and tags stay
    strings: 2026.10 is not a float). A value of the wrong type is refused here: Copier's cast of
    a boolean question makes any word true or false ('maybe' would turn the lockdown off)."""
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HookError("settings", f"expected KEY=VALUE, got {shown(item)}")
        if has_line_break(item):
            raise HookError("settings", f"{shown(item)} must be one line, without line breaks")
        if key == "platform_services":
            settings[key] = [svc.strip() for svc in value.split(",") if svc.strip()]
        elif key == "flux_allow_remote_bases":
            settings[key] = parse_bool(value, key)
        elif key == "gateway_listener_port":
            if not PORT_RE.fullmatch(value.strip()):
                raise HookError(key, f"must be a port number such as 8443 (got {shown(value)})")
            settings[key] = int(value)
        else:
            settings[key] = value
    return settings


# `add`'s options that name a per-cluster answer: KEY=VALUE can give the same answer.
ADD_OPTIONS = {"--domain": "cluster_domain", "--age-recipients": "sops_age_recipients"}


def with_options(settings: dict[str, Any], options: dict[str, str]) -> dict[str, Any]:
    """settings with the answers `add`'s options give (ADD_OPTIONS; '' is not given). An answer
    given both ways with two values is refused: neither may silently win."""
    merged = dict(settings)
    for option, value in options.items():
        key = ADD_OPTIONS[option]
        if not value:
            continue
        if has_line_break(value):
            raise HookError(option, f"must be one line, without line breaks (got {shown(value)})")
        if key in merged and str(merged[key]).strip() != value.strip():
            raise HookError(option, f"{option} {shown(value)} and {key}={shown(merged[key])} give {key} two values; "
                                    "give it once (nothing was changed)")
        merged[key] = value
    return merged


def rerender(platform: Path, data: dict[str, Any], only: str | None = None) -> None:
    """`copier update --vcs-ref=:current: --data …`: the answers change, the template version stays.
    With `only`, the other clusters' overlays are left out of both of the update's renders (they
    depend on their own cluster's answers alone, hooks/clusters.py), so changing one cluster of a
    repository costs what changing a one-cluster repository of its size does.
    Tasks run: gotk-components.yaml follows each cluster's flux_version. Copier would replace a
    registered app or cluster its validator refuses with the default (kept_answers): new answers that
    make an app invalid are refused before rendering, and a render that lost one fails after it.
    Callers hold the lock and roll back (gitrepo.all_or_nothing)."""
    import copier

    planned = {**read_platform(platform).answers, **data}
    kept_answers.require_valid_apps(planned)
    others = [f"/applications/overlays/{name}/" for name in clusters.names(planned) if name != only] if only else []
    try:
        copier.run_update(platform, data=data, defaults=True, overwrite=True, unsafe=True,
                          vcs_ref=copier.VcsRef.CURRENT, quiet=True, exclude=others)
    except Exception as error:  # Copier raises many types; all mean the render failed
        raise copier_error(error) from None
    conflicts = gitrepo.unmerged(platform)
    if conflicts:
        raise HookError("copier update", f"left conflicts in {', '.join(conflicts)} (files edited by hand?)")
    kept_answers.verify(planned, read_platform(platform).answers)


def change(platform_path: Path, what: str, plan: Callable[[dict[str, Any]], dict[str, Any]],
           lock_wait: float, cluster: str) -> dict[str, Any]:
    """Apply plan(answers) -> answer changes of `cluster` under the lock, all or nothing (only that
    cluster's overlay renders); the new answers."""
    platform_path = platform_path.resolve()
    read_platform(platform_path)  # its errors first: not a platform repository at all
    with gitrepo.exclusive(platform_path, what, lock_wait) as waited:
        answers = read_platform(platform_path).answers
        gitrepo.require_clean_repo(platform_path, waited, what)
        sops.check_config(platform_path)
        data = plan(answers)
        with gitrepo.all_or_nothing(platform_path) as run:
            with run.writing():  # Copier and its tasks: whatever changes while they run
                rerender(platform_path, data, only=cluster)
            run.stage()
        return read_platform(platform_path).answers


def add(platform_path: Path, name: str, settings: dict[str, Any], lock_wait: float = gitrepo.DEFAULT_LOCK_WAIT,
        out: Callable[[str], None] = print) -> int:
    generated: list[Path] = []
    created: list[Path] = []

    def plan(answers: dict[str, Any]) -> dict[str, Any]:
        given = dict(settings)
        recipients = str(given.get("sops_age_recipients", ""))
        if recipients:
            agekeys.parse_recipients(recipients)  # checksums: a typo must not lock the cluster out
        else:
            clusters.plan_add(answers, name, given)  # refuse bad input before a key file is made
            key_file = agekeys.platform_key_file(answers.get("customer_name", ""), name)
            given["sops_age_recipients"], made = agekeys.ensure_key_file(key_file)
            generated.append(key_file)
            if made:
                created.append(key_file)
        return {"clusters": clusters.plan_add(answers, name, given)}

    try:
        answers = change(platform_path, f"adding cluster {shown(name)}", plan, lock_wait, name)
    except BaseException:
        # The template's validators see the new cluster only when it renders, after its key was
        # made: a refused add leaves no key file behind (one that was there before stays).
        for key_file in created:
            key_file.unlink(missing_ok=True)
        raise
    cluster = clusters.find(answers, name)
    overlay = f"applications/overlays/{name}"
    out(f"Added cluster '{name}' to {platform_path}: {overlay}/ (staged, not committed).")
    out(f"  domain {cluster['cluster_domain']}, Flux {cluster['flux_version']}, openCenter-gitops-base "
        f"{cluster['gitops_base_tag']}, services: {', '.join(cluster['platform_services']) or 'none'}")
    key = generated[0] if generated else "<the age key file of this cluster>"
    if generated:
        out(f"  Its own age key: {key} (mode 0600, outside the repository; back it up).")
    out("Next steps:")
    out(f"  1. Review and commit: git -C {platform_path} diff --cached --stat")
    out(f"  2. On cluster '{name}': kubectl create namespace flux-system && kubectl -n flux-system create secret "
        f"generic sops-age --from-file=age.agekey={key}")
    out(f"  3. Bootstrap it: flux bootstrap git --url={answers.get('platform_repo_url')} "
        f"--branch={answers.get('platform_repo_branch')} --path={overlay}")
    for line in placement_steps(platform_path, answers, name):
        out(line)
    return 0


# The registered apps whose placement command `add` prints, at most: the others are listed by
# `opencenter-apps list` with their clusters.
PLACEMENT_COMMANDS = 10


def placement_steps(platform_path: Path, answers: dict[str, Any], name: str) -> list[str]:
    """Step 4 of `add`: how an app gets onto the new cluster. An --update places the app on exactly
    the clusters it is given (the others it leaves: Flux there prunes it), so each command names the
    app's clusters of now, then the new one (last: the app repository's first environment stays)."""
    apps = answers.get("apps") or []
    if not apps:
        return [f"  4. Onboard apps on it: opencenter-onboard --platform {platform_path} --name APP --url URL "
                f"--cluster {name} …"]
    domains = clusters.domains(answers)
    steps = ["  4. Place an app on it as well, keeping it on its clusters of now (an --update with fewer "
             "clusters moves it: Flux on the others prunes it):"]
    for app in apps[:PLACEMENT_COMMANDS]:
        placed = " ".join(f"--cluster {cluster}" for cluster in [*appsmod.placement(app, domains), name])
        steps.append(f"       opencenter-onboard --platform {platform_path} --name {app['name']} --update {placed}")
    if len(apps) > PLACEMENT_COMMANDS:
        steps.append(f"       … and {len(apps) - PLACEMENT_COMMANDS} more apps, the same way: their clusters are in "
                     f"opencenter-apps list --platform {platform_path}")
    return steps


def set_settings(platform_path: Path, name: str, settings: dict[str, Any],
                 lock_wait: float = gitrepo.DEFAULT_LOCK_WAIT, out: Callable[[str], None] = print) -> int:
    if not settings:
        raise HookError("settings", "give at least one KEY=VALUE to change")
    if "sops_age_recipients" in settings and not agekeys.parse_recipients(str(settings["sops_age_recipients"])):
        # Only a first render generates a key for an empty answer: here .sops.yaml would name none.
        raise HookError("sops_age_recipients", f"cluster {shown(name)} needs its age public keys (age1…, "
                        "comma-separated); an empty answer generates a key only when the repository is first rendered")
    before = clusters.find(read_platform(platform_path.resolve()).answers, name)
    change(platform_path, f"changing cluster {shown(name)}", lambda answers: clusters.plan_set(answers, name, settings),
           lock_wait, name)
    changed = {key: value for key, value in settings.items() if before.get(key) != value}
    out(f"Changed cluster '{name}' in {platform_path}: "
        + (", ".join(f"{key} {shown(before.get(key))} -> {shown(value)}" for key, value in changed.items()) or "nothing")
        + " (staged, not committed; only its overlay and the answers change).")
    if "sops_age_recipients" in changed:
        for line in recipient_steps(name, str(before["sops_age_recipients"]), str(changed["sops_age_recipients"])):
            out(line)
    return 0


def recipient_steps(name: str, before: str, after: str) -> list[str]:
    """What to run on the cluster's SOPS files after its recipients changed. updatekeys wraps the
    same data key for the new recipients; a removed key still opens it with a file's old `sops`
    block from git history, so only a new data key (sops rotate) retires that key."""
    removed = set(agekeys.parse_recipients(before)) - set(agekeys.parse_recipients(after))
    steps = [f"  Re-encrypt every SOPS file of applications/overlays/{name}/ for its new recipients, from the "
             "repository root with a key that opens it today: sops updatekeys -y FILE"]
    if removed:
        steps.append("  Then give each a new data key, or the removed recipient still opens its values with the "
                     "file's old sops block from git history: sops rotate -i FILE")
    return steps


def remove(platform_path: Path, name: str, lock_wait: float = gitrepo.DEFAULT_LOCK_WAIT,
           out: Callable[[str], None] = print) -> int:
    answers = change(platform_path, f"removing cluster {shown(name)}", lambda answers: clusters.plan_remove(answers, name),
                     lock_wait, name)
    out(f"Removed cluster '{name}' from {platform_path}: applications/overlays/{name}/ is gone (staged, not "
        f"committed). Clusters left: {', '.join(clusters.names(answers))}.")
    out(f"  Before merging, uninstall Flux from '{name}' (flux uninstall) or it prunes what this folder applied.")
    key_file = agekeys.platform_key_file(answers.get("customer_name", ""), name)
    if key_file.is_file():  # never deleted for you: it still decrypts the folder's history
        out(f"  Its age key file remains: {key_file} (it opens the removed folder's files in the git history; "
            "delete it when you no longer need them).")
    return 0


def list_clusters(platform_path: Path, out: Callable[[str], None] = print) -> int:
    answers = read_platform(platform_path.resolve()).answers
    for cluster in clusters.cluster_list(answers):
        placed = [app["name"] for app in clusters.apps_on(answers, cluster["cluster_name"])]
        out(f"{cluster['cluster_name']}: {cluster['cluster_domain']}, Flux {cluster['flux_version']}, "
            f"gitops-base {cluster['gitops_base_tag']}, apps: {', '.join(placed) or 'none'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opencenter-cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("list", "add", "set", "remove"):
        sub = commands.add_parser(command)
        sub.add_argument("--platform", type=Path, default=Path("."), help="the platform repository (default: .)")
        if command == "list":
            continue
        sub.add_argument("name", help="the cluster's name (its overlay folder)")
        sub.add_argument("--lock-wait", type=float, default=gitrepo.DEFAULT_LOCK_WAIT,
                         help="seconds to wait for another command on the same repository")
        if command == "add":
            sub.add_argument("--domain", default="", help="its cluster_domain (default: the first cluster's, renamed)")
            sub.add_argument("--age-recipients", default="", help="its age public keys (default: generate a key pair)")
        if command in ("add", "set"):
            sub.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="per-cluster answers to set")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    # argparse fills `settings` from the arguments right after NAME only: KEY=VALUE after an
    # option (`add NAME --domain D KEY=VALUE`, as the usage shows) arrives in `rest`.
    if (args.command in ("list", "remove") and rest) or any(item.startswith("-") for item in rest):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "list":
        return list_clusters(args.platform)
    if args.command == "remove":
        return remove(args.platform, args.name, args.lock_wait)
    settings = parse_settings([*args.settings, *rest])
    if args.command == "set":
        return set_settings(args.platform, args.name, settings, args.lock_wait)
    settings = with_options(settings, {"--domain": args.domain, "--age-recipients": args.age_recipients})
    return add(args.platform, args.name, settings, args.lock_wait)


def cli() -> None:
    run_main(main)


if __name__ == "__main__":
    cli()
