"""The check passes on every rendered combination of the answer matrix.

One row per combination: add a row when a template grows an answer. Each row is rendered
with the real templates (as pytest-copie renders them, tasks included; conftest `rendered`, so a
render another test also made is copied, not made again) and checked with the real kustomize,
sops and schemas, and its CI, Renovate and pre-commit files with their own linters (tests/gates.py).
A row whose answers need an age key gets the test's own (`AGE` below).
Platform repositories with registered apps are made with the onboarding command (hooks.onboard),
a Copier update per app: those rows are few.
"""

from __future__ import annotations

import pytest
import yaml
from pyrage import x25519

import gates
from conftest import all_services, commit_all
from hooks import onboard

AGE = "{age}"  # replaced by a fresh test age public key
# Every service a cluster on OpenStack (the default infrastructure) may select; vsphere-csi has its own row.
ALL_SERVICES = all_services("openstack")

PLATFORM = [
    pytest.param({}, id="platform-defaults"),
    pytest.param({"platform_services": [], "ci": "gitlab"}, id="platform-no-services-gitlab"),
    pytest.param({"platform_services": ["cert-manager"]}, id="platform-one-base-first-service"),
    pytest.param({"platform_services": ["harbor", "kube-prometheus-stack", "loki", "tempo"]}, id="platform-override-first-services"),
    pytest.param({"platform_services": ["gateway-api", "gateway"], "gateway_namespace": "edge", "gateway_listener": "web", "ci": "gitlab"}, id="platform-gateway-only-gitlab"),
    pytest.param({"platform_services": ALL_SERVICES, "flux_allow_remote_bases": True}, id="platform-all-services"),
    pytest.param({"infrastructure": "vsphere", "platform_services": all_services("vsphere"), "flux_allow_remote_bases": True},
                 id="platform-all-services-vsphere"),
    pytest.param({"gitops_base_secret": "opencenter-base", "sops_age_recipients": AGE}, id="platform-private-base-own-key"),
]

APP = [
    pytest.param({}, id="app-defaults"),
    pytest.param({"app_name": "cart", "hostnames": "cart.prod.acme.example.com,shop.prod.acme.example.com", "path_prefix": "/cart",
                  "platform_check_url": "ssh://git@github.com/acme/acme-gitops"}, id="app-two-hostnames-prefix-platform-check"),
    pytest.param({"extra_egress": "10.20.0.0/16:5432,0.0.0.0/0:443", "replicas": 1, "ci": "gitlab"}, id="app-egress-gitlab"),
    pytest.param({"secret_keys": "DATABASE_URL,API_TOKEN", "secrets_age_recipients": AGE}, id="app-secrets"),
    pytest.param({"secret_keys": "TOKEN", "flux_age_recipient": AGE, "webhook_receiver": "generic",
                  "app_repo_url": "ssh://git@git.example.com:2222/acme/shop", "app_repo_known_hosts": "{known_hosts}"},
                 id="app-secrets-flux-key-only-other-host"),
]

OTHER_HOST_KEYS = "[git.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
# Apps onboarded on a default platform repository: 1 and 3 apps, receiver and secrets on and off. No
# row for none: that tree is the platform-defaults row's but for its SOPS recipient and a commit,
# which the check reads alike (a row for it checked the same tree twice).
APPS = [
    pytest.param([{"name": "shop", "url": "ssh://git@github.com/acme/shop"}], id="apps-1-plain"),
    pytest.param([{"name": "shop", "url": "ssh://git@github.com/acme/shop", "secrets": True, "receiver": "github"}],
                 id="apps-1-secrets-receiver"),
    pytest.param([
        {"name": "shop", "url": "ssh://git@github.com/acme/shop", "receiver": "github"},
        {"name": "cart", "url": "ssh://git@gitlab.com/acme/cart", "branch": "release/1.0", "secrets": True},
        {"name": "billing", "url": "ssh://git@git.example.com:2222/acme/billing", "known_hosts": OTHER_HOST_KEYS,
         "receiver": "generic", "secrets": True},
    ], id="apps-3-mixed"),
]


# The SOPS recipient of the apps rows' platform: a fixed public key (its private half was discarded;
# onboarding only encrypts to it), so that every xdist worker asks for the same shared render.
APPS_RECIPIENT = "age16x2cw6zzszw4s9nlv6esudny0p9qr7v9hn50rymcl3398tmnfesqeydvdv"


def with_key(answers: dict) -> dict:
    public = str(x25519.Identity.generate().to_public())
    values = {AGE: public, "{known_hosts}": OTHER_HOST_KEYS}
    return {name: values.get(value, value) if isinstance(value, str) else value for name, value in answers.items()}


@pytest.mark.parametrize("answers", PLATFORM)
def test_rendered_platform_repo_passes_the_check(rendered, answers, assert_check_passes):
    repo = rendered(template="platform", **with_key(answers))
    assert_check_passes(repo)
    assert gates.problems(repo) == []


@pytest.mark.parametrize("answers", APP)
def test_rendered_app_repo_passes_the_check(rendered, answers, assert_check_passes):
    repo = rendered(template="app", **with_key(answers))
    assert_check_passes(repo)
    assert gates.problems(repo) == []


@pytest.mark.parametrize("apps", APPS)
def test_platform_repo_with_onboarded_apps_passes_the_check(rendered, template_snapshot, apps, assert_check_passes):
    # One committed render for every row (its own copy each), from a committed template: onboarding updates from it.
    repo = rendered(template="platform", template_dir=template_snapshot, commit=True, sops_age_recipients=APPS_RECIPIENT)
    for app in apps:
        assert onboard.register(repo, app, out=lambda _line: None) == 0
        commit_all(repo, f"onboard {app['name']}")
    assert_check_passes(repo)
    assert gates.problems(repo) == []
    fluxcd = repo / "applications/overlays/prod/services/fluxcd"
    for app in apps:
        (kustomization,) = (doc for doc in yaml.safe_load_all((fluxcd / f"{app['name']}.yaml").read_text())
                            if doc["apiVersion"].startswith("kustomize.toolkit.fluxcd.io/") and doc["metadata"]["name"] == app["name"])
        expected = {"provider": "sops", "secretRef": {"name": f"{app['name']}-sops-age"}} if app.get("secrets") else None
        assert kustomization["spec"].get("decryption") == expected
