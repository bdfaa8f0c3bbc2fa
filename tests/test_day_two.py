"""Day two on a platform repository: list the apps, rotate a deploy key, a cluster's or an app's
age key (hooks/app_admin.py, `python -m hooks.apps`). Real Copier, sops and age keys."""

from __future__ import annotations

import itertools
import json
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import copier
import pytest
import yaml
from plumbum import local
from pyrage import x25519

from conftest import ROOT, commit_all, copy_of, git, isolated
from hooks import agekeys, app_admin, onboard, sops
from hooks.check import check_repo
from hooks.errors import HookError
from reliability import read_only

KEY = x25519.Identity.generate()
TEAM = x25519.Identity.generate()  # another recipient of the cluster's files (a team's key)
OTHER_HOST_KEYS = "[git.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
SHOP = {"name": "shop", "url": "ssh://git@github.com/acme/shop", "secrets": True, "receiver": "github",
        "hostnames": ["www.prod.acme.example.com"]}
CART = {"name": "cart", "url": "ssh://git@git.example.com:2222/acme/cart", "known_hosts": OTHER_HOST_KEYS,
        "egress": ["10.20.0.0/16"], "quota": {"pods": "40"}}
DEPLOY_KEY = "applications/overlays/prod/services/sources/shop-deploy-key.sops.yaml"
AGE_SECRET = "applications/overlays/prod/services/sources/shop-sops-age.sops.yaml"


@pytest.fixture(scope="module")
def registered(template_snapshot, tmp_path_factory) -> Path:
    """A committed one-cluster platform repository with shop and cart onboarded."""
    root = tmp_path_factory.mktemp("day-two")
    repo = root / "acme-gitops"
    with isolated(root / "home"):  # outside any test's isolated_env: its own HOME and git identity
        copier.run_copy(str(template_snapshot), repo, defaults=True, unsafe=True, vcs_ref="0.0.1", quiet=True,
                        data={"template": "platform", "sops_age_recipients": str(KEY.to_public())})
        commit_all(repo)
        for entry in (SHOP, CART):
            assert onboard.register(repo, entry, out=lambda _: None) == 0
            commit_all(repo)
    return repo


@pytest.fixture
def platform(registered, tmp_path) -> Path:
    repo = tmp_path / "acme-gitops"
    shutil.copytree(registered, repo, symlinks=True)
    return repo


def decrypted(repo: Path, rel: str) -> dict:
    result = subprocess.run([sops.require_sops(), "decrypt", rel], cwd=repo, capture_output=True, text=True,
                            env={"SOPS_AGE_KEY": str(KEY), "PATH": "/usr/bin:/bin"}, check=True)
    return yaml.safe_load(result.stdout)


def test_list_shows_every_app_with_its_clusters_and_public_keys(registered, capsys):
    # In process: the command line of `list` runs in the next test (`list | head`).
    assert app_admin.main(["list", "--platform", str(registered), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [record["name"] for record in records] == ["cart", "shop"]
    shop = records[1]
    assert (shop["url"], shop["clusters"], shop["receiver"], shop["secrets"]) == (SHOP["url"], ["prod"], "github", True)
    assert shop["hostnames"] == SHOP["hostnames"]
    domain = yaml.safe_load((registered / ".copier-answers.yml").read_text())["cluster_domain"]
    assert shop["zones"] == {"prod": f"shop.{domain}"}
    deploy = decrypted(registered, DEPLOY_KEY)
    assert shop["keys"]["prod"]["deploy_key"] == deploy["metadata"]["annotations"][onboard.PUBLIC_KEY_ANNOTATION]
    assert shop["keys"]["prod"]["age_key"].startswith("age1")
    assert (records[0]["egress"], records[0]["quota"], records[0]["known_hosts"]) == (
        CART["egress"], CART["quota"], OTHER_HOST_KEYS)
    lines: list[str] = []
    app_admin.list_apps(registered, out=lines.append)
    assert lines[0] == (f"cart: {CART['url']} (main) on prod; egress 10.20.0.0/16; quota pods=40; "
                        "known_hosts for [git.example.com]:2222")
    assert lines[1] == f"  prod: serves cart.{domain} and the names under it"
    assert lines[4].startswith(f"shop: {SHOP['url']} (main) on prod; receiver github; secrets; hostnames www.prod.")


def test_a_listing_cut_short_by_its_reader_stops_quietly(registered):
    """`python -m hooks.apps list | head`: the reader is gone before the command writes."""
    listing = subprocess.Popen([sys.executable, "-m", "hooks.apps", "list", "--platform", str(registered)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    listing.stdout.close()
    stderr = listing.stderr.read()
    assert listing.wait() == 1 and stderr == ""


def test_a_rotation_replaces_the_key_encrypted_and_rotates_again_when_run_again(platform):
    before = decrypted(platform, DEPLOY_KEY)
    printed: list[str] = []
    assert app_admin.rotate_deploy_key(platform, "shop", out=printed.append) == 0
    after = decrypted(platform, DEPLOY_KEY)
    new_public = after["metadata"]["annotations"][onboard.PUBLIC_KEY_ANNOTATION]
    assert new_public != before["metadata"]["annotations"][onboard.PUBLIC_KEY_ANNOTATION]
    assert after["stringData"]["identity"] != before["stringData"]["identity"]
    assert after["stringData"]["known_hosts"] == before["stringData"]["known_hosts"]
    assert any(new_public in line for line in printed) and "BEGIN" not in "\n".join(printed)
    assert printed[-2].startswith("  5. The app repository's docs/deploy-key.pub, if it has one, is stale: it lists "
                                  "the deploy key from before this change (cluster prod)."), printed[-2]
    assert "OPENSSH PRIVATE KEY" not in (platform / DEPLOY_KEY).read_text()  # never in clear on disk
    assert git("diff", "--cached", "--name-only", cwd=platform).split() == [DEPLOY_KEY]
    commit_all(platform)
    app_admin.rotate_deploy_key(platform, "shop", out=lambda _: None)
    again = decrypted(platform, DEPLOY_KEY)["metadata"]["annotations"][onboard.PUBLIC_KEY_ANNOTATION]
    assert again != new_public


def test_rotating_an_unknown_app_or_in_a_dirty_checkout_is_refused_and_writes_nothing(platform):
    with pytest.raises(HookError, match="'billing' is not a registered app"):
        app_admin.rotate_deploy_key(platform, "billing", out=lambda _: None)
    (platform / "notes.txt").write_text("work in progress\n")
    before = (platform / DEPLOY_KEY).read_bytes()
    with pytest.raises(HookError):
        app_admin.rotate_deploy_key(platform, "shop", out=lambda _: None)
    assert (platform / DEPLOY_KEY).read_bytes() == before


def key_file_of(app: Path) -> list[str]:
    """The deploy keys docs/deploy-key.pub of an app repository lists."""
    return [line for line in (app / onboard.APP_PUBLIC_KEY_FILE).read_text().splitlines() if line.startswith("ssh-")]


def deploy_key_now(repo: Path) -> str:
    return onboard.annotation_of(repo / DEPLOY_KEY, onboard.PUBLIC_KEY_ANNOTATION)


def test_a_rotation_rewrites_the_app_repositorys_key_file_with_app_repo_or_prints_the_command_that_does(platform,
                                                                                                       tmp_path, capsys):
    app = tmp_path / "shop"
    app.mkdir()
    assert onboard.register(platform, {"name": "shop"}, update=True, app_repo=app, out=lambda _: None) == 0
    assert key_file_of(app) == [deploy_key_now(platform)]  # the key before the rotation
    before = (app / onboard.APP_PUBLIC_KEY_FILE).read_text()

    # Without --app-repo the file is left as it is, and the command printed for it, run as printed
    # (the console script on PATH, the checkout in place of its placeholder), rewrites it.
    printed: list[str] = []
    assert app_admin.rotate_deploy_key(platform, "shop", out=printed.append) == 0
    assert (app / onboard.APP_PUBLIC_KEY_FILE).read_text() == before
    command = printed[-1].strip()
    assert command == (f"opencenter-onboard --platform {platform.resolve()} --name shop --update --app-repo "
                       "<the checkout>"), printed
    done = subprocess.run(shlex.split(command.replace("<the checkout>", shlex.quote(str(app)))), cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert key_file_of(app) == [deploy_key_now(platform)]
    assert before not in (app / onboard.APP_PUBLIC_KEY_FILE).read_text()
    assert git("diff", "--cached", "--name-only", cwd=platform).split() == [DEPLOY_KEY]  # it changed nothing else
    commit_all(platform)

    # With --app-repo: the rotation writes it (one more `Wrote` line), and says to commit it there.
    # In process (tests/test_reliability_audit.py runs the command line of rotate-deploy-key).
    capsys.readouterr()
    assert app_admin.main(["rotate-deploy-key", "--platform", str(platform), "--name", "shop", "--app-repo",
                           str(app)]) == 0
    rotated = capsys.readouterr().out
    newest = deploy_key_now(platform)
    assert key_file_of(app) == [newest] and f"new {newest}" in rotated
    assert f"Wrote {app / onboard.APP_PUBLIC_KEY_FILE}" in rotated and "is stale" not in rotated
    assert rotated.splitlines()[-1] == (f"  5. Commit and push docs/deploy-key.pub in the app repository "
                                        f"{app.resolve()} (rewritten above with the new key).")


@pytest.mark.parametrize("where", ["missing", "platform", "in-platform"])
def test_a_rotation_with_an_unusable_app_repo_is_refused_and_writes_nothing(platform, tmp_path, where):
    app = {"missing": tmp_path / "nowhere", "platform": platform, "in-platform": platform / "applications"}[where]
    before = snapshot(platform)
    with pytest.raises(HookError, match="^app repository: .*(is not a directory|is the platform repository)"):
        app_admin.rotate_deploy_key(platform, "shop", app, out=lambda _: None)
    assert snapshot(platform) == before and git("status", "--porcelain", cwd=platform) == ""
    assert not (tmp_path / "nowhere").exists()


def test_a_rotation_interrupted_after_writing_the_key_file_puts_both_repositories_back(platform, tmp_path,
                                                                                       monkeypatch):
    app = tmp_path / "shop"
    app.mkdir()
    (app / "README.md").write_text("shop\n")
    before_app, before = snapshot(app), snapshot(platform)
    written = onboard.write_app_files

    def write_then_interrupt(*args, **kwargs):
        written(*args, **kwargs)
        assert (app / onboard.APP_PUBLIC_KEY_FILE).is_file()  # it was written: now it must go again
        raise KeyboardInterrupt

    monkeypatch.setattr(app_admin, "write_app_files", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        app_admin.rotate_deploy_key(platform, "shop", app, out=lambda _: None)
    assert snapshot(app) == before_app and not (app / "docs").exists()
    assert snapshot(platform) == before and git("status", "--porcelain", cwd=platform) == ""


def opens(repo: Path, rel: str, key: str) -> bool:
    return subprocess.run([sops.require_sops(), "decrypt", rel], cwd=repo, capture_output=True,
                          env={"SOPS_AGE_KEY": key, "PATH": "/usr/bin:/bin"}).returncode == 0


def snapshot(repo: Path) -> dict[str, bytes]:
    return {p.relative_to(repo).as_posix(): p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}


def prod_key_file() -> Path:
    """prod's age key file where the copy task would have made it (in this test's own HOME)."""
    path = agekeys.platform_key_file("acme", "prod")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(agekeys.key_file_text(KEY))
    return path


@pytest.fixture(scope="module")
def started_once(registered, tmp_path_factory) -> tuple[Path, Path]:
    """`registered` after `rotate-age-key --cluster prod --start` (staged, not committed), and the
    age key folder it ran with (prod's key where the copy task puts it, and the next key): the
    first step of three tests' rotations, made once (read only: tests copy both)."""
    root = tmp_path_factory.mktemp("day-two-started")
    repo = copy_of(registered, root / "acme-gitops")
    with isolated(root / "home"), pytest.MonkeyPatch.context() as patch, local.env():
        for name in ("SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY"):  # as isolated_env: sops uses the generated key
            patch.delenv(name, raising=False)
            local.env.pop(name, None)
        prod_key_file()
        assert app_admin.rotate_cluster_key(repo, "prod", finish=False, out=lambda _: None) == 0
    return repo, root / "home" / "age"


@pytest.fixture
def rotation_started(started_once, isolated_env, tmp_path) -> Path:
    """This test's copy of `started_once`, its key files in this test's age key folder."""
    repo, keys = started_once
    shutil.copytree(keys, agekeys.default_key_dir(), dirs_exist_ok=True)
    return copy_of(repo, tmp_path / "acme-gitops")


def test_a_cluster_key_rotation_adds_then_retires_and_each_step_is_idempotent(rotation_started):
    platform = rotation_started  # --start ran (started_once)
    current = agekeys.platform_key_file("acme", "prod")
    assert agekeys.public_key_of(current) == str(KEY.to_public())
    files = app_admin.overlay_sops_files(platform, "prod")
    assert DEPLOY_KEY in files and len(files) >= 3

    upcoming = app_admin.next_key_file("acme", "prod")
    new = next(line for line in upcoming.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-"))
    assert answers(platform)["sops_age_recipients"] == f"{KEY.to_public()},{agekeys.public_key_of(upcoming)}"
    for rel in files:  # both keys open every file of the overlay
        assert opens(platform, rel, str(KEY)) and opens(platform, rel, new), rel
    started = snapshot(platform)
    app_admin.rotate_cluster_key(platform, "prod", finish=False, out=lambda _: None)
    assert snapshot(platform) == started  # run twice: nothing changes

    commit_all(platform)
    assert app_admin.rotate_cluster_key(platform, "prod", finish=True, out=lambda _: None) == 0
    assert answers(platform)["sops_age_recipients"] == agekeys.public_key_of(current)
    assert agekeys.public_key_of(current) != str(KEY.to_public()) and not upcoming.exists()
    assert agekeys.public_key_of(current.with_name("acme-prod.retired.agekey")) == str(KEY.to_public())
    for rel in files:
        assert opens(platform, rel, new) and not opens(platform, rel, str(KEY)), rel
        # The retired key with the file's sops block of before (git history) opens nothing now:
        # --finish gave every file a new data key, which only the remaining recipients wrap.
        assert not grafted_opens(platform, rel, git("show", f"HEAD:{rel}", cwd=platform), str(KEY)), rel
    assert check_repo(platform) == []
    commit_all(platform)
    finished = snapshot(platform)
    printed: list[str] = []
    app_admin.rotate_cluster_key(platform, "prod", finish=True, out=printed.append)
    assert snapshot(platform) == finished and "nothing to do" in printed[0]


def grafted_opens(repo: Path, rel: str, old_text: str, key: str) -> bool:
    """Whether `key` opens the file's current values when its `sops.age` block is the one of
    `old_text` (the attack on a retired key: its old wrapped data key from git history)."""
    current, old = yaml.safe_load((repo / rel).read_text()), yaml.safe_load(old_text)
    assert key.startswith("AGE-SECRET-KEY") and old["sops"]["age"] != current["sops"]["age"]
    current["sops"]["age"] = old["sops"]["age"]
    grafted = repo / ".git" / "grafted.yaml"  # outside the work tree: nothing to clean up in it
    grafted.write_text(yaml.safe_dump(current, sort_keys=False))
    return subprocess.run([sops.require_sops(), "decrypt", "--ignore-mac", str(grafted)], cwd=repo, capture_output=True,
                          env={"SOPS_AGE_KEY": key, "PATH": "/usr/bin:/bin"}).returncode == 0


def test_the_graft_attack_opens_a_file_whose_recipient_was_only_removed(rotation_started):
    """The attack the check above relies on, shown to work: removing a recipient with `sops
    updatekeys` alone keeps the data key, which the old sops block still wraps for it."""
    platform = rotation_started  # --start ran (started_once)
    commit_all(platform)
    upcoming = app_admin.next_key_file("acme", "prod")
    new = agekeys.public_key_of(upcoming)
    (platform / ".sops.yaml").write_text((platform / ".sops.yaml").read_text().replace(f"{KEY.to_public()},", ""))
    sops.update_keys(platform, DEPLOY_KEY, upcoming)
    assert sops.file_recipients(platform / DEPLOY_KEY) == {new} and not opens(platform, DEPLOY_KEY, str(KEY))
    assert grafted_opens(platform, DEPLOY_KEY, git("show", f"HEAD:{DEPLOY_KEY}", cwd=platform), str(KEY))


def add_team_key(repo: Path) -> None:
    """prod's files encrypted for its key and a team's, as `opencenter-cluster set` and updatekeys leave them."""
    from hooks.cluster_admin import rerender

    rerender(repo, {"sops_age_recipients": f"{KEY.to_public()},{TEAM.to_public()}"})
    for rel in app_admin.overlay_sops_files(repo, "prod"):
        sops.update_keys(repo, rel, prod_key_file())
    commit_all(repo)


def test_a_cluster_key_rotation_keeps_other_recipients_survives_a_reset_and_never_overwrites_a_key(platform):
    """--finish retires only the old key (the team's stays); a --finish thrown away after it moved
    the key files is found again (no third key); a second rotation keeps the first retired key."""
    add_team_key(platform)
    current = prod_key_file()
    app_admin.rotate_cluster_key(platform, "prod", finish=False, out=lambda _: None)
    new = agekeys.public_key_of(app_admin.next_key_file("acme", "prod"))
    commit_all(platform)
    app_admin.rotate_cluster_key(platform, "prod", finish=True, out=lambda _: None)
    git("reset", "-q", "--hard", "HEAD", cwd=platform)  # the staged --finish thrown away; its key files moved
    assert agekeys.public_key_of(current) == new and not app_admin.next_key_file("acme", "prod").exists()

    started = snapshot(platform)
    printed: list[str] = []
    app_admin.rotate_cluster_key(platform, "prod", finish=False, out=printed.append)
    assert snapshot(platform) == started and "nothing changed" in printed[0] and new in printed[0]
    assert f"then: opencenter-apps rotate-age-key --platform {platform.resolve()} --cluster prod --finish" in printed[-1]
    assert not app_admin.next_key_file("acme", "prod").exists()  # no third key
    assert app_admin.rotate_cluster_key(platform, "prod", finish=True, out=lambda _: None) == 0
    assert answers(platform)["sops_age_recipients"] == f"{TEAM.to_public()},{new}"
    for rel in app_admin.overlay_sops_files(platform, "prod"):
        assert sops.file_recipients(platform / rel) == {str(TEAM.to_public()), new}, rel
        assert opens(platform, rel, str(TEAM)) and not opens(platform, rel, str(KEY)), rel
    commit_all(platform)
    finished = snapshot(platform)
    app_admin.rotate_cluster_key(platform, "prod", finish=True, out=lambda _: None)
    assert snapshot(platform) == finished

    first_retired = current.with_name("acme-prod.retired.agekey")
    assert agekeys.public_key_of(first_retired) == str(KEY.to_public())
    app_admin.rotate_cluster_key(platform, "prod", finish=False, out=lambda _: None)
    commit_all(platform)
    app_admin.rotate_cluster_key(platform, "prod", finish=True, out=lambda _: None)
    assert agekeys.public_key_of(first_retired) == str(KEY.to_public())
    assert agekeys.public_key_of(current.with_name("acme-prod.retired-2.agekey")) == new
    assert agekeys.public_key_of(current) not in (new, str(KEY.to_public()))


def test_a_finish_that_cannot_move_the_key_files_says_so_in_one_line_and_running_it_again_finishes(rotation_started):
    """--finish stages the repository change, then moves the key files outside it; with their
    folder read-only (a bind mount: chmod stops no root) it says what is staged, what each file
    holds and to run it again, in one line, and leaves the key files as they were."""
    platform = rotation_started  # --start ran (started_once)
    current = agekeys.platform_key_file("acme", "prod")
    commit_all(platform)
    upcoming = app_admin.next_key_file("acme", "prod")
    new = agekeys.public_key_of(upcoming)
    keys = {path.name: path.read_bytes() for path in current.parent.iterdir()}
    finish = [sys.executable, "-m", "hooks.apps", "rotate-age-key", "--platform", str(platform), "--cluster", "prod",
              "--finish"]
    done = subprocess.run(read_only(current.parent) + finish, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {current.parent}: cannot move the age key files of cluster 'prod' "
                           "(Read-only file system): the repository change is staged"), line
    assert line.endswith("Make the folder writable, then run --finish again"), line
    assert {path.name: path.read_bytes() for path in current.parent.iterdir()} == keys
    assert answers(platform)["sops_age_recipients"] == new  # staged
    assert app_admin.rotate_cluster_key(platform, "prod", finish=True, out=lambda _: None) == 0
    assert agekeys.public_key_of(current) == new and not upcoming.exists()
    assert agekeys.public_key_of(current.with_name("acme-prod.retired.agekey")) == str(KEY.to_public())


def answers(repo: Path) -> dict:
    return yaml.safe_load((repo / ".copier-answers.yml").read_text())


def age_secret(repo: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The annotations and the identities (public key per entry) of shop's age Secret, decrypted
    with prod's key."""
    doc = decrypted(repo, AGE_SECRET)
    identities = {entry: str(agekeys.identity_in(text).to_public()) for entry, text in doc["stringData"].items()}
    return doc["metadata"]["annotations"], identities


def test_an_app_key_rotation_adds_then_retires_and_each_step_is_idempotent(platform):
    prod_key_file()
    before = onboard.annotation_of(platform / AGE_SECRET, onboard.AGE_KEY_ANNOTATION)
    printed: list[str] = []
    assert app_admin.rotate_app_key(platform, "shop", finish=False, out=printed.append) == 0
    annotations, identities = age_secret(platform)
    new = identities["age-next.agekey"]
    assert identities == {"age.agekey": before, "age-next.agekey": new} and new != before
    assert annotations == {onboard.AGE_KEY_ANNOTATION: before, app_admin.NEXT_AGE_KEY_ANNOTATION: new}
    text = "\n".join(printed)
    assert f"prod: next {new}" in text and f"--data flux_age_recipient={new}" in text
    assert f"opencenter-apps rotate-age-key --platform {platform.resolve()} --app shop --finish" in text
    assert text.index("sops updatekeys -y secret.sops.yaml") < text.index("sops rotate -i secret.sops.yaml")
    assert "AGE-SECRET-KEY" not in text + (platform / AGE_SECRET).read_text()  # private keys never in clear
    assert git("diff", "--cached", "--name-only", cwd=platform).split() == [AGE_SECRET]
    assert app_admin.app_records(platform)[1]["keys"]["prod"]["age_key_next"] == new
    started, status = snapshot(platform), git("status", "--porcelain", cwd=platform)
    printed.clear()
    app_admin.rotate_app_key(platform, "shop", finish=False, out=printed.append)
    assert (snapshot(platform), git("status", "--porcelain", cwd=platform)) == (started, status)
    assert "nothing changed" in printed[0] and f"flux_age_recipient={new}" in "\n".join(printed)

    commit_all(platform)
    assert app_admin.rotate_app_key(platform, "shop", finish=True, out=lambda _: None) == 0
    annotations, identities = age_secret(platform)
    assert identities == {"age.agekey": new}  # the old identity is gone
    assert annotations == {onboard.AGE_KEY_ANNOTATION: new, app_admin.RETIRED_AGE_KEY_ANNOTATION: before}
    assert check_repo(platform) == []
    commit_all(platform)
    finished = snapshot(platform)
    printed.clear()
    app_admin.rotate_app_key(platform, "shop", finish=True, out=printed.append)
    assert snapshot(platform) == finished and "nothing to do" in printed[0]
    assert git("status", "--porcelain", cwd=platform) == ""


def printed_app_commands(printed: list[str]) -> list[str]:
    """The commands --start gives for the app repository, exactly as printed."""
    first = next(n for n, line in enumerate(printed) if "make it a recipient and re-encrypt" in line) + 1
    return [line.strip() for line in itertools.takewhile(lambda line: line.startswith("       "), printed[first:])]


def identity_lines(key_file_text: str) -> str:
    return "".join(line for line in key_file_text.splitlines(keepends=True) if line.startswith("AGE-SECRET-KEY-"))


@pytest.mark.parametrize("team", [False, True], ids=["no-team-key", "team-key"])
def test_the_app_repository_steps_of_an_app_key_rotation_work_exactly_as_printed(platform, template_snapshot, tmp_path,
                                                                                  team):
    """The app repository copied with the app's key (and a team's, or none): the commands --start
    prints, run as printed from its root (real copier and sops), leave its Secret encrypted for the
    new key (and the team's) with a new data key; after --finish Flux's key opens it, the retired
    key does not, not even with the file's old sops block from git history."""
    prod_key_file()
    secret = "secret.sops.yaml"
    old_key = identity_lines(decrypted(platform, AGE_SECRET)["stringData"]["age.agekey"])
    app = tmp_path / "shop"
    data = {"template": "app", "app_name": "shop", "secret_keys": "TOKEN",
            "flux_age_recipient": onboard.annotation_of(platform / AGE_SECRET, onboard.AGE_KEY_ANNOTATION)}
    copier.run_copy(str(template_snapshot), app, data={**data, "secrets_age_recipients": str(TEAM.to_public())}
                    if team else data, defaults=True, unsafe=True, vcs_ref="0.0.1", quiet=True)
    commit_all(app)
    assert opens(app, secret, old_key) and opens(app, secret, str(TEAM)) == team

    printed: list[str] = []
    assert app_admin.rotate_app_key(platform, "shop", finish=False, out=printed.append) == 0
    commit_all(platform)
    new_key = identity_lines(decrypted(platform, AGE_SECRET)["stringData"]["age-next.agekey"])
    new_public = str(agekeys.identity_in(new_key).to_public())
    commands = printed_app_commands(printed)
    assert [command.split(" sops ")[-1] if " sops " in command else command.split(" --data ")[0]
            for command in commands] == ["copier update --trust --defaults --vcs-ref=:current:",
                                         f"updatekeys -y {secret}", f"rotate -i {secret}"], printed
    assert "AGE-SECRET-KEY" not in "\n".join(printed)
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=app, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr)
        if "updatekeys" in command:
            # Why the steps name a key each: after updatekeys the app's old key no longer opens the
            # file (`sops rotate` with it fails), only the new key does, and a team's own key.
            assert not opens(app, secret, old_key) and opens(app, secret, new_key)
            assert opens(app, secret, str(TEAM)) == team
    assert sops.file_recipients(app / secret) == {new_public, *([str(TEAM.to_public())] if team else [])}
    assert set(git("status", "--porcelain", cwd=app).split()) <= {"M", ".copier-answers.yml", ".sops.yaml", secret,
                                                                  "README.md"}  # no key left in a file
    commit_all(app, "re-encrypt for the new key")

    assert app_admin.rotate_app_key(platform, "shop", finish=True, out=lambda _: None) == 0
    flux_key = decrypted(platform, AGE_SECRET)["stringData"]
    assert list(flux_key) == ["age.agekey"] and identity_lines(flux_key["age.agekey"]) == new_key
    assert opens(app, secret, new_key) and not opens(app, secret, old_key)
    assert not grafted_opens(app, secret, git("show", f"HEAD~1:{secret}", cwd=app), old_key.strip())
    opened = subprocess.run([sops.require_sops(), "decrypt", secret], cwd=app, capture_output=True, text=True,
                            env={"SOPS_AGE_KEY": new_key, "PATH": "/usr/bin:/bin"}, check=True)
    assert yaml.safe_load(opened.stdout)["stringData"] == {"TOKEN": "CHANGE-ME"}


def test_an_app_key_rotation_opens_the_secret_with_the_key_sops_age_key_file_names(platform, tmp_path, set_env):
    key_file = tmp_path / "prod.agekey"  # not where the copy task puts it: the user's own key file
    key_file.write_text(agekeys.key_file_text(KEY))
    set_env(SOPS_AGE_KEY_FILE=str(key_file))
    assert app_admin.rotate_app_key(platform, "shop", finish=False, out=lambda _: None) == 0
    assert set(age_secret(platform)[1]) == {"age.agekey", "age-next.agekey"}

@pytest.mark.parametrize("app, finish, refusal", [
    ("billing", False, "'billing' is not a registered app"),
    ("cart", False, "app 'cart' has no secrets"),
    ("shop", True, "no age key rotation is under way .*run --start first"),
    ("shop", False, "could not decrypt .*shop-sops-age.sops.yaml: give the age key of cluster .prod."),
])
def test_an_app_key_rotation_refuses_and_writes_nothing(platform, app, finish, refusal):
    before = snapshot(platform)
    with pytest.raises(HookError, match=refusal):
        app_admin.rotate_app_key(platform, app, finish=finish, out=lambda _: None)
    assert snapshot(platform) == before and git("status", "--porcelain", cwd=platform) == ""


def test_the_command_takes_a_cluster_or_an_app_and_refuses_in_one_line():
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hooks.apps", "rotate-age-key", "--platform", "/nonexistent",
                               *args], cwd=ROOT, capture_output=True, text=True)

    both = run("--app", "shop", "--cluster", "prod", "--start")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    # Its usage, like the commands it prints, names the console script docs/day-two.md shows.
    assert both.stderr.startswith("usage: opencenter-apps rotate-age-key")
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["opencenter-apps"] == \
        "hooks.app_admin:cli"
    refused = run("--app", "shop", "--finish")
    assert refused.returncode == 2 and refused.stderr.startswith("error: platform:") and "Traceback" not in refused.stderr




def test_the_documented_rename_keeps_every_setting_and_warns_about_the_shared_repository(platform, capsys):
    """docs/day-two.md 'Rename an app': onboard the new name with the same repository (a warning,
    not a refusal), move the hostnames with two `--update --hostname` runs (every other setting
    stays: secrets, receiver and its token), offboard the old name."""
    from hooks import offboard

    P = str(platform)
    assert onboard.main(["--platform", P, "--name", "shop-eu", "--url", SHOP["url"], "--secrets", "--receiver"]) == 0
    assert "WARNING: app 'shop-eu' deploys the same repository as shop" in capsys.readouterr().out
    commit_all(platform)
    token = "applications/overlays/prod/services/sources/shop-receiver-token.sops.yaml"
    before = (platform / token).read_bytes()
    assert onboard.main(["--platform", P, "--update", "--name", "shop", "--hostname", ""]) == 0
    shop = {app["name"]: app for app in answers(platform)["apps"]}["shop"]
    assert shop == {key: value for key, value in {**SHOP, "branch": "main", "known_hosts": ""}.items()
                    if key != "hostnames"}
    assert (platform / token).read_bytes() == before
    commit_all(platform)
    assert onboard.main(["--platform", P, "--update", "--name", "shop-eu", "--hostname", SHOP["hostnames"][0]]) == 0
    assert "WARNING" not in capsys.readouterr().out  # an update of an app registered already
    commit_all(platform)
    assert offboard.main(["--platform", P, "--name", "shop"]) == 0
    apps = {app["name"]: app for app in answers(platform)["apps"]}
    assert sorted(apps) == ["cart", "shop-eu"]
    assert apps["shop-eu"] == {**SHOP, "name": "shop-eu", "branch": "main", "known_hosts": ""}
    assert check_repo(platform) == []


def test_an_update_without_a_url_needs_a_registered_app(platform):
    with pytest.raises(HookError, match=r"apps\[billing\]\.url: required: 'billing' is not registered"):
        onboard.main(["--platform", str(platform), "--update", "--name", "billing", "--secrets"])
    with pytest.raises(HookError, match="--receiver without a type picks it by the host of --url"):
        onboard.main(["--platform", str(platform), "--update", "--name", "shop", "--receiver"])
