"""App template: every bad answer is refused with a message naming the field and the rule, and no
destination is left behind."""

from __future__ import annotations

import json
from pathlib import Path

import copier
import jinja2
import pytest

from conftest import ROOT
from hooks import apps
from messages import check_any_refusal

GOOD_KEY = "age16x2cw6zzszw4s9nlv6esudny0p9qr7v9hn50rymcl3398tmnfesqeydvdv"
OTHER_HOST_KEYS = "[git.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
# Same form as an age key, last character changed: the bech32 checksum no longer matches.
BAD_CHECKSUM_KEY = GOOD_KEY[:-1] + ("q" if GOOD_KEY[-1] != "q" else "p")

BAD_ANSWERS = [
    ({"app_name": "Shop"}, "app_name", "DNS-1123 label"),
    ({"app_name": "shop..web"}, "app_name", "DNS-1123 label"),
    ({"app_name": "a" * 64}, "app_name", "at most 63 characters"),
    ({"app_name": "1shop"}, "app_name", "starting with a letter"),
    # Names onboarding refuses (the platform's reserved names): a host a platform service serves
    # (keycloak's auth.<domain>), one of its Flux objects, the platform's Gateway namespace.
    ({"app_name": "auth"}, "app_name", "refuses 'auth': it is reserved by the platform"),
    ({"app_name": "keycloak-operator"}, "app_name", "refuses 'keycloak-operator'"),
    ({"app_name": "gateway-system"}, "app_name", "refuses 'gateway-system'"),
    ({"app_name": "io"}, "app_name", "refuses 'io'"),  # Service docker of namespace io would answer docker.io
    ({"app_name": "aws"}, "app_name", "refuses 'aws'"),  # Service ecr of namespace aws would answer public.ecr.aws
    ({"image": "nginx"}, "image", "must carry a tag or a digest"),
    ({"image": "harbor.example.com:5000/shop/web"}, "image", "must carry a tag or a digest"),
    ({"image": "nginx:latest"}, "image", "the tag 'latest' is refused"),
    ({"image": "harbor.example.com/shop/web:latest"}, "image", "the tag 'latest' is refused"),
    ({"image": "Harbor.example.com/Shop/web:1.0"}, "image", "lowercase"),
    ({"image": "web:1.0 --privileged"}, "image", "image reference"),
    ({"container_port": 0}, "container_port", "between 1 and 65535"),
    ({"container_port": 70000}, "container_port", "between 1 and 65535"),
    ({"replicas": 0}, "replicas", "between 1 and 100"),
    ({"hostnames": "Shop.prod.acme.example.com"}, "hostnames", "lowercase DNS names"),
    ({"hostnames": "*.prod.acme.example.com"}, "hostnames", "no wildcard"),
    ({"hostnames": "https://shop.prod.acme.example.com"}, "hostnames", "no wildcard, scheme, port or path"),
    ({"hostnames": "shop_web.prod.acme.example.com"}, "hostnames", "RFC 1123"),
    ({"hostnames": "shop.other.example.org"}, "hostnames", "must lie under app_domain"),
    ({"hostnames": ","}, "hostnames", "between 1 and 16"),
    ({"app_domain": "localhost"}, "app_domain", "at least two labels"),
    ({"path_prefix": "shop"}, "path_prefix", "absolute URL path"),
    ({"path_prefix": "/shop/../admin"}, "path_prefix", "no '.' or '..' segments"),
    ({"health_path": "healthz"}, "health_path", "absolute URL path"),
    ({"cpu_request": "100 m"}, "cpu_request", "positive CPU quantity"),
    ({"cpu_limit": "50m"}, "cpu_limit", "at least cpu_request"),
    ({"memory_request": "128MB"}, "memory_request", "positive memory quantity"),
    ({"memory_limit": "64Mi"}, "memory_limit", "at least memory_request"),
    # Zero in any spelling is no positive quantity; a request above the container maximum would
    # leave no cpu_limit/memory_limit that passes (at least the request, at most the maximum).
    ({"cpu_request": "0.00"}, "cpu_request", "positive CPU quantity"),
    ({"cpu_request": "00"}, "cpu_request", "positive CPU quantity"),
    ({"cpu_request": "0.000"}, "cpu_request", "positive CPU quantity"),
    ({"cpu_limit": "0.00"}, "cpu_limit", "positive CPU quantity"),
    ({"cpu_request": "64"}, "cpu_request", "refused by the platform's LimitRange (at most 2 CPU per"),
    ({"cpu_request": "2001m"}, "cpu_request", "cpu_limit must be at least cpu_request"),
    ({"memory_request": "512Gi"}, "memory_request", "refused by the platform's LimitRange (at most 4Gi"),
    # above what the platform's LimitRange admits per container
    ({"cpu_limit": "2500m"}, "cpu_limit", "refused by the platform's LimitRange (at most 2 CPU per"),
    ({"memory_limit": "5Gi"}, "memory_limit", "refused by the platform's LimitRange (at most 4Gi"),
    ({"app_repo_url": "https://github.com/acme/shop"}, "app_repo_url", "ssh://user@host[:port]/path"),
    ({"app_repo_url": "git@github.com:acme/shop.git"}, "app_repo_url", "scp-style"),
    ({"app_repo_url": "ssh://git:pw@github.com/acme/shop"}, "app_repo_url", "must not embed credentials"),
    ({"app_repo_branch": "main..dev"}, "app_repo_branch", "no '..'"),
    ({"app_repo_branch": "release."}, "app_repo_branch", "not ending in '/', '.' or '.lock'"),
    ({"app_repo_branch": 0o755}, "app_repo_branch", "arrived as 493"),  # a data file's unquoted 0755
    ({"app_repo_branch": 1.10}, "app_repo_branch", "arrived as 1.1"),
    ({"platform_check_url": "ssh://git@github.com/acme/gitops", "platform_check_branch": "production/"},
     "platform_check_branch", "not ending in '/', '.' or '.lock'"),
    ({"platform_check_url": "ssh://git@github.com/acme/gitops", "platform_check_branch": 1.10},
     "platform_check_branch", "arrived as 1.1"),
    # Empty is the platform's default branch; blank is no branch at all.
    ({"platform_check_url": "ssh://git@github.com/acme/gitops", "platform_check_branch": " "},
     "platform_check_branch", "must be empty (the repository's default branch) or a git"),
    ({"route_gateway_name": "Platform_Gateway"}, "route_gateway_name", "DNS-1123 label"),
    ({"route_gateway_namespace": "gateway.system"}, "route_gateway_namespace", "DNS-1123 label"),
    ({"route_section_name": "HTTPS"}, "route_section_name", "DNS-1123 label"),
    ({"gateway_proxy_namespace": ""}, "gateway_proxy_namespace", "DNS-1123 label"),
    # The NetworkPolicy admits every pod of gateway_proxy_namespace: never a system namespace.
    ({"gateway_proxy_namespace": "default"}, "gateway_proxy_namespace", "'default' is a Kubernetes or Flux namespace"),
    ({"gateway_proxy_namespace": "kube-system"}, "gateway_proxy_namespace", "'kube-system' is a Kubernetes or Flux"),
    ({"gateway_proxy_namespace": "kube-x"}, "gateway_proxy_namespace", "'kube-x' is a Kubernetes or Flux"),
    ({"route_gateway_namespace": "flux-system"}, "route_gateway_namespace", "'flux-system' is a Kubernetes or Flux"),
    ({"route_gateway_namespace": "default"}, "route_gateway_namespace", "'default' is a Kubernetes or Flux"),
    ({"extra_egress": "10.0.0.0/8"}, "extra_egress", "CIDR:PORT"),
    ({"extra_egress": "10.0.0.300/8:443"}, "extra_egress", "CIDR:PORT"),
    ({"extra_egress": "10.0.0.0/8:0"}, "extra_egress", "between 1 and 65535"),
    ({"secret_keys": "DB-URL"}, "secret_keys", "environment variable names"),
    ({"secret_keys": "TOKEN"}, "secrets_age_recipients", "required with secret_keys"),
    ({"secret_keys": "TOKEN", "secrets_age_recipients": "age1notakey"}, "secrets_age_recipients", "age public keys"),
    ({"secret_keys": "TOKEN", "flux_age_recipient": "age1notakey"}, "flux_age_recipient", "one age public key"),
    ({"secret_keys": "TOKEN", "flux_age_recipient": GOOD_KEY, "secrets_age_recipients": GOOD_KEY},
     "secrets_age_recipients", "must not repeat flux_age_recipient"),
    ({"app_repo_known_hosts": OTHER_HOST_KEYS}, "app_repo_known_hosts", "must be empty for github.com"),
    # Long inputs: the refused value never makes the first line longer (tests/messages.py).
    ({"app_name": "shop-" * 20}, "app_name", "at most 63 characters"),
    ({"image": "registry.example.com/" + "team/" * 30 + "web"}, "image", "must carry a tag or a digest"),
    ({"check_package_url": "file:///srv/templates"}, "check_package_url", "https://host/path"),
    ({"app_repo_url": "ssh://git@git.example.com:2222/acme/shop", "app_repo_known_hosts": "git.example.com ssh-ed25519\n"},
     "app_repo_known_hosts", "'<host> <key type> <base64 key>'"),
    ({"app_repo_url": "ssh://git@git.example.com:2222/acme/shop",
      "app_repo_known_hosts": OTHER_HOST_KEYS.replace("[git.example.com]:2222", "git.example.com")},
     "app_repo_known_hosts", "must have a line for [git.example.com]:2222"),
    ({"webhook_receiver": "gitea"}, "webhook_receiver", "gitea"),
    ({"platform_contact": " "}, "platform_contact", "non-empty"),
    # Environments: one per cluster, named after it.
    ({"environments": "prod,staging,prod"}, "environments", "names a cluster twice"),
    ({"environments": "prod,Staging"}, "environments", "named after its cluster"),
    ({"environments": ","}, "environments", "between 1 and 16"),
    ({"environments": "staging,prod", "environment_domains": "{prod: prod_acme.example.com}"},
     "environment_domains", "(got 'prod: prod_acme.example.com')"),
    ({"environments": "staging,prod", "environment_domains": "[prod.acme.example.com]"},
     "environment_domains", "maps environment names"),
    ({"environments": "staging,prod", "secret_keys": "TOKEN", "flux_age_recipient": GOOD_KEY},
     "flux_age_recipient", "one pair per"),
    # A pair per environment whose key is known (some may be missing), none for another cluster, none twice.
    ({"environments": "staging,prod", "secret_keys": "TOKEN", "flux_age_recipient": f"dev={GOOD_KEY}"},
     "flux_age_recipient", "staging=age1…,prod=age1…"),
    ({"environments": "staging,prod", "secret_keys": "TOKEN",
      "flux_age_recipient": f"prod={GOOD_KEY},prod={GOOD_KEY}"}, "flux_age_recipient", "each at most once"),
]


def test_app_name_refuses_the_names_onboarding_refuses():
    """The shared macro (includes/validators.jinja, used by the app_name and the platform's `apps`
    validators) lists exactly the names hooks/apps reserves for onboarding."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT),
                             extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"],
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    macro = env.from_string("{% from 'includes/validators.jinja' import reserved_app_names with context %}"
                            "{{ reserved_app_names(namespaces) }}")
    catalog, namespaces = apps.load_catalog(), ["gateway-system", "gateway-staging"]
    rendered = macro.render(catalog=catalog, reserved=apps.load_reserved(), namespaces=namespaces)
    assert set(json.loads(rendered)) == apps.reserved_names(catalog, namespaces)
    # A service's further namespaces too (OLM's global-operators namespace `operators`).
    assert {"olm", "operators"} <= set(json.loads(rendered))


def copy_app(dst: Path, **answers) -> None:
    copier.run_copy(
        str(ROOT), dst, data={"template": "app", "app_name": "shop", **answers}, defaults=True, unsafe=True,
        vcs_ref="HEAD", quiet=True,
    )


def assert_refused(dst: Path, answers: dict, field: str, rule: str) -> None:
    with pytest.raises(Exception) as error:  # noqa: PT011 - ValueError from validators, TaskError from tasks
        copy_app(dst, **answers)
    message = str(error.value)
    assert field in message and rule in message, message
    check_any_refusal(message)
    assert not dst.exists() or not any(dst.iterdir()), sorted(p.name for p in dst.iterdir())


@pytest.mark.parametrize(("answers", "field", "rule"), BAD_ANSWERS, ids=[f"{a}"[:70] for a, _, _ in BAD_ANSWERS])
def test_bad_answer_is_refused_and_nothing_is_written(tmp_path, answers, field, rule):
    assert_refused(tmp_path / "app", answers, field, rule)


def test_validators_accept_the_good_forms(tmp_path):
    """The other side of the table: the forms the rules must let through."""
    copy_app(
        tmp_path / "app",
        image="registry.example.com:5000/team/web-app:v1.2.3-rc.1@sha256:" + "0" * 64,
        hostnames="shop.prod.acme.example.com,api.shop.prod.acme.example.com",
        path_prefix="/shop/v1", cpu_request="0.5", cpu_limit="500m", memory_request="1Gi",
        memory_limit="1024Mi", extra_egress="0.0.0.0/0:443", secret_keys="TOKEN", secrets_age_recipients=GOOD_KEY,
        app_repo_url="ssh://git@git.example.com:2222/acme/shop", app_repo_known_hosts=f"# keyscan\n{OTHER_HOST_KEYS}",
        webhook_receiver="generic", app_repo_branch="1.10",  # quoted in a data file: text, as given
    )
    assert (tmp_path / "app" / "secret.sops.yaml").is_file()


@pytest.mark.parametrize(("answers", "limits"), [
    ({"cpu_request": "1"}, {"cpu": "1", "memory": "256Mi"}),
    ({"memory_request": "1Gi"}, {"cpu": "500m", "memory": "1Gi"}),
    ({"cpu_request": "250m", "memory_request": "64Mi"}, {"cpu": "500m", "memory": "256Mi"}),
    ({"cpu_request": "2", "memory_request": "4Gi"}, {"cpu": "2", "memory": "4Gi"}),  # the container maximum
])
def test_a_limit_defaults_to_at_least_its_request(tmp_path, answers, limits):
    """The default of a limit must pass its own validator: a larger request raises it (no crash)."""
    import yaml

    copy_app(tmp_path / "app", **answers)
    deployment = yaml.safe_load((tmp_path / "app" / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == limits


# platform_repo ----------------------------------------------------------------------------------


def write_files(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


NOT_PLATFORMS = [
    # (files of the directory given as platform_repo, None: it does not exist), expected rule
    (None, "must be a checkout of a platform repository"),
    ({"README.md": "not a platform\n"}, "has no .copier-answers.yml"),
    ({".copier-answers.yml": "_src_path: gh:pawamoy/copier-uv\nproject_name: x\n"}, "template 'none', expected 'platform'"),
    ({".copier-answers.yml": "- a list\n"}, "expected 'platform'"),
]


@pytest.mark.parametrize(("files", "rule"), NOT_PLATFORMS, ids=["missing", "no-answers", "foreign-answers", "not-a-mapping"])
def test_platform_repo_that_is_not_a_platform_repo_is_refused(tmp_path, files, rule):
    platform = tmp_path / "platform" if files is None else write_files(tmp_path / "platform", files)
    assert_refused(tmp_path / "app", {"platform_repo": str(platform)}, "platform_repo", rule)


def test_platform_repo_that_is_an_app_repo_is_refused(tmp_path):
    copy_app(tmp_path / "other-app")
    assert_refused(tmp_path / "app", {"platform_repo": str(tmp_path / "other-app")}, "platform_repo",
                   "says template 'app', expected 'platform'")


@pytest.mark.parametrize(("answers", "field", "rule"), [
    # The app's Flux key comes from onboarding: a key given by hand would not be the one Flux has.
    ({"secret_keys": "TOKEN", "flux_age_recipient": GOOD_KEY}, "flux_age_recipient", "recorded by onboarding"),
    # Registering needs the host keys of a Git server that publishes none this template knows.
    ({"app_repo_url": "ssh://git@git.example.com:2222/acme/shop"}, "app_repo_known_hosts", "is required for [git.example.com]:2222"),
], ids=["flux-key-by-hand", "no-known-hosts"])
def test_answers_that_onboarding_provides_or_needs_are_checked_with_platform_repo(tmp_path, render_platform, answers,
                                                                                  field, rule):
    assert_refused(tmp_path / "app", {"platform_repo": str(render_platform()), **answers}, field, rule)


def test_recipient_with_a_bad_checksum_fails_the_copy_and_leaves_no_clear_secret(tmp_path):
    """The form passes the validator; the task checks the checksum before encrypting, and Copier
    removes the half-made repository, Secret placeholder included."""
    assert_refused(tmp_path / "app", {"secret_keys": "TOKEN", "secrets_age_recipients": BAD_CHECKSUM_KEY},
                   "app_setup.py", "returned non-zero exit status 2")
