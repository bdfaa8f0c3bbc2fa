"""Bad-input corpus (issue 8): one table across every entry point that takes input from people.

Entry points: the platform and app templates (copier.run_copy from a committed snapshot, as
`copier copy` runs them; the app template with platform_repo also runs onboarding as its copy
task), `python -m hooks.onboard`, `python -m hooks.offboard` (their run_main wrapper, i.e. exit
status and stderr exactly as from the shell) and `python -m hooks.check` (its main()).

Every case runs in a copy of one workspace (a platform repository with app `shop` registered, and
shop's app repository) and must: exit non-zero, name the field and the rule in its output, and
leave the whole workspace byte-identical (every file and mode, untracked and ignored files, and
each repository's HEAD, refs, config and index). A case that prepares a bad state gets a fresh
copy; the others share one copy per test process, passed on from case to case as long as each
leaves it as it was (Lender: copying the workspace costs more than most cases). The platform
template's cases read nothing of the workspace: they run in an empty folder, which they must leave
empty (no new-platform).

Inputs that are not answers map to where they can occur: a branch and a tag together, an interval
like `5 minutes`, an unquoted tag read as a number, a wildcard hostname and an out-of-range port
in a hand-edited manifest are refused by the check; unquoted numbers in data files by the answers'
validators.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import commit_all, git
from hooks import check, offboard, onboard
from hooks.errors import run_main
from messages import check_any_refusal
from reliability import OVERLAY, SOURCES, SHOP, copy_template, copy_workspace, differences, tree_state

# A well-formed age public key whose private half was discarded, and the same key with a broken checksum.
GOOD_KEY = "age16x2cw6zzszw4s9nlv6esudny0p9qr7v9hn50rymcl3398tmnfesqeydvdv"
BAD_CHECKSUM_KEY = GOOD_KEY[:-1] + "q"
CART = "ssh://git@github.com/acme/cart"
FULL_ENTRY = {"name": "cart", "url": CART, "branch": "main", "secrets": False, "receiver": "", "known_hosts": ""}


@dataclass(frozen=True)
class Case:
    id: str
    entry: str  # platform | app | onboard | offboard | check
    args: Callable[[Path], object]  # ws -> answers (templates) or argv (commands)
    field: str
    rule: str
    prepare: Callable[[Path], None] | None = None  # the bad state itself (before the snapshot)


def platform(**answers) -> Callable[[Path], dict]:
    return lambda ws: answers


def app(**answers) -> Callable[[Path], dict]:
    """App answers; platform_repo is the workspace's platform repository unless given."""
    return lambda ws: {"platform_repo": str(ws / "platform"), "app_name": "cart",
                       **{k: v(ws) if callable(v) else v for k, v in answers.items()}}


def onboard_args(*extra: str, name: str = "cart", url: str = CART, where: str = "platform") -> Callable[[Path], list[str]]:
    return lambda ws: ["--platform", str(ws / where), "--name", name, "--url", url,
                       *[arg.replace("{ws}", str(ws)) for arg in extra]]


def offboard_args(name: str = "shop", where: str = "platform") -> Callable[[Path], list[str]]:
    return lambda ws: ["--platform", str(ws / where), "--name", name]


def check_args(where: str) -> Callable[[Path], list[str]]:
    return lambda ws: [str(ws / where)]


# Bad states of a repository --------------------------------------------------------------------


def dirty(ws: Path) -> None:
    (ws / "platform" / "notes.txt").write_text("work in progress, not committed\n")
    readme = ws / "platform" / "README.md"
    readme.write_text(readme.read_text() + "\nlocal edit\n")


def committed_answers(edit: Callable[[str], str]) -> Callable[[Path], None]:
    """A hand edit of the platform's answers file, committed (so the repository is clean)."""

    def prepare(ws: Path) -> None:
        answers = ws / "platform" / ".copier-answers.yml"
        answers.write_text(edit(answers.read_text()))
        commit_all(ws / "platform", "hand edit")

    return prepare


def answers_edit(change: Callable[[dict], dict]) -> Callable[[Path], None]:
    return committed_answers(lambda text: yaml.safe_dump(change(yaml.safe_load(text)), sort_keys=False))


def edit(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def prepare(ws: Path) -> None:
        path = ws / rel
        text = path.read_text()
        assert old in text, f"{rel} no longer contains {old!r}"
        path.write_text(text.replace(old, new, 1))

    return prepare


def builtin_secret_generator(config: str, inline: bool = False) -> Callable[[Path], None]:
    """A builtin SecretGenerator config listed under `generators:` of the app's kustomization: in
    its own file (secret-generator.yaml), or inline."""
    inlined = "\n  - |\n" + "".join(f"    {line}\n" for line in config.splitlines())
    listed = inlined if inline else " [secret-generator.yaml]\n"

    def prepare(ws: Path) -> None:
        if not inline:
            (ws / "app/secret-generator.yaml").write_text(config)
        edit("app/kustomization.yaml", "configMapGenerator:", f"generators:{listed}configMapGenerator:")(ws)

    return prepare


def apps_entry(**overrides) -> dict:
    return {**FULL_ENTRY, **overrides}


CORRUPT = lambda text: text + "apps: [unclosed\n"  # noqa: E731
BASE_SOURCE = f"platform/{SOURCES}/opencenter-kyverno.yaml"
TOO_LONG = "c" * 64

CASES = [
    # Platform template: answers (validators) and the copy task.
    Case("platform-uppercase-name", "platform", platform(customer_name="Acme"), "customer_name", "DNS-1123 label"),
    Case("platform-underscore-name", "platform", platform(cluster_name="prod_eu"), "cluster_name", "DNS-1123 label"),
    Case("platform-64-chars", "platform", platform(cluster_name=TOO_LONG), "cluster_name", "at most 63 characters"),
    Case("platform-http-url", "platform", platform(platform_repo_url="http://github.com/acme/acme-gitops"),
         "platform_repo_url", "http:// and scp-style git@host:path are refused"),
    Case("platform-url-credentials", "platform", platform(gitops_base_url="https://bot:t0ken@github.com/o/base"),
         "gitops_base_url", "must not embed credentials"),
    Case("platform-malformed-url", "platform", platform(platform_repo_url="ssh://git@github.com:acme/acme-gitops"),
         "platform_repo_url", "ssh://user@host/path or https://host/path"),
    Case("platform-tag-read-as-number", "platform", platform(gitops_base_tag=yaml.safe_load("2026.10")),
         "gitops_base_tag", "two-digit month"),
    Case("platform-flux-version-form", "platform", platform(flux_version="latest"), "flux_version", "X.Y.Z"),
    Case("platform-age-key-checksum", "platform", platform(sops_age_recipients=BAD_CHECKSUM_KEY),
         "sops_age_recipients", "is not a valid age public key"),
    Case("platform-wildcard-domain", "platform", platform(cluster_domain="prod.*.example.com"), "cluster_domain", "no wildcard"),
    Case("platform-port-out-of-range", "platform", platform(gateway_listener_port=65536), "gateway_listener_port", "between 1 and 65535"),
    Case("platform-apps-not-a-list", "platform", platform(apps=FULL_ENTRY), "apps", "must be a YAML list"),
    Case("platform-apps-duplicate", "platform", platform(apps=[apps_entry(), apps_entry()]), "apps[cart].name", "registered twice"),
    Case("platform-apps-system-namespace", "platform", platform(apps=[apps_entry(name="kube-system")]),
         "apps[kube-system].name", "reserved by the platform"),
    Case("platform-apps-branch-read-as-number", "platform", platform(apps=[apps_entry(branch=yaml.safe_load("1.10"))]),
         "apps[cart].branch", "must be a git branch name"),
    Case("platform-apps-url-credentials", "platform", platform(apps=[apps_entry(url="ssh://git:pw@github.com/acme/cart")]),
         "apps[cart].url", "must be ssh://user@host[:port]/path"),
    Case("platform-apps-interval-key", "platform", platform(apps=[{**apps_entry(), "interval": "5 minutes"}]),
         "apps[0]", "must be a mapping with exactly the keys"),
    Case("platform-gateway-in-kube-system", "platform", platform(gateway_namespace="kube-system"), "gateway_namespace",
         "is a Kubernetes or Flux namespace"),
    Case("platform-gateway-in-flux-system", "platform", platform(gateway_namespace="flux-system"), "gateway_namespace",
         "is a Kubernetes or Flux namespace"),
    Case("platform-gateway-in-default", "platform", platform(gateway_namespace="default"), "gateway_namespace",
         "is a Kubernetes or Flux namespace"),
    Case("platform-gateway-in-service-namespace", "platform", platform(gateway_namespace="kyverno"), "gateway_namespace",
         "is a platform service's namespace"),
    Case("platform-gitops-tag-latest", "platform", platform(gitops_base_tag="latest"), "gitops_base_tag", "a moving ref"),
    Case("platform-gitops-tag-main", "platform", platform(gitops_base_tag="main"), "gitops_base_tag", "a moving ref"),
    Case("platform-apps-tenant-prefix", "platform", platform(apps=[apps_entry(name="tenant-cart")]),
         "apps[tenant-cart].name", "reserved by the platform"),
    Case("platform-apps-hostname-taken", "platform",
         platform(apps=[apps_entry(name="shop", url="ssh://git@github.com/acme/shop"),
                        apps_entry(hostnames=["shop.prod.acme.example.com"])]),
         "apps[cart].hostnames", "is also served by app shop"),
    Case("platform-apps-hostname-elsewhere", "platform", platform(apps=[apps_entry(hostnames=["cart.example.org"])]),
         "apps[cart].hostnames", "is not under prod.acme.example.com"),
    Case("platform-apps-egress-not-cidr", "platform", platform(apps=[apps_entry(egress=["10.0.0.0/33x"])]),
         "apps[cart].egress", "must be a list of CIDRs"),
    Case("platform-apps-quota-number", "platform", platform(apps=[apps_entry(quota={"pods": 40})]),
         "apps[cart].quota", "quantities as strings"),
    # App template: answers, platform_repo, and onboarding as its copy task.
    Case("app-uppercase-name", "app", app(app_name="Cart"), "app_name", "DNS-1123 label"),
    Case("app-double-dot-name", "app", app(app_name="cart..web"), "app_name", "DNS-1123 label"),
    Case("app-platform-namespace", "app", app(app_name="flux-system"), "app_name", "is reserved"),
    Case("app-standalone-system-namespace", "app", app(platform_repo="", app_name="kube-public"), "app_name", "is reserved"),
    Case("app-tenant-prefix", "app", app(platform_repo="", app_name="tenant-shop"), "app_name", "kube-/tenant- prefix"),
    Case("app-hostname-of-another-app", "app", app(hostnames="cart.prod.acme.example.com,shop.prod.acme.example.com"),
         "apps[cart].hostnames", "is also served by app shop"),
    Case("app-platform-check-url-credentials", "app", app(platform_check_url="https://me:pw@github.com/acme/acme-gitops"),
         "platform_check_url", "must not embed credentials"),
    Case("app-duplicate", "app", app(app_name="shop"), "apps[shop]", "already registered with other settings"),
    Case("app-image-untagged", "app", app(image="nginx"), "image", "must carry a tag or a digest"),
    Case("app-image-latest", "app", app(image="docker.io/nginx:latest"), "image", "the tag 'latest' is refused"),
    Case("app-port-out-of-range", "app", app(container_port=0), "container_port", "between 1 and 65535"),
    Case("app-wildcard-hostname", "app", app(hostnames="cart.*.prod.acme.example.com"), "hostnames", "no wildcard"),
    Case("app-http-url", "app", app(app_repo_url="http://github.com/acme/cart"), "app_repo_url", "https:// and scp-style"),
    Case("app-url-credentials", "app", app(app_repo_url="ssh://git:pw@github.com/acme/cart"), "app_repo_url",
         "must not embed credentials"),
    Case("app-age-key-checksum", "app", app(platform_repo="", secret_keys="TOKEN", secrets_age_recipients=BAD_CHECKSUM_KEY),
         "secrets_age_recipients", "is not a valid age public key"),
    Case("app-platform-repo-missing", "app", app(platform_repo=lambda ws: str(ws / "nowhere")), "platform_repo",
         "must be a checkout of a platform repository"),
    Case("app-platform-repo-not-platform", "app", app(platform_repo=lambda ws: str(ws / "app")), "platform_repo",
         "expected 'platform'"),
    Case("app-platform-repo-dirty", "app", app(), "platform", "has uncommitted changes", dirty),
    Case("app-platform-repo-corrupt-answers", "app", app(), ".copier-answers.yml", "while parsing a flow sequence",
         committed_answers(CORRUPT)),
    # Onboarding from the platform side.
    Case("onboard-underscore-name", "onboard", onboard_args(name="cart_web"), "apps[cart_web].name", "DNS-1123 label"),
    Case("onboard-leading-digit", "onboard", onboard_args(name="9cart"), "apps[9cart].name", "starting with a letter"),
    Case("onboard-64-chars", "onboard", onboard_args(name=TOO_LONG), "name", "at most 63 characters"),
    Case("onboard-platform-namespace", "onboard", onboard_args(name="kube-system"), "apps[kube-system].name", "reserved"),
    Case("onboard-duplicate", "onboard", onboard_args("--branch", "prod", name="shop", url=SHOP["url"]),
         "apps[shop]", "--update"),
    Case("onboard-http-url", "onboard", onboard_args(url="http://github.com/acme/cart"), "apps[cart].url", "must be ssh://"),
    Case("onboard-url-credentials", "onboard", onboard_args(url="ssh://git:pw@github.com/acme/cart"), "apps[cart].url",
         "must be ssh://user@host[:port]/path"),
    Case("onboard-scp-url", "onboard", onboard_args(url="git@github.com:acme/cart.git"), "apps[cart].url", "scp-style"),
    Case("onboard-port-out-of-range", "onboard", onboard_args(url="ssh://git@git.example.com:99999/acme/cart"),
         "apps[cart].url", "port must be between 1 and 65535"),
    Case("onboard-branch-double-dot", "onboard", onboard_args("--branch", "release/..x"), "apps[cart].branch", "no '..'"),
    Case("onboard-receiver-type", "onboard", onboard_args("--receiver", "gitea"), "apps[cart].receiver", "must be empty or one of"),
    Case("onboard-unknown-host", "onboard", onboard_args(url="ssh://git@git.example.com/acme/cart"), "apps[cart].known_hosts",
         "Trust on first use is never applied"),
    Case("onboard-tenant-prefix", "onboard", onboard_args(name="tenant-cart"), "apps[tenant-cart].name", "reserved"),
    Case("onboard-hostname-taken", "onboard", onboard_args("--hostname", "shop.prod.acme.example.com"),
         "apps[cart].hostnames", "is also served by app shop"),
    Case("onboard-platform-service-host", "onboard",
         onboard_args("--update", "--hostname", "auth.prod.acme.example.com", name="shop", url=SHOP["url"]),
         "apps[shop].hostnames", "is also served by platform service keycloak",
         answers_edit(lambda answers: {**answers, "flux_allow_remote_bases": True, "platform_services": [
             *answers["platform_services"], "keycloak", "postgres-operator", "olm", "rbac-manager"]})),
    Case("onboard-quota-form", "onboard", onboard_args("--quota", "pods"), "quota", "RESOURCE=QUANTITY"),
    Case("onboard-quota-quantity", "onboard", onboard_args("--quota", "pods=lots"), "apps[cart].quota", "a quantity"),
    Case("onboard-egress-host-bits", "onboard", onboard_args("--egress", "10.0.0.1/16"), "apps[cart].egress", "canonical form"),
    Case("onboard-known-hosts-file-missing", "onboard", onboard_args("--known-hosts-file", "{ws}/missing"), "known_hosts",
         "cannot read"),
    Case("onboard-app-repo-missing", "onboard", onboard_args("--app-repo", "{ws}/missing"), "app repository", "is not a directory"),
    Case("onboard-platform-missing", "onboard", onboard_args(where="missing"), "platform", "is not a directory"),
    Case("onboard-not-a-platform-repo", "onboard", onboard_args(where="app"), ".copier-answers.yml", "not a platform repository"),
    Case("onboard-platform-dirty", "onboard", onboard_args(), "platform", "has uncommitted changes", dirty),
    Case("onboard-corrupt-answers", "onboard", onboard_args(), ".copier-answers.yml", "is not valid YAML",
         committed_answers(CORRUPT)),
    Case("onboard-answers-apps-not-a-list", "onboard", onboard_args(), "apps", "must be a YAML list",
         answers_edit(lambda answers: {**answers, "apps": answers["apps"][0]})),
    Case("onboard-answers-without-commit", "onboard", onboard_args(), ".copier-answers.yml", "has no _commit",
         answers_edit(lambda answers: {key: value for key, value in answers.items() if key != "_commit"})),
    # Offboarding.
    Case("offboard-unknown-app", "offboard", offboard_args(name="cart"), "name", "is not a registered app"),
    Case("offboard-platform-dirty", "offboard", offboard_args(), "platform", "has uncommitted changes", dirty),
    Case("offboard-platform-missing", "offboard", offboard_args(where="missing"), "platform", "is not a directory"),
    Case("offboard-corrupt-answers", "offboard", offboard_args(), ".copier-answers.yml", "is not valid YAML",
         committed_answers(CORRUPT)),
    Case("offboard-duplicate-in-answers", "offboard", offboard_args(), "apps[shop].name", "registered twice",
         answers_edit(lambda answers: {**answers, "apps": answers["apps"] * 2})),
    Case("offboard-review-branch-exists", "offboard", lambda ws: [*offboard_args()(ws), "--review-branch"],
         "review branch", "already exists", lambda ws: git("branch", "offboard/shop", cwd=ws / "platform")),
    # The check, on hand-edited repositories.
    Case("check-branch-and-tag", "check", check_args("platform"), "[flux-git-ref]", "sets branch and tag together",
         edit(BASE_SOURCE, "    tag: ", "    branch: main\n    tag: ")),
    Case("check-interval-in-words", "check", check_args("platform"), "spec.interval", "does not match",
         edit(BASE_SOURCE, "interval: 15m", "interval: 5 minutes")),
    Case("check-tag-read-as-number", "check", check_args("platform"), "spec.ref.tag", "is not of type 'string'",
         edit(BASE_SOURCE, 'tag: "2026.01"', "tag: 2026.10")),
    Case("check-port-out-of-range", "check", check_args("platform"), "spec.listeners.1.port", "65536 is greater than",
         edit(f"platform/{OVERLAY}/services/gateway/gateway.yaml", "port: 443", "port: 65536")),
    Case("check-app-wildcard-hostname", "check", check_args("app"), "spec.hostnames.0", "does not match",
         edit("app/httproute.yaml", "- shop.prod.acme.example.com", "- shop.*.acme.example.com")),
    Case("check-not-rendered", "check", check_args("app/docs"), "docs", "has no .copier-answers.yml"),
    Case("check-secret-generator-literal", "check", check_args("app"), "[secret-unencrypted]",
         "literal DB_PASSWORD is a Secret value in clear text",
         edit("app/kustomization.yaml", "configMapGenerator:", "secretGenerator:\n  - name: db\n    literals:\n"
              "      - DB_PASSWORD=hunter2\nconfigMapGenerator:")),
    Case("check-secret-generator-env-file", "check", check_args("app"), "[secret-unencrypted]", "reads APP_NAME, LOG_LEVEL from this file in clear text",
         edit("app/kustomization.yaml", "configMapGenerator:", "secretGenerator:\n  - name: api\n    envs:\n"
              "      - config.env\nconfigMapGenerator:")),
    Case("check-secret-generator-legacy-env-field", "check", check_args("app"), "[secret-unencrypted]",
         "reads APP_NAME, LOG_LEVEL from this file in clear text",
         edit("app/kustomization.yaml", "configMapGenerator:", "secretGenerator:\n  - name: api\n    env: config.env\n"
              "configMapGenerator:")),
    Case("check-secret-generator-app-file", "check", check_args("app"), "[secret-unencrypted]",
         "reads Secret key settings from this file in clear text",  # an app's Secret data is encrypted, whatever its key
         edit("app/kustomization.yaml", "configMapGenerator:", "secretGenerator:\n  - name: db\n    files:\n"
              "      - settings=config.env\nconfigMapGenerator:")),
    Case("check-secret-generator-credential-file", "check", check_args("app"), "[secret-unencrypted]",
         "reads Secret key db-password from this file in clear text",
         edit("app/kustomization.yaml", "configMapGenerator:", "secretGenerator:\n  - name: db\n    files:\n"
              "      - db-password=config.env\nconfigMapGenerator:")),
    # The same rule for a builtin SecretGenerator under `generators:` (a file or inline config).
    Case("check-builtin-secret-generator-literal", "check", check_args("app"), "[secret-unencrypted]",
         "literal DB_PASSWORD is a Secret value in clear text",
         builtin_secret_generator("apiVersion: builtin\nkind: SecretGenerator\nmetadata:\n  name: db\n"
                                  "literals:\n  - DB_PASSWORD=hunter2\n")),
    Case("check-builtin-secret-generator-inline-env-file", "check", check_args("app"), "[secret-unencrypted]",
         "reads APP_NAME, LOG_LEVEL from this file in clear text",
         builtin_secret_generator("apiVersion: builtin\nkind: SecretGenerator\nmetadata:\n  name: api\n"
                                  "envs:\n  - config.env\n", inline=True)),
    Case("check-builtin-secret-generator-file", "check", check_args("app"), "[secret-unencrypted]",
         "reads Secret key db-password from this file in clear text",
         builtin_secret_generator("apiVersion: builtin\nkind: SecretGenerator\nname: db\n"
                                  "files:\n  - db-password=config.env\n")),
    Case("check-tenant-claims-another-host", "check", lambda ws: [str(ws / "app"), "--platform", str(ws / "platform")],
         "[denied] HTTPRoute/shop", "opencenter-tenant-routes: hostnames must be shop.prod.acme.example.com",
         edit("app/httproute.yaml", "- shop.prod.acme.example.com", "- billing.prod.acme.example.com")),
    Case("check-tenant-load-balancer", "check", lambda ws: [str(ws / "app"), "--platform", str(ws / "platform")],
         "[denied] Service/shop", "opencenter-tenant-services: tenant Services are ClusterIP only",
         edit("app/service.yaml", "type: ClusterIP", "type: LoadBalancer")),
    Case("check-platform-not-there", "check", lambda ws: [str(ws / "app"), "--platform", str(ws / "nowhere")],
         "--platform", "is neither a directory nor a git URL"),
    # --platform-branch picks the branch a platform URL is cloned at: nothing to clone without a
    # URL, and a folder is checked as checked out.
    Case("check-platform-branch-without-platform", "check", lambda ws: [str(ws / "app"), "--platform-branch", "main"],
         "--platform-branch", "give --platform URL too"),
    Case("check-platform-branch-of-a-folder", "check",
         lambda ws: [str(ws / "app"), "--platform", str(ws / "platform"), "--platform-branch", "main"],
         "--platform-branch", "is only for a --platform git URL"),
    Case("check-platform-branch-not-a-branch", "check",
         lambda ws: [str(ws / "app"), "--platform", (ws / "platform").as_uri() + ".git", "--platform-branch", "main..dev"],
         "--platform-branch", "must be a git branch name"),
    Case("check-corrupt-answers", "check", check_args("platform"), ".copier-answers.yml", "is not valid YAML",
         committed_answers(CORRUPT)),
]


def run_entry(case: Case, ws: Path, template: Path) -> tuple[int, str]:
    """Run the case's entry point; (exit status, message) where an exception counts as status 1."""
    args = case.args(ws)
    try:
        if case.entry in ("platform", "app"):
            copy_template(template, ws / f"new-{case.entry}", template=case.entry, **args)
            return 0, ""
        if case.entry == "check":
            return check.main(args), ""
        run_main(onboard.main if case.entry == "onboard" else offboard.main, args)
    except SystemExit as done:
        return int(done.code or 0), ""
    except Exception as error:  # noqa: BLE001 - Copier's refusals are ValueError, TaskError, YAML errors...
        return 1, f"{type(error).__name__}: {error}"
    return 0, ""


class Lender:
    """One copy of the workspace, lent to one case after another: a case gives it back only when
    it found it as it was (its tree_state), else the next case gets a fresh copy."""

    def __init__(self, workspace: Path, folder: Path) -> None:
        self._workspace, self._folder, self._copies = workspace, folder, 0
        self._unchanged: tuple[Path, dict] | None = None

    def borrow(self) -> tuple[Path, dict]:
        """The copy and its tree_state (which is the workspace's own)."""
        if self._unchanged is None:
            self._copies += 1
            ws = copy_workspace(self._workspace, self._folder / f"ws{self._copies}")
            self._unchanged = ws, tree_state(ws)
        lent, self._unchanged = self._unchanged, None
        return lent

    def give_back(self, ws: Path, state: dict, now: dict) -> None:
        if now == state:
            self._unchanged = ws, state


@pytest.fixture(scope="module")
def lender(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Lender:
    return Lender(workspace, tmp_path_factory.mktemp("lent"))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_by_name_and_changes_nothing(case, workspace, lender, template_snapshot, tmp_path, capfd):
    if case.entry == "platform":
        (ws := tmp_path / "ws").mkdir()
        before = tree_state(ws)
    elif case.prepare:
        ws = copy_workspace(workspace, tmp_path / "ws")
        case.prepare(ws)
        before = tree_state(ws)
    else:
        ws, before = lender.borrow()
    status, message = run_entry(case, ws, template_snapshot)
    after = tree_state(ws)
    if case.entry != "platform" and not case.prepare:
        lender.give_back(ws, before, after)
    out, err = capfd.readouterr()
    message = f"{message}\n{out}\n{err}"
    assert status != 0, message
    assert case.field in message and case.rule in message, message
    check_any_refusal(message)  # a validator's refusal leads with what to answer (tests/messages.py)
    assert differences(before, after) == []


def test_the_corpus_covers_every_entry_point_with_at_least_40_cases():
    assert len(CASES) >= 40 and len({case.id for case in CASES}) == len(CASES)
    assert {case.entry for case in CASES} == {"platform", "app", "onboard", "offboard", "check"}


def test_the_snapshot_sees_what_a_half_done_run_would_leave(workspace, tmp_path):
    """Guards the comparison above: an untracked file, an empty folder, a mode, the index, a branch."""
    ws = copy_workspace(workspace, tmp_path / "ws")
    before = tree_state(ws)
    changes = [
        lambda: (ws / "app" / "stray").mkdir(),
        lambda: (ws / "platform" / ".gitignore").chmod(0o600),
        lambda: git("add", "--intent-to-add", "-f", "stray.txt", cwd=(ws / "platform" / "stray.txt").write_text("x")
                    and ws / "platform"),
        lambda: git("branch", "onboard/cart", cwd=ws / "platform"),
    ]
    for change in changes:
        change()
        assert differences(before, after := tree_state(ws)), change
        before = after
