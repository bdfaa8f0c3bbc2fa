"""Platform template: every bad answer is refused with a message naming the field, nothing written."""

from __future__ import annotations

from pathlib import Path

import copier
import pytest
import yaml

from conftest import ROOT, cluster_entry
from messages import assert_leads_with_the_answer

# A public key (its private half was discarded): fixed so that test ids are stable across workers.
GOOD_KEY = "age16x2cw6zzszw4s9nlv6esudny0p9qr7v9hn50rymcl3398tmnfesqeydvdv"
# Same form as an age key, last character changed: the bech32 checksum no longer matches.
BAD_CHECKSUM_KEY = GOOD_KEY[:-1] + ("q" if GOOD_KEY[-1] != "q" else "p")



def cluster(name: str, **settings) -> dict:
    """A valid `clusters` entry with the Gateway API only, changed by `settings`."""
    return cluster_entry(name, GOOD_KEY, **{"platform_services": ["gateway-api"], **settings})


BAD_ANSWERS = [
    ("customer_name", "Acme", "DNS-1123 label"),
    ("customer_name", "acme_corp", "DNS-1123 label"),
    ("customer_name", "1acme", "starting with a letter"),
    ("customer_name", "a" * 64, "at most 63 characters"),
    ("cluster_name", "prod.eu", "DNS-1123 label"),
    ("cluster_name", "prod-", "ending with a letter or digit"),
    ("cluster_domain", "*.acme.example.com", "no wildcard"),
    ("cluster_domain", "localhost", "at least two labels"),
    ("platform_repo_url", "http://github.com/acme/gitops", "ssh://user@host/path or https://host/path"),
    ("platform_repo_url", "git@github.com:acme/gitops.git", "scp-style"),
    ("platform_repo_url", "https://bot:s3cret@github.com/acme/gitops", "must not embed credentials"),
    ("platform_repo_branch", "main..dev", "no '..'"),
    ("platform_repo_branch", "feature/", "not ending in '/'"),
    ("platform_repo_branch", "release.", "not ending in '/', '.'"),
    # Numbers and booleans of a data file: Copier would make 1.10 the branch '1.1', 0755 '493'.
    ("platform_repo_branch", 1.10, "arrived as 1.1"),
    ("platform_repo_branch", 0o755, "arrived as 493"),
    ("platform_repo_branch", True, "arrived as true"),
    ("flux_version", "v2.9.4", "X.Y.Z without a 'v'"),
    ("flux_version", "2.9", "X.Y.Z"),
    ("flux_version", "2-9-4", "X.Y.Z"),
    ("flux_version", "1.2.3", "Flux 2 release"),
    ("flux_version", "2.6.0", "2.7.0 or newer"),
    # Copier casts any word to a boolean (`maybe` is true): the validator reads the word as given.
    ("flux_allow_remote_bases", "maybe", "must be true or false"),
    ("gitops_base_url", "http://github.com/opencenter-cloud/openCenter-gitops-base", "https://host/path"),
    ("gitops_base_tag", "2026..01", "no '..'"),
    ("gitops_base_tag", "", "git tag name"),
    ("gitops_base_tag", "main", "not a branch"),
    # A branch's full ref moves like its name.
    ("gitops_base_tag", "refs/heads/main", "'refs/heads/main' is a moving ref"),
    ("gitops_base_tag", "refs/remotes/origin/release", "'refs/remotes/origin/release' is a moving ref"),
    ("gitops_base_secret", "Base_Creds", "DNS-1123 label"),
    ("platform_services", ["gateway"], "'gateway' needs 'gateway-api'"),
    ("platform_services", ["external-snapshotter"], "flux_allow_remote_bases=true"),
    ("platform_services", ["istio-gateway", "istio"], "'istio-gateway' needs 'istiod'"),
    ("platform_services", ["keycloak", "olm"], "'keycloak' needs 'postgres-operator'"),
    # tempo's base values create ServiceMonitors: the Prometheus operator's CRDs must exist first.
    ("platform_services", ["tempo"], "'tempo' needs 'kube-prometheus-stack'"),
    ("gateway_listener", "http", "reserved for the HTTP redirect listener"),
    ("gateway_listener_port", 0, "between 1 and 65535"),
    ("gateway_listener_port", 70000, "between 1 and 65535"),
    ("gateway_namespace", "Gateway", "DNS-1123 label"),
    # OLM's global-operators namespace (catalog extra_namespaces): the Gateway would land in OLM's.
    ("gateway_namespace", "operators", "is a platform service's namespace"),
    ("gateway_name", "Platform_Gateway", "DNS-1123 label"),
    ("gateway_class", "Envoy_Gateway", "DNS-1123 subdomain"),
    ("gateway_tls_secret", "*.acme", "DNS-1123 subdomain"),
    ("sops_age_recipients", "age1notakey", "age public keys"),
    ("sops_age_recipients", f"{GOOD_KEY},ssh-ed25519 AAAA", "age public keys"),
    ("apps", {"name": "shop"}, "YAML list"),
    ("clusters", {"cluster_name": "staging"}, "YAML list"),
    ("clusters", [cluster("prod")], "is a cluster already"),
    ("clusters", [cluster("staging"), cluster("staging")], "is a cluster already"),
    ("clusters", [cluster("staging", gateway_class=None)], "exactly the keys"),
    ("clusters", [cluster("staging", sops_age_recipients="")], "its own age key"),
    ("clusters", [cluster("staging", flux_version="2.6.0")], "clusters[staging].flux_version"),
    ("clusters", [cluster("staging", gitops_base_tag="main")], "not a branch"),
    ("clusters", [cluster("staging", platform_services=["gateway"])], "'gateway' needs 'gateway-api'"),
    ("clusters", [cluster("staging", platform_services=["nginx"])], "services of the catalog"),
    ("clusters", [cluster("staging", platform_services=["vsphere-csi"])], "runs on vsphere infrastructure only"),
    ("clusters", [cluster("staging", infrastructure="aws")], "openstack, vsphere, baremetal or other"),
    ("clusters", [cluster("staging", cluster_domain="*.staging.example.com")], "no wildcard"),
    ("clusters", [cluster("Staging")], "clusters[Staging].cluster_name"),
    ("check_package_url", "git@github.com:opencenter-cloud/openCenter-gitops-templates.git", "https://host/path"),
    ("check_package_url", "https://bot:t0ken@github.com/o/templates.git", "without credentials"),
    # Long inputs: the refused value never makes the first line longer (tests/messages.py).
    ("platform_repo_url", "https://github.com/" + "a" * 100 + "/gitops?ref=main", "https://host/path"),
]


def copy_platform(dst: Path, **answers) -> None:
    copier.run_copy(
        str(ROOT), dst, data={"template": "platform", **answers}, defaults=True, unsafe=True,
        vcs_ref="HEAD", quiet=True,
    )


@pytest.mark.parametrize(("field", "value", "rule"), BAD_ANSWERS, ids=[f"{f}={v!r}"[:60] for f, v, _ in BAD_ANSWERS])
def test_bad_answer_is_refused_and_nothing_is_written(tmp_path, field, value, rule):
    dst = tmp_path / "platform"
    with pytest.raises(ValueError) as refused:
        copy_platform(dst, **{field: value})
    message = str(refused.value)
    assert field in message and rule in message, message
    assert_leads_with_the_answer(message)
    assert not dst.exists()


def test_a_service_of_another_infrastructure_is_not_offered(tmp_path):
    """The choice is shown disabled (Copier refuses it with the reason); on its infrastructure it is offered."""
    with pytest.raises(ValueError, match="Invalid choice for 'platform_services': only on vsphere infrastructure"):
        copy_platform(tmp_path / "openstack", platform_services=["vsphere-csi"])
    assert not (tmp_path / "openstack").exists()
    copy_platform(tmp_path / "vsphere", infrastructure="vsphere", platform_services=["vsphere-csi"])
    answers = yaml.safe_load((tmp_path / "vsphere/.copier-answers.yml").read_text())
    assert (answers["infrastructure"], answers["platform_services"]) == ("vsphere", ["vsphere-csi"])


def test_age_key_with_a_bad_checksum_is_refused_by_the_copy_task(tmp_path, capfd):
    """The validator checks the form; only the copy task can check the bech32 checksum."""
    dst = tmp_path / "platform"
    with pytest.raises(Exception):
        copy_platform(dst, sops_age_recipients=BAD_CHECKSUM_KEY)
    err = capfd.readouterr().err
    assert f"error: sops_age_recipients: '{BAD_CHECKSUM_KEY}' is not a valid age public key" in err
    assert not dst.exists()


def test_the_good_key_used_above_is_accepted(tmp_path):
    """Guards the bad-checksum test: the only difference is the checksum."""
    copy_platform(tmp_path / "platform", sops_age_recipients=GOOD_KEY)
    assert GOOD_KEY in (tmp_path / "platform/.sops.yaml").read_text()
