"""hooks.check on rendered repositories: clean renders pass, each seeded fault is caught by its rule."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pyrage import x25519

from hooks.check import Finding, check_repo

OVERLAY = "applications/overlays/prod"


def rules_of(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def edit(path: Path, old: str, new: str) -> None:
    """Replace one exact snippet; fail loudly when the rendered file no longer has it."""
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def platform_repo(rendered) -> Path:
    """This test's own copy of the default platform render (rendered once: conftest `rendered`)."""
    return rendered(template="platform")


def test_default_platform_repo_passes(platform_repo, assert_check_passes):
    assert_check_passes(platform_repo)


FLUXCD = f"{OVERLAY}/services/fluxcd"
SOURCES = f"{OVERLAY}/services/sources"
CERT_MANAGER = f"{OVERLAY}/services/cert-manager"
DNS_SECRET = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: dns-token\nstringData:\n  token: hunter2\n"

# Seeded faults: edits (file, old snippet, new snippet), where old None writes the file with new,
# or deletes it when new is None too; then the one finding expected. Add a row per new rule.
FAULTS = [
    pytest.param(
        [(f"{SOURCES}/kustomization.yaml", "  - opencenter-cert-manager.yaml\n", ""), (f"{SOURCES}/opencenter-cert-manager.yaml", None, None)],
        Finding(f"{FLUXCD}/cert-manager.yaml", "Kustomization/flux-system/cert-manager-base", "flux-source-ref",
                "spec.sourceRef GitRepository/flux-system/opencenter-cert-manager does not exist in the repository"),
        id="missing-source",
    ),
    pytest.param(
        [(f"{FLUXCD}/gateway.yaml", "    - name: gateway-api-override\n", "    - name: gateway-api-ovrride\n")],
        Finding(f"{FLUXCD}/gateway.yaml", "Kustomization/flux-system/gateway", "flux-depends-on",
                "spec.dependsOn.1 Kustomization/flux-system/gateway-api-ovrride does not exist in the repository"),
        id="dangling-depends-on",
    ),
    pytest.param(
        [(f"{FLUXCD}/kyverno.yaml", "path: ./applications/overlays/prod/services/kyverno\n", "path: ./applications/overlays/prod/services/kyvern\n")],
        Finding(f"{FLUXCD}/kyverno.yaml", "Kustomization/flux-system/kyverno-override", "flux-path",
                "spec.path ./applications/overlays/prod/services/kyvern is not a directory of this repository"),
        id="wrong-path",
    ),
    pytest.param(
        [(f"{FLUXCD}/sources.yaml", "  retryInterval: 1m\n", "  retryIntreval: 1m\n")],
        Finding(f"{FLUXCD}/sources.yaml", "Kustomization/flux-system/sources", "schema",
                "Additional properties are not allowed ('retryIntreval' was unexpected)", "spec"),
        id="misspelt-kustomization-field",
    ),
    pytest.param(
        [(f"{OVERLAY}/services/gateway/http-redirect.yaml", "    - filters:\n", "    - matches:\n        - path: {type: Prefix, value: /}\n      filters:\n")],
        Finding(f"{OVERLAY}/services/gateway/http-redirect.yaml", "HTTPRoute/gateway-system/http-to-https", "schema",
                "'Prefix' is not one of ['Exact', 'PathPrefix', 'RegularExpression']", "spec.rules.0.matches.0.path.type"),
        id="httproute-bad-path-type",
    ),
    pytest.param(
        [(f"{CERT_MANAGER}/dns-token.yaml", None, DNS_SECRET), (f"{CERT_MANAGER}/kustomization.yaml", "resources: []\n", "resources:\n  - dns-token.yaml\n")],
        Finding(f"{CERT_MANAGER}/dns-token.yaml", "Secret/dns-token", "secret-unencrypted",
                f"Secret is not SOPS-encrypted: run `sops --encrypt --in-place {CERT_MANAGER}/dns-token.yaml`"),
        id="unencrypted-secret",
    ),
    pytest.param(
        [(f"{CERT_MANAGER}/kustomization.yaml", "resources: []\n", "resources:\n  - https://github.com/acme/issuers//base?ref=v1\n")],
        Finding(f"{CERT_MANAGER}/kustomization.yaml", "", "remote-base",
                "remote entry 'https://github.com/acme/issuers//base?ref=v1' (not built): "
                "kustomize-controller runs with --no-remote-bases=true (answer flux_allow_remote_bases)"),
        id="remote-base-under-lockdown",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), FAULTS)
def test_seeded_fault_is_caught_by_its_rule(platform_repo, edits, expected):
    for rel, old, new in edits:
        if old is not None:
            edit(platform_repo / rel, old, new)
        elif new is None:
            (platform_repo / rel).unlink()
        else:
            (platform_repo / rel).write_text(new)
    assert check_repo(platform_repo) == [expected]


def test_values_may_name_an_existing_secret_but_not_hold_a_credential(platform_repo):
    """`existingSecret`/`secretName` hold a Secret's name (velero's placeholder is read that way); a
    password next to them is still a clear credential."""
    values = f"{CERT_MANAGER}/helm-values/override-values.yaml"
    (platform_repo / values).write_text("credentials:\n  existingSecret: velero-cloud-credentials\n"
                                        "tls:\n  secretName: wildcard-tls\nadmin:\n  password: hunter2\n")
    assert [(f.file, f.rule, f.message) for f in check_repo(platform_repo)] == [
        (values, "secret-unencrypted", f"secretGenerator cert-manager-values-override ({CERT_MANAGER}/kustomization.yaml) "
                                       f"reads admin.password from this file in clear text: run `sops --encrypt --in-place {values}` "
                                       "from the repository root"),
    ]


def test_a_root_that_does_not_build_names_the_root_and_the_error(platform_repo):
    edit(platform_repo / OVERLAY / "services/sources/kustomization.yaml", "resources:\n", "resources:\n  - missing.yaml\n")
    findings = check_repo(platform_repo)
    assert [(f.file, f.rule) for f in findings] == [(f"{OVERLAY}/services/sources/kustomization.yaml", "kustomize-build")]
    assert "missing.yaml: no such file or directory" in findings[0].message


def test_core_kinds_are_strict_and_follow_the_chosen_kubernetes_version(platform_repo):
    edit(platform_repo / OVERLAY / "services/gateway/namespace.yaml", "  labels:\n", "  lables:\n")
    findings = check_repo(platform_repo, kube_version="1.30")
    assert [(f.object, f.field, f.rule, f.message) for f in findings] == [
        ("Namespace/gateway-system", "metadata", "schema", "Additional properties are not allowed ('lables' was unexpected)")
    ]


def test_a_kind_without_schema_is_a_finding(platform_repo):
    edit(
        platform_repo / OVERLAY / "services/fluxcd/sources.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\n",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1beta2\n",
    )
    findings = check_repo(platform_repo)
    assert ("Kustomization/flux-system/sources", "unknown-kind") in {(f.object, f.rule) for f in findings}


def test_paths_on_gitops_base_sources_are_not_looked_up_in_the_repo(platform_repo):
    # kyverno-base's path lives in openCenter-gitops-base: a path the repo lacks is not a finding.
    assert not (platform_repo / "applications/base/services/kyverno/policy-engine").exists()
    assert check_repo(platform_repo) == []


@pytest.fixture
def age_identity():
    return x25519.Identity.generate()


def sops_encrypt(repo: Path, rel: str, text: str) -> None:
    """Write a file and encrypt it in place with the real sops, by the repository's .sops.yaml."""
    (repo / rel).write_text(text)
    subprocess.run(["sops", "--disable-version-check", "--encrypt", "--in-place", rel], cwd=repo, check=True, capture_output=True)


def test_secret_refs_resolve_to_encrypted_secrets_or_out_of_band_ones(render_platform, age_identity):
    repo = render_platform(sops_age_recipients=str(age_identity.to_public()), gitops_base_secret="base-creds")
    sources = repo / OVERLAY / "services/sources"
    sops_encrypt(repo, f"{OVERLAY}/services/sources/kyverno-creds.yaml",
                 "apiVersion: v1\nkind: Secret\nmetadata:\n  name: kyverno-creds\n  namespace: flux-system\n"
                 "stringData:\n  username: git\n  password: hunter2\n")
    edit(sources / "kustomization.yaml", "resources:\n", "resources:\n  - kyverno-creds.yaml\n")
    # Every base GitRepository names base-creds (out of band); two are pointed elsewhere.
    edit(sources / "opencenter-kyverno.yaml", "    name: base-creds\n", "    name: kyverno-creds\n")
    edit(sources / "opencenter-gateway-api.yaml", "    name: base-creds\n", "    name: nope\n")
    findings = check_repo(repo)
    assert findings == [
        Finding(
            f"{OVERLAY}/services/sources/opencenter-gateway-api.yaml",
            "GitRepository/flux-system/opencenter-gateway-api",
            "flux-secret-ref",
            "spec.secretRef Secret flux-system/nope is neither a SOPS-encrypted Secret in the repository nor "
            "an out-of-band Secret (base-creds, flux-system, sops-age in flux-system)",
        )
    ]
    # The encrypted Secret is real SOPS output: the test key decrypts it.
    decrypted = subprocess.run(
        ["sops", "--disable-version-check", "--decrypt", f"{OVERLAY}/services/sources/kyverno-creds.yaml"],
        cwd=repo, env={**os.environ, "SOPS_AGE_KEY": str(age_identity)}, capture_output=True, text=True, check=True,
    ).stdout
    assert "hunter2" in decrypted


def test_an_encrypted_file_without_a_sops_rule_is_a_sops_rule_finding(platform_repo, tmp_path, age_identity):
    # Encrypted outside the repository (no .sops.yaml there), then moved in under a path no rule covers.
    outside = tmp_path / "stray.yaml"
    outside.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: stray\nstringData:\n  a: b\n")
    subprocess.run(["sops", "--disable-version-check", "--encrypt", "--age", str(age_identity.to_public()),
                    "--encrypted-regex", "^(data|stringData)$", "--in-place", str(outside)], check=True, capture_output=True)
    (platform_repo / "extra").mkdir()
    outside.rename(platform_repo / "extra/stray.yaml")
    findings = check_repo(platform_repo)
    assert findings == [
        Finding("extra/stray.yaml", "", "sops-rule", ".sops.yaml has no creation_rules entry whose path_regex matches this file")
    ]


def test_a_sops_block_with_plaintext_values_is_still_unencrypted(platform_repo):
    overlay = platform_repo / OVERLAY / "services/cert-manager"
    (overlay / "fake.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: fake\nstringData:\n  token: hunter2\nsops:\n  version: 3.11.0\n"
    )
    findings = check_repo(platform_repo)
    assert [(f.rule, f.message) for f in findings] == [
        ("secret-unencrypted", "stringData.token not encrypted although the file has a sops block")
    ]
