"""One customer repository, several clusters: each cluster its own overlay (bootstrap path),
settings and age key, rendered from the one answers file (top level: the first cluster;
`clusters`: the others). Real Copier, sops and kustomize; the check validates every cluster.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import copier
import pytest
import yaml
from pyrage import x25519

from conftest import ROOT, assert_placeholders, cluster_entry, commit_all, copy_of, isolated, release_history
from hooks import agekeys, apprender, cluster_admin, clusters, offboard, onboard, sops
from hooks import apps as appsmod
from hooks.errors import HookError
from hooks.check import check_repo
from updating import tree
from yamllint_run import yamllint

KEYS = {name: x25519.Identity.generate() for name in ("prod", "staging", "dev")}


def cluster(name: str, **settings) -> dict:
    """A `clusters` entry for one of KEYS' clusters."""
    return cluster_entry(name, str(KEYS[name].to_public()), **settings)


def render(dst: Path, template_snapshot: Path, **data) -> Path:
    copier.run_copy(str(template_snapshot), dst, data={"template": "platform", **data}, defaults=True, unsafe=True,
                    vcs_ref="0.0.1", quiet=True)
    commit_all(dst)
    return dst


@pytest.fixture(scope="module")
def three(template_snapshot, tmp_path_factory) -> Path:
    """prod (first), staging with other services (velero: a placeholder Secret) and a newer Flux, dev: committed."""
    root = tmp_path_factory.mktemp("fleet")
    with isolated(root / "home"):  # outside any test's isolated_env: its own HOME and git identity
        return render(root / "acme-gitops", template_snapshot,
                      sops_age_recipients=str(KEYS["prod"].to_public()),
                      clusters=[cluster("staging", flux_version="2.10.0", platform_services=["gateway-api", "gateway", "velero"]),
                                cluster("dev", gateway_namespace="edge")])


def test_every_cluster_has_its_own_overlay_settings_and_check(three):
    overlays = three / "applications/overlays"
    assert sorted(p.name for p in overlays.iterdir()) == ["dev", "prod", "staging"]
    for name in ("prod", "staging", "dev"):
        sync = yaml.safe_load_all((overlays / name / "flux-system/gotk-sync.yaml").read_text())
        kustomization = next(doc for doc in sync if doc["kind"] == "Kustomization")
        assert kustomization["spec"]["path"] == f"./applications/overlays/{name}"  # its bootstrap path
    assert "v2.10.0" in (overlays / "staging/flux-system/gotk-components.yaml").read_text()
    assert "v2.9.4" in (overlays / "prod/flux-system/gotk-components.yaml").read_text()
    assert not (overlays / "staging/services/cert-manager").exists() and (overlays / "prod/services/cert-manager").is_dir()
    gateway = yaml.safe_load((overlays / "dev/services/gateway/gateway.yaml").read_text())
    assert gateway["metadata"]["namespace"] == "edge" and "*.dev.acme.example.com" in str(gateway)
    assert check_repo(three) == []


def test_each_cluster_encrypts_for_its_own_key_only(three, tmp_path):
    """.sops.yaml picks the key by path: a Secret under staging opens with staging's key, not prod's."""
    repo = tmp_path / "repo"
    shutil.copytree(three, repo)
    secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  token: hunter2\n"
    for name in ("prod", "staging", "dev"):
        rel = f"applications/overlays/{name}/services/sources/s.sops.yaml"
        (repo / rel).write_text(sops.encrypt(repo, rel, secret))
        for other, key in KEYS.items():
            opened = subprocess.run([sops.require_sops(), "decrypt", rel], cwd=repo, capture_output=True, text=True,
                                    env={"SOPS_AGE_KEY": str(key), "PATH": "/usr/bin:/bin"})
            assert (opened.returncode == 0) == (other == name), (name, other, opened.stderr)
    rules = yaml.safe_load((repo / ".sops.yaml").read_text())["creation_rules"]
    assert all(rule["path_regex"].startswith("^applications/overlays/") for rule in rules)  # no catch-all
    # The placeholder task encrypted staging's velero Secret the same way: for staging's key only.
    (placeholder,) = assert_placeholders(three, "staging", "velero", str(KEYS["staging"]))
    assert [name for name, key in KEYS.items() if decrypts(three, placeholder, key)] == ["staging"]


# opencenter-cluster (hooks/cluster_admin.py) ------------------------------------------------------


@pytest.fixture
def single(shared_renders, template_snapshot, tmp_path) -> Path:
    """This test's own copy of a committed one-cluster platform repository (prod), as every existing
    repository is (rendered once: conftest `shared_renders`)."""
    recipient = str(KEYS["prod"].to_public())
    shared = shared_renders.get(("multi-cluster single", recipient),
                                lambda dst: render(dst, template_snapshot, sops_age_recipients=recipient))
    return copy_of(shared, tmp_path / "acme-gitops")


def status(repo: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout


def answers_of(repo: Path) -> dict:
    return yaml.safe_load((repo / ".copier-answers.yml").read_text())


def test_adding_setting_and_removing_a_cluster(single, isolated_env, capfd, tmp_path):
    """One added cluster (its own generated key) serves the whole life cycle: add, add again, remove
    (on a copy), set, and the removals apps block or that leave another cluster first."""
    before = tree(single)
    capfd.readouterr()
    assert cluster_admin.add(single, "staging", {}, out=lambda _: None) == 0
    # The Flux placeholder notice (no flux binary here) names the new cluster's only, not prod's.
    notices = capfd.readouterr().err
    assert "overlays/staging/flux-system/gotk-components.yaml" in notices
    assert "overlays/prod/flux-system" not in notices
    after = tree(single)
    changed = sorted(rel for rel in after if before.get(rel) != after[rel])
    new = [rel for rel in changed if rel.startswith("applications/overlays/staging/")]
    assert new and set(changed) - set(new) == {".copier-answers.yml", ".sops.yaml", "README.md", "renovate.json"}, changed
    key_file = isolated_env / "age" / "acme-staging.agekey"  # outside the repository
    entry = clusters.find(answers_of(single), "staging")
    assert entry["sops_age_recipients"] == agekeys.public_key_of(key_file)
    assert entry["cluster_domain"] == "staging.acme.example.com" and entry["flux_version"] == "2.9.4"
    assert check_repo(single) == []
    assert "applications/overlays/staging/kustomization.yaml" in status(single)  # staged, not committed
    # Twice: refused, nothing changes.
    commit_all(single)
    with pytest.raises(HookError, match="is a cluster of this repository already"):
        cluster_admin.add(single, "staging", {}, out=lambda _: None)
    assert status(single) == ""
    # Removed (from a copy: the cluster goes on below), the cluster's key file stays where it is, and
    # the command says where.
    said = []
    assert cluster_admin.remove(copy_of(single, tmp_path / "removed"), "staging", out=said.append) == 0
    assert key_file.is_file() and any(f"age key file remains: {key_file}" in line for line in said), said

    # set changes that one cluster only.
    before = tree(single)
    assert cluster_admin.set_settings(single, "staging", {"flux_version": "2.10.0"}, out=lambda _: None) == 0
    after = tree(single)
    changed = sorted(rel for rel in after if before.get(rel) != after[rel])
    assert changed == [".copier-answers.yml", "applications/overlays/staging/README.md",
                       "applications/overlays/staging/flux-system/gotk-components.yaml"]
    commit_all(single)
    # An app placed on staging (written as onboarding would) blocks its removal.
    shop = {"name": "shop", "url": "ssh://git@github.com/acme/shop", "branch": "main", "secrets": False,
            "receiver": "", "known_hosts": "", "clusters": ["staging"]}
    apprender.render_apps(single, [shop])
    commit_all(single)
    with pytest.raises(HookError, match="still runs apps shop"):
        cluster_admin.remove(single, "staging", out=lambda _: None)
    assert status(single) == ""
    # Removing the first cluster makes staging first; prod's overlay goes, staging's stays byte-identical.
    staging = {rel: data for rel, data in tree(single).items() if rel.startswith("applications/overlays/staging/")}
    assert cluster_admin.remove(single, "prod", out=lambda _: None) == 0
    answers = answers_of(single)
    assert answers["cluster_name"] == "staging" and answers["clusters"] == [] and answers["flux_version"] == "2.10.0"
    assert not (single / "applications/overlays/prod").exists()
    assert {rel: data for rel, data in tree(single).items() if rel.startswith("applications/overlays/")} == staging


# Each refused command writes nothing, so all run on one copy, each judged on its own.
BAD_COMMANDS = [
    ("set", ("dev", {"flux_version": "2.10.0"}), "'dev' is not a cluster"),
    ("set", ("prod", {"cluster_name": "live"}), "bootstrap path"),
    ("set", ("prod", {"colour": "blue"}), "cannot set"),
    ("set", ("prod", {"flux_version": "2.6.0"}), "2.7.0 or newer"),
    ("add", ("prod", {}), "already"),
    ("add", ("Staging", {}), "DNS-1123"),
    ("add", ("staging", {"sops_age_recipients": "age1nope"}), "age"),
    # Refused by the template's validator: the message names the field and the reason, on one line.
    ("add", ("qa", {"gateway_namespace": "kube-system"}), "clusters[qa].gateway_namespace must be the Gateway's own"),
    ("add", ("qa", {"flux_version": "2.6.0"}), "clusters[qa].flux_version must be 2.7.0 or newer"),
    ("add", ("qa", {"cluster_name": "x"}), "cannot set ['cluster_name']"),
    ("add", ("qa", {"colour": "blue"}), "cannot set ['colour']"),
    ("remove", ("prod",), "only cluster"),
]


def test_bad_cluster_commands_are_refused_and_write_nothing(single, isolated_env):
    before = tree(single)
    for command, args, message in BAD_COMMANDS:
        run = {"set": cluster_admin.set_settings, "add": cluster_admin.add, "remove": cluster_admin.remove}[command]
        with pytest.raises((HookError, ValueError)) as refused:
            run(single, *args, out=lambda _: None)
        assert message in str(refused.value), (command, args)
        assert tree(single) == before and status(single) == "", (command, args)
        assert not (isolated_env / "age").exists() or not list((isolated_env / "age").iterdir()), (command, args)


def test_an_answer_given_as_option_and_as_key_value_must_agree(single, isolated_env):
    """`add --domain X cluster_domain=Y` (or --age-recipients and sops_age_recipients=) is refused
    before anything is written: neither value silently wins. The same value both ways is one answer."""
    before, staging = tree(single), str(KEYS["staging"].to_public())
    # KEY=VALUE after the option, as the usage shows it, and before.
    for option, value, setting, args in (
            ("--domain", "qa.acme.example.com", "test.acme.example.com",
             ["--domain", "qa.acme.example.com", "cluster_domain=test.acme.example.com"]),
            ("--age-recipients", staging, str(KEYS["prod"].to_public()),
             [f"sops_age_recipients={KEYS['prod'].to_public()}", "--age-recipients", staging])):
        with pytest.raises(HookError) as refused:
            cluster_admin.main(["add", "--platform", str(single), "qa", *args])
        assert refused.value.field == option and value in refused.value.rule and setting in refused.value.rule
        assert tree(single) == before and status(single) == ""
    assert not (isolated_env / "age").exists() or not list((isolated_env / "age").iterdir())  # no key made
    assert cluster_admin.main(["add", "--platform", str(single), "qa", "--domain", "qa.acme.example.com",
                               "cluster_domain=qa.acme.example.com", "--age-recipients", staging,
                               f"sops_age_recipients={staging}"]) == 0
    entry = clusters.find(answers_of(single), "qa")
    assert (entry["cluster_domain"], entry["sops_age_recipients"]) == ("qa.acme.example.com", staging)


def test_changed_recipients_say_how_to_re_encrypt_and_a_removed_one_how_to_retire_it(single):
    prod, staging = str(KEYS["prod"].to_public()), str(KEYS["staging"].to_public())
    said: list[str] = []
    assert cluster_admin.set_settings(single, "prod", {"sops_age_recipients": staging}, out=said.append) == 0
    steps = [line for line in said if "sops " in line]
    assert len(steps) == 2 and steps[0].endswith("sops updatekeys -y FILE") and steps[1].endswith("sops rotate -i FILE")
    # Only added: the data key stays with the same holders, nothing to retire.
    added = cluster_admin.recipient_steps("prod", prod, f"{prod},{staging}")
    assert len(added) == 1 and "updatekeys" in added[0]


def test_a_refused_add_keeps_a_key_file_it_did_not_make(single, isolated_env):
    key_file = isolated_env / "age" / "acme-qa.agekey"
    agekeys.ensure_key_file(key_file)  # left by an earlier cluster of that name
    before = key_file.read_bytes()
    with pytest.raises(HookError) as refused:
        cluster_admin.add(single, "qa", {"gateway_namespace": "flux-system"}, out=lambda _: None)
    assert "\n" not in str(refused.value) and "is a Kubernetes or Flux namespace" in str(refused.value)
    assert key_file.read_bytes() == before and status(single) == ""


# Apps placed on clusters (opencenter-onboard --cluster, opencenter-offboard --cluster) -------------

SHOP = {"name": "shop", "url": "ssh://git@github.com/acme/shop", "secrets": True, "receiver": "github",
        "hostnames": ["www.prod.acme.example.com", "www.staging.acme.example.com"]}
BILLING = {"name": "billing", "url": "ssh://git@github.com/acme/billing"}


def decrypts(repo: Path, rel: str, key: x25519.Identity) -> bool:
    return subprocess.run([sops.require_sops(), "decrypt", rel], cwd=repo, capture_output=True,
                          env={"SOPS_AGE_KEY": str(key), "PATH": "/usr/bin:/bin"}).returncode == 0


def overlay_files(repo: Path, cluster: str) -> dict[str, bytes]:
    return {rel: data for rel, data in tree(repo).items() if rel.startswith(f"applications/overlays/{cluster}/")}


@pytest.fixture(scope="module")
def placed_once(three, tmp_path_factory) -> Path:
    """The three-cluster repository with shop on prod and staging, billing on staging: committed
    (read only: tests take a copy with `placed`)."""
    root = tmp_path_factory.mktemp("placed")
    repo = copy_of(three, root / "repo")
    with isolated(root / "home"):
        assert onboard.register(repo, {**SHOP, "clusters": ["prod", "staging"]}, out=lambda _: None) == 0
        commit_all(repo)
        assert onboard.register(repo, {**BILLING, "clusters": ["staging"]}, out=lambda _: None) == 0
        commit_all(repo)
    return repo


@pytest.fixture
def placed(placed_once, tmp_path) -> Path:
    """This test's own copy of placed_once."""
    return copy_of(placed_once, tmp_path / "repo")


def test_apps_render_on_their_clusters_with_keys_for_each_cluster_only(placed):
    overlays = placed / "applications/overlays"
    for cluster, apps in {"prod": ["shop"], "staging": ["billing", "shop"], "dev": []}.items():
        rendered = sorted(p.stem for p in (overlays / cluster / "services/sources").glob("*.yaml")
                          if p.stem in ("shop", "billing"))
        assert rendered == apps, cluster
        for app in apps:
            for kind in ("deploy-key", "sops-age"):
                rel = f"applications/overlays/{cluster}/services/sources/{app}-{kind}.sops.yaml"
                assert [name for name, key in KEYS.items() if decrypts(placed, rel, key)] == [cluster], rel
    # Per-cluster hostnames: each tenant is allowed the names under its own cluster's domain.
    for cluster in ("prod", "staging"):
        namespace = next(yaml.safe_load_all((overlays / cluster / "services/tenants/shop/tenant.yaml").read_text()))
        assert namespace["metadata"]["annotations"]["opencenter/hostnames"] == f"www.{cluster}.acme.example.com"
    # One deploy key and one app key per cluster: different keys.
    deploy = [yaml.safe_load((overlays / c / "services/sources/shop-deploy-key.sops.yaml").read_text())
              ["metadata"]["annotations"][onboard.PUBLIC_KEY_ANNOTATION] for c in ("prod", "staging")]
    assert deploy[0] != deploy[1]
    assert check_repo(placed) == []


@pytest.mark.parametrize("name", ["prod", "staging"])  # the first cluster (top-level answers) and another
def test_changing_one_cluster_renders_only_its_overlay_and_equals_a_full_update(placed, tmp_path, monkeypatch, name):
    """opencenter-cluster leaves the other clusters' overlays out of Copier's renders (so changing one
    cluster of three costs what changing a one-cluster repository does); the result is exactly that
    of a full `copier update` with the same answers, apps and their encrypted keys included."""
    full = copy_of(placed, tmp_path / "full")
    settings = {"flux_version": "2.10.1", "gitops_base_tag": "2026.04"}
    excluded = []
    run_update = copier.run_update
    monkeypatch.setattr(copier, "run_update", lambda *args, **kwargs: (excluded.append(kwargs.get("exclude")),
                                                                       run_update(*args, **kwargs))[1])
    assert cluster_admin.set_settings(placed, name, settings, out=lambda _: None) == 0
    assert excluded == [[f"/applications/overlays/{other}/" for other in ("prod", "staging", "dev") if other != name]]
    before = tree(full)
    run_update(full, data=clusters.plan_set(answers_of(full), name, settings), defaults=True, overwrite=True,
               unsafe=True, vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    after = tree(full)
    assert tree(placed) == after
    assert any(rel.startswith(f"applications/overlays/{name}/") for rel in status(placed).split())
    # A Flux bump on one cluster leaves the other clusters (their apps included) byte-identical.
    changed = sorted(rel for rel in after if before.get(rel) != after[rel])
    assert changed and all(rel.startswith(f"applications/overlays/{name}/") for rel in changed
                           if rel != ".copier-answers.yml"), changed
    assert ".copier-answers.yml" in changed
    assert not [rel for rel in changed if rel.endswith(".sops.yaml")]  # the update task keeps every placeholder
    if name == "staging":  # velero's placeholder Secret: staging's only, kept as it was
        assert "applications/overlays/staging/services/velero/cloud-credentials.sops.yaml" in before
        assert check_repo(full) == []  # placed is byte-identical


def test_the_placement_commands_a_new_cluster_prints_add_it_and_keep_the_others(placed):
    """`opencenter-cluster add` prints, per app, the --update that puts it on the new cluster too:
    its clusters of now, then the new one (an --update with only the new one would move it, and Flux
    on the others would prune it). Run as printed, shop stays on prod and staging, whose files do not
    change, and comes to qa; billing (on staging alone) comes to qa and stays on staging."""
    said: list[str] = []
    assert cluster_admin.add(placed, "qa", {"sops_age_recipients": str(x25519.Identity.generate().to_public())},
                             out=said.append) == 0
    commit_all(placed, "cluster qa")
    printed = {shlex.split(line)[4]: line.strip() for line in said if line.strip().startswith("opencenter-onboard ")}
    assert printed == {
        "billing": f"opencenter-onboard --platform {placed} --name billing --update --cluster staging --cluster qa",
        "shop": f"opencenter-onboard --platform {placed} --name shop --update --cluster prod --cluster staging "
                "--cluster qa"}, said
    before = {cluster: overlay_files(placed, cluster) for cluster in ("prod", "staging")}
    argv = shlex.split(printed["shop"])
    assert argv[0] == "opencenter-onboard" and onboard.main(argv[1:]) == 0
    assert {cluster: overlay_files(placed, cluster) for cluster in ("prod", "staging")} == before
    for rel in appsmod.rendered_files("shop", "qa"):
        assert (placed / rel).is_file(), rel
    commit_all(placed, "shop on qa too")
    argv = shlex.split(printed["billing"])
    assert argv[0] == "opencenter-onboard" and onboard.main(argv[1:]) == 0
    # billing ran on one cluster: staging's Kustomization now applies its overlay, nothing else there changes.
    staging = overlay_files(placed, "staging")
    assert [rel for rel in staging if staging[rel] != before["staging"].get(rel)] == [
        "applications/overlays/staging/services/fluxcd/billing.yaml"]
    assert {app["name"]: app["clusters"] for app in answers_of(placed)["apps"]} == {
        "billing": ["staging", "qa"], "shop": ["prod", "staging", "qa"]}
    assert check_repo(placed) == []


def test_a_new_cluster_names_a_placement_command_for_the_first_apps_only():
    answers = {"cluster_name": "prod", "cluster_domain": "prod.acme.example.com",
               "apps": [{"name": f"app{i:02}"} for i in range(12)]}
    steps = cluster_admin.placement_steps(Path("acme-gitops"), answers, "qa")
    commands = [line.strip() for line in steps if line.strip().startswith("opencenter-onboard ")]
    assert len(commands) == cluster_admin.PLACEMENT_COMMANDS
    assert commands[0] == "opencenter-onboard --platform acme-gitops --name app00 --update --cluster prod --cluster qa"
    assert steps[-1].strip() == ("… and 2 more apps, the same way: their clusters are in opencenter-apps list "
                                 "--platform acme-gitops")
    assert cluster_admin.placement_steps(Path("acme-gitops"), {**answers, "apps": []}, "qa") == [
        "  4. Onboard apps on it: opencenter-onboard --platform acme-gitops --name APP --url URL --cluster qa …"]
def test_leaving_one_cluster_touches_only_that_cluster_and_the_app_repositorys_key_file(placed, tmp_path, capsys):
    """Off one cluster (`opencenter-offboard --cluster`), only that cluster's files change.
    docs/deploy-key.pub lists a deploy key per cluster: `opencenter-offboard --cluster` rewrites
    it with --app-repo; without, its summary says it is stale and gives the command, which, run as
    printed (the console script, the checkout in place of its placeholder), rewrites it."""
    app = tmp_path / "shop"
    app.mkdir()
    assert onboard.register(placed, {"name": "shop"}, update=True, app_repo=app, out=lambda _: None) == 0
    assert status(placed) == ""  # the platform's files are as they were: only the app's key file is written
    both = key_file_keys(app)
    assert list(both) == ["prod", "staging"]
    other = copy_of(placed, tmp_path / "other")  # the same repository, for the run with --app-repo

    prod, dev = overlay_files(placed, "prod"), overlay_files(placed, "dev")
    said: list[str] = []
    assert offboard.offboard(placed, "shop", cluster="staging", delete_namespace=True, out=said.append) == 0
    staging = placed / "applications/overlays/staging/services"
    assert not list(staging.glob("sources/shop*")) and not (staging / "tenants/shop").exists()
    assert (staging / "sources/billing.yaml").is_file()
    # Prod is untouched: Flux there keeps applying shop's deploy/overlays/prod (the root would build
    # the app repository's FIRST environment, staging's), and the answers say why: overlays.
    assert overlay_files(placed, "prod") == prod
    shop = next(app for app in answers_of(placed)["apps"] if app["name"] == "shop")
    assert shop["clusters"] == ["prod"] and shop["overlays"] is True
    assert any("needs no change" in line for line in said), said
    assert not [line for line in said if "environments=" in line or "updatekeys" in line], said
    # The summary says what leaves staging and what to clean up there, not that Flux creates the app.
    assert "  removed (rendered): applications/overlays/staging/services/fluxcd/shop.yaml" in said, said
    assert any("Flux on cluster staging deletes Kustomization flux-system/shop" in line for line in said), said
    assert not [line for line in said if "creates namespace" in line], said
    assert any("delete rolebinding tenant-shop" in line for line in said), said
    assert any("deploy key flux-acme-staging-shop" in line for line in said), said
    assert any("on cluster staging: kubectl delete namespace shop" in line for line in said), said
    assert overlay_files(placed, "dev") == dev
    assert clusters.apps_on(answers_of(placed), "staging") == [{**answers_of(placed)["apps"][0]}]  # billing only
    assert check_repo(placed) == []

    # The key file is left as it was, and the summary gives the command that rewrites it.
    assert key_file_keys(app) == both
    [stale] = [line for line in said if onboard.APP_PUBLIC_KEY_FILE in line]
    assert "is stale: it lists the deploy keys from before this change (clusters prod, staging)" in stale, said
    command = said[said.index(stale) + 1].strip()
    assert command == f"opencenter-onboard --platform {placed} --name shop --update --app-repo <the checkout>", said
    done = subprocess.run(shlex.split(command.replace("<the checkout>", shlex.quote(str(app)))), cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert key_file_keys(app) == {"prod": both["prod"]}
    assert "# Flux on cluster 'staging'" not in (app / onboard.APP_PUBLIC_KEY_FILE).read_text()

    commit_all(placed)
    # The answers are the source of truth: re-rendering them changes nothing.
    onboard.render_apps(placed, answers_of(placed)["apps"])
    assert status(placed) == ""
    # Then from every cluster: billing goes, and with it staging's last app.
    assert offboard.offboard(placed, "billing", out=lambda _: None) == 0
    assert [app["name"] for app in answers_of(placed)["apps"]] == ["shop"]

    # With --app-repo (the command line's option, parsed by the entry point the console script
    # runs), the offboarding rewrites it and says nothing stale.
    (app / onboard.APP_PUBLIC_KEY_FILE).write_text("".join(f"{key}\n" for key in both.values()))
    capsys.readouterr()
    assert offboard.main(["--platform", str(other), "--name", "shop", "--cluster", "staging",
                          "--app-repo", str(app)]) == 0
    offboarded = capsys.readouterr().out
    assert key_file_keys(app) == {"prod": both["prod"]} and "is stale" not in offboarded
    assert f"Wrote {app / onboard.APP_PUBLIC_KEY_FILE}" in offboarded


# Refusals write nothing, so each test runs all its cases on one copy of placed.


def test_offboarding_with_an_app_repo_it_cannot_use_is_refused_and_writes_nothing(placed, tmp_path):
    """--app-repo must be a folder outside the platform repository, and only goes with leaving one
    of several clusters: off every cluster no deploy key is left to list."""
    before = tree(placed)
    for where in ("missing", "platform", "whole-app"):
        app = {"missing": tmp_path / "nowhere", "platform": placed, "whole-app": tmp_path}[where]
        name, cluster = ("billing", "staging") if where == "whole-app" else ("shop", "staging")
        with pytest.raises(HookError) as refused:
            offboard.offboard(placed, name, cluster=cluster, app_repo=app, out=lambda _: None)
        assert refused.value.field == "app repository" and "\n" not in str(refused.value), where
        if where == "whole-app":
            assert "--app-repo only goes with --cluster, when app 'billing' stays on other clusters" in str(refused.value)
        assert tree(placed) == before and status(placed) == "" and not (tmp_path / "nowhere").exists(), where
        assert not (tmp_path / onboard.APP_PUBLIC_KEY_FILE).exists(), where


BAD_PLACEMENTS = [
    (BILLING, "say which the app runs on with --cluster"),
    ({**BILLING, "clusters": ["qa"]}, "apps[billing].clusters"),
    ({**BILLING, "clusters": []}, "say which the app runs on"),
    ({**BILLING, "clusters": ["dev"], "hostnames": ["pay.prod.acme.example.com"]}, "not under dev.acme.example.com"),
]


def test_bad_placements_are_refused_and_write_nothing(placed):
    before = tree(placed)
    for entry, message in BAD_PLACEMENTS:
        with pytest.raises(HookError) as refused:
            onboard.register(placed, {**entry, "name": "pay", "url": "ssh://git@github.com/acme/pay"}, out=lambda _: None)
        assert message.replace("billing", "pay") in str(refused.value)
        assert tree(placed) == before and status(placed) == "", message
    # dev's Gateway lives in namespace `edge`: no app may take that name, on any cluster.
    with pytest.raises(HookError, match="reserved"):
        onboard.register(placed, {"name": "edge", "url": "ssh://git@github.com/acme/edge", "clusters": ["prod"]},
                         out=lambda _: None)
    assert tree(placed) == before and status(placed) == ""


# The check on several clusters ---------------------------------------------------------------------


def rules_of(findings) -> set[tuple[str, str]]:
    return {(finding.rule, finding.file) for finding in findings}


# One check of one crossed copy: each crossing is reported on its own (the findings of one do not
# hide or alter another's), and the check of a three-cluster repository costs seconds.
CROSSINGS = ["../../../staging/services/sources/billing.yaml",
             "../../../staging/services/sources/billing-deploy-key.sops.yaml"]


def test_the_check_keeps_each_cluster_to_its_own_overlay_and_keys(placed, tmp_path):
    """Also: prod's sources listing a file of staging's overlay (CROSSINGS) would apply it on prod
    (a deploy key encrypted for staging's key): refused, whatever the file's own location says."""
    repo = copy_of(placed, tmp_path / "crossed")
    fluxcd = repo / "applications/overlays/dev/services/fluxcd"
    sources = (fluxcd / "sources.yaml").read_text()
    # dev's `sources` Kustomization applying prod's folder, and depending on a Kustomization only prod has.
    crossed = sources.replace("./applications/overlays/dev/services/sources", "./applications/overlays/prod/services/sources")
    assert crossed != sources
    (fluxcd / "sources.yaml").write_text(crossed.replace("spec:\n", "spec:\n  dependsOn:\n    - name: shop\n", 1))
    # A Secret of staging encrypted for prod's key.
    rel = "applications/overlays/staging/services/sources/stray.sops.yaml"
    clear = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: stray\n  namespace: flux-system\nstringData:\n  a: b\n"
    encrypted = subprocess.run([sops.require_sops(), "encrypt", "--age", str(KEYS["prod"].to_public()),
                                "--encrypted-regex", "^(data|stringData)$", "--input-type", "yaml", "--output-type",
                                "yaml", "/dev/stdin"], input=clear, capture_output=True, text=True, check=True).stdout
    (repo / rel).write_text(encrypted)
    # prod's sources listing files of staging's overlay.
    listing = "applications/overlays/prod/services/sources/kustomization.yaml"
    kustomization = yaml.safe_load((repo / listing).read_text())
    kustomization["resources"] += CROSSINGS
    (repo / listing).write_text(yaml.safe_dump(kustomization, sort_keys=False))
    findings = check_repo(repo)
    found = rules_of(findings)
    dev = "applications/overlays/dev/services/fluxcd/sources.yaml"
    assert {("cluster-path", dev), ("flux-depends-on", dev), ("cluster-recipients", rel)} <= found, found
    # prod's key opens it: updatekeys alone would leave prod the data key, so a new one is asked for.
    (stray,) = [finding.message for finding in findings if finding.rule == "cluster-recipients"]
    assert f"run `sops updatekeys -y {rel}`, then `sops rotate -i {rel}` from the repository root" in stray, stray
    crossings = [f for f in findings if f.rule == "cluster-input"]
    assert [(f.file, f.message) for f in crossings] == [(listing, (
        f"resources '{entry}' reaches into cluster staging's overlay applications/overlays/staging: "
        "a cluster builds from its own overlay only")) for entry in CROSSINGS], crossings


def recipient_steps(said: list[str]) -> list[str]:
    """The summary's step asking the app team to make the app's age keys recipients and re-encrypt."""
    return [line for line in said if "make it a recipient and re-encrypt" in line]


def key_file_keys(app: Path) -> dict[str, str]:
    """docs/deploy-key.pub of an app repository: each key by the cluster its comment names."""
    keys = [line for line in (app / onboard.APP_PUBLIC_KEY_FILE).read_text().splitlines() if line.startswith("ssh-")]
    return {line.rsplit("-", 2)[-2]: line for line in keys}  # comment flux-acme-<cluster>-shop


def test_updates_ask_to_re_encrypt_when_the_apps_recipients_change_and_the_key_file_follows_its_clusters(
        three, tmp_path, capsys):
    """An update asks the app team to re-encrypt only when the app's recipients change.
    docs/deploy-key.pub lists every cluster's deploy key: rewritten by an update with --app-repo;
    without it the summary says the file is stale and gives the command that rewrites it.
    (One registration's updates serve both.)"""
    repo, app = copy_of(three, tmp_path / "repo"), tmp_path / "shop"
    app.mkdir()
    assert onboard.register(repo, {**SHOP, "hostnames": [], "clusters": ["staging"]}, app_repo=app,
                            out=lambda _: None) == 0
    commit_all(repo)
    assert list(key_file_keys(app)) == ["staging"]
    first = (app / onboard.APP_PUBLIC_KEY_FILE).read_bytes()

    # An update that keeps the deploy keys and the app's keys says nothing about the file or re-encrypting.
    said: list[str] = []
    assert onboard.register(repo, {"name": "shop", "branch": "dev"}, update=True, out=said.append) == 0
    assert not [line for line in said if onboard.APP_PUBLIC_KEY_FILE in line], said
    assert recipient_steps(said) == [] and not [line for line in said if "age key" in line], said
    commit_all(repo)
    # Secrets off then on again: turning them on asks the team to encrypt for the app's key.
    for secrets, steps in ((False, 0), (True, 1)):
        said = []
        assert onboard.register(repo, {"name": "shop", "secrets": secrets}, update=True, out=said.append) == 0
        assert len(recipient_steps(said)) == steps, said
        commit_all(repo)

    # A second cluster without --app-repo: a recipient per cluster; the file is left as it was, and the
    # summary says so.
    said = []
    assert onboard.register(repo, {"name": "shop", "clusters": ["staging", "prod"]}, update=True, out=said.append) == 0
    assert len(recipient_steps(said)) == 1, said
    assert any(line.strip().startswith("staging=age1") and ",prod=age1" in line for line in said), said
    assert (app / onboard.APP_PUBLIC_KEY_FILE).read_bytes() == first
    [stale] = [line for line in said if onboard.APP_PUBLIC_KEY_FILE in line]
    assert "is stale: it lists the deploy key from before this change (cluster staging)" in stale, said
    given = said[said.index(stale) + 1].strip()
    assert given.startswith("opencenter-onboard ") and given.endswith(" --app-repo <the checkout>"), given
    command = given.replace("<the checkout>", str(app)).split()[1:]
    # The command it gives, run before the change is committed (the steps' order), rewrites the file.
    capsys.readouterr()
    assert onboard.main(command) == 0
    keys = key_file_keys(app)
    assert list(keys) == ["staging", "prod"] and keys["staging"] in first.decode(), keys
    assert "# Flux on cluster 'prod' pulls this repository" in (app / onboard.APP_PUBLIC_KEY_FILE).read_text()
    assert "Wrote" in capsys.readouterr().out
    # Again: nothing to rewrite, nothing said about it.
    both = (app / onboard.APP_PUBLIC_KEY_FILE).read_bytes()
    assert onboard.main(command) == 0
    assert (app / onboard.APP_PUBLIC_KEY_FILE).read_bytes() == both and "Wrote" not in capsys.readouterr().out
    commit_all(repo)

    # Leaving a cluster with --app-repo rewrites it at once: no stale-file step.
    said = []
    assert onboard.register(repo, {"name": "shop", "clusters": ["prod"]}, update=True, app_repo=app,
                            out=said.append) == 0
    assert key_file_keys(app) == {"prod": keys["prod"]}
    assert not [line for line in said if "is stale" in line], said
    assert any(line.endswith(f"Remove the deploy key flux-acme-staging-shop from the deploy keys of {SHOP['url']}.")
               for line in said), said


def test_renovate_regexes_find_every_clusters_versions(three):
    """Renovate proposes Flux and gitops-base releases cluster by cluster, each PR moving that
    cluster's answer with its files."""
    config = json.loads((three / "renovate.json").read_text())
    text = (three / ".copier-answers.yml").read_text()
    found = {}
    for manager in config["customManagers"]:
        pattern = re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", manager["matchStrings"][0]))
        found[manager["depNameTemplate"]] = sorted(m.group("currentValue") for m in pattern.finditer(text))
    assert found == {"Flux on prod": ["2.9.4"], "Flux on staging": ["2.10.0"], "Flux on dev": ["2.9.4"],
                     **{f"openCenter-gitops-base on {c}": ["2026.01"] for c in ("prod", "staging", "dev")}}
    # Each cluster's Flux release is a PR of its own: its folder's components and its answer.
    groups = {rule["groupName"] for rule in config["packageRules"] if "groupName" in rule}
    assert {"Flux on prod", "Flux on staging", "Flux on dev"} <= groups


# Existing repositories: `copier update` from the last single-cluster release -------------------------

# The templates' last commit before several clusters, from this repository's own history.
SINGLE_CLUSTER_RELEASE = "aa0331a705de13dafd9fc00f2a6a07f1beb597cb"


@pytest.fixture(scope="module")
def releases(template_snapshot, tmp_path_factory) -> Path:
    """A template repository with the single-cluster release tagged 1.0.0 and this tree 2.0.0."""
    return release_history(SINGLE_CLUSTER_RELEASE, template_snapshot, tmp_path_factory.mktemp("releases") / "templates")


def test_a_single_cluster_repository_updates_without_renaming_or_re_encrypting(releases, tmp_path):
    repo = tmp_path / "acme-gitops"
    copier.run_copy(str(releases), repo, data={"template": "platform", "sops_age_recipients": str(KEYS["prod"].to_public())},
                    defaults=True, unsafe=True, vcs_ref="1.0.0", quiet=True)
    commit_all(repo)
    assert onboard.register(repo, {**SHOP, "hostnames": ["www.prod.acme.example.com"]}, out=lambda _: None) == 0
    commit_all(repo)
    before = tree(repo)
    flux_before = flux_objects(repo)
    copier.run_update(repo, defaults=True, overwrite=True, unsafe=True, vcs_ref="2.0.0", quiet=True)
    after = tree(repo)
    # Nothing renamed, so nothing pruned; since then the catalog added kyverno's default ruleset
    # (Audit policies) and the tenancy guardrails the volumes, secrets and config-labels policies
    # and a quota on cross-namespace affinity.
    assert flux_objects(repo) - flux_before == {("Kustomization", "flux-system", "kyverno-default-ruleset"),
                                                ("ValidatingAdmissionPolicy", "", "opencenter-tenant-config-labels"),
                                                ("ValidatingAdmissionPolicyBinding", "", "opencenter-tenant-config-labels"),
                                                ("ValidatingAdmissionPolicy", "", "opencenter-tenant-volumes"),
                                                ("ValidatingAdmissionPolicyBinding", "", "opencenter-tenant-volumes"),
                                                ("ValidatingAdmissionPolicy", "", "opencenter-tenant-secrets"),
                                                ("ValidatingAdmissionPolicyBinding", "", "opencenter-tenant-secrets"),
                                                ("ResourceQuota", "shop", "tenant-no-cross-namespace-affinity")}
    assert flux_before <= flux_objects(repo)
    # the registered app's quota gains the keys added since (ReplicaSets, ControllerRevisions)
    tenant = yaml.safe_load_all((repo / "applications/overlays/prod/services/tenants/shop/tenant.yaml").read_text())
    hard = next(d for d in tenant if d["metadata"]["name"] == "tenant-quota")["spec"]["hard"]
    assert (hard["count/replicasets.apps"], hard["count/controllerrevisions.apps"]) == ("240", "120")
    encrypted = [rel for rel in before if rel.endswith(".sops.yaml") and rel != ".sops.yaml"]
    assert encrypted and {rel: after.get(rel) for rel in encrypted} == {rel: before[rel] for rel in encrypted}
    sync = (repo / "applications/overlays/prod/flux-system/gotk-sync.yaml").read_bytes()
    assert sync == before["applications/overlays/prod/flux-system/gotk-sync.yaml"]  # bootstrap path unchanged
    assert answers_of(repo)["clusters"] == [] and answers_of(repo)["_commit"] == "2.0.0"
    assert check_repo(repo) == []
    # The answers file was written with 4-space lists of mappings (`-   branch: main`), which the
    # repository's own yamllint refuses: the update rewrote it once, and a second update changes nothing.
    assert "\n-   " in before[".copier-answers.yml"].decode() and "\n-   " not in after[".copier-answers.yml"].decode()
    lint_status, lint_output = yamllint(repo, "-c", ".yamllint.yaml", ".copier-answers.yml")
    assert lint_status == 0, lint_output
    commit_all(repo)
    copier.run_update(repo, defaults=True, overwrite=True, unsafe=True, vcs_ref="2.0.0", quiet=True)
    assert tree(repo) == after
    # And the repository now takes a second cluster.
    assert cluster_admin.add(repo, "staging", {"sops_age_recipients": str(KEYS["staging"].to_public())},
                             out=lambda _: None) == 0
    assert check_repo(repo) == []


def flux_objects(repo: Path) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every object in the repository's YAML files."""
    found = set()
    for path in repo.rglob("*.yaml"):
        if ".git" in path.parts:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "kind" in doc and "metadata" in doc:
                found.add((doc["kind"], str(doc["metadata"].get("namespace", "")), str(doc["metadata"].get("name"))))
    return found
