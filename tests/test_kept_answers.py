"""Copier replaces a recorded answer that fails its validator with the default (`apps: []`) and
says nothing: a re-render whose other answers clash with a registered app would have Flux prune
every tenant. The commands refuse such answers before rendering, and a plain `copier update`
fails when the registered apps or clusters are gone (hooks/kept_answers.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import copier
import pytest
import yaml
from pyrage import x25519

from conftest import ROOT, commit_all, copy_of, isolated, release_history
from hooks import app_admin, cluster_admin, gitrepo, kept_answers, onboard
from hooks.answers import ANSWERS_FILE, load_answers
from hooks.errors import HookError
from updating import tree

PROD = x25519.Identity.generate()
SHOP = {"name": "shop", "url": "ssh://git@github.com/acme/shop", "hostnames": ["www.prod.acme.example.com"]}


@pytest.fixture(scope="module")
def with_shop_once(template_snapshot, tmp_path_factory) -> Path:
    """A committed one-cluster platform repository with app shop (read only: tests copy it)."""
    root = tmp_path_factory.mktemp("kept")
    repo = root / "acme-gitops"
    with isolated(root / "home"):
        copier.run_copy(str(template_snapshot), repo, data={"template": "platform", "sops_age_recipients": str(PROD.to_public())},
                        defaults=True, unsafe=True, vcs_ref="0.0.1", quiet=True)
        commit_all(repo)
        assert onboard.register(repo, SHOP, out=lambda _: None) == 0
        commit_all(repo)
    return repo


@pytest.fixture
def with_shop(with_shop_once, tmp_path) -> Path:
    return copy_of(with_shop_once, tmp_path / "acme-gitops")


def status(repo: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout


@pytest.mark.parametrize(("settings", "message"), [
    ({"gateway_namespace": "shop"}, "apps[shop].name: 'shop' is reserved"),
    ({"cluster_domain": "prod2.acme.example.com"}, "apps[shop].hostnames: www.prod.acme.example.com"),
])
def test_a_cluster_change_that_would_invalidate_an_app_is_refused_before_rendering(with_shop, settings, message):
    before = tree(with_shop)
    with pytest.raises(HookError) as refused:
        cluster_admin.set_settings(with_shop, "prod", settings, out=lambda _: None)
    assert "would make a registered app invalid" in str(refused.value) and message in str(refused.value)
    assert tree(with_shop) == before and status(with_shop) == ""


def test_a_cluster_key_rotation_that_would_drop_the_apps_is_refused_with_nothing_written(with_shop, isolated_env):
    """Answers edited by hand so that an app is invalid (a Gateway namespace named like app shop)
    are refused before the rotation makes anything, naming the app: every command validates the
    recorded answers first (onboard.read_platform), so no next age key is made either."""
    answers = with_shop / ".copier-answers.yml"
    answers.write_text(answers.read_text().replace("gateway_namespace: gateway-system", "gateway_namespace: shop"))
    commit_all(with_shop)
    before, keys = tree(with_shop), sorted(isolated_env.rglob("*.agekey"))
    with pytest.raises(HookError) as refused:
        app_admin.rotate_cluster_key(with_shop, "prod", finish=False, out=lambda _: None)
    assert str(refused.value).startswith(f"{answers}: apps[shop].name: 'shop' is reserved"), refused.value
    assert tree(with_shop) == before and status(with_shop) == ""
    assert sorted(isolated_env.rglob("*.agekey")) == keys and not app_admin.next_key_file("acme", "prod").exists()


def test_a_plain_update_that_drops_the_apps_fails_and_says_how_to_recover(with_shop, capfd):
    with pytest.raises(Exception):  # Copier's task error: the update stops at the task
        copier.run_update(with_shop, data={"gateway_namespace": "shop"}, defaults=True, overwrite=True, unsafe=True,
                          vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    said = capfd.readouterr().err
    assert "would drop the recorded apps (shop)" in said and "apps[shop].name" in said
    assert "git reset --hard && git clean -fd" in said
    subprocess.run(["git", "reset", "-q", "--hard"], cwd=with_shop, check=True)
    subprocess.run(["git", "clean", "-qfd"], cwd=with_shop, check=True)
    assert status(with_shop) == "" and (with_shop / "applications/overlays/prod/services/fluxcd/shop.yaml").is_file()


def test_a_plain_update_that_drops_a_cluster_names_it(with_shop, capfd):
    """A first cluster renamed like another one: Copier replaces the whole `clusters` answer, now
    refused (names are unique), with the default, and the other cluster is gone."""
    cluster_admin.add(with_shop, "staging", {"sops_age_recipients": str(PROD.to_public())}, out=lambda _: None)
    commit_all(with_shop)
    with pytest.raises(Exception):  # Copier's task error: the update stops at the task
        copier.run_update(with_shop, data={"cluster_name": "staging"}, defaults=True, overwrite=True, unsafe=True,
                          vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    said = capfd.readouterr().err
    assert "would drop the recorded clusters (prod)" in said
    assert "clusters[staging].cluster_name: 'staging' is a cluster already" in said


def test_dropped_names_what_each_answer_lost_exactly_for_a_plan_and_as_a_subset_for_an_update():
    one = {"cluster_name": "prod", "apps": [{"name": "shop"}]}
    two = {**one, "apps": [{"name": "shop"}, {"name": "cart"}], "clusters": [{"cluster_name": "staging"}]}
    assert kept_answers.dropped(one, one) == {}
    assert kept_answers.dropped(one, two) == {"apps": [], "clusters": []}
    assert kept_answers.dropped(one, two, exact=False) == {}
    assert kept_answers.dropped(two, one, exact=False) == {"apps": ["cart"], "clusters": ["staging"]}
    assert kept_answers.dropped(one, {**one, "apps": []}, exact=False) == {"apps": ["shop"]}
    with pytest.raises(HookError) as refused:
        kept_answers.verify(two, {**one, "apps": []})
    assert "would drop the recorded apps (shop, cart) and clusters (staging)" in str(refused.value)


DEFAULT = ["cert-manager", "gateway-api", "gateway", "kyverno"]


def test_services_reset_compares_every_cluster_by_name():
    """Each cluster that is in both answers, wherever it stands (the first one's services are
    top-level answers): a reset of staging's services counts as much as one of prod's."""
    tracing = [*DEFAULT, "tempo", "kube-prometheus-stack"]
    staging = {"cluster_name": "staging", "platform_services": tracing}
    before = {"cluster_name": "prod", "platform_services": tracing, "clusters": [staging]}
    assert kept_answers.services_reset(before, before, DEFAULT) == {}
    reset_staging = {**before, "clusters": [{**staging, "platform_services": DEFAULT}]}
    assert kept_answers.services_reset(before, reset_staging, DEFAULT) == {"staging": tracing}
    both = {**reset_staging, "platform_services": DEFAULT}
    assert kept_answers.services_reset(before, both, DEFAULT) == {"prod": tracing, "staging": tracing}
    # prod removed: staging is first now, its services top-level; still compared by name.
    staging_first = {"cluster_name": "staging", "platform_services": DEFAULT, "clusters": []}
    assert kept_answers.services_reset(before, staging_first, DEFAULT) == {"staging": tracing}
    # Services that the default holds all of lose nothing; a cluster gone is `dropped`'s to report.
    fewer = {"cluster_name": "prod", "platform_services": ["cert-manager"], "clusters": [staging]}
    assert kept_answers.services_reset(fewer, {**fewer, "platform_services": DEFAULT}, DEFAULT) == {}
    assert kept_answers.services_reset(before, {**before, "clusters": []}, DEFAULT) == {}


def test_an_update_given_the_default_services_keeps_them(with_shop):
    """The default given with --data is the user's choice: Copier refuses a given answer that fails
    its validator, it never falls back to the default for one."""
    cluster_admin.set_settings(with_shop, "prod", {"platform_services": [*DEFAULT, "headlamp"]}, out=lambda _: None)
    commit_all(with_shop)
    copier.run_update(with_shop, data={"platform_services": DEFAULT}, defaults=True, overwrite=True, unsafe=True,
                      vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    assert load_answers(with_shop)["platform_services"] == DEFAULT
    assert not (with_shop / "applications/overlays/prod/services/headlamp").exists()


def test_an_update_given_apps_without_a_registered_one_points_at_offboarding(with_shop, capfd):
    with pytest.raises(Exception):  # Copier's task error: the update stops at the task
        copier.run_update(with_shop, data={"apps": []}, defaults=True, overwrite=True, unsafe=True,
                          vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    said = capfd.readouterr().err
    assert "--data: the given apps leave out shop: an app leaves with `opencenter-offboard`" in said


def test_given_services_are_the_clusters_whose_services_the_update_was_given():
    after = {"cluster_name": "prod", "clusters": [{"cluster_name": "staging"}, {"cluster_name": "dev"}]}
    assert kept_answers.given_services(after, set()) == set()
    assert kept_answers.given_services(after, {"flux_version"}) == set()
    assert kept_answers.given_services(after, {"platform_services"}) == {"prod"}
    assert kept_answers.given_services(after, {"clusters"}) == {"staging", "dev"}
    assert kept_answers.given_services(after, {"platform_services", "clusters"}) == {"prod", "staging", "dev"}


# The last commit before tempo needed kube-prometheus-stack (includes/services.yml `depends_on`).
BEFORE_TEMPO_DEPENDENCY = "a8f1e02"


def test_a_release_that_refuses_the_recorded_services_fails_the_update(template_snapshot, tmp_path, capfd):
    """A release tightens the services' validator (tempo now needs kube-prometheus-stack): the
    answers recorded before it no longer pass, and Copier would select the default services."""
    templates = release_history(BEFORE_TEMPO_DEPENDENCY, template_snapshot, tmp_path / "templates")
    repo = tmp_path / "acme-gitops"
    services = ["cert-manager", "gateway-api", "gateway", "kyverno", "tempo"]
    copier.run_copy(str(templates), repo, data={"template": "platform", "sops_age_recipients": str(PROD.to_public()),
                                                "platform_services": services},
                    defaults=True, unsafe=True, vcs_ref="1.0.0", quiet=True)
    commit_all(repo)
    with pytest.raises(Exception):  # Copier's task error: the update stops at the task
        copier.run_update(repo, defaults=True, overwrite=True, unsafe=True, vcs_ref="2.0.0", quiet=True)
    said = capfd.readouterr().err
    assert "replaced the recorded platform_services" in said and "opencenter-cluster set prod platform_services=" in said


def test_the_update_task_leaves_a_commands_own_render_to_the_command(with_shop):
    """opencenter-cluster holds the repository's lock while Copier renders (and runs the tasks):
    the task, run as Copier runs it, sees it held and leaves the comparison with the plan to the
    command; the same render without the lock fails on the lost app."""
    rendered = load_answers(with_shop)
    assert [app["name"] for app in rendered["apps"]] == ["shop"]  # as committed at HEAD
    (with_shop / ANSWERS_FILE).write_text(yaml.safe_dump({**rendered, "apps": []}))  # a render that lost it

    def task() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "hooks" / "kept_answers.py"), "--operation=update"],
                              cwd=with_shop, capture_output=True, text=True)

    with gitrepo.exclusive(with_shop, "a test"):
        held = task()
    assert (held.returncode, held.stdout, held.stderr) == (0, "", "")
    alone = task()
    assert alone.returncode == 2 and alone.stdout == "" and "Traceback" not in alone.stderr, alone.stderr
    (line,) = alone.stderr.splitlines()
    assert line.startswith("error: copier update: would drop the recorded apps (shop)"), line


def hold_lock(repo: Path, what: str) -> subprocess.Popen:
    """Another process holding the repository's lock as a command does (gitrepo.exclusive): the
    lock file names it and holds its token, which this process does not know."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "f.write(sys.argv[2] + '\\ntoken 0123456789abcdef\\n'); f.flush(); print('held', flush=True); time.sleep(120)"),
        str(repo / ".git" / gitrepo.LOCK_FILE), what], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


HOLDER = "onboarding of app 'cart' (pid 4242, since 2026-12-02 10:00:00)"


@pytest.mark.parametrize("data", [{"apps": []}, {"flux_version": "2.10.0"}], ids=["dropping-the-app", "harmless"])
def test_a_plain_update_while_another_command_holds_the_lock_is_refused_and_changes_nothing(with_shop, capfd, data):
    """Copier has no hook before it writes: its update task refuses the update, naming the holder,
    and puts back what Copier wrote (nothing else was changed: Copier updates only a clean tree).
    Dropping the app or not, a second writer is refused."""
    before = tree(with_shop)
    holder = hold_lock(with_shop, HOLDER)
    try:
        with pytest.raises(Exception):  # Copier's task error: the update stops at the task
            copier.run_update(with_shop, data=data, defaults=True, overwrite=True, unsafe=True,
                              vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    finally:
        holder.kill()
        holder.wait()
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {with_shop}: {HOLDER} holds this repository; this copier update was refused and its "
                      "files put back: nothing was changed. Run it again once that has finished"]
    assert tree(with_shop) == before and status(with_shop) == ""
    # The holder gone, the same update is checked as usual: a plain update that keeps the apps
    # passes (the only run of that update: it is the same on the same repository).
    if data == {"flux_version": "2.10.0"}:
        copier.run_update(with_shop, data=data, defaults=True, overwrite=True, unsafe=True,
                          vcs_ref=copier.VcsRef.CURRENT, quiet=True)
        assert "flux_version: 2.10.0" in (with_shop / ANSWERS_FILE).read_text()


def test_a_commands_own_update_runs_under_its_lock(with_shop):
    """opencenter-cluster runs `copier update` (with its tasks) under its lock: the update task
    finds the command's token in its environment and leaves the check to the command."""
    run = subprocess.run([sys.executable, "-m", "hooks.cluster_admin", "set", "prod", "--platform", str(with_shop),
                          "flux_version=2.10.0"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert load_answers(with_shop)["flux_version"] == "2.10.0" and gitrepo.holder(with_shop) is None


def test_a_refused_update_is_not_put_back_while_the_holder_writes(with_shop):
    """The holder's transaction writing (its write lock held) or its changes staged: Copier's files
    cannot be told from the holder's, so none is touched, and the message says how to put them back."""
    rendered = load_answers(with_shop)
    (with_shop / ANSWERS_FILE).write_text(yaml.safe_dump({**rendered, "apps": []}))  # what Copier wrote
    (with_shop / "copier-new.txt").write_text("rendered\n")
    after_copier = tree(with_shop)

    def task() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "hooks" / "kept_answers.py"), "--operation=update"],
                              cwd=with_shop, capture_output=True, text=True)

    holder = hold_lock(with_shop, HOLDER)
    try:
        with gitrepo.writing_lock(with_shop, 0) as writing:  # as a transaction of the holder does
            assert writing
            refused = task()
        (with_shop / "theirs.txt").write_text("staged by the holder\n")
        subprocess.run(["git", "add", "theirs.txt"], cwd=with_shop, check=True)
        staged = task()
    finally:
        holder.kill()
        holder.wait()
    for result in (refused, staged):
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip() == (
            f"error: {with_shop}: {HOLDER} holds this repository and was changing it while Copier rendered; "
            "this copier update was refused, its files left as Copier wrote them. Once that has finished, put back what it did "
            "not stage: git checkout -- . && git clean -fd")
    assert {rel: data for rel, data in tree(with_shop).items() if rel != "theirs.txt"} == after_copier


# App repositories ------------------------------------------------------------------------------------

KEY, TEAM = str(PROD.to_public()), str(x25519.Identity.generate().to_public())


@pytest.fixture(scope="module")
def app_once(template_snapshot, tmp_path_factory) -> Path:
    """A committed stand-alone app on one cluster (prod), with a Secret, its Flux key and a second
    hostname (read only: tests copy it)."""
    root = tmp_path_factory.mktemp("kept-app")
    app = root / "shop"
    with isolated(root / "home"):
        copier.run_copy(str(template_snapshot), app, data={
            "template": "app", "app_name": "shop", "app_domain": "prod.acme.example.com", "secret_keys": "TOKEN",
            "flux_age_recipient": KEY, "secrets_age_recipients": TEAM,
            "hostnames": "shop.prod.acme.example.com,www.prod.acme.example.com"},
            defaults=True, unsafe=True, vcs_ref="0.0.1", quiet=True)
        commit_all(app)
    return app


@pytest.fixture
def app(app_once, tmp_path) -> Path:
    return copy_of(app_once, tmp_path / "shop")


TWO_CLUSTERS = {"environments": "staging,prod", "app_domain": "staging.acme.example.com"}  # docs/app-template.md


def sops_rules(app: Path) -> dict[str, list[str]]:
    return {rule["path_regex"].split("/")[2]: rule["age"].split(",")
            for rule in yaml.safe_load((app / ".sops.yaml").read_text())["creation_rules"]}


def test_the_documented_move_to_two_clusters_is_refused_naming_what_to_pass(app, capfd):
    """Copier would record flux_age_recipient '' (one plain key no longer passes with two
    environments) and hostnames shop.staging… (www under the old domain no longer passes): one line
    names both, with the values that keep them, and the documented recovery restores the repository."""
    before = tree(app)
    with pytest.raises(Exception):  # Copier's task error: the update stops at the task
        copier.run_update(app, data=TWO_CLUSTERS, defaults=True, overwrite=True, unsafe=True,
                          vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    (line,) = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("error:")]
    assert line.startswith(f"error: copier update: replaced the recorded flux_age_recipient '{KEY}' with ''"), line
    assert "hostnames 'shop.prod.acme.example.com,www.prod.acme.example.com' with 'shop.staging.acme.example.com'" in line
    assert line.endswith(f"git clean -fd`, then run the update again with --data flux_age_recipient=prod={KEY} "
                         "--data hostnames=shop.staging.acme.example.com,www.staging.acme.example.com"), line
    subprocess.run(["git", "reset", "-q", "--hard"], cwd=app, check=True)
    subprocess.run(["git", "clean", "-qfd"], cwd=app, check=True)
    assert tree(app) == before and status(app) == ""


def test_the_move_given_what_the_message_names_keeps_the_key_for_its_cluster(app):
    """The old key stays prod's (the cluster whose domain app_domain was); staging has no key yet
    (onboarding --update makes it) and its Secret is encrypted for the team only."""
    copier.run_update(app, data={**TWO_CLUSTERS, "flux_age_recipient": f"prod={KEY}",
                                 "hostnames": "shop.staging.acme.example.com,www.staging.acme.example.com"},
                      defaults=True, overwrite=True, unsafe=True, vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    answers = load_answers(app)
    assert answers["flux_age_recipient"] == f"prod={KEY}" and answers["environment_domains"] == {
        "prod": "prod.acme.example.com"}
    assert sops_rules(app) == {"staging": [TEAM], "prod": [KEY, TEAM]}
    add_staging = f"--data flux_age_recipient=prod={KEY},staging=age1…"
    assert add_staging in (app / ".sops.yaml").read_text() and add_staging in (app / "README.md").read_text()
    assert "The app's key on staging is not recorded yet" in (app / "README.md").read_text()
    # The next update, with the same answers, changes nothing and passes the task.
    commit_all(app, "two clusters")
    copier.run_update(app, defaults=True, overwrite=True, unsafe=True, vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    assert status(app) == ""


def test_a_given_empty_key_is_the_users_choice(app):
    copier.run_update(app, data={**TWO_CLUSTERS, "flux_age_recipient": "",
                                 "hostnames": "shop.staging.acme.example.com"},
                      defaults=True, overwrite=True, unsafe=True, vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    assert load_answers(app)["flux_age_recipient"] == "" and sops_rules(app) == {"staging": [TEAM], "prod": [TEAM]}


def test_an_app_update_without_a_change_changes_nothing(app):
    copier.run_update(app, defaults=True, overwrite=True, unsafe=True, vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    assert status(app) == ""


def test_default_hostnames_follow_the_new_domain_without_a_refusal(template_snapshot, tmp_path):
    """An app without secrets and with the default hostname: Copier's default for the new domain is
    what the recorded hostname means there, so the documented update passes as it is."""
    app = tmp_path / "shop"
    copier.run_copy(str(template_snapshot), app, data={"template": "app", "app_name": "shop"}, defaults=True,
                    unsafe=True, vcs_ref="0.0.1", quiet=True)
    commit_all(app)
    copier.run_update(app, data=TWO_CLUSTERS, defaults=True, overwrite=True, unsafe=True,
                      vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    assert load_answers(app)["hostnames"] == "shop.staging.acme.example.com"


STAGING_KEY = str(x25519.Identity.generate().to_public())
ONE = {"app_domain": "prod.acme.example.com", "hostnames": "shop.prod.acme.example.com", "flux_age_recipient": KEY}
TWO = {"environments": "staging,prod", "app_domain": "staging.acme.example.com",
       "environment_domains": {"prod": "prod.acme.example.com"}, "hostnames": "shop.staging.acme.example.com",
       "flux_age_recipient": f"staging={STAGING_KEY},prod={KEY}"}


@pytest.mark.parametrize(("before", "after", "meant"), [
    (ONE, {**TWO, "flux_age_recipient": ""}, f"prod={KEY}"),  # one → two: the key stays prod's
    (TWO, {**ONE, "flux_age_recipient": ""}, KEY),  # two → one (prod): prod's key
    (TWO, {**TWO, "environments": "prod,staging", "app_domain": "prod.acme.example.com",
           "environment_domains": {"staging": "staging.acme.example.com"}}, f"prod={KEY},staging={STAGING_KEY}"),
    (ONE, {**ONE, "app_domain": "eu.acme.example.com"}, KEY),  # one cluster, a new domain: still its key
    # Two → one on a cluster neither had: no key is known, the form to fill in.
    (TWO, {**ONE, "app_domain": "dev.acme.example.com", "flux_age_recipient": ""}, "age1…"),
    (ONE, {**TWO, "environment_domains": {"prod": "eu.acme.example.com"}}, "staging=age1…,prod=age1…"),
    ({**ONE, "flux_age_recipient": ""}, {**TWO, "flux_age_recipient": ""}, ""),
], ids=["one-to-two", "two-to-one", "reordered", "new-domain", "unknown-cluster", "unknown-clusters", "no-key"])
def test_carried_flux_key_keeps_each_key_with_its_cluster(before, after, meant):
    assert kept_answers.carried_flux_key(before, after) == meant


def test_answers_reset_names_what_changed_unless_given_or_carried():
    after = {**TWO, "flux_age_recipient": "", "_commit": "0.0.2"}
    assert kept_answers.answers_reset({**ONE, "_commit": "0.0.1"}, after, {"environments", "app_domain"}) == {
        "flux_age_recipient": (f"prod={KEY}", "")}  # hostnames: the default is what shop.prod… means there
    assert kept_answers.answers_reset(ONE, after, {"environments", "app_domain", "flux_age_recipient"}) == {}
    assert kept_answers.answers_reset({**ONE, "cpu_request": "500m"}, {**ONE, "cpu_request": "100m"}, set()) == {
        "cpu_request": ("500m", "100m")}
    assert kept_answers.answers_reset({**ONE, "ci": "github"}, ONE, set()) == {}  # no longer recorded (`when`)
