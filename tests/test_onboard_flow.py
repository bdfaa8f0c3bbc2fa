"""Onboarding and offboarding end to end, with real Copier, real sops and a test age key.

The platform repository is rendered from a committed snapshot of this template (conftest
`template_snapshot`) so that `copier update --vcs-ref=:current:` finds the recorded commit.
The test age key lives in memory only; decryption gets it through SOPS_AGE_KEY.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import copier
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_ssh_private_key
from pyrage import x25519

from conftest import ROOT, commit_all, copy_of, git
from hooks import agekeys, knownhosts, offboard, onboard, sops
from hooks.errors import HookError, run_main

OVERLAY = "applications/overlays/prod"
SOURCES = f"{OVERLAY}/services/sources"
FLUXCD = f"{OVERLAY}/services/fluxcd"
TENANTS = f"{OVERLAY}/services/tenants"
OTHER_HOST_KEYS = "[git.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
SHOP = {"name": "shop", "url": "ssh://git@github.com/acme/shop.git"}
THREE = [
    {**SHOP, "receiver": "github"},
    {"name": "cart", "url": "ssh://git@gitlab.com/acme/cart", "branch": "release/1.0", "secrets": True},
    {"name": "billing", "url": "ssh://git@git.example.com:2222/acme/billing", "known_hosts": OTHER_HOST_KEYS,
     "receiver": "generic"},
]


@pytest.fixture(scope="session")
def age_key() -> x25519.Identity:
    """The test key (in memory only): the SOPS recipient of the shared platform render below."""
    return x25519.Identity.generate()


@pytest.fixture
def platform(shared_renders, template_snapshot: Path, tmp_path: Path, age_key: x25519.Identity) -> Path:
    """This test's own copy of a rendered, committed platform repository whose SOPS recipient is the
    test key (rendered once per session: conftest `shared_renders`)."""

    def build(dst: Path) -> None:
        copier.run_copy(
            str(template_snapshot), dst, data={"template": "platform", "sops_age_recipients": str(age_key.to_public())},
            defaults=True, unsafe=True, vcs_ref="0.0.1", quiet=True,
        )
        commit_all(dst, "Platform repository")

    shared = shared_renders.get(("onboard-flow platform", str(age_key.to_public())), build)
    return copy_of(shared, tmp_path / "acme-gitops")


def sops_decrypt(path: Path, age_key: x25519.Identity) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOPS_AGE_KEY": str(age_key)}
    return subprocess.run([sops.require_sops(), "decrypt", str(path)], capture_output=True, text=True, env=env)


def decrypt(path: Path, age_key: x25519.Identity) -> dict:
    result = sops_decrypt(path, age_key)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def app_identity(platform: Path, name: str, age_key: x25519.Identity) -> x25519.Identity:
    """The app's own age key, as Flux gets it: Secret <name>-sops-age decrypted with the platform key."""
    text = decrypt(platform / SOURCES / f"{name}-sops-age.sops.yaml", age_key)["stringData"]["age.agekey"]
    return x25519.Identity.from_str(next(line for line in text.splitlines() if line.startswith("AGE-SECRET-KEY-")))


def app_kustomizations(platform: Path) -> dict[str, dict]:
    """The Flux Kustomizations of the registered apps, by name."""
    return {
        doc["metadata"]["name"]: doc for path in sorted((platform / FLUXCD).glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["apiVersion"].startswith("kustomize.toolkit.fluxcd.io/")
        and "toolkit.fluxcd.io/tenant" in doc["metadata"].get("labels", {})
        and doc["spec"].get("targetNamespace")  # the app's, not its tenant-<app> Kustomization
    }


def snapshot(repo: Path) -> dict[str, object]:
    """Everything that makes a repository 'as it was': files outside .git, index, HEAD, branches."""
    files = {}
    for path in sorted(repo.rglob("*")):
        if ".git" in path.relative_to(repo).parts or not path.is_file():
            continue
        files[str(path.relative_to(repo))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "files": files,
        "index": git("ls-files", "-s", cwd=repo),
        "head": git("rev-parse", "HEAD", cwd=repo),
        "branches": git("branch", "--list", cwd=repo),
        "status": git("status", "--porcelain", "--untracked-files=all", cwd=repo),
    }


def files_holding(needle: bytes, folder: Path, since: float) -> list[str]:
    """Files under folder written since `since` that contain needle (vanishing files are skipped)."""
    found = []
    for dirpath, _, filenames in os.walk(folder):
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            try:
                info = os.stat(path)
                if info.st_mtime >= since and info.st_size < 5_000_000:
                    with open(path, "rb") as handle:
                        if needle in handle.read():
                            found.append(path)
            except OSError:
                continue
    return found


def assert_valid(repo: Path) -> None:
    from hooks.check import check_repo

    assert check_repo(repo) == []


def answers(repo: Path) -> dict:
    return yaml.safe_load((repo / ".copier-answers.yml").read_text())


def test_onboarding_one_app_from_the_platform_side(platform, age_key, tmp_path, capsys, monkeypatch, set_env):
    # Every temporary file of the onboarding (this process, Copier's tasks, sops, git) lands in the
    # test's own folder, searched below: not the shared temp folder, which other tests fill meanwhile.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    set_env(TMPDIR=str(tmp_path / "tmp"))
    started = time.time()
    assert onboard.register(platform, SHOP) == 0
    out = capsys.readouterr().out
    seconds = time.time() - started

    status = git("status", "--porcelain", cwd=platform)
    for rel in (f"{SOURCES}/shop.yaml", f"{SOURCES}/shop-deploy-key.sops.yaml", f"{FLUXCD}/shop.yaml"):
        assert f"A  {rel}" in status
    assert f"M  {SOURCES}/kustomization.yaml" in status and "M  .copier-answers.yml" in status
    assert answers(platform)["apps"] == [
        {"branch": "main", "known_hosts": "", "name": "shop", "receiver": "", "secrets": False,
         "url": "ssh://git@github.com/acme/shop.git"}
    ]
    assert_valid(platform)

    # The deploy key: encrypted with the repository's rules, decryptable with the test key.
    secret_file = platform / SOURCES / "shop-deploy-key.sops.yaml"
    encrypted = yaml.safe_load(secret_file.read_text())
    assert encrypted["sops"]["encrypted_regex"] == "^(data|stringData)$"
    assert all(value.startswith("ENC[") for value in encrypted["stringData"].values())
    secret = decrypt(secret_file, age_key)["stringData"]
    private = load_ssh_private_key(secret["identity"].encode(), password=None)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert secret["identity.pub"].split()[:2] == public.decode().split()
    assert secret["identity.pub"].strip() in out and "READ-ONLY deploy key" in out
    assert secret["known_hosts"] == knownhosts.published_lines("github.com")

    # The clear private key is nowhere: not in either tree, the temp dir, home or the output.
    body = "".join(secret["identity"].splitlines()[1:-1])[20:80]
    assert body not in out
    for folder in (platform, tmp_path, Path(os.environ["HOME"])):
        assert files_holding(body.encode(), folder, since=started - 1) == []
    print(f"onboarding 1 app: {seconds:.1f}s")


def test_three_apps_then_offboarding_one_then_update_gives_no_diff(platform, age_key, capsys, tmp_path):
    # Where the platform's generated key would be: the printed sops command names it.
    key_file = agekeys.platform_key_file("acme", "prod")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(agekeys.key_file_text(age_key))
    started = time.time()
    for app in THREE:
        assert onboard.register(platform, app) == 0
        git("commit", "-q", "-m", f"onboard {app['name']}", cwd=platform)
    seconds = time.time() - started
    assert [app["name"] for app in answers(platform)["apps"]] == ["billing", "cart", "shop"]
    assert_valid(platform)

    cart = [*yaml.safe_load_all((platform / FLUXCD / "cart.yaml").read_text()),
            *yaml.safe_load_all((platform / TENANTS / "cart/tenant.yaml").read_text())]
    kinds = {doc["kind"]: doc for doc in cart if doc["metadata"]["name"] != "tenant-cart" or doc["kind"] != "Kustomization"}
    assert kinds["Kustomization"]["spec"]["serviceAccountName"] == "tenant-cart"
    assert kinds["Kustomization"]["spec"]["decryption"]["secretRef"]["name"] == "cart-sops-age"
    assert kinds["RoleBinding"]["metadata"]["namespace"] == "cart"
    assert kinds["RoleBinding"]["roleRef"]["name"] == "opencenter-tenant"
    assert kinds["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert decrypt(platform / SOURCES / "billing-deploy-key.sops.yaml", age_key)["stringData"]["known_hosts"] == OTHER_HOST_KEYS
    token = decrypt(platform / SOURCES / "shop-receiver-token.sops.yaml", age_key)["stringData"]["token"]
    digest = hashlib.sha256(f"{token}shopflux-system".encode()).hexdigest()
    printed = capsys.readouterr().out
    assert f"/hook/{digest}" in printed
    # The printed command gives the webhook secret as printed, from anywhere (tmp_path is not the repo).
    [command] = [line.split("secret: ", 1)[1] for line in printed.splitlines()
                 if line.strip().startswith("secret: ") and "shop-receiver-token" in line]
    shown = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True)
    assert shown.stdout == token, shown.stderr

    # Offboarding cart: entry, rendered files and Secrets go; the others stay and still validate.
    assert offboard.offboard(platform, "cart") == 0
    out = capsys.readouterr().out
    assert "prunes every" in out and "namespace 'cart' is kept" in out
    assert [app["name"] for app in answers(platform)["apps"]] == ["billing", "shop"]
    for rel in (f"{SOURCES}/cart.yaml", f"{SOURCES}/cart-deploy-key.sops.yaml", f"{FLUXCD}/cart.yaml", f"{TENANTS}/cart"):
        assert not (platform / rel).exists()
    assert "cart" not in (platform / SOURCES / "kustomization.yaml").read_text()
    assert_valid(platform)
    git("commit", "-q", "-m", "offboard cart", cwd=platform)

    # A later update with no template change changes nothing.
    copier.run_update(platform, defaults=True, overwrite=True, unsafe=True, vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    assert git("status", "--porcelain", "--untracked-files=all", cwd=platform) == ""
    print(f"onboarding 3 apps: {seconds:.1f}s")


def test_app_kustomizations_decrypt_with_their_own_age_key_only(platform, age_key, capsys):
    """The confused-deputy fix. Were an app's Kustomization to decrypt with the platform's sops-age,
    a tenant could copy any platform ciphertext (another app's deploy key, a service's Helm values)
    into its repository and have Flux decrypt it into its namespace. Each app gets its own key."""
    for app in ({**SHOP, "secrets": True}, {"name": "cart", "url": "ssh://git@gitlab.com/acme/cart"}):
        assert onboard.register(platform, app) == 0
        git("commit", "-q", "-m", f"onboard {app['name']}", cwd=platform)
    out = capsys.readouterr().out
    assert_valid(platform)

    kustomizations = app_kustomizations(platform)
    assert set(kustomizations) == {"shop", "cart"}
    assert kustomizations["shop"]["spec"]["decryption"] == {"provider": "sops", "secretRef": {"name": "shop-sops-age"}}
    assert "decryption" not in kustomizations["cart"]["spec"]  # no secrets: no decryption at all
    for name, kustomization in kustomizations.items():
        assert "sops-age" not in yaml.safe_dump(kustomization).replace(f"{name}-sops-age", ""), name

    shop_key, cart_key = app_identity(platform, "shop", age_key), app_identity(platform, "cart", age_key)
    assert str(shop_key.to_public()) != str(cart_key.to_public())
    for name, key in (("shop", shop_key), ("cart", cart_key)):
        public = str(key.to_public())
        secret_file = platform / SOURCES / f"{name}-sops-age.sops.yaml"
        assert onboard.annotation_of(secret_file, onboard.AGE_KEY_ANNOTATION) == public  # readable, reviewable
        assert public in out  # printed, with what the app team does with it
        assert "AGE-SECRET-KEY" not in secret_file.read_text()
    assert "--data flux_age_recipient=" in out

    # What a tenant could copy: none of the platform's ciphertexts decrypts with an app's key.
    for ciphertext in sorted((platform / SOURCES).glob("*.sops.yaml")):
        result = sops_decrypt(ciphertext, shop_key)
        assert result.returncode != 0 and "stringData" not in result.stdout, ciphertext.name


def test_same_app_again_changes_nothing_other_settings_are_refused_update_changes(platform, capsys):
    onboard.register(platform, SHOP)
    git("commit", "-q", "-m", "onboard shop", cwd=platform)
    key_before = (platform / SOURCES / "shop-deploy-key.sops.yaml").read_bytes()
    before = snapshot(platform)

    assert onboard.register(platform, SHOP) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert snapshot(platform) == before

    with pytest.raises(HookError, match="--update"):
        onboard.register(platform, {**SHOP, "branch": "prod"})
    assert snapshot(platform) == before

    assert onboard.register(platform, {**SHOP, "branch": "prod", "receiver": "github"}, update=True) == 0
    assert answers(platform)["apps"][0]["branch"] == "prod"
    assert (platform / SOURCES / "shop-deploy-key.sops.yaml").read_bytes() == key_before  # written once
    assert (platform / SOURCES / "shop-receiver-token.sops.yaml").is_file()
    assert_valid(platform)


def test_review_branch_commits_on_onboard_branch(platform):
    assert onboard.register(platform, SHOP, review_branch=True) == 0
    assert git("branch", "--show-current", cwd=platform).strip() == "onboard/shop"
    assert git("status", "--porcelain", cwd=platform) == ""
    assert "Onboard app shop" in git("log", "-1", "--format=%s", cwd=platform)


def dirty(repo: Path) -> None:
    (repo / "notes.txt").write_text("work in progress\n")


@pytest.mark.parametrize(("prepare", "entry", "field"), [
    (dirty, SHOP, "uncommitted changes"),
    (lambda repo: (repo / ".copier-answers.yml").unlink() or commit_all(repo), SHOP, ".copier-answers.yml"),
    (lambda repo: git("branch", "onboard/shop", cwd=repo), SHOP, "review branch"),
    (None, {**SHOP, "name": "cert-manager"}, "apps[cert-manager].name"),
    (None, {**SHOP, "name": "gateway-system"}, "apps[gateway-system].name"),
    (None, {**SHOP, "name": "Shop"}, "apps[Shop].name"),
    (None, {**SHOP, "url": "git@github.com:acme/shop.git"}, "apps[shop].url"),
    (None, {**SHOP, "url": "ssh://git@git.example.com/acme/shop"}, "apps[shop].known_hosts"),
])
def test_refused_preconditions_leave_the_repository_byte_identical(platform, prepare, entry, field):
    if prepare:
        prepare(platform)
    before = snapshot(platform)
    with pytest.raises(HookError) as error:
        onboard.register(platform, entry, review_branch=True)
    assert field in str(error.value)
    assert snapshot(platform) == before


def test_missing_sops_is_refused_before_any_write(platform, monkeypatch):
    monkeypatch.setattr(sops, "find_sops", lambda: None)
    before = snapshot(platform)
    with pytest.raises(HookError, match="sops"):
        onboard.register(platform, SHOP)
    assert snapshot(platform) == before


def test_a_failure_after_writing_restores_the_repository(platform, monkeypatch):
    real_write = onboard.write_once

    def write_then_fail(path, text):
        real_write(path, text)
        raise HookError("disk", "simulated failure after the render and the first write")

    monkeypatch.setattr(onboard, "write_once", write_then_fail)
    before = snapshot(platform)
    with pytest.raises(HookError, match="simulated"):
        onboard.register(platform, SHOP, review_branch=True)
    assert snapshot(platform) == before


def test_offboarding_an_unknown_app_is_refused(platform, capsys):
    before = snapshot(platform)
    with pytest.raises(HookError, match="not a registered app"):
        offboard.offboard(platform, "shop")
    assert snapshot(platform) == before
    # The command (`python -m hooks.offboard` runs run_main(main) on its arguments): one error line,
    # exit status 2, nothing changed.
    with pytest.raises(SystemExit) as exited:
        run_main(offboard.main, ["--platform", str(platform), "--name", "shop"])
    stderr = capsys.readouterr().err
    assert exited.value.code == 2 and stderr.startswith("error: ") and "not a registered app" in stderr, stderr
    assert snapshot(platform) == before


def test_the_documented_commands_run(platform, tmp_path):
    """`python -m hooks.onboard` / `python -m hooks.offboard` as the README shows them."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    app_repo = tmp_path / "shop"
    app_repo.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "hooks.onboard", "--platform", str(platform), "--name", "shop",
         "--url", SHOP["url"], "--receiver", "--app-repo", str(app_repo)],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "ssh-ed25519" in (app_repo / "docs/deploy-key.pub").read_text()
    git("commit", "-q", "-m", "onboard shop", cwd=platform)
    run = subprocess.run(
        [sys.executable, "-m", "hooks.offboard", "--platform", str(platform), "--name", "shop"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    # Offboarding it again is refused: test_offboarding_an_unknown_app_is_refused, in this process.


def copy_app(template_snapshot: Path, dst: Path, platform: Path, quiet: bool = True, **answers) -> None:
    copier.run_copy(
        str(template_snapshot), dst,
        data={"template": "app", "app_name": "shop", "platform_repo": str(platform), **answers},
        defaults=True, unsafe=True, vcs_ref="0.0.1", quiet=quiet,
    )


def test_onboarding_from_the_app_side(template_snapshot, platform, age_key, tmp_path):
    app_repo = tmp_path / "shop"
    copy_app(template_snapshot, app_repo, platform)

    entry = answers(platform)["apps"][0]
    assert entry["name"] == "shop" and entry["url"].startswith("ssh://git@github.com/")
    status = git("status", "--porcelain", cwd=platform)
    assert f"A  {SOURCES}/shop-deploy-key.sops.yaml" in status and f"A  {FLUXCD}/shop.yaml" in status
    assert_valid(platform)

    key_file = (app_repo / "docs/deploy-key.pub").read_text()
    assert "read-only deploy key".upper() in key_file.upper()
    public = next(line for line in key_file.splitlines() if line.startswith("ssh-ed25519 "))
    secret = decrypt(platform / SOURCES / "shop-deploy-key.sops.yaml", age_key)["stringData"]
    assert secret["identity.pub"].strip() == public
    body = "".join(secret["identity"].splitlines()[1:-1])[20:80].encode()
    assert files_holding(body, app_repo, since=0) == [] and files_holding(body, platform, since=0) == []


def test_app_side_copy_encrypts_the_secret_for_the_apps_own_key(template_snapshot, platform, age_key, tmp_path):
    """Onboarding runs before the Secret is encrypted: the app's key, generated on the platform,
    is a recipient of the app's secret file; the platform's key is not, and the app's key opens
    nothing of the platform's."""
    app_repo, team = tmp_path / "shop", x25519.Identity.generate()
    copy_app(template_snapshot, app_repo, platform, secret_keys="TOKEN", secrets_age_recipients=str(team.to_public()))
    assert answers(platform)["apps"][0]["secrets"] is True
    assert app_kustomizations(platform)["shop"]["spec"]["decryption"]["secretRef"] == {"name": "shop-sops-age"}

    flux_key = app_identity(platform, "shop", age_key)  # what Flux decrypts shop's repository with
    public = str(flux_key.to_public())
    recipients = [item["recipient"] for item in yaml.safe_load((app_repo / "secret.sops.yaml").read_text())["sops"]["age"]]
    assert sorted(recipients) == sorted([public, str(team.to_public())])
    assert str(age_key.to_public()) not in recipients
    assert decrypt(app_repo / "secret.sops.yaml", flux_key)["stringData"] == {"TOKEN": "CHANGE-ME"}
    # A tenant copying the platform's ciphertext (its own deploy key Secret) into its repository:
    stolen = app_repo / "stolen.sops.yaml"
    stolen.write_text((platform / SOURCES / "shop-deploy-key.sops.yaml").read_text())
    assert sops_decrypt(stolen, flux_key).returncode != 0
    stolen.unlink()

    # Recorded exactly as rendering with the answer would have: an update at the same version is a no-op.
    assert answers(app_repo)["flux_age_recipient"] == public
    assert_valid(app_repo)
    assert_valid(platform)
    commit_all(app_repo)
    copier.run_update(app_repo, defaults=True, overwrite=True, unsafe=True, vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    assert git("status", "--porcelain", "--untracked-files=all", cwd=app_repo) == ""


def test_app_side_copy_passes_receiver_and_known_hosts_and_says_the_app_is_registered(
    template_snapshot, platform, tmp_path, capfd, monkeypatch
):
    # Both paths relative to where copier runs, as in the README.
    monkeypatch.chdir(tmp_path)
    copy_app(template_snapshot, Path("billing"), Path(platform.name), quiet=False, app_name="billing",
             app_repo_url="ssh://git@git.example.com:2222/acme/billing", app_repo_known_hosts=OTHER_HOST_KEYS,
             webhook_receiver="generic")
    (entry,) = answers(platform)["apps"]
    assert (entry["receiver"], entry["known_hosts"]) == ("generic", OTHER_HOST_KEYS)
    assert (platform / SOURCES / "billing-receiver-token.sops.yaml").is_file()
    assert_valid(platform)
    captured = capfd.readouterr()
    err = captured.err
    assert "/hook/" in captured.out  # onboarding's summary (the task's output)
    assert "The app IS REGISTERED on the platform repository" in err
    # The steps run in the new repository: it says so first, and names the platform by its real path.
    steps = err[err.index("Next steps"):]
    assert "  1. cd billing\n     git init -b main && git add -A" in steps
    assert f"git -C {platform.resolve()} diff --cached --stat" in steps
    assert "docs/deploy-key.pub as a READ-ONLY deploy key" in steps
    assert "Ask " not in err


def test_app_side_copy_without_platform_repo_says_ask_the_platform_team(template_snapshot, tmp_path, capfd):
    copier.run_copy(str(template_snapshot), tmp_path / "shop", data={"template": "app", "app_name": "shop",
                    "webhook_receiver": "github", "secret_keys": "TOKEN",
                    "secrets_age_recipients": str(x25519.Identity.generate().to_public())},
                    defaults=True, unsafe=True, vcs_ref="0.0.1")
    err = capfd.readouterr().err
    assert "Ask the customer platform team to register the app" in err and "IS REGISTERED" not in err
    assert "--secrets --receiver=github" in err and "--data flux_age_recipient=" in err
    # The encryption task's next step, in the app README's form: sops needs the team's key file.
    assert "\n  SOPS_AGE_KEY_FILE=<your key file> sops edit secret.sops.yaml\n" in err


def test_a_refused_app_side_onboarding_leaves_both_trees_as_they_were(template_snapshot, platform, tmp_path):
    dirty(platform)
    before = snapshot(platform)
    app_repo = tmp_path / "shop"
    with pytest.raises(Exception):
        copy_app(template_snapshot, app_repo, platform)
    assert not app_repo.exists()
    assert snapshot(platform) == before
