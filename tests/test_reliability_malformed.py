"""Malformed content in a repository, not on a command line (the hostile-input audit): a platform
repository's answers file that is no mapping, not UTF-8, or whose clusters or apps have the wrong
shape; a .sops.yaml that is no SOPS configuration; an app repository whose docs/ is in the way; an
onboarding request with keys YAML reads as numbers; a template source that has gone.

Every command that reads them (onboard, offboard, opencenter-apps list and rotate-deploy-key,
opencenter-cluster list, set and add) refuses in one line that names the file and the answer,
exits 2 and writes nothing: neither repository, nor HOME (where `add` would make a key). The check
reports what is part of the repository as a finding instead, and cannot run (exit 2, one line)
only when it cannot read the answers at all.

Commands run in this process through run_main, as the console scripts run them: an exception that
escapes is a traceback a user would see, and fails the test. Where several commands meet the same
malformed repository they run one after another on one copy of it (a subtest each): each must leave
it as it was (asserted), so the next meets what a fresh copy would be, and copying the workspace
costs more than most refusals.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import commit_all
from hooks import app_admin, check, cluster_admin, offboard, onboard
from hooks.errors import run_main
from reliability import copy_workspace, differences, tree_state

CART = "ssh://git@github.com/acme/cart.git"
ANSWERS = ".copier-answers.yml"


@pytest.fixture
def ws(workspace: Path, tmp_path: Path) -> Path:
    return copy_workspace(workspace, tmp_path / "ws")


def run(main: Callable[[list[str]], int], argv: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of an entry point run as its console script runs it."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as done:
        if main is check.main:
            raise SystemExit(check.main(argv))  # `python -m hooks.check`: sys.exit(main())
        run_main(main, argv)
    return int(done.value.code or 0), out.getvalue(), err.getvalue()


def assert_refused(result: tuple[int, str, str], *parts: str) -> None:
    """Exit 2 and one line on stderr, `error: …`, holding every part (the file, the answer, the rule)."""
    status, out, err = result
    assert status == 2 and out == "", (status, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err


def write_committed(repo: Path, rel: str, content: str | bytes) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    commit_all(repo, f"hand edit of {rel}")


def edited_answers(change: Callable[[dict], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        answers = yaml.safe_load(text)
        change(answers)
        return yaml.safe_dump(answers, sort_keys=False)

    return edit


# The platform answers, malformed: (edit of the answers file's text, what the refusal names).
MALFORMED_ANSWERS: dict[str, tuple[Callable[[str], str | bytes], str]] = {
    "a-list": (lambda text: "- a\n- b\n", "must be a mapping of answers, got a list"),
    "not-utf8": (lambda text: b"\xff\xfe\x00garbage\x80\x81", "is not UTF-8 text"),
    "clusters-a-string": (edited_answers(lambda a: a.update(clusters="nope")),
                          "clusters: must be a list of cluster mappings (got 'nope')"),
    "clusters-of-numbers": (edited_answers(lambda a: a.update(clusters=[1])), "clusters[0]: must be a mapping"),
    "cluster-without-settings": (edited_answers(lambda a: a.update(clusters=[{"cluster_name": "qa"}])),
                                 "clusters[qa]: needs exactly the per-cluster keys: missing ['cluster_domain'"),
    "cluster-name-a-number": (edited_answers(lambda a: a.update(cluster_name=5)),
                              "cluster_name: must be a DNS-1123 label (got 5)"),
    # Matched whole: a valid name followed by more is no name (the overlay folder it would make).
    "cluster-name-with-a-tail": (edited_answers(lambda a: a.update(cluster_name="prod/../x")),
                                 "cluster_name: must be a DNS-1123 label (got 'prod/../x')"),
    "app-without-url": (edited_answers(lambda a: a["apps"][0].pop("url")), "apps[shop].url: must be ssh://"),
    "app-without-name": (edited_answers(lambda a: a["apps"][0].pop("name")), "apps[].name: must be a DNS-1123 label"),
    "apps-of-names": (edited_answers(lambda a: a.update(apps=["shop"])),
                      "apps: every entry must be a mapping with keys name, url"),
    "apps-a-mapping": (edited_answers(lambda a: a.update(apps={"shop": a["apps"][0]})),
                       "apps: must be a YAML list of app entries"),
    "app-name-a-list": (edited_answers(lambda a: a["apps"][0].update(name=["shop"])),
                        "apps[['shop']].name: must be a DNS-1123 label"),
}
# Every command that reads the platform answers, from the command line (PLATFORM: the repository).
COMMANDS: dict[str, tuple[Callable[[list[str]], int], list[str]]] = {
    "onboard": (onboard.main, ["--platform", "PLATFORM", "--name", "cart", "--url", CART]),
    "offboard": (offboard.main, ["--platform", "PLATFORM", "--name", "shop"]),
    "apps-list": (app_admin.main, ["list", "--platform", "PLATFORM"]),
    "apps-rotate-deploy-key": (app_admin.main, ["rotate-deploy-key", "--platform", "PLATFORM", "--name", "shop"]),
    "cluster-list": (cluster_admin.main, ["list", "--platform", "PLATFORM"]),
    "cluster-set": (cluster_admin.main, ["set", "--platform", "PLATFORM", "prod", "flux_version=2.9.4"]),
    "cluster-add": (cluster_admin.main, ["add", "--platform", "PLATFORM", "qa"]),
}


def argv(command: str, platform: Path) -> list[str]:
    return [str(platform) if arg == "PLATFORM" else arg for arg in COMMANDS[command][1]]


@pytest.mark.parametrize("kind", MALFORMED_ANSWERS)
def test_malformed_platform_answers_are_refused_by_every_command_and_reported_by_the_check(ws, isolated_env, subtests,
                                                                                           kind):
    """Every command refuses them by name and writes nothing. The check reports answers the
    commands refuse as a finding of the answers file (they are part of the repository: CI must fail
    on them); answers it cannot read at all stop the check. An app repository cannot be judged by
    such a platform (exit 2, naming it).

    One repository per kind for all of them: each refusal leaves it as it was (asserted after each
    command), so the next command meets the same repository a fresh copy would be."""
    edit, rule = MALFORMED_ANSWERS[kind]
    platform = ws / "platform"
    write_committed(platform, ANSWERS, edit((platform / ANSWERS).read_text()))
    before, home = tree_state(ws), tree_state(isolated_env)
    for command in COMMANDS:
        with subtests.test(command=command):
            assert_refused(run(COMMANDS[command][0], argv(command, platform)), f"{platform / ANSWERS}: ", rule)
            assert differences(before, tree_state(ws)) == [] and differences(home, tree_state(isolated_env)) == []

    result = run(check.main, [str(platform), "--tenant", f"shop={ws / 'app'}"])
    unreadable = kind in ("a-list", "not-utf8")
    if unreadable:
        assert_refused(result, f"{platform / ANSWERS}: ", rule)
    else:
        status, out, err = result
        assert status == 1 and err == "", err
        assert f"{ANSWERS}: [answers] {rule}" in out, out
        # The rules that read the clusters and apps, tenants among them, wait for the answers.
        assert "note: tenants not checked: the clusters and apps of .copier-answers.yml cannot be read" in out, out
    assert_refused(run(check.main, [str(ws / "app"), "--platform", str(platform)]),
                   f"{platform / ANSWERS}: " if unreadable else f"--platform {platform / ANSWERS}: ", rule)
    assert differences(before, tree_state(ws)) == []


def test_an_app_the_check_reports_is_one_the_commands_refuse(ws):
    """The check judges the answers with the commands' own rules (hooks/clusters.py validate_answers):
    an app name the platform reserves fails CI, as onboarding and offboarding refuse it."""
    platform = ws / "platform"
    write_committed(platform, ANSWERS, edited_answers(lambda a: a["apps"][0].update(name="flux-system"))(
        (platform / ANSWERS).read_text()))
    status, out, _ = run(check.main, [str(platform)])
    assert status == 1 and f"{ANSWERS}: [answers] apps[flux-system].name: 'flux-system' is reserved" in out, out
    assert_refused(run(offboard.main, ["--platform", str(platform), "--name", "flux-system"]),
                   "apps[flux-system].name: 'flux-system' is reserved")


# .sops.yaml that is no SOPS configuration: (its content, what the refusal or finding says).
MALFORMED_SOPS = {
    "rules-a-number": ("creation_rules: 5\n", "creation_rules must be a list of rules, each a mapping"),
    "rules-of-strings": ("creation_rules: [a]\n", "creation_rules must be a list of rules, each a mapping"),
    "a-list": ("- a\n", "must be a mapping with creation_rules, got a list"),
    "not-yaml": ("creation_rules: [\n", "is not valid YAML (while parsing a flow node"),
    "not-utf8": (b"\xff\xfe\x80", "is not UTF-8 text"),
    "bad-path-regex": ("creation_rules:\n  - path_regex: '['\n", "creation rule 1: path_regex '[' is not a regular expression"),
}




@pytest.mark.parametrize("kind", MALFORMED_SOPS)
def test_a_malformed_sops_config_stops_onboarding_and_is_a_finding_of_the_check(ws, kind):
    """Onboarding refuses it naming the file, in an app repository (--app-repo) and in the
    platform repository; there it is also a finding of the check: what the check reads the file
    with (check.read_sops_rules) finds it, and the whole check reports it (the test below)."""
    content, rule = MALFORMED_SOPS[kind]
    app = ws / "cart"
    app.mkdir()
    (app / ".sops.yaml").write_bytes(content if isinstance(content, bytes) else content.encode())
    before = tree_state(ws)
    assert_refused(run(onboard.main, [*argv("onboard", ws / "platform"), "--app-repo", str(app)]),
                   f"error: {app / '.sops.yaml'}: ", rule)
    assert differences(before, tree_state(ws)) == []

    platform = ws / "platform"
    write_committed(platform, ".sops.yaml", content)
    before = tree_state(ws)
    sops_rules, findings = check.read_sops_rules(platform)
    assert sops_rules == [], sops_rules  # no rule: the check's secret rules then read as for no .sops.yaml
    assert f".sops.yaml: [sops-config] {rule}" in check.format_text(check.Report(findings)), findings
    assert_refused(run(onboard.main, argv("onboard", platform)), f"error: {platform / '.sops.yaml'}: ", rule)
    assert differences(before, tree_state(ws)) == []


def test_the_check_reports_a_malformed_platform_sops_config(ws):
    """The whole check, for one kind: it reads .sops.yaml in one place (read_sops_rules, above for
    every kind; no rule for any of them), and none of its kustomize builds reads the file. Each
    kind is still a new repository to the suite's build memo (tests/site/kustomize_memo.py), about
    a second of builds: the other kinds are left to the test above."""
    content, rule = MALFORMED_SOPS["not-utf8"]
    platform = ws / "platform"
    write_committed(platform, ".sops.yaml", content)
    before = tree_state(ws)
    status, out, err = run(check.main, [str(platform)])
    assert status == 1 and err == "" and f".sops.yaml: [sops-config] {rule}" in out, out + err
    assert differences(before, tree_state(ws)) == []


MIXED_KEYS = "- {name: cart, url: 'ssh://git@github.com/acme/cart.git', 1: x, foo: y}\n"
UNKNOWN_KEYS = "apps[cart]: unknown keys 1, foo; allowed: name, url"


def test_an_entry_with_keys_yaml_reads_as_numbers_is_refused_from_a_file_and_in_a_request(ws):
    entries = ws / "apps.yaml"
    entries.write_text(MIXED_KEYS)
    platform = ws / "platform"
    before = tree_state(ws)
    assert_refused(run(onboard.main, ["--platform", str(platform), "--from-file", str(entries)]),
                   f"{entries}: {UNKNOWN_KEYS}")
    assert differences(before, tree_state(ws)) == []
    write_committed(platform, "onboarding-requests/cart.yaml", MIXED_KEYS)
    status, out, _ = run(check.main, [str(platform)])
    assert status == 1 and f"onboarding-requests/cart.yaml: [onboarding-request] {UNKNOWN_KEYS}" in out, out


# An app repository where docs/deploy-key.pub cannot be written: found before any key is made.
IN_THE_WAY = {
    "docs-a-file": (lambda app: (app / "docs").write_text("notes\n"), "docs must be a folder"),
    "key-file-a-folder": (lambda app: (app / "docs" / "deploy-key.pub").mkdir(parents=True),
                          "docs/deploy-key.pub must be a file"),
}


@pytest.mark.parametrize("kind", IN_THE_WAY)
def test_an_app_repository_whose_docs_are_in_the_way_is_refused_before_any_key_is_made(ws, subtests, kind):
    make, rule = IN_THE_WAY[kind]
    app = ws / "cart"
    app.mkdir()
    make(app)
    before = tree_state(ws)
    for command in ("onboard", "apps-rotate-deploy-key"):  # each leaves ws as it was: the next meets the same
        with subtests.test(command=command):
            assert_refused(run(COMMANDS[command][0], [*argv(command, ws / "platform"), "--app-repo", str(app)]),
                           f"error: app repository: {app}/", rule)
            assert differences(before, tree_state(ws)) == []


def test_a_validator_refusal_on_the_render_path_is_one_line_naming_the_answer(ws, subtests):
    """Answers a template validator refuses (edited by hand) stop the render Copier runs for
    onboarding and offboarding: one line, as every other command's Copier refusal (errors.copier_error)."""
    platform = ws / "platform"
    write_committed(platform, ANSWERS, edited_answers(lambda a: a.update(customer_name=5))((platform / ANSWERS).read_text()))
    before = tree_state(ws)
    for command in ("onboard", "offboard"):  # each leaves ws as it was: the next meets the same
        with subtests.test(command=command):
            assert_refused(run(COMMANDS[command][0], argv(command, platform)),
                           "error: answer 'customer_name': customer_name must be a DNS-1123 label", "(got '5')",
                           "was put back exactly as it was")
            assert differences(before, tree_state(ws)) == []


def test_a_template_source_that_has_gone_is_named_with_what_to_do(ws, isolated_env, subtests):
    platform = ws / "platform"
    write_committed(platform, ANSWERS, edited_answers(lambda a: a.update(_src_path="/nonexistent/templates"))(
        (platform / ANSWERS).read_text()))
    before, home = tree_state(ws), tree_state(isolated_env)
    for command in COMMANDS:  # each leaves ws and HOME as they were: the next meets the same
        with subtests.test(command=command):
            assert_refused(run(COMMANDS[command][0], argv(command, platform)),
                           f"{platform / ANSWERS}: records the template path _src_path='/nonexistent/templates', "
                           "which is not a directory", "set _src_path to where it is now")
            assert differences(before, tree_state(ws)) == [] and differences(home, tree_state(isolated_env)) == []
