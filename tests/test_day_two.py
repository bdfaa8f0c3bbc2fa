"""Day two on a platform repository: list the apps, rotate a deploy key, a cluster's or an app's
age key (hooks/app_admin.py, `python -m hooks.apps`). Real Copier, sops and age keys."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import copier
import pytest
import yaml
from pyrage import x25519

from conftest import ROOT, commit_all, git, isolated
from hooks import agekeys, app_admin, onboard, sops
from hooks.check import check_repo
from hooks.errors import HookError

KEY = x25519.Identity.generate()
SHOP = {"name": "shop", "url": "ssh://git@github.com/acme/shop", "secrets": True, "receiver": "github",
        "hostnames": ["www.prod.acme.example.com"]}
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
        for entry in (SHOP, {"name": "cart", "url": "ssh://git@gitlab.com/acme/cart"}):
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


def test_list_shows_every_app_with_its_clusters_and_public_keys(registered):
    result = subprocess.run([sys.executable, "-m", "hooks.apps", "list", "--platform", str(registered), "--format", "json"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [record["name"] for record in records] == ["cart", "shop"]
    shop = records[1]
    assert (shop["url"], shop["clusters"], shop["receiver"], shop["secrets"]) == (SHOP["url"], ["prod"], "github", True)
    assert shop["hostnames"] == SHOP["hostnames"]
    deploy = decrypted(registered, DEPLOY_KEY)
    assert shop["keys"]["prod"]["deploy_key"] == deploy["metadata"]["annotations"][onboard.PUBLIC_KEY_ANNOTATION]
    assert shop["keys"]["prod"]["age_key"].startswith("age1")
    lines: list[str] = []
    app_admin.list_apps(registered, out=lines.append)
    assert lines[0].startswith("cart: ssh://git@gitlab.com/acme/cart (main) on prod")


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


def test_a_cluster_key_rotation_adds_then_retires_and_each_step_is_idempotent(platform):
    current = prod_key_file()
    files = app_admin.overlay_sops_files(platform, "prod")
    assert DEPLOY_KEY in files and len(files) >= 3

    assert app_admin.rotate_cluster_key(platform, "prod", finish=False, out=lambda _: None) == 0
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
    for rel in files:
        assert opens(platform, rel, new) and not opens(platform, rel, str(KEY)), rel
    assert check_repo(platform) == []
    commit_all(platform)
    finished = snapshot(platform)
    printed: list[str] = []
    app_admin.rotate_cluster_key(platform, "prod", finish=True, out=printed.append)
    assert snapshot(platform) == finished and "nothing to do" in printed[0]


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
    assert f"prod: next {new}" in text and f"--data flux_age_recipient={new}" in text and "--finish" in text
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
    refused = run("--app", "shop", "--finish")
    assert refused.returncode == 2 and refused.stderr.startswith("error: platform:") and "Traceback" not in refused.stderr


