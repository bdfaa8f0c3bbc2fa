"""App template: the default render, every option, and defaults taken from a platform repository.

Every rendered repository must pass the repository check (kustomize build of every root, strict
schema validation of every object including the Gateway API HTTPRoute CRD, tenancy rules).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import copier
import pytest
import yaml
from pyrage import x25519

from conftest import commit_all, load_all
from hooks import app_setup, sops
from hooks.kustomize import build, build_command

# Kinds the platform's tenant ServiceAccount (admin of one namespace) can never create.
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
    "StorageClass", "PriorityClass", "IngressClass", "GatewayClass", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ClusterPolicy", "ClusterIssuer",
}
APP_FILES = ("kustomization.yaml", "deployment.yaml", "service.yaml", "config.env", "httproute.yaml",
             "networkpolicies.yaml", "README.md", ".gitignore", ".copier-answers.yml")


@pytest.fixture
def render_app(copie, rendered):
    """Render the app template with the given answers; fail the test if Copier fails.

    Without platform_repo the render is the session's shared one for those answers (conftest
    `rendered`), copied for this test; with it (onboarding writes to that platform repository) a
    render of the test's own."""

    def render(**answers) -> Path:
        if "platform_repo" not in answers:
            return rendered(template="app", app_name="shop", **answers)
        result = copie.copy(extra_answers={"template": "app", "app_name": "shop", **answers})
        assert result.exit_code == 0, result.exception
        return result.project_dir

    return render


def built(repo: Path) -> dict[tuple[str, str], dict]:
    """The objects of the repository root's build, by (kind, name)."""
    result = build(repo, build_command())
    assert result.error is None, result.error
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in result.objects}


def policies(objects: dict) -> dict[str, dict]:
    return {name: obj["spec"] for (kind, name), obj in objects.items() if kind == "NetworkPolicy"}


def container(objects: dict) -> dict:
    return objects["Deployment", "shop"]["spec"]["template"]["spec"]["containers"][0]


# Default render ---------------------------------------------------------------------------------


def test_default_render_builds_and_validates(render_app, assert_check_passes):
    repo = render_app()
    for rel in APP_FILES:
        assert (repo / rel).is_file(), rel
    assert not (repo / "secret.sops.yaml").exists() and not (repo / ".sops.yaml").exists()
    assert_check_passes(repo)
    objects = built(repo)
    kinds = sorted({kind for kind, _ in objects})
    assert kinds == ["ConfigMap", "Deployment", "HTTPRoute", "NetworkPolicy", "Service"]
    assert not CLUSTER_SCOPED & set(kinds)
    assert all("namespace" not in obj["metadata"] for obj in objects.values())
    assert all(obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "shop" for obj in objects.values())


def test_no_cluster_scoped_or_flux_kind_in_any_file(render_app):
    repo = render_app(secret_keys="TOKEN", secrets_age_recipients=str(x25519.Identity.generate().to_public()))
    docs = [doc for path in repo.rglob("*.yaml") if path.name != ".copier-answers.yml" for doc in load_all(path)]
    kinds = {doc.get("kind") for doc in docs}
    assert not kinds & CLUSTER_SCOPED
    assert not any(str(doc.get("apiVersion", "")).startswith(("kustomize.toolkit", "helm.toolkit", "source.toolkit")) for doc in docs)


def test_root_kustomization_leaves_namespace_and_names_to_flux(render_app):
    kustomization = yaml.safe_load((render_app() / "kustomization.yaml").read_text())
    for forbidden in ("namespace", "namePrefix", "nameSuffix", "commonLabels", "bases", "components"):
        assert forbidden not in kustomization, forbidden
    assert kustomization["labels"] == [{"pairs": {"app.kubernetes.io/part-of": "shop"}, "includeTemplates": True}]
    assert all("://" not in entry and not entry.startswith("github.com") for entry in kustomization["resources"])


def test_deployment_is_pinned_probed_bounded_and_restricted(render_app):
    objects = built(render_app())
    deployment = objects["Deployment", "shop"]
    pod = deployment["spec"]["template"]["spec"]
    app = container(objects)
    assert deployment["spec"]["replicas"] == 2
    assert app["image"] == "docker.io/nginxinc/nginx-unprivileged:1.27-alpine"
    assert app["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert app[probe]["httpGet"] == {"path": "/", "port": "http"}
    assert app["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert app["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False
    config = next(name for kind, name in objects if kind == "ConfigMap")
    assert config.startswith("shop-config-")
    assert app["envFrom"] == [{"configMapRef": {"name": config}}]


def test_httproute_attaches_to_the_platform_gateway_and_the_service(render_app):
    objects = built(render_app())
    route = objects["HTTPRoute", "shop"]["spec"]
    service = objects["Service", "shop"]["spec"]
    assert route["parentRefs"] == [{
        "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "platform-gateway",
        "namespace": "gateway-system", "sectionName": "https",
    }]
    assert route["hostnames"] == ["shop.prod.acme.example.com"]
    (rule,) = route["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    (backend,) = rule["backendRefs"]
    assert (backend["name"], backend["port"]) == ("shop", service["ports"][0]["port"])
    assert service["ports"][0] == {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}


def test_network_policies_deny_by_default_and_open_dns_and_gateway_only(render_app):
    specs = policies(built(render_app()))
    assert set(specs) == {"default-deny-all", "allow-dns-egress", "allow-from-gateway"}
    assert specs["default-deny-all"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    (dns,) = specs["allow-dns-egress"]["egress"]
    assert dns["to"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }]
    assert sorted((port["protocol"], port["port"]) for port in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    gateway = specs["allow-from-gateway"]
    assert gateway["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "shop"}}
    assert gateway["policyTypes"] == ["Ingress"]
    assert gateway["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}}}],
        "ports": [{"protocol": "TCP", "port": 8080}],
    }]


def test_answers_file_records_answers_but_not_the_local_platform_path(render_app, platform_checkout):
    answers = yaml.safe_load((render_app(platform_repo=str(platform_checkout)) / ".copier-answers.yml").read_text())
    assert answers["template"] == "app" and answers["app_name"] == "shop"
    assert answers["route_gateway_name"] == "edge-gw"
    assert "platform_repo" not in answers and "platform_answers" not in answers


def test_readme_explains_deploy_validation_routing_policy_and_contacts(render_app):
    readme = (render_app(platform_contact="#acme-platform") / "README.md").read_text()
    for heading in ("## What is in this repository", "## How a push deploys", "## Validate locally",
                    "## Routing", "## Network policy", "## Secrets", "## Who to ask for what"):
        assert heading in readme, heading
    assert "envoy-gateway-system" in readme and "#acme-platform" in readme
    assert "{{" not in readme and "{%" not in readme


# Options ----------------------------------------------------------------------------------------

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("answers", "expect"),
    [
        ({"image": f"harbor.acme.example.com/shop/web@{DIGEST}"}, lambda o: container(o)["image"].endswith(DIGEST)),
        ({"image": "registry.example.com:5000/team/web:1.4.2"}, lambda o: container(o)["image"].endswith(":1.4.2")),
        ({"container_port": 3000},
         lambda o: container(o)["ports"][0]["containerPort"] == 3000
         and policies(o)["allow-from-gateway"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 3000}]),
        ({"health_path": "/healthz"}, lambda o: container(o)["livenessProbe"]["httpGet"]["path"] == "/healthz"),
        ({"replicas": 3}, lambda o: o["Deployment", "shop"]["spec"]["replicas"] == 3),
        ({"cpu_request": "0.25", "cpu_limit": "1", "memory_request": "1Gi", "memory_limit": "1Gi"},
         lambda o: container(o)["resources"] == {"requests": {"cpu": "0.25", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}),
        ({"hostnames": "shop.prod.acme.example.com, www.prod.acme.example.com"},
         lambda o: o["HTTPRoute", "shop"]["spec"]["hostnames"] == ["shop.prod.acme.example.com", "www.prod.acme.example.com"]),
        ({"app_domain": "apps.example.org"},
         lambda o: o["HTTPRoute", "shop"]["spec"]["hostnames"] == ["shop.apps.example.org"]),
        ({"path_prefix": "/shop"},
         lambda o: o["HTTPRoute", "shop"]["spec"]["rules"][0]["matches"][0]["path"] == {"type": "PathPrefix", "value": "/shop"}),
        ({"route_gateway_name": "edge", "route_gateway_namespace": "ingress", "route_section_name": "websecure"},
         lambda o: o["HTTPRoute", "shop"]["spec"]["parentRefs"][0] | {"group": None, "kind": None}
         == {"group": None, "kind": None, "name": "edge", "namespace": "ingress", "sectionName": "websecure"}),
        ({"gateway_proxy_namespace": "gateway-system"},
         lambda o: policies(o)["allow-from-gateway"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
         == {"kubernetes.io/metadata.name": "gateway-system"}),
        ({"extra_egress": "10.20.0.0/16:5432, 0.0.0.0/0:443"},
         lambda o: policies(o)["allow-extra-egress"]["egress"] == [
             {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 5432}]},
             {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]},
         ]),
    ],
    ids=lambda value: ",".join(value) if isinstance(value, dict) else "",
)
def test_option_renders_and_validates(render_app, assert_check_passes, answers, expect):
    repo = render_app(**answers)
    assert_check_passes(repo)
    assert expect(built(repo))


def test_app_repo_url_and_branch_are_recorded_for_onboarding(render_app):
    repo = render_app(app_repo_url="ssh://git@git.acme.example.com:2222/team/shop.git", app_repo_branch="release/prod")
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert (answers["app_repo_url"], answers["app_repo_branch"]) == ("ssh://git@git.acme.example.com:2222/team/shop.git", "release/prod")
    readme = (repo / "README.md").read_text()
    assert "ssh://git@git.acme.example.com:2222/team/shop.git" in readme and "`release/prod`" in readme


# Secrets ----------------------------------------------------------------------------------------


def decrypt(repo: Path, key: x25519.Identity) -> dict:
    result = subprocess.run(
        [sops.require_sops(), "--decrypt", "secret.sops.yaml"], cwd=repo, capture_output=True, text=True,
        env={"SOPS_AGE_KEY": str(key), "PATH": "/usr/bin:/bin"}, check=False,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_secrets_are_encrypted_at_copy_for_the_recipients_and_validate(render_app, assert_check_passes):
    """Stand-alone, with the app's Flux key known (printed by the platform's onboarding): the
    Secret is encrypted for that key first, then the team's."""
    flux_key, team_key, other_team_key = (x25519.Identity.generate() for _ in range(3))
    repo = render_app(secret_keys="DATABASE_URL,API_TOKEN", flux_age_recipient=str(flux_key.to_public()),
                      secrets_age_recipients=f"{team_key.to_public()}, {other_team_key.to_public()}")
    text = (repo / "secret.sops.yaml").read_text()
    assert "CHANGE-ME" not in text and app_setup.unencrypted_values(text) == []
    sops_rules = yaml.safe_load((repo / ".sops.yaml").read_text())["creation_rules"]
    assert sops_rules[0]["age"] == f"{flux_key.to_public()},{team_key.to_public()},{other_team_key.to_public()}"
    assert "AGE-SECRET-KEY" not in (repo / ".sops.yaml").read_text() + text
    for key in (flux_key, team_key, other_team_key):
        secret = decrypt(repo, key)
        assert secret["stringData"] == {"DATABASE_URL": "CHANGE-ME", "API_TOKEN": "CHANGE-ME"}
    assert_check_passes(repo)
    objects = built(repo)
    assert {"secretRef": {"name": "shop-secrets"}} in container(objects)["envFrom"]
    assert "secret.sops.yaml" in yaml.safe_load((repo / "kustomization.yaml").read_text())["resources"]
    # Removing a recipient takes a new data key as well, as the check's findings say.
    readme = " ".join((repo / "README.md").read_text().split())
    assert ("`sops updatekeys -y secret.sops.yaml` (needs a private key); after removing one, "
            "`sops rotate -i secret.sops.yaml` too") in readme


def test_kustomize_labels_do_not_break_the_secret_mac(render_app, tmp_path):
    """Flux decrypts the built object, which carries the labels kustomize added after encryption."""
    key = x25519.Identity.generate()
    repo = render_app(secret_keys="TOKEN", secrets_age_recipients=str(key.to_public()))
    secret = built(repo)["Secret", "shop-secrets"]
    assert secret["metadata"]["labels"] == {"app.kubernetes.io/part-of": "shop"}
    (tmp_path / "secret.sops.yaml").write_text(yaml.safe_dump(secret))
    assert decrypt(tmp_path, key)["stringData"] == {"TOKEN": "CHANGE-ME"}


CLEAR_SECRET = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: shop-secrets\ntype: Opaque\n"
                "stringData:\n  TOKEN: CHANGE-ME\n")


def run_printed(command: str, repo: Path, **env: str) -> None:
    """Run a command as app_setup printed it, from the repository root (`sops` as installed here)."""
    stdin = env.pop("STDIN", None)
    result = subprocess.run(command.replace("sops ", f"{sops.require_sops()} ", 1), shell=True, cwd=repo,
                            capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin", **env},
                            input=stdin)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("team", [True, False], ids=["with-team-keys", "flux-key-only"])
def test_the_copy_says_how_the_team_puts_real_values_in_and_that_works(render_app, tmp_path, team):
    """The copy task's message names only what the team can run: `sops edit` with its own key
    when secrets_age_recipients holds one; with the app's Flux key only (no one on the team can
    open the file) the commands that replace the file whole, and how to add the team's keys."""
    flux_key, team_key = x25519.Identity.generate(), x25519.Identity.generate()
    recipients = str(team_key.to_public()) if team else ""
    repo = render_app(secret_keys="TOKEN", flux_age_recipient=str(flux_key.to_public()),
                      secrets_age_recipients=recipients)
    (repo / "secret.sops.yaml").write_text(CLEAR_SECRET)  # as rendered, before the copy task encrypts it
    result = subprocess.run([sys.executable, str(Path(app_setup.__file__)), f"--recipients={recipients}"], cwd=repo,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    commands = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
    if team:
        assert "and your team's key(s)" in result.stderr
        (edit,) = commands
        assert edit == "SOPS_AGE_KEY_FILE=<your key file> sops edit secret.sops.yaml"
        (tmp_path / "team.key").write_text(str(team_key))
        editor = tmp_path / "editor"
        editor.write_text("#!/bin/sh\nsed -i 's/CHANGE-ME/real-token/' \"$1\"\n")
        editor.chmod(0o755)
        run_printed(edit.replace("<your key file>", str(tmp_path / "team.key")), repo, EDITOR=str(editor))
    else:
        assert "sops edit" not in " ".join(commands) and "your team's key(s)" not in result.stderr
        assert "No key of your team can open it (secrets_age_recipients is empty)" in result.stderr
        encrypt, move, update = commands
        assert update == "copier update --trust --defaults --vcs-ref=:current: --data secrets_age_recipients=<age1…>"
        run_printed(encrypt, repo, STDIN=CLEAR_SECRET.replace("CHANGE-ME", "real-token"))
        run_printed(move, repo)
        assert not (repo / "secret.sops.yaml.new").exists()
    text = (repo / "secret.sops.yaml").read_text()
    assert "real-token" not in text and app_setup.unencrypted_values(text) == []
    assert decrypt(repo, flux_key)["stringData"] == {"TOKEN": "real-token"}


def test_unencrypted_values_spots_clear_files():
    assert app_setup.unencrypted_values("kind: Secret\nstringData:\n  A: x\n") == ["sops"]
    half = "kind: Secret\nstringData:\n  A: ENC[AES256_GCM,data:x]\n  B: clear\nsops:\n  mac: m\n"
    assert app_setup.unencrypted_values(half) == ["B"]


# Defaults from a platform repository ------------------------------------------------------------

PLATFORM = {"customer_name": "globex", "cluster_name": "stage", "gateway_name": "edge-gw",
            "gateway_namespace": "edge", "gateway_listener": "websecure"}


@pytest.fixture
def platform_checkout(rendered, template_snapshot) -> Path:
    """A rendered, committed platform repository, as onboarding (a copy task of the app template
    when platform_repo is given) needs it: a clean git tree, rendered from a template commit that
    exists (the snapshot), so that onboarding can re-render it with `copier update`. Rendered once
    per session (conftest `rendered`): each test changes its own copy."""
    return rendered(template="platform", template_dir=template_snapshot, commit=True, **PLATFORM)


def assert_follows_platform(repo: Path, platform: Path) -> None:
    platform_answers = yaml.safe_load((platform / ".copier-answers.yml").read_text())
    objects = built(repo)
    route = objects["HTTPRoute", "shop"]["spec"]
    assert route["parentRefs"][0] | {"group": None, "kind": None} == {
        "group": None, "kind": None, "name": "edge-gw", "namespace": "edge", "sectionName": "websecure"}
    assert route["hostnames"] == ["shop.stage.globex.example.com"]
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["app_domain"] == platform_answers["cluster_domain"] == "stage.globex.example.com"
    assert answers["app_repo_url"] == "ssh://git@github.com/globex/shop"
    # The platform's Gateway really has that listener, for that domain.
    gateway = next(
        doc for path in platform.rglob("gateway.yaml") for doc in load_all(path) if doc["kind"] == "Gateway")
    assert gateway["metadata"] == {"name": "edge-gw", "namespace": "edge"}
    listener = next(item for item in gateway["spec"]["listeners"] if item["name"] == "websecure")
    assert listener["hostname"] == "*.stage.globex.example.com"


def test_platform_repo_supplies_gateway_domain_and_git_host(render_app, platform_checkout, assert_check_passes):
    platform = platform_checkout
    repo = render_app(platform_repo=str(platform))
    assert_follows_platform(repo, platform)
    assert_check_passes(repo)


def test_relative_platform_repo_resolves_against_the_working_directory(copie, platform_checkout, monkeypatch):
    platform = platform_checkout
    monkeypatch.chdir(platform.parent)
    result = copie.copy(extra_answers={"template": "app", "app_name": "shop", "platform_repo": platform.name})
    assert result.exit_code == 0, result.exception
    assert_follows_platform(result.project_dir, platform)


def test_platform_repo_gives_the_secret_the_apps_own_key_not_the_platforms(render_app, platform_checkout):
    """Onboarding (a copy task) makes the app's age key and records it before the Secret is
    encrypted: .sops.yaml names it (and the team's key), never the platform's key."""
    platform = platform_checkout
    platform_key = yaml.safe_load((platform / ".copier-answers.yml").read_text())["sops_age_recipients"]
    team_key = str(x25519.Identity.generate().to_public())
    repo = render_app(platform_repo=str(platform), secret_keys="TOKEN", secrets_age_recipients=team_key)
    flux_key = yaml.safe_load((repo / ".copier-answers.yml").read_text())["flux_age_recipient"]
    assert flux_key.startswith("age1") and flux_key != platform_key
    assert yaml.safe_load((repo / ".sops.yaml").read_text())["creation_rules"][0]["age"] == f"{flux_key},{team_key}"
    encrypted = yaml.safe_load((repo / "secret.sops.yaml").read_text())
    assert sorted(item["recipient"] for item in encrypted["sops"]["age"]) == sorted([flux_key, team_key])
    assert app_setup.unencrypted_values((repo / "secret.sops.yaml").read_text()) == []
    assert app_setup.FLUX_RECIPIENT_PLACEHOLDER not in "".join(p.read_text() for p in repo.rglob("*") if p.is_file())


def test_answers_given_explicitly_win_over_the_platform(render_app, platform_checkout):
    platform = platform_checkout
    repo = render_app(platform_repo=str(platform), route_section_name="https-alt", hostnames="api.stage.globex.example.com")
    route = built(repo)["HTTPRoute", "shop"]["spec"]
    assert route["parentRefs"][0]["sectionName"] == "https-alt"
    assert route["hostnames"] == ["api.stage.globex.example.com"]


# Updates ----------------------------------------------------------------------------------------


def test_update_changes_answers_and_keeps_the_encrypted_secret(template_snapshot, tmp_path):
    """`copier update --data …` re-renders from the recorded answers (no platform_repo needed) and
    never overwrites secret.sops.yaml (skip-if-exists), whose values the team owns."""
    repo = tmp_path / "shop"
    key = str(x25519.Identity.generate().to_public())
    copier.run_copy(str(template_snapshot), repo, data={"template": "app", "app_name": "shop", "secret_keys": "TOKEN",
                    "secrets_age_recipients": key}, defaults=True, unsafe=True, quiet=True)
    commit_all(repo)
    secret = (repo / "secret.sops.yaml").read_text()
    copier.run_update(repo, data={"replicas": 3}, defaults=True, unsafe=True, overwrite=True, quiet=True)
    assert built(repo)["Deployment", "shop"]["spec"]["replicas"] == 3
    assert (repo / "secret.sops.yaml").read_text() == secret
    assert yaml.safe_load((repo / ".copier-answers.yml").read_text())["replicas"] == 3
