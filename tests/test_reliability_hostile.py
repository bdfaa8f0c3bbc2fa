"""Hostile input (docs/safety.md): a line break at the end of a one-line answer, a word that is no
boolean, a value that is no YAML, an empty age recipient after the first render, nesting and
alias bombs in a file of entries or an onboarding request, a device as --known-hosts-file, a huge
name, a reader that goes away. Each is refused by name (or, in the check, reported as a finding),
with nothing written and no traceback, in bounded time and memory.

The commands run through their entry point as a user runs them (errors.run_main); those whose
failure would use up memory or never end run in a child process with a memory limit and a timeout
(forked from this one, but for one run of each through `python -m`: the Python start and imports
cost more than the refusal). Refusals met one after another on one copy of the workspace run as a
subtest each: each must leave it as it was (asserted), so the next meets what a fresh copy would be.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Callable

import copier
import pytest
import yaml

from conftest import ROOT, commit_all
from hooks import check, cluster_admin, offboard, onboard
from hooks.check import check_repo
from hooks.errors import SHOWN_MAX, run_main
from messages import check_any_refusal
from reliability import copy_workspace, differences, tree_state

URL = "ssh://git@github.com/acme/cart.git"
GOOD_KEY = "age16x2cw6zzszw4s9nlv6esudny0p9qr7v9hn50rymcl3398tmnfesqeydvdv"  # test_platform_validators.py's
# A 440-byte alias bomb: nine nested anchors, each listed nine times by the next (9^8 leaves once
# expanded), as /tmp/hostile/inputs/bomb3.yaml of the audit had it under `hostnames`.
BOMB = ("&a8 [&a7 [&a6 [&a5 [&a4 [&a3 [&a2 [&a1 [&a0 [x,x,x,x,x,x,x,x,x,x], " + ", ".join(
    f"{', '.join([f'*a{level}'] * 9)}]" for level in range(8)))


@pytest.fixture
def ws(workspace: Path, tmp_path: Path) -> Path:
    return copy_workspace(workspace, tmp_path / "ws")


def run(main: Callable[[list[str]], int], args: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit status, stderr) of an entry point run as its console script runs it."""
    with pytest.raises(SystemExit) as done:
        run_main(main, args)
    return int(done.value.code or 0), capfd.readouterr().err


def states(ws: Path) -> tuple[dict, dict]:
    """What a refusal must leave as it was: ws (both repositories) and HOME (the age keys)."""
    return tree_state(ws), tree_state(Path(os.environ["HOME"]))


def assert_refused(ws: Path, main: Callable[[list[str]], int], args: list[str], capfd, *expected: str,
                   before: tuple[dict, dict] | None = None) -> str:
    """The command exits 2 with one error line that holds every `expected` text, no traceback,
    and ws and HOME are as they were (`before`, when the caller has taken their states already)."""
    before = before or states(ws)
    status, err = run(main, args, capfd)
    assert status == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert all(text in err for text in expected), err
    after = states(ws)
    assert differences(before[0], after[0]) == [] and differences(before[1], after[1]) == []
    return err


# 1. A line break at the end of a one-line answer ------------------------------------------------
# Python's `$` matches before a final "\n": every pattern is matched whole (fullmatch, `\Z`), and
# lists and free text refuse any line break.


def entries_file(tmp_path: Path, **entry: str) -> str:
    path = tmp_path / "entries.yaml"
    path.write_text(yaml.safe_dump([{"name": "cart", "url": URL, **entry}]))
    return str(path)


COMMAND_LINE_BREAKS = [
    ("onboard --name", onboard.main, lambda ws, tmp: ["--name", "cart\n", "--url", URL], ("name", "DNS-1123 label")),
    ("onboard --url", onboard.main, lambda ws, tmp: ["--name", "cart", "--url", URL + "\n"], ("url", "ssh://user@host")),
    ("onboard --branch", onboard.main, lambda ws, tmp: ["--name", "cart", "--url", URL, "--branch", "main\n"],
     ("branch", "git branch name")),
    ("onboard --receiver", onboard.main, lambda ws, tmp: ["--name", "cart", "--url", URL, "--receiver", "github\n"],
     ("receiver", "must be empty or one of")),
    ("onboard --quota", onboard.main, lambda ws, tmp: ["--name", "cart", "--url", URL, "--quota", "requests.cpu=4\n"],
     ("quota", "must be a quantity")),
    ("onboard --update --branch", onboard.main, lambda ws, tmp: ["--name", "shop", "--update", "--branch", "main\n"],
     ("branch", "git branch name")),
    ("onboard --from-file url", onboard.main, lambda ws, tmp: ["--from-file", entries_file(tmp, url=URL + "\n")],
     ("url", "ssh://user@host")),
    ("onboard --from-file branch", onboard.main, lambda ws, tmp: ["--from-file", entries_file(tmp, branch="main\n")],
     ("branch", "git branch name")),
    ("onboard --from-file name", onboard.main, lambda ws, tmp: ["--from-file", entries_file(tmp, name="cart\n")],
     ("name", "DNS-1123 label")),
    ("onboard --from-file hostnames", onboard.main,
     lambda ws, tmp: ["--from-file", entries_file(tmp, hostnames=["www.cart.prod.acme.example.com\n"])],
     ("hostnames", "lowercase DNS names")),
    ("offboard --name", offboard.main, lambda ws, tmp: ["--name", "shop\n"], ("name", "is not a registered app")),
    ("cluster add NAME", cluster_admin.main, lambda ws, tmp: ["add", "qa\n"], ("cluster_name", "DNS-1123 label")),
    ("cluster add --domain", cluster_admin.main, lambda ws, tmp: ["add", "qa", "--domain", "qa.acme.example.com\n"],
     ("--domain", "one line")),
    ("cluster set flux_version", cluster_admin.main, lambda ws, tmp: ["set", "prod", "flux_version=2.9.4\n"],
     ("settings", "one line")),
    ("cluster set gitops_base_tag", cluster_admin.main, lambda ws, tmp: ["set", "prod", "gitops_base_tag=2026.01\n"],
     ("settings", "one line")),
    ("cluster set cluster_domain", cluster_admin.main,
     lambda ws, tmp: ["set", "prod", "cluster_domain=prod.acme.example.com\r"], ("settings", "one line")),
]


def test_a_line_break_in_a_one_line_argument_is_refused(ws, tmp_path, capfd, subtests):
    before = states(ws)
    for case, command, args, expected in COMMAND_LINE_BREAKS:
        with subtests.test(case):
            given = args(ws, tmp_path)
            # cluster_admin takes --platform after its subcommand, the others anywhere
            where = [*given[:1], "--platform", str(ws / "platform"), *given[1:]] if command is cluster_admin.main \
                else ["--platform", str(ws / "platform"), *given]
            assert_refused(ws, command, where, capfd, *expected, before=before)


# A valid answer of each question (and what it needs), which the test breaks with a final "\n".
PLATFORM_ANSWERS = {
    "customer_name": "acme", "cluster_name": "prod", "cluster_domain": "prod.acme.example.com",
    "platform_repo_url": "ssh://git@github.com/acme/acme-gitops", "platform_repo_branch": "main",
    "flux_version": "2.9.4", "gitops_base_url": "https://github.com/opencenter-cloud/openCenter-gitops-base.git",
    "gitops_base_tag": "2026.01", "gitops_base_secret": "base-creds", "gateway_name": "platform-gateway",
    "gateway_namespace": "gateway-system", "gateway_class": "eg", "gateway_listener": "https",
    "gateway_tls_secret": "wildcard-tls", "sops_age_recipients": GOOD_KEY,
    "check_package_url": "https://github.com/opencenter-cloud/openCenter-gitops-templates.git",
}
APP_ANSWERS = {
    "app_name": "shop", "environments": "prod", "app_repo_url": "ssh://git@github.com/acme/shop",
    "app_repo_branch": "main", "image": "docker.io/nginx:1.27", "health_path": "/healthz", "cpu_request": "100m",
    "cpu_limit": "500m", "memory_request": "128Mi", "memory_limit": "256Mi", "app_domain": "prod.acme.example.com",
    "hostnames": "shop.prod.acme.example.com", "path_prefix": "/shop", "route_gateway_name": "platform-gateway",
    "route_gateway_namespace": "gateway-system", "route_section_name": "https",
    "gateway_proxy_namespace": "envoy-gateway-system", "extra_egress": "10.20.0.0/16:5432",
    "secret_keys": "API_TOKEN", "flux_age_recipient": GOOD_KEY, "platform_contact": "#acme-platform",
    "platform_check_url": "ssh://git@github.com/acme/acme-gitops", "platform_check_branch": "main",
}
# Answers a question needs beside it to be asked at all.
NEEDS = {"flux_age_recipient": {"secret_keys": "API_TOKEN"}, "secrets_age_recipients": {"secret_keys": "API_TOKEN"}}
ENTRY_ANSWERS = [
    ("platform", "apps", [{"name": "cart", "url": URL, "branch": "main\n", "secrets": False, "receiver": "",
                           "known_hosts": ""}]),
    ("platform", "apps", [{"name": "cart", "url": URL + "\n", "branch": "main", "secrets": False, "receiver": "",
                           "known_hosts": ""}]),
]
COPIER_LINE_BREAKS = ([("platform", field, value + "\n") for field, value in PLATFORM_ANSWERS.items()]
                      + [("app", field, value + "\n") for field, value in APP_ANSWERS.items()]
                      + [("app", "secrets_age_recipients", GOOD_KEY + "\n"), ("app", "hostnames", "\nshop.prod.acme.example.com")]
                      + ENTRY_ANSWERS)


@pytest.mark.parametrize(("template", "field", "value"), COPIER_LINE_BREAKS,
                         ids=[f"{t}-{f}={v!r}"[:60] for t, f, v in COPIER_LINE_BREAKS])
def test_a_line_break_in_a_one_line_answer_is_refused_by_its_validator(tmp_path, template, field, value):
    dst = tmp_path / "new"
    data = {"template": template, **({"app_name": "shop"} if template == "app" else {}), **NEEDS.get(field, {}),
            field: value}
    with pytest.raises(ValueError, match=f"Validation error for question '{field}'") as refused:
        copier.run_copy(str(ROOT), dst, data=data, defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True)
    check_any_refusal(str(refused.value))
    assert not dst.exists()


def test_the_check_reports_a_line_break_recorded_in_the_answers(ws):
    """Recorded before the validators matched whole: the check names the answer, which also stops
    every onboarding (the registered apps no longer validate)."""
    platform = ws / "platform"
    answers = yaml.safe_load((platform / ".copier-answers.yml").read_text())
    answers["apps"][0]["branch"] = "main\n"
    answers["gitops_base_tag"] = "2026.01\n"
    (platform / ".copier-answers.yml").write_text(yaml.safe_dump(answers))
    commit_all(platform, "line breaks")
    found = {(f.rule, f.message.split(" holds")[0]) for f in check_repo(platform) if f.rule == "answers-line-break"}
    assert found == {("answers-line-break", "apps[shop].branch"), ("answers-line-break", "gitops_base_tag")}


# 2. An empty age recipient after the first render -----------------------------------------------


def test_an_empty_recipient_is_refused_by_opencenter_cluster_set(ws, capfd, subtests):
    """The copy generates a key for an empty answer; a later render would write .sops.yaml with
    the placeholder, and every later encryption (onboarding) would fail."""
    before = states(ws)
    for recipients in ("", " , "):
        with subtests.test(recipients=recipients):
            assert_refused(ws, cluster_admin.main, ["set", "--platform", str(ws / "platform"), "prod",
                                                    f"sops_age_recipients={recipients}"], capfd,
                           "sops_age_recipients", "needs its age public keys", before=before)


def test_an_empty_recipient_is_refused_by_copier_update(ws):
    platform = ws / "platform"
    before = tree_state(ws)
    with pytest.raises(ValueError, match="an empty answer generates a key pair only when the repository is first"):
        copier.run_update(platform, data={"sops_age_recipients": ""}, defaults=True, overwrite=True, unsafe=True,
                          vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    assert differences(before, tree_state(ws)) == []


# 3. and 4. Booleans and numbers of opencenter-cluster, and Copier's cast of a boolean -----------


WRONG_TYPES = [
    ("flux_allow_remote_bases=maybe", ("flux_allow_remote_bases", "must be true or false", "'maybe'")),
    ("flux_allow_remote_bases=2", ("flux_allow_remote_bases", "must be true or false")),
    ("flux_allow_remote_bases={a", ("flux_allow_remote_bases", "must be true or false", "'{a'")),
    ("gateway_listener_port=[", ("gateway_listener_port", "port number", "'['")),
    ("gateway_listener_port=abc", ("gateway_listener_port", "port number")),
    ("gateway_listener_port=443.5", ("gateway_listener_port", "port number")),
]


def test_a_setting_of_the_wrong_type_is_refused_naming_its_key(ws, capfd, subtests):
    before = states(ws)
    for setting, expected in WRONG_TYPES:
        with subtests.test(setting):
            assert_refused(ws, cluster_admin.main, ["set", "--platform", str(ws / "platform"), "prod", setting], capfd,
                           *expected, before=before)


@pytest.mark.parametrize(("value", "parsed"), [("true", True), ("Yes", True), ("on", True), ("1", True),
                                               ("false", False), ("NO", False), ("off", False), ("0", False)])
def test_opencenter_cluster_reads_the_boolean_words_onboarding_reads(value, parsed):
    assert cluster_admin.parse_settings([f"flux_allow_remote_bases={value}", "gateway_listener_port=8443"]) == {
        "flux_allow_remote_bases": parsed, "gateway_listener_port": 8443}


@pytest.mark.parametrize("value", ["maybe", "enable", "2"])
def test_copier_refuses_a_word_that_is_no_boolean(tmp_path, value):
    """Copier casts any text to a boolean (`maybe` is true) before the validator sees the answer:
    the validator reads the text as given."""
    with pytest.raises(ValueError, match="flux_allow_remote_bases must be true or false") as refused:
        copier.run_copy(str(ROOT), tmp_path / "new", data={"template": "platform", "flux_allow_remote_bases": value},
                        defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True)
    check_any_refusal(str(refused.value))
    assert not (tmp_path / "new").exists()


def test_copier_still_reads_a_boolean_word(rendered):
    platform = rendered(template="platform", flux_allow_remote_bases="yes")
    assert yaml.safe_load((platform / ".copier-answers.yml").read_text())["flux_allow_remote_bases"] is True


# 5. and 6. Deep nesting and alias bombs: in a file of entries, and in an onboarding request -----


def limited(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in a child process with 3 GB of address space (kubectl, which the check runs,
    inherits it and needs far less): a regression fails the test (MemoryError, a timeout) instead
    of the machine."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit)


def limited_fork(main: Callable[[list[str]], int], args: list[str], tmp_path: Path,
                 timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """What `limited(["-m", <main's module>, *args])` gives, without a Python start: run_main(main,
    args) in a child forked from this process, with 3 GB of address space beyond what this process
    holds, stopped by SIGALRM after `timeout` seconds (then its exit status is -SIGALRM). An
    exception that escapes is printed with its traceback and exits 1, as Python does."""
    out, err = tmp_path / "child.out", tmp_path / "child.err"
    with open("/proc/self/status") as status:
        held = next(int(line.split()[1]) << 10 for line in status if line.startswith("VmSize:"))
    pid = os.fork()
    if pid == 0:  # the child: whatever happens, it ends here and never returns into pytest
        code = 1
        try:
            for fd, path in ((1, out), (2, err)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
            resource.setrlimit(resource.RLIMIT_AS, (held + (3 << 30), held + (3 << 30)))
            signal.alarm(timeout)
            run_main(main, args)
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 0 if done.code is None else 1
        except BaseException:  # noqa: BLE001 - as the interpreter reports an uncaught exception
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return subprocess.CompletedProcess([main.__module__, *args], os.waitstatus_to_exitcode(status), out.read_text(),
                                       err.read_text())


HOSTILE_FILES = {
    "nested 20 000 deep": "[" * 20_000,
    **{f"bomb in {key}": f"- {{name: cart, url: '{URL}', {key}: {BOMB}}}\n"
       for key in ("hostnames", "egress", "clusters", "branch", "secrets", "receiver", "overlays", "known_hosts")},
    "bomb in a quota": f"- {{name: cart, url: '{URL}', quota: {{requests.cpu: '1', limits.cpu: {BOMB}}}}}\n",
    "bomb as the name": f"- {{name: {BOMB}, url: '{URL}'}}\n",
    "bomb as the entry": f"- {BOMB}\n",
    "bomb as the file": f"{BOMB}\n",
}


def test_a_hostile_file_of_entries_is_refused_in_bounded_memory(ws, tmp_path, subtests):
    before = tree_state(ws)
    for number, (case, text) in enumerate(HOSTILE_FILES.items()):
        with subtests.test(case):
            entries = tmp_path / "entries.yaml"
            entries.write_text(text)
            args = ["--platform", str(ws / "platform"), "--from-file", str(entries)]
            # The first through the console script itself, the others in a forked child (limited_fork).
            done = limited(["-m", "hooks.onboard", *args]) if number == 0 else limited_fork(onboard.main, args, tmp_path)
            assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
            assert done.stderr.startswith(f"error: {entries}") and len(done.stderr) < 1000, done.stderr[-2000:]
            assert differences(before, tree_state(ws)) == []


@pytest.mark.parametrize(("text", "reason"), [("[" * 20_000, "is not valid YAML (nested too deeply)"),
                                              (f"- {{name: cart, url: '{URL}', hostnames: {BOMB}}}\n", "hostnames")],
                         ids=["nested", "alias bomb"])
def test_a_hostile_onboarding_request_is_a_finding_of_the_check(ws, tmp_path, text, reason):
    """App teams add requests by pull request: the check in CI must report them, not run out of
    memory or stack. (`python -m hooks.check` itself runs in the tests of a reader going away.)"""
    platform = ws / "platform"
    (platform / "onboarding-requests").mkdir()
    (platform / "onboarding-requests" / "cart.yaml").write_text(text)
    commit_all(platform, "a request")
    done = limited_fork(check.main, [str(platform), "--format", "json"], tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    requests = [f for f in json.loads(done.stdout)["findings"] if f["rule"] == "onboarding-request"]
    assert [f["file"] for f in requests] == ["onboarding-requests/cart.yaml"]
    assert reason in requests[0]["message"] and len(requests[0]["message"]) < 1000, requests


# 7. A known_hosts file that never ends ----------------------------------------------------------


def test_a_known_hosts_file_is_read_up_to_a_limit(ws, tmp_path, subtests):
    big = tmp_path / "known_hosts"
    big.write_text("git.example.com ssh-ed25519 AAAA\n" * (onboard.KNOWN_HOSTS_MAX // 32 + 1))
    before = tree_state(ws)
    for path in ("/dev/zero", str(big)):
        with subtests.test(path):
            done = limited_fork(onboard.main, ["--platform", str(ws / "platform"), "--name", "cart", "--url",
                                               "ssh://git@git.example.com/acme/cart", "--known-hosts-file", path],
                                tmp_path, timeout=60)
            assert done.returncode == 2 and done.stderr == f"error: known_hosts: {path} is larger than 1 MB: give " \
                "the known_hosts lines of the Git host (ssh-keyscan's output), a few KB\n", done.stderr[-2000:]
            assert differences(before, tree_state(ws)) == []


# 8. A reader that goes away ---------------------------------------------------------------------


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_check_cut_short_by_its_reader_stops_quietly(ws, output):
    """`python -m hooks.check P | head -1`: the reader is gone before the check writes."""
    platform = ws / "platform"
    # A finding, in the answers: no file kustomize builds changes, so the check's builds are the
    # workspace's own, which other checks of it in the session have memoised (tests/site/kustomize_memo.py).
    answers = yaml.safe_load((platform / ".copier-answers.yml").read_text())
    answers["gitops_base_tag"] = "2026.01\n"
    (platform / ".copier-answers.yml").write_text(yaml.safe_dump(answers))
    commit_all(platform, "a line break")
    check = subprocess.Popen([sys.executable, "-m", "hooks.check", str(platform), "--format", output], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check.stdout.close()
    stderr = check.stderr.read()
    assert check.wait() == 1 and stderr == ""


# 6. and 9. Every refused value is quoted bounded -------------------------------------------------

LONG = "a" * 100_000


HUGE_VALUES = [
    ("onboard", onboard.main, ["--name", LONG, "--url", URL]),
    ("onboard --update", onboard.main, ["--name", LONG, "--update"]),
    ("onboard --url", onboard.main, ["--name", "cart", "--url", "https://" + LONG]),
    ("onboard --branch", onboard.main, ["--name", "cart", "--url", URL, "--branch", LONG]),
    ("offboard", offboard.main, ["--name", LONG]),
    ("cluster set", cluster_admin.main, ["set", "--platform", "{platform}", LONG, "flux_version=2.9.4"]),
    ("cluster port", cluster_admin.main, ["set", "--platform", "{platform}", "prod", f"gateway_listener_port={LONG}"]),
]


def test_a_huge_value_is_quoted_cut(ws, capfd, subtests):
    before = states(ws)
    for case, command, args in HUGE_VALUES:
        with subtests.test(case):
            given = [arg.replace("{platform}", str(ws / "platform")) for arg in args]
            if command is not cluster_admin.main:
                given = ["--platform", str(ws / "platform"), *given]
            err = assert_refused(ws, command, given, capfd, "…", before=before)
            assert len(err) < 4 * SHOWN_MAX + 300, err


def test_a_huge_name_in_a_file_of_entries_is_quoted_cut(ws, tmp_path, capfd):
    entries = tmp_path / "entries.yaml"
    # What yaml.safe_dump([{"name": "a" * 10_000_000, "url": URL}]) writes (a plain scalar has no
    # line to fold), written directly: PyYAML's pure-Python emitter took 4 s over the 10 MB name.
    entries.write_text(f"- name: {'a' * 10_000_000}\n  url: {URL}\n")
    err = assert_refused(ws, onboard.main, ["--platform", str(ws / "platform"), "--from-file", str(entries)], capfd,
                         "must be a DNS-1123 label", "…")
    assert len(err) < 4 * SHOWN_MAX + 400, err[:2000]
