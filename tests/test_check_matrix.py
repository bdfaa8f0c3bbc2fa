"""The check passes on every rendered combination of the answer matrix.

One row per combination: add a row when a template grows an answer. Each row is rendered
with the real templates (pytest-copie, tasks included) and checked with the real kustomize,
sops and schemas. A row whose answers need an age key gets the test's own (`AGE` below).
"""

from __future__ import annotations

import pytest
from pyrage import x25519

AGE = "{age}"  # replaced by a fresh test age public key
ALL_SERVICES = [
    "cert-manager", "gateway-api", "gateway", "kyverno", "headlamp", "harbor", "kube-prometheus-stack",
    "loki", "tempo", "metallb", "longhorn", "sealed-secrets", "postgres-operator", "rbac-manager",
    "external-snapshotter",
]

PLATFORM = [
    pytest.param({}, id="platform-defaults"),
    pytest.param({"platform_services": []}, id="platform-no-services"),
    pytest.param({"platform_services": ["cert-manager"]}, id="platform-one-base-first-service"),
    pytest.param({"platform_services": ["harbor", "kube-prometheus-stack", "loki", "tempo"]}, id="platform-override-first-services"),
    pytest.param({"platform_services": ["gateway-api", "gateway"], "gateway_namespace": "edge", "gateway_listener": "web"}, id="platform-gateway-only"),
    pytest.param({"platform_services": ALL_SERVICES, "flux_allow_remote_bases": True}, id="platform-all-services"),
    pytest.param({"gitops_base_secret": "opencenter-base", "sops_age_recipients": AGE}, id="platform-private-base-own-key"),
]

APP = [
    pytest.param({}, id="app-defaults"),
    pytest.param({"app_name": "cart", "hostnames": "cart.prod.acme.example.com,shop.prod.acme.example.com", "path_prefix": "/cart"}, id="app-two-hostnames-prefix"),
    pytest.param({"extra_egress": "10.20.0.0/16:5432,0.0.0.0/0:443", "replicas": 1}, id="app-egress"),
    pytest.param({"secret_keys": "DATABASE_URL,API_TOKEN", "secrets_age_recipients": AGE}, id="app-secrets"),
]


def with_key(answers: dict) -> dict:
    public = str(x25519.Identity.generate().to_public())
    return {name: public if value == AGE else value for name, value in answers.items()}


@pytest.mark.parametrize("answers", PLATFORM)
def test_rendered_platform_repo_passes_the_check(copie, answers, assert_check_passes):
    result = copie.copy(extra_answers={"template": "platform", **with_key(answers)})
    assert result.exit_code == 0, result.exception
    assert_check_passes(result.project_dir)


@pytest.mark.parametrize("answers", APP)
def test_rendered_app_repo_passes_the_check(copie, answers, assert_check_passes):
    result = copie.copy(extra_answers={"template": "app", **with_key(answers)})
    assert result.exit_code == 0, result.exception
    assert_check_passes(result.project_dir)
