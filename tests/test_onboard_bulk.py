"""Onboarding many apps from a file, and onboarding requests by pull request, end to end (real
Copier, real sops, the test age key of test_onboard_flow's platform render)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import commit_all, copy_of, git
from hooks import gitrepo, onboard
from hooks.check import run_checks
from hooks.errors import HookError
from hooks.onboarding_requests import REQUESTS_DIR, request_problems
from test_onboard_flow import OTHER_HOST_KEYS, SOURCES, THREE, age_key, decrypt, platform, snapshot  # noqa: F401

GITHUB = ".github/workflows/validate.yaml"


def entries_file(folder: Path, entries: object, name: str = "apps.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return path


def clear_shape(doc: dict) -> dict:
    """A decrypted Secret without its key material: what must match between two onboardings."""
    return {"kind": doc["kind"], "metadata": {k: v for k, v in doc["metadata"].items() if k != "annotations"},
            "keys": sorted(doc.get("stringData") or {}), "type": doc.get("type")}


def test_a_file_of_apps_registers_like_the_same_onboardings_one_by_one(platform, tmp_path, age_key):
    """One transaction, one render: the same tree as three onboardings apart from key material and
    SOPS envelopes, every deploy key printed, and the same file again changes nothing."""
    one_by_one = copy_of(platform, tmp_path / "one-by-one")
    for entry in THREE:
        onboard.register(one_by_one, entry, out=lambda line: None)
        commit_all(one_by_one, f"onboard {entry['name']}")
    lines: list[str] = []
    assert onboard.register_file(platform, entries_file(tmp_path, THREE), out=lines.append) == 0
    staged = git("diff", "--cached", "--name-status", cwd=platform)
    commit_all(platform, "bulk")

    files = {p.relative_to(platform).as_posix() for p in platform.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert files == {p.relative_to(one_by_one).as_posix() for p in one_by_one.rglob("*")
                     if p.is_file() and ".git" not in p.parts}
    for rel in sorted(files):
        if rel.startswith(SOURCES) and rel.endswith(".sops.yaml"):  # the apps' key material
            bulk, single = decrypt(platform / rel, age_key), decrypt(one_by_one / rel, age_key)
            assert clear_shape(bulk) == clear_shape(single), rel
        else:
            assert (platform / rel).read_bytes() == (one_by_one / rel).read_bytes(), rel
    assert len(staged.splitlines()) == len(git("diff", "--name-only", "HEAD~3", "HEAD", cwd=one_by_one).splitlines())

    output = "\n".join(lines)
    assert output.startswith(f"Registered 3 apps on {platform}: shop, cart, billing")
    for entry in THREE:
        secret = yaml.safe_load((platform / SOURCES / f"{entry['name']}-deploy-key.sops.yaml").read_text())
        assert secret["metadata"]["annotations"]["opencenter/deploy-key-public"] in output
    assert output.count("Configure a") == 2  # shop (github) and billing (generic) have receivers

    before = snapshot(platform)
    again: list[str] = []
    assert onboard.register_file(platform, entries_file(tmp_path, THREE), out=again.append) == 0
    assert snapshot(platform) == before
    assert sum("nothing changed" in line for line in again) == 3


@pytest.mark.parametrize(("entries", "message"), [
    ([THREE[0], {**THREE[1], "name": "Cart"}], "apps[Cart].name: must be a DNS-1123 label"),
    ([THREE[0], {**THREE[1], "name": "shop"}], "apps[shop].name: is given twice"),
    ([THREE[0], {**THREE[1], "hostnames": ["www.shop.prod.acme.example.com"]}], "is also served by app shop"),
    ([THREE[0], {"name": "cart"}], "entry 2: needs url as text"),
    ([THREE[0], {**THREE[1], "name": ["cart", "shop"]}], "entry 2: needs name as text"),
    ([THREE[0], {**THREE[1], "colour": "blue"}], "apps[cart]: unknown keys colour; allowed: name, url"),
    ([THREE[0], {**THREE[1], 1: "x", "foo": "y"}], "apps[cart]: unknown keys 1, foo; allowed: name, url"),
    ({"apps": THREE}, "entry 1: needs name and url as text (it has keys ['apps'])"),
    ("shop", "must hold an app entry"),
])
def test_a_bad_entry_refuses_the_whole_file_and_writes_nothing(platform, tmp_path, entries, message):
    before = snapshot(platform)
    with pytest.raises(HookError) as refused:
        onboard.register_file(platform, entries_file(tmp_path, entries), out=lambda line: None)
    assert message in str(refused.value)
    assert snapshot(platform) == before


def test_from_file_takes_no_per_app_options(platform, tmp_path):
    path = entries_file(tmp_path, THREE)
    with pytest.raises(HookError, match=r"--from-file: takes every setting from the file's entries: drop --name, --secrets"):
        onboard.main(["--platform", str(platform), "--from-file", str(path), "--name", "shop", "--secrets"])
    with pytest.raises(HookError, match=r"--name and --url: required \(or --from-file FILE"):
        onboard.main(["--platform", str(platform)])


def ci_check(repo: Path, monkeypatch, nowhere: Path) -> subprocess.CompletedProcess[str]:
    """The check exactly as the repository's GitHub workflow runs it (the console script is this
    interpreter's -m hooks.check). Apps are 'cloned' from a folder that does not exist (git's
    insteadOf; no network here): CI notes them and goes on."""
    command = shlex.split(yaml.safe_load((repo / GITHUB).read_text())["jobs"]["check"]["steps"][-1]["run"])
    assert command[0] == "opencenter-check"
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{nowhere}/.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "ssh://")
    return subprocess.run([sys.executable, "-m", "hooks.check", *command[1:]], cwd=repo, capture_output=True,
                          text=True, env=None, check=False)


def test_a_request_by_pull_request_fails_ci_with_the_command_that_registers_it(platform, tmp_path, monkeypatch):
    """An app team's request file: CI refuses it while pending and prints the exact command; that
    command registers the app and removes the request; CI then passes."""
    request = entries_file(platform, {"name": "cart", "url": "ssh://git@gitlab.com/acme/cart", "secrets": True,
                                      "hostnames": ["cart-eu.prod.acme.example.com"]}, f"{REQUESTS_DIR}/cart.yaml")
    commit_all(platform, "Request onboarding of cart")
    pending = ci_check(platform, monkeypatch, tmp_path / "nowhere")
    assert pending.returncode == 1, pending.stdout + pending.stderr
    (line,) = [line for line in pending.stdout.splitlines() if "onboarding-request" in line]
    assert f"{REQUESTS_DIR}/cart.yaml" in line and "valid, not registered yet" in line
    command = line.split("`")[1]
    assert command == f"opencenter-onboard --platform . --from-file {REQUESTS_DIR}/cart.yaml"

    monkeypatch.chdir(platform)
    assert onboard.main(shlex.split(command)[1:]) == 0
    assert not request.exists()
    assert f"D\t{REQUESTS_DIR}/cart.yaml" in git("diff", "--cached", "--name-status", cwd=platform)
    apps = yaml.safe_load((platform / ".copier-answers.yml").read_text())["apps"]
    assert [app["name"] for app in apps] == ["cart"] and apps[0]["hostnames"] == ["cart-eu.prod.acme.example.com"]
    commit_all(platform, "Onboard cart")
    done = ci_check(platform, monkeypatch, tmp_path / "nowhere")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ci_explains_why_a_request_cannot_be_registered(platform, tmp_path):
    entries_file(platform, {"name": "flux-system", "url": "ssh://git@github.com/acme/x"}, f"{REQUESTS_DIR}/x.yaml")
    entries_file(platform, {"name": "cart", "url": "ssh://git@gitlab.com/acme/cart"}, f"{REQUESTS_DIR}/a.yaml")
    entries_file(platform, [{"name": "cart", "url": "ssh://git@gitlab.com/acme/cart2"}], f"{REQUESTS_DIR}/b.yml")
    entries_file(platform, {"name": "billing", "url": "ssh://git@git.example.com:2222/acme/billing",
                            "known_hosts": OTHER_HOST_KEYS, "hostnames": ["cart.prod.acme.example.com"]},
                 f"{REQUESTS_DIR}/c.yaml")
    (platform / REQUESTS_DIR / "d.yaml").write_text("name: [unclosed\n")
    (platform / REQUESTS_DIR / "e.yaml").write_bytes(b"name: \xff\xfe\n")
    found = {f.file: f.message for f in run_checks(platform).findings if f.rule == "onboarding-request"}
    assert found.keys() == {f"{REQUESTS_DIR}/{name}" for name in ("x.yaml", "a.yaml", "b.yml", "c.yaml", "d.yaml", "e.yaml")}
    assert found[f"{REQUESTS_DIR}/a.yaml"].startswith("valid, not registered yet")
    assert "apps[flux-system].name" in found[f"{REQUESTS_DIR}/x.yaml"]
    assert found[f"{REQUESTS_DIR}/b.yml"] == f"apps[cart]: is requested in {REQUESTS_DIR}/a.yaml already"
    assert "is also served by app cart" in found[f"{REQUESTS_DIR}/c.yaml"]
    assert found[f"{REQUESTS_DIR}/d.yaml"].startswith("is not valid YAML")
    assert found[f"{REQUESTS_DIR}/e.yaml"] == "is not UTF-8 text"


def test_entries_registered_already_are_reported_and_only_the_new_ones_summarized(platform, tmp_path):
    onboard.register(platform, THREE[0], out=lambda line: None)
    commit_all(platform, "shop")
    lines: list[str] = []
    assert onboard.register_file(platform, entries_file(tmp_path, THREE[:2]), out=lines.append) == 0
    assert lines[0].startswith("App 'shop' is already registered") and "nothing changed" in lines[0]
    assert any(line.startswith("Registered app 'cart'") for line in lines)
    assert not any("Registered 2 apps" in line for line in lines)


def test_a_request_for_an_app_registered_as_asked_only_goes_away(platform):
    onboard.register(platform, THREE[0], out=lambda line: None)
    request = entries_file(platform, THREE[0], f"{REQUESTS_DIR}/shop.yaml")
    commit_all(platform, "shop, and a request for it")
    answers = yaml.safe_load((platform / ".copier-answers.yml").read_text())
    assert request_problems(platform, answers) == [(f"{REQUESTS_DIR}/shop.yaml", "shop already registered with these "
                                                    f"settings: delete this request (git rm {REQUESTS_DIR}/shop.yaml)")]
    lines: list[str] = []
    assert onboard.register_file(platform, request, review_branch=True, out=lines.append) == 0
    assert lines[-1].startswith(f"Removed the request {REQUESTS_DIR}/shop.yaml (committed on branch onboard/shop)")
    assert git("show", "--name-status", "--format=%s", "HEAD", cwd=platform).split("\n") == [
        f"Remove the request {REQUESTS_DIR}/shop.yaml: its apps are registered as it asks", "",
        f"D\t{REQUESTS_DIR}/shop.yaml", ""]


def test_a_file_waits_for_the_repositorys_lock_like_one_onboarding(platform, tmp_path):
    """Same lock as onboarding: while another command holds the repository, a file of apps waits,
    then refuses naming the holder, and nothing is written."""
    path = entries_file(tmp_path, THREE)
    before = snapshot(platform)
    with gitrepo.exclusive(platform, "offboarding of app 'old'"):
        with pytest.raises(HookError, match=r"offboarding of app 'old' \(pid \d+.*holds this repository; nothing was changed"):
            onboard.register_file(platform, path, lock_wait=0.3, out=lambda line: None)
    assert snapshot(platform) == before


def test_a_request_mixing_a_registered_app_and_a_new_one_asks_to_register_the_new_one(platform):
    onboard.register(platform, THREE[0], out=lambda line: None)
    entries_file(platform, THREE[:2], f"{REQUESTS_DIR}/both.yaml")
    commit_all(platform, "shop, and a request for shop and cart")
    answers = yaml.safe_load((platform / ".copier-answers.yml").read_text())
    ((rel, message),) = request_problems(platform, answers)
    assert rel == f"{REQUESTS_DIR}/both.yaml"
    assert message.startswith("valid, not registered yet (shop registered with these settings already): ")
    assert f"`opencenter-onboard --platform . --from-file {REQUESTS_DIR}/both.yaml`" in message
    assert "delete this request" not in message


def test_a_hostname_clash_with_a_registered_app_names_the_new_entry(platform, tmp_path):
    """The new entry (a2, sorted before billing) takes a hostname billing holds: the refusal is
    about a2, in the file, whichever name sorts first."""
    billing = {**THREE[2], "hostnames": ["pay.prod.acme.example.com"]}
    onboard.register(platform, billing, out=lambda line: None)
    commit_all(platform, "billing")
    before = snapshot(platform)
    clash = {"name": "a2", "url": "ssh://git@github.com/acme/a2", "hostnames": ["pay.prod.acme.example.com"]}
    path = entries_file(tmp_path, [THREE[1], clash])
    with pytest.raises(HookError) as refused:
        onboard.register_file(platform, path, out=lambda line: None)
    assert str(refused.value).startswith(f"{path}: apps[a2].hostnames: pay.prod.acme.example.com is also served by "
                                         "app billing")
    assert snapshot(platform) == before
