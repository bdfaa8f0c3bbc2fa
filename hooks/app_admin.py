"""Day-two commands on the apps of a platform repository (docs/day-two.md).

    opencenter-apps list --platform P [--format json]
    opencenter-apps rotate-deploy-key --platform P --name APP [--app-repo DIR]
    opencenter-apps rotate-age-key --platform P --cluster CLUSTER (--start | --finish)
    opencenter-apps rotate-age-key --platform P --app APP (--start | --finish)
    python -m hooks.apps …                     (the same, from a clone without the console script)

`list` reads the answers and the public halves of every app's keys (the clear annotations of its
encrypted Secrets); nothing is decrypted. `rotate-deploy-key` generates a new ed25519 key for
every cluster the app runs on, SOPS-encrypted in memory as onboarding does (never in clear on
disk), replaces the encrypted Secret, stages the change and prints the order that avoids an
outage; with --app-repo it rewrites that checkout's docs/deploy-key.pub too (else it prints the
command that does). Like onboarding it holds the repository's lock, needs a clean checkout and
puts everything back when a step fails; each run rotates again. `rotate-age-key` replaces an age key in two steps,
so that Flux never lacks the key to a file. For a cluster: --start adds a new key (generated
outside the repository) next to the old one and re-encrypts every file of the cluster's overlay
for both; --finish, once Flux holds the new key, removes the old one (other recipients stay) and
gives every file a new data key, which the retired key cannot open. For an app: --start
decrypts its <app>-sops-age Secret into memory on every cluster it runs on (with the cluster's
key) and writes it back encrypted holding a new key next to the old one, for the app team to
re-encrypt the app repository's files; --finish, once they have, keeps only the new key. The
app's private keys exist only in memory and SOPS-encrypted. Each step run twice changes nothing.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402
from pyrage import x25519  # noqa: E402

from hooks import apps as appsmod  # noqa: E402
from hooks import agekeys, clusters, deploykeys, gitrepo, sops  # noqa: E402
from hooks.errors import HookError, run_main, shown  # noqa: E402
from hooks.onboard import (  # noqa: E402
    AGE_KEY_ANNOTATION, APP_PUBLIC_KEY_FILE, PUBLIC_KEY_ANNOTATION, Platform, PublicKeys, age_key_steps, annotate,
    annotation_of, app_repo_restored_on_failure, check_app_repo, deploy_key_comment, joined_age_keys, key_file_step,
    make_material, platform_key, read_platform, unchanged_layout, write_app_files,
)

# How far an app's age key rotation is, kept in the clear annotations of its <app>-sops-age Secret:
# the next key while one is under way; after --finish the key it retired, which tells a finished
# rotation (nothing to do) from one never started (an error).
NEXT_AGE_KEY_ANNOTATION = "opencenter/age-public-key-next"
RETIRED_AGE_KEY_ANNOTATION = "opencenter/age-public-key-retired"


def app_records(platform_path: Path) -> list[dict[str, Any]]:
    """Every registered app with its settings, clusters and public keys per cluster."""
    platform = read_platform(platform_path)
    domains = clusters.domains(platform.answers)
    records = []
    for entry in platform.apps:
        placed = appsmod.placement(entry, domains)
        keys = {}
        for cluster in placed:
            def public(kind: str, annotation: str, cluster: str = cluster) -> str | None:
                return annotation_of(platform_path / appsmod.once_file(entry["name"], cluster, kind), annotation)

            keys[cluster] = {"deploy_key": public("deploy-key", PUBLIC_KEY_ANNOTATION),
                             "age_key": public("sops-age", AGE_KEY_ANNOTATION),
                             "age_key_next": public("sops-age", NEXT_AGE_KEY_ANNOTATION)}
        records.append({
            "name": entry["name"], "url": entry["url"], "branch": entry.get("branch", "main"), "clusters": placed,
            "secrets": bool(entry.get("secrets")), "receiver": entry.get("receiver", ""),
            # Its own zone on each cluster (<app>.<cluster_domain> and the names under it), which
            # it serves without a grant; `hostnames` are the names granted besides.
            "zones": {cluster: appsmod.zone(entry["name"], domains[cluster]) for cluster in placed if cluster in domains},
            "hostnames": entry.get("hostnames", []), "egress": entry.get("egress", []),
            "quota": entry.get("quota", {}), "known_hosts": entry.get("known_hosts", ""), "keys": keys,
        })
    return records


def list_apps(platform_path: Path, as_json: bool = False, out: Callable[[str], None] = print) -> int:
    records = app_records(platform_path.resolve())
    if as_json:
        out(json.dumps(records, indent=2))
        return 0
    if not records:
        out("No app is registered.")
    for record in records:
        extras = [f"receiver {record['receiver']}"] if record["receiver"] else []
        extras += ["secrets"] if record["secrets"] else []
        extras += [f"hostnames {', '.join(record['hostnames'])}"] if record["hostnames"] else []
        extras += [f"egress {', '.join(record['egress'])}"] if record["egress"] else []
        quota = ", ".join(f"{key}={value}" for key, value in record["quota"].items())
        extras += [f"quota {quota}"] if quota else []
        # The hosts its known_hosts lines are for (the keys themselves are long; --format json has them).
        hosts = [line.split()[0] for line in record["known_hosts"].splitlines()
                 if line.strip() and not line.startswith("#")]
        extras += [f"known_hosts for {', '.join(dict.fromkeys(hosts))}"] if hosts else []
        out(f"{record['name']}: {record['url']} ({record['branch']}) on {', '.join(record['clusters'])}"
            + (f"; {'; '.join(extras)}" if extras else ""))
        for cluster, keys in record["keys"].items():
            if cluster in record["zones"]:
                out(f"  {cluster}: serves {record['zones'][cluster]} and the names under it")
            out(f"  {cluster}: deploy key {keys['deploy_key'] or '(missing)'}")
            out(f"  {cluster}: age key {keys['age_key'] or '(missing)'}"
                + (f" (rotation under way, next {keys['age_key_next']})" if keys["age_key_next"] else ""))
    return 0


def registered_app(platform: Platform, name: str, field: str) -> dict[str, Any]:
    entry = next((app for app in platform.apps if app.get("name") == name), None)
    if entry is None:
        registered = ", ".join(app["name"] for app in platform.apps) or "none"
        raise HookError(field, f"{shown(name)} is not a registered app (registered: {registered})")
    return entry


def rotate_deploy_key(platform_path: Path, name: str, app_repo: Path | None = None,
                      lock_wait: float = gitrepo.DEFAULT_LOCK_WAIT, out: Callable[[str], None] = print) -> int:
    """A new deploy key on every cluster the app runs on; with app_repo, its docs/deploy-key.pub
    rewritten with them in the same transaction (put back when anything fails, as onboarding does)."""
    platform_path = platform_path.resolve()
    read_platform(platform_path)  # its errors first: not a platform repository at all
    with gitrepo.exclusive(platform_path, f"deploy key rotation of app '{name}'", lock_wait) as waited:
        platform = read_platform(platform_path)
        entry = registered_app(platform, name, "name")
        if app_repo is not None:
            check_app_repo(app_repo, platform_path)
        gitrepo.require_clean_repo(platform_path, waited, f"deploy key rotation of app '{name}'")
        sops_binary = sops.require_sops()
        sops.check_config(platform_path)
        customer = platform.answers.get("customer_name", "platform")
        fresh = {}
        for cluster in appsmod.placement(entry, clusters.domains(platform.answers)):
            item = appsmod.OnceFile("deploy-key", appsmod.once_file(name, cluster, "deploy-key"))
            fresh[cluster] = make_material(appsmod.normalize(entry), [item], deploy_key_comment(customer, cluster, name),
                                           lambda rel, clear: sops.encrypt(platform_path, rel, clear, sops_binary))
        old = {cluster: annotation_of(platform_path / appsmod.once_file(name, cluster, "deploy-key"),
                                      PUBLIC_KEY_ANNOTATION) for cluster in fresh}
        wrote: list[str] = []  # said after the change: every change is complete before anything is printed
        with gitrepo.all_or_nothing(platform_path) as run:
            for material in fresh.values():
                for rel, text in material.files.items():
                    run.wrote(rel)
                    (platform_path / rel).write_text(text)
            run.stage()
            if app_repo is not None:
                with app_repo_restored_on_failure(app_repo):
                    write_app_files(app_repo, entry, {cluster: PublicKeys(material.public_key, None)
                                                      for cluster, material in fresh.items()}, wrote.append)
    several = len(fresh) > 1
    out(f"Rotated the deploy key of app '{name}' on {platform_path} (staged, not committed):")
    for cluster, material in fresh.items():
        out(f"  {cluster}: new {material.public_key}")
        out(f"  {cluster}: old {old[cluster] or '(none)'}")
    for line in wrote:
        out(line)
    out("Next steps, in this order (the old key keeps Flux pulling until the new one is live):")
    out(f"  1. Add the new key{'s' if several else ''} as READ-ONLY deploy key{'s' if several else ''} "
        f"of {entry['url']}; keep the old one.")
    out(f"  2. Commit, push and merge this change: git -C {platform_path} diff --cached --stat")
    out(f"  3. Wait until Flux pulls with the new key: flux reconcile source git {name} -n flux-system (on each cluster)")
    out("  4. Remove the old key from the repository's deploy keys.")
    if app_repo is None:
        key_file_step(platform_path, entry, list(fresh), 5, out)
    elif wrote:
        out(f"  5. Commit and push {APP_PUBLIC_KEY_FILE} in the app repository {app_repo.resolve()} (rewritten above "
            f"with the new key{'s' if several else ''}).")
    return 0


def next_key_file(customer: str, cluster: str) -> Path:
    """Where a cluster's next age key waits between --start and --finish (outside the repository)."""
    current = agekeys.platform_key_file(customer, cluster)
    return current.with_name(current.name.removesuffix(".agekey") + ".next.agekey")


RETIRED_RE = re.compile(r"\.retired(?:-([0-9]+))?\.agekey")


def retired_key_files(customer: str, cluster: str) -> dict[int, Path]:
    """The keys --finish retired from a cluster, by number, oldest first: <customer>-<cluster>.retired.agekey
    (1), then .retired-2.agekey and on (kept for backups; a later rotation never overwrites one)."""
    current = agekeys.platform_key_file(customer, cluster)
    stem = current.name.removesuffix(".agekey")
    found = {}
    for path in current.parent.glob(glob.escape(stem) + ".retired*.agekey"):
        match = RETIRED_RE.fullmatch(path.name.removeprefix(stem))
        if match:
            found[int(match.group(1) or 1)] = path
    return dict(sorted(found.items()))


def retire(current: Path, upcoming: Path, customer: str, cluster: str) -> Path:
    """The cluster's key file kept under the next retired name (exclusive create, mode 0600),
    unless a retired file holds that key already (a retry); then the next key takes its place.
    Runs after the repository change is staged: a failure says how to finish, by running again."""
    key = agekeys.public_key_of(current)
    retired = retired_key_files(customer, cluster)
    kept = next((path for path in retired.values() if agekeys.public_key_of(path) == key), None)
    number = max(retired, default=0) + 1
    suffix = ".retired.agekey" if number == 1 else f".retired-{number}.agekey"
    target = kept or current.with_name(current.name.removesuffix(".agekey") + suffix)
    try:
        if kept is None:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(current.read_text())
            except OSError:
                target.unlink()  # half a key file would stop the retry (it holds no key)
                raise
        upcoming.replace(current)  # the cluster's key file is the new key from now on
    except OSError as error:
        raise HookError(str(current.parent), f"cannot move the age key files of cluster '{cluster}' ({error.strerror}): "
                        f"the repository change is staged, {current.name} still holds the old key and "
                        f"{upcoming.name} the new one. Make the folder writable, then run --finish again") from None
    return target


@dataclass(frozen=True)
class ClusterRotation:
    """Where a cluster's key rotation stands, read from its recipients and its key files only, so
    that a step whose staged change was thrown away (git reset) is found again by a retry."""

    old: Path | None  # the key file of the key being retired (None: not on this machine, or none)
    new: Path | None  # the key file of the key replacing it; None when no rotation is under way


def cluster_rotation(customer: str, cluster: str, recipients: list[str]) -> ClusterRotation:
    current, upcoming = agekeys.platform_key_file(customer, cluster), next_key_file(customer, cluster)
    if upcoming.is_file():  # between --start and the move of the key files by --finish
        return ClusterRotation(current if current.is_file() else None, upcoming)
    if current.is_file() and agekeys.public_key_of(current) in recipients:
        # --finish moved the key files, but the repository is back before its change: the key it
        # retired is still a recipient, so the rotation is under way still.
        listed = [path for path in retired_key_files(customer, cluster).values()
                  if agekeys.public_key_of(path) in recipients]
        if listed:
            return ClusterRotation(listed[-1], current)
    return ClusterRotation(None, None)


def cluster_opener(key_file: Path) -> Path | None:
    """The key file sops opens a cluster's files with, in every command: the caller's own key when
    SOPS_AGE_KEY_FILE or SOPS_AGE_KEY names one (None: sops reads it), else the cluster's generated
    key file when this machine has it."""
    chosen = os.environ.get("SOPS_AGE_KEY_FILE") or os.environ.get("SOPS_AGE_KEY")
    return key_file if key_file.is_file() and not chosen else None


def overlay_sops_files(repo: Path, cluster: str) -> list[str]:
    """Every SOPS-encrypted file of a cluster's overlay (Secrets and encrypted Helm values)."""
    overlay = repo / "applications" / "overlays" / cluster
    return sorted(path.relative_to(repo).as_posix() for path in overlay.rglob("*.y*ml")
                  if path.suffix in (".yaml", ".yml") and sops.is_encrypted_file(path))


def rotate_cluster_key(platform_path: Path, cluster: str, finish: bool, lock_wait: float = gitrepo.DEFAULT_LOCK_WAIT,
                       out: Callable[[str], None] = print) -> int:
    """--start: a new key next to the old one (answers, .sops.yaml, every file of the overlay
    re-encrypted for both); --finish: the old key goes, and every file gets a new data key. Other
    recipients (a team's key) stay. Each step run twice changes nothing."""
    # The same re-render as opencenter-cluster set, refused when it would lose a registered app.
    from hooks.cluster_admin import rerender

    platform_path = platform_path.resolve()
    read_platform(platform_path)  # its errors first: not a platform repository at all
    with gitrepo.exclusive(platform_path, f"age key rotation of cluster '{cluster}'", lock_wait) as waited:
        answers = read_platform(platform_path).answers
        entry = clusters.find(answers, cluster)
        sops_binary = sops.require_sops()
        customer = str(answers.get("customer_name", ""))
        current, upcoming = agekeys.platform_key_file(customer, cluster), next_key_file(customer, cluster)
        recipients = [key.strip() for key in str(entry["sops_age_recipients"]).split(",") if key.strip()]
        state = cluster_rotation(customer, cluster, recipients)
        made = False
        if not finish:
            if state.new is None:
                made = agekeys.ensure_key_file(upcoming)[1]
                state = cluster_rotation(customer, cluster, recipients)
            new_key = agekeys.public_key_of(state.new)
            wanted = recipients if new_key in recipients else [*recipients, new_key]
            opener = cluster_opener(state.old or current)
        else:
            if state.new is None:
                if not retired_key_files(customer, cluster):
                    raise HookError("--finish", f"no rotation of cluster '{cluster}' is under way (run --start first)")
                out(f"No rotation of cluster '{cluster}' is under way: nothing to do.")
                return 0
            new_key = agekeys.public_key_of(state.new)
            if new_key not in recipients:
                raise HookError("--finish", f"cluster '{cluster}' does not list the new key yet (run --start first)")
            if state.old is None:
                raise HookError("--finish", f"{current} is missing: its public half says which of the cluster's "
                                "recipients to retire (the others stay); put the cluster's current key file there, "
                                "then run --finish again")
            # Only the retired key goes; the new key opens every file before and after.
            wanted, opener = [key for key in recipients if key != agekeys.public_key_of(state.old)], state.new
        files = overlay_sops_files(platform_path, cluster)
        changed = wanted != recipients or any(sops.file_recipients(platform_path / rel) != set(wanted) for rel in files)
        if changed:
            try:
                gitrepo.require_clean_repo(platform_path, waited, f"age key rotation of cluster '{cluster}'")
                with gitrepo.all_or_nothing(platform_path) as run:
                    if wanted != recipients:
                        with run.writing():  # Copier and its tasks: whatever changes while they run
                            rerender(platform_path,
                                     clusters.plan_set(answers, cluster, {"sops_age_recipients": ",".join(wanted)}))
                    run.wrote(*files)
                    for rel in files:
                        before = sops.file_recipients(platform_path / rel)
                        sops.update_keys(platform_path, rel, opener, sops_binary)
                        if before - sops.file_recipients(platform_path / rel):  # a key removed: it opens nothing new
                            sops.rotate(platform_path, rel, opener, sops_binary)
                    run.stage()
            except BaseException:
                # Like a refused `opencenter-cluster add`: a refused --start leaves no key of its own
                # behind (nothing in the repository, rolled back, names it); one an earlier run made stays.
                if made:
                    upcoming.unlink(missing_ok=True)
                raise
        # Outside the repository, after its change: the key files. Repeated safely (a retired
        # file is never overwritten, and one holding the key already is kept).
        retired = retire(current, upcoming, customer, cluster) if finish and state.new == upcoming else state.old
    report_cluster_step(platform_path, cluster, finish, changed, new_key, recipients, wanted, len(files),
                        current, state, retired, out)
    return 0


def report_cluster_step(platform_path: Path, cluster: str, finish: bool, changed: bool, new_key: str,
                        recipients: list[str], wanted: list[str], count: int, current: Path, state: ClusterRotation,
                        retired: Path | None, out: Callable[[str], None]) -> None:
    done = "staged, not committed" if changed else "nothing changed"
    if not finish:
        out(f"Rotation of cluster '{cluster}' started ({done}): new age key {new_key} in {state.new}, next to "
            f"{', '.join(key for key in recipients if key != new_key)}; {count} file(s) of its overlay are "
            f"encrypted for {', '.join(wanted)}.")
        old = state.old or current
        out("Next steps:")
        out(f"  1. Give Flux on '{cluster}' both keys (it decrypts with either):")
        out(f"       kubectl -n flux-system create secret generic sops-age --from-file=age.agekey={old} "
            f"--from-file=age-next.agekey={state.new} --dry-run=client -o yaml | kubectl apply -f -")
        out(f"  2. Commit, push and merge; then: opencenter-apps rotate-age-key --platform {platform_path} "
            f"--cluster {cluster} --finish")
        return
    out(f"Rotation of cluster '{cluster}' finished ({done}): encrypted for {', '.join(wanted)}, with a new data key "
        f"(sops rotate) wherever the old key went; the new key {new_key} is in {current}, the old one is kept as "
        f"{retired}.")
    out("Next steps:")
    out(f"  1. Give Flux on '{cluster}' the new key only: kubectl -n flux-system create secret generic sops-age "
        f"--from-file=age.agekey={current} --dry-run=client -o yaml | kubectl apply -f -")
    out("  2. Commit, push and merge; destroy the retired key once nothing needs it (backups!).")


@dataclass(frozen=True)
class AppAgeKeys:
    """The identities an app's <app>-sops-age Secret holds, decrypted into memory only."""

    current: x25519.Identity
    upcoming: x25519.Identity | None


def app_age_secrets(platform: Platform, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The app's entry and its <app>-sops-age Secret on every cluster it runs on; refuses an app
    whose key opens nothing."""
    entry = appsmod.normalize(registered_app(platform, name, "--app"))
    if not entry["secrets"]:
        raise HookError("--app", f"app '{name}' has no secrets: Flux decrypts nothing with its age key, so there is "
                        "nothing to rotate (onboard it again with --secrets --update once it has some)")
    found = {cluster: appsmod.once_file(name, cluster, "sops-age")
             for cluster in appsmod.placement(entry, clusters.domains(platform.answers))}
    for rel in found.values():
        if not (platform.path / rel).is_file():
            raise HookError(rel, f"is missing: app '{name}' has no age key there (onboarding it again with --update "
                            "writes one)")
    return entry, found


def age_step_pending(path: Path, finish: bool) -> bool:
    """Whether the step still changes this Secret (read from its clear annotations, nothing decrypted);
    --finish refuses a Secret in which no rotation was ever started."""
    under_way = annotation_of(path, NEXT_AGE_KEY_ANNOTATION) is not None
    if finish and not under_way and annotation_of(path, RETIRED_AGE_KEY_ANNOTATION) is None:
        raise HookError("--finish", f"no age key rotation is under way in {path} (run --start first)")
    return under_way == finish


def open_age_secret(platform: Platform, cluster: str, rel: str, sops_binary: str) -> AppAgeKeys:
    """The Secret's identities, opened with the key the caller's SOPS_AGE_KEY_FILE (or SOPS_AGE_KEY)
    names when set, else with the cluster's generated key file when this machine has it."""
    key_file = agekeys.platform_key_file(str(platform.answers.get("customer_name", "")), cluster)
    clear = yaml.safe_load(sops.decrypt(platform.path, rel, cluster_opener(key_file), sops_binary,
                                        f"the age key of cluster '{cluster}' in SOPS_AGE_KEY_FILE or in {key_file}"))
    entries = (clear.get("stringData") if isinstance(clear, dict) else None) or {}
    current = agekeys.identity_in(str(entries.get(deploykeys.AGE_KEY_ENTRY, "")))
    if current is None:
        raise HookError(rel, f"holds no age identity in stringData.{deploykeys.AGE_KEY_ENTRY} (edited by hand? "
                        "restore it from git history; nothing was written)")
    return AppAgeKeys(current, agekeys.identity_in(str(entries.get(deploykeys.NEXT_AGE_KEY_ENTRY, ""))))


def rotated_age_secret(name: str, rel: str, keys: AppAgeKeys, finish: bool, announced: str | None) -> str:
    """The step's clear Secret, in memory: --start both keys (a new next key unless the Secret holds
    one), --finish the next key alone, which must be the one announced to the app team."""
    current = str(keys.current.to_public())
    if not finish:
        upcoming = keys.upcoming or deploykeys.generate_age_identity()
        return annotate(deploykeys.sops_age_secret(name, keys.current, upcoming),
                        {AGE_KEY_ANNOTATION: current, NEXT_AGE_KEY_ANNOTATION: str(upcoming.to_public())})
    if keys.upcoming is None or str(keys.upcoming.to_public()) != announced:
        raise HookError(rel, f"announces the next age key {announced} but does not hold it (edited by hand? restore "
                        "it from git history; nothing was written)")
    return annotate(deploykeys.sops_age_secret(name, keys.upcoming),
                    {AGE_KEY_ANNOTATION: str(keys.upcoming.to_public()), RETIRED_AGE_KEY_ANNOTATION: current})


def write_age_step(platform: Platform, name: str, pending: dict[str, str], finish: bool) -> None:
    """Each pending Secret decrypted, rewritten and encrypted again in memory; then all written, or none."""
    sops_binary = sops.require_sops()
    sops.check_config(platform.path)
    encrypted = {}
    for cluster, rel in pending.items():
        keys = open_age_secret(platform, cluster, rel, sops_binary)
        clear = rotated_age_secret(name, rel, keys, finish, annotation_of(platform.path / rel, NEXT_AGE_KEY_ANNOTATION))
        encrypted[rel] = sops.encrypt(platform.path, rel, clear, sops_binary)
    with gitrepo.all_or_nothing(platform.path) as run:
        for rel, text in encrypted.items():
            run.wrote(rel)
            (platform.path / rel).write_text(text)
        run.stage()


def rotate_app_key(platform_path: Path, name: str, finish: bool, lock_wait: float = gitrepo.DEFAULT_LOCK_WAIT,
                   out: Callable[[str], None] = print) -> int:
    """--start: the app's <app>-sops-age Secret holds a new key next to the old one, on every cluster
    the app runs on; --finish: the new key alone. Each step run twice changes nothing."""
    platform_path = platform_path.resolve()
    read_platform(platform_path)  # its errors first: not a platform repository at all
    with gitrepo.exclusive(platform_path, f"age key rotation of app '{name}'", lock_wait) as waited:
        platform = read_platform(platform_path)
        entry, secrets_of = app_age_secrets(platform, name)
        pending = {cluster: rel for cluster, rel in secrets_of.items() if age_step_pending(platform_path / rel, finish)}
        if pending:
            gitrepo.require_clean_repo(platform_path, waited, f"age key rotation of app '{name}'")
            write_age_step(platform, name, pending, finish)
    report_age_step(platform, entry, secrets_of, bool(pending), finish, out)
    return 0


def age_annotations(platform_path: Path, secrets_of: dict[str, str], key: str) -> dict[str, str | None]:
    """One clear annotation of the app's <app>-sops-age Secret, per cluster."""
    return {cluster: annotation_of(platform_path / rel, key) for cluster, rel in secrets_of.items()}


def report_age_step(platform: Platform, entry: dict[str, Any], secrets_of: dict[str, str], changed: bool,
                    finish: bool, out: Callable[[str], None]) -> None:
    """Where the rotation is on each cluster, read back from the Secrets' annotations, and what comes next."""
    current = age_annotations(platform.path, secrets_of, AGE_KEY_ANNOTATION)
    other = age_annotations(platform.path, secrets_of, RETIRED_AGE_KEY_ANNOTATION if finish else NEXT_AGE_KEY_ANNOTATION)
    done, unchanged = (("finished", "nothing to do: it was finished already") if finish
                       else ("started", "nothing changed: it was under way already"))
    out(f"Age key rotation of app '{entry['name']}' {done} ({'staged, not committed' if changed else unchanged}):")
    for cluster, key in current.items():
        out(f"  {cluster}: {key} is its only key (retired {other[cluster]})" if finish
            else f"  {cluster}: next {other[cluster]} (current {key} stays until --finish)")
    if not finish:
        app_repository_steps(platform, entry, secrets_of, other, out)
    elif changed:
        out("Next step: commit, push and merge; Flux then opens the app's files with the new key only.")


def app_key_opener(platform: Platform, cluster: str, rel: str, key_entry: str) -> str:
    """What goes before a sops command run in the app repository so that it opens the app's files with
    one of the app's keys on `cluster` (entry `key_entry` of its <app>-sops-age Secret, `rel`): that
    key decrypted from the platform repository with the cluster's key (the one SOPS_AGE_KEY_FILE
    names, as the rotation opened it) into that one command's environment, never into a file or
    onto a command line."""
    chosen = os.environ.get("SOPS_AGE_KEY_FILE") or platform_key(platform, cluster)
    key_file = chosen if chosen.startswith("<") else shlex.quote(chosen)  # a placeholder stays readable
    extract = shlex.quote(f'["stringData"]["{key_entry}"]')
    return (f'SOPS_AGE_KEY="$(SOPS_AGE_KEY_FILE={key_file} sops decrypt --extract {extract} '
            f'{shlex.quote(str(platform.path / rel))})" ')


def app_repository_steps(platform: Platform, entry: dict[str, Any], secrets_of: dict[str, str],
                         upcoming: dict[str, str | None], out: Callable[[str], None]) -> None:
    """After --start: Flux gets both keys, the app repository moves to the new ones, then --finish.
    Each file of the app repository is opened with the app's current key for `sops updatekeys`,
    which leaves it encrypted for the new key only (unless the team has a key of its own), and
    with the new key for `sops rotate`."""
    out("Next steps, in this order (Flux opens the app's files with either key until --finish):")
    out("  1. Commit, push and merge this change; wait until Flux applied it on each cluster: "
        "flux reconcile kustomization sources -n flux-system")

    def openers(cluster: str | None) -> tuple[str, str]:
        cluster = cluster or next(iter(secrets_of))  # None: the app's one cluster
        return (app_key_opener(platform, cluster, secrets_of[cluster], deploykeys.AGE_KEY_ENTRY),
                app_key_opener(platform, cluster, secrets_of[cluster], deploykeys.NEXT_AGE_KEY_ENTRY))

    placed = list(upcoming)
    step = age_key_steps(entry, joined_age_keys({cluster: PublicKeys(None, key) for cluster, key in upcoming.items()}),
                         placed, unchanged_layout(entry, placed), placed, clusters.domains(platform.answers), 2, out,
                         openers=openers)
    out("     Each sops command opens the file with one of the app's keys, decrypted from this platform checkout "
        "(with the cluster's key) into that command's environment only: `updatekeys` with the current key, `rotate` "
        "with the new one (after updatekeys only the new key opens the file). Run them where this checkout and the "
        "cluster's key are, or, when the app repository's .sops.yaml lists a key of the team's own, with "
        "SOPS_AGE_KEY_FILE=<that key file> in place of SOPS_AGE_KEY=… at both. The same two commands for every "
        "other SOPS file of the app repository.")
    out(f"  {step}. Once Flux reconciled the app with its files re-encrypted: opencenter-apps rotate-age-key "
        f"--platform {platform.path} --app {entry['name']} --finish")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opencenter-apps", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="every registered app, its clusters and public keys")
    listing.add_argument("--platform", type=Path, default=Path("."))
    listing.add_argument("--format", choices=["text", "json"], default="text")
    rotate = commands.add_parser("rotate-deploy-key", help="a new deploy key on every cluster the app runs on")
    rotate.add_argument("--platform", type=Path, default=Path("."))
    rotate.add_argument("--name", required=True)
    rotate.add_argument("--app-repo", type=Path, metavar="DIR",
                        help="also rewrite docs/deploy-key.pub in this checkout of the app repository with the new keys")
    rotate.add_argument("--lock-wait", type=float, default=gitrepo.DEFAULT_LOCK_WAIT)
    age = commands.add_parser("rotate-age-key", help="a cluster's or an app's age key: --start (both keys), then --finish")
    age.add_argument("--platform", type=Path, default=Path("."))
    whose = age.add_mutually_exclusive_group(required=True)
    whose.add_argument("--cluster", help="the cluster's key (the platform's SOPS files of its overlay)")
    whose.add_argument("--app", help="the app's own key (its <app>-sops-age Secret on every cluster it runs on)")
    phase = age.add_mutually_exclusive_group(required=True)
    phase.add_argument("--start", action="store_true")
    phase.add_argument("--finish", action="store_true")
    age.add_argument("--lock-wait", type=float, default=gitrepo.DEFAULT_LOCK_WAIT)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        return list_apps(args.platform, args.format == "json")
    if args.command == "rotate-age-key" and args.app:
        return rotate_app_key(args.platform, args.app, args.finish, args.lock_wait)
    if args.command == "rotate-age-key":
        return rotate_cluster_key(args.platform, args.cluster, args.finish, args.lock_wait)
    return rotate_deploy_key(args.platform, args.name, args.app_repo, args.lock_wait)


def cli() -> None:
    run_main(main)


if __name__ == "__main__":
    cli()
