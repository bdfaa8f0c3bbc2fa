"""Fault injection on onboarding and offboarding (issue 8): real Copier, git and sops; a fake only for
the fault itself. Each fault must leave both repositories byte-identical, say what happened and how
to retry, and a retry once the cause is gone must succeed.

How each fault is made:
- sops missing: the command runs under a Python reached through a symlink in a folder without sops
  (hooks.sops looks beside the interpreter first, then on PATH), with a PATH that has no sops
  either; the venv's packages come through PYTHONPATH. Copier gives its tasks the same interpreter.
- sops failing mid-way: a `sops` script beside that Python runs the real sops, except on its Nth call.
- read-only platform repository: the tests may run as root, for whom chmod changes nothing, so the
  command runs in a private mount namespace (`unshare -rm`) where the repository, or only its .git,
  is bind-mounted read-only (EROFS for every writer, root included); skipped where unshare is not
  permitted.
- Copier failing after the app repository was rendered: from the app side, the platform's template
  source has lost the commit its answers record when the onboarding task runs `copier update` (a
  source gone altogether is refused before anything is made: tests/test_reliability_malformed.py);
  in-process, the render step writes its files and then raises.
- Ctrl-C between steps: a step of register/offboard (monkeypatched in-process) does its work and
  then raises KeyboardInterrupt.
- Ctrl-C during a real `copier copy`: a `git` first on PATH pauses onboarding before it stages
  (the test sends SIGINT then) and slows its rollback past the 0.25 s Copier gives its task.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, commit_all, git
from hooks import agekeys, app_admin, cluster_admin, errors, gitrepo, offboard, onboard, platform_setup, sops
from hooks.errors import run_main
from reliability import SOURCES, copy_workspace, differences, read_only, tree_state

CART = "ssh://git@github.com/acme/cart"
RETRY = "run the same command again"


@pytest.fixture
def ws(workspace: Path, tmp_path: Path) -> Path:
    return copy_workspace(workspace, tmp_path / "ws")


def registered(platform: Path) -> list[str]:
    return [app["name"] for app in yaml.safe_load((platform / ".copier-answers.yml").read_text()).get("apps") or []]


# Commands as a user runs them -------------------------------------------------------------------


def onboard_argv(ws: Path, *extra: str) -> list[str]:
    return ["-m", "hooks.onboard", "--platform", str(ws / "platform"), "--name", "cart", "--url", CART, *extra]


def offboard_argv(ws: Path, *extra: str) -> list[str]:
    return ["-m", "hooks.offboard", "--platform", str(ws / "platform"), "--name", "shop", *extra]


def app_copy_argv(ws: Path, template: Path) -> list[str]:
    """The app template with platform_repo and a Secret: the onboarding task registers the app (sops
    calls 1 and 2: deploy key, app age key), then app_setup encrypts the app's Secret (call 3)."""
    return ["-m", "copier", "copy", "--trust", "--defaults", "--quiet", "--vcs-ref=0.0.1", "--data", "template=app",
            "--data", "app_name=cart", "--data", f"platform_repo={ws / 'platform'}", "--data", "secret_keys=TOKEN",
            str(template), str(ws / "cart")]


COMMANDS = {
    "onboard": lambda ws, template: onboard_argv(ws, "--receiver"),  # two encryptions: key and token
    "offboard": lambda ws, template: offboard_argv(ws),
    "app-copy": app_copy_argv,
}


def run(python: str, argv: list[str], env: dict[str, str] | None = None, wrap: list[str] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([sysconfig.get_paths()["purelib"], str(ROOT)]), **(env or {})}
    return subprocess.run([*wrap, python, *argv], capture_output=True, text=True, env=env, cwd=ROOT)


def assert_retry_succeeds(command: str, ws: Path, template: Path) -> None:
    if command == "app-copy":
        done = run(sys.executable, COMMANDS[command](ws, template))
        assert done.returncode == 0, done.stderr
    else:  # in this process (its stderr is the test's captured output): the fault was in another one
        main = onboard.main if command == "onboard" else offboard.main
        assert run_in_process(main, COMMANDS[command](ws, template)) == 0
    apps = registered(ws / "platform")
    assert apps == ([] if command == "offboard" else ["cart", "shop"])
    if command == "app-copy":
        assert (ws / "cart" / "docs" / "deploy-key.pub").is_file()


@pytest.fixture
def bare_python(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A Python with no sops beside it, and a PATH with no sops on it."""
    folder = tmp_path / "bare-bin"
    folder.mkdir()
    (folder / "python").symlink_to(Path(sys.executable).resolve())
    path = [folder, *(Path(p) for p in os.environ["PATH"].split(os.pathsep) if p)]
    path = [str(p) for p in path if not (p / "sops").exists()]
    return str(folder / "python"), {"PATH": os.pathsep.join(path)}


def failing_sops(python: str, calls: Path, failing: int) -> None:
    """A `sops` beside `python` that runs the real sops, except on its `failing`th call (counted
    in `calls`, from zero again)."""
    calls.unlink(missing_ok=True)
    fake = Path(python).parent / "sops"
    fake.write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{calls}" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "{calls}"\n'
        f'if [ "$n" -eq {failing} ]; then echo "simulated sops failure on call $n" >&2; exit 1; fi\n'
        f'exec "{sops.require_sops()}" "$@"\n'
    )
    fake.chmod(0o755)


def assert_refused_without_sops(command: str, ws: Path, template: Path, python: str, env: dict[str, str]) -> None:
    """sops missing is refused before any write."""
    before = tree_state(ws)
    done = run(python, COMMANDS[command](ws, template), env)
    assert done.returncode != 0
    assert "sops: not found next to this Python nor on PATH" in done.stderr and RETRY in done.stderr, done.stderr
    assert differences(before, tree_state(ws)) == []


def assert_sops_failing_on_its_second_call_leaves_nothing(command: str, ws: Path, template: Path, python: str,
                                                          env: dict[str, str], calls: Path) -> None:
    failing_sops(python, calls, 2)
    before = tree_state(ws)
    done = run(python, COMMANDS[command](ws, template), env)
    assert done.returncode != 0
    assert calls.read_text().strip() == "2"
    assert "could not encrypt" in done.stderr and "simulated sops failure" in done.stderr, done.stderr
    assert RETRY in done.stderr
    assert differences(before, tree_state(ws)) == []


# Several faults, then one retry: each fault is asserted to leave the workspace byte-identical, so the
# next meets the state the first did, and the retry at the end (same HOME, same age key folder) meets
# whatever any of them might have left outside the workspace. A retry after each fault would repeat
# the same successful run (a whole onboarding or `copier copy`) on the same state.


def test_onboarding_with_sops_missing_or_failing_leaves_nothing_then_a_retry_succeeds(ws, template_snapshot,
                                                                                    bare_python, tmp_path):
    python, env = bare_python
    assert_refused_without_sops("onboard", ws, template_snapshot, python, env)
    assert_sops_failing_on_its_second_call_leaves_nothing("onboard", ws, template_snapshot, python, env,
                                                          tmp_path / "calls")
    assert_retry_succeeds("onboard", ws, template_snapshot)


def test_app_copy_faults_then_the_same_copy_succeeds(ws, template_snapshot, bare_python, tmp_path):
    """An app `copier copy` that registers the app on the platform repository, failing four ways,
    then succeeding."""
    python, env = bare_python
    # 1. Copier failing after the app repository was rendered: the app is rendered and its Secret
    # encrypted; then the onboarding task's `copier update` of the platform cannot check out the
    # platform's template at its recorded commit. Copier removes the new app repository, the
    # platform repository is restored, and with the history back the same command succeeds (the
    # retry at the end: the platform's template source stays this mirror).
    source = tmp_path / "platform-template"
    git("clone", "-q", str(template_snapshot), str(source), cwd=tmp_path)
    answers = ws / "platform" / ".copier-answers.yml"
    answers.write_text(answers.read_text().replace(f"_src_path: {template_snapshot}", f"_src_path: {source}"))
    commit_all(ws / "platform", "template from a mirror")
    (source / ".git").rename(tmp_path / "history")
    git("init", "-q", cwd=source)
    before = tree_state(ws)
    done = run(sys.executable, app_copy_argv(ws, template_snapshot))
    assert done.returncode != 0
    assert "copier update" in done.stderr and "put back exactly as it was" in done.stderr, done.stderr
    assert not (ws / "cart").exists()
    assert differences(before, tree_state(ws)) == []
    shutil.rmtree(source / ".git")
    (tmp_path / "history").rename(source / ".git")
    # 2. and 3. sops missing, sops failing on its second call: nothing written, nothing half written.
    assert_refused_without_sops("app-copy", ws, template_snapshot, python, env)
    calls = tmp_path / "calls"
    assert_sops_failing_on_its_second_call_leaves_nothing("app-copy", ws, template_snapshot, python, env, calls)
    # 4. The registration is staged in the platform repository before the app's Secret is encrypted
    # (the Secret needs the app's age key, which registration creates). If that last step fails,
    # Copier removes the new app repository and the staged registration stays for review; the same
    # copy again must complete it, not be refused because the platform tree is no longer clean.
    failing_sops(python, calls, 3)
    done = run(python, app_copy_argv(ws, template_snapshot), env)
    assert done.returncode != 0 and "simulated sops failure" in done.stderr, done.stderr
    assert not (ws / "cart").exists()
    assert registered(ws / "platform") == ["cart", "shop"]
    assert_retry_succeeds("app-copy", ws, template_snapshot)
    assert "sops:" in (ws / "cart" / "secret.sops.yaml").read_text()


# Read-only platform repository ------------------------------------------------------------------


@pytest.mark.parametrize(("command", "part"), [("onboard", ""), ("offboard", ".git")])
def test_read_only_platform_repository(command, part, ws, template_snapshot):
    """Whole repository read-only: Copier cannot write. Only .git read-only: the work tree is
    changed (rendered files and Secrets deleted), then staging fails, and the restore must undo the
    work tree by itself."""
    before = tree_state(ws)
    done = run(sys.executable, COMMANDS[command](ws, template_snapshot), wrap=read_only(ws / "platform" / part))
    assert done.returncode != 0
    assert "Read-only file system" in done.stderr or "read-only" in done.stderr.lower(), done.stderr
    assert "put back exactly as it was" in done.stderr and RETRY in done.stderr, done.stderr
    assert differences(before, tree_state(ws)) == []
    assert_retry_succeeds(command, ws, template_snapshot)


def fail_after(real: Callable, error: BaseException) -> Callable:
    """A step that does its work, then fails (a crash or Ctrl-C just after it)."""

    def step(*args, **kwargs):
        real(*args, **kwargs)
        raise error

    return step


def run_in_process(main: Callable[[list[str]], int], argv: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        run_main(main, argv[2:])
    return done.value.code


def test_copier_crashing_after_writing_the_platform_repository(ws, monkeypatch, capsys):
    before = tree_state(ws)
    # A context, not monkeypatch.undo(): undo would also drop isolated_env's HOME and git identity.
    with monkeypatch.context() as patch:
        patch.setattr(onboard, "render_apps", fail_after(onboard.render_apps, RuntimeError("simulated Copier crash")))
        assert run_in_process(onboard.main, onboard_argv(ws)) == 2
    err = capsys.readouterr().err
    assert "RuntimeError: simulated Copier crash" in err and "put back exactly as it was" in err and RETRY in err, err
    assert differences(before, tree_state(ws)) == []
    assert run_in_process(onboard.main, onboard_argv(ws)) == 0
    assert registered(ws / "platform") == ["cart", "shop"]


# Ctrl-C between steps ---------------------------------------------------------------------------

# Ctrl-C after the first secret file: test_ctrl_c_or_a_stop_signal_after_the_first_key_file_rolls_back.
STEPS = {
    # name: (module, attribute, extra onboard arguments)
    "after-staging-on-a-review-branch": (gitrepo, "stage", ("--review-branch",)),
    "after-the-app-repo-key-file": (onboard, "write_app_files", ("--app-repo", "{ws}/app")),
}
# The app repository's files (--app-repo) are put back too (onboard.app_repo_restored_on_failure).
@pytest.mark.parametrize("step", STEPS)
def test_ctrl_c_between_onboarding_steps(step, ws, monkeypatch, capsys):
    module, attribute, extra = STEPS[step]
    argv = onboard_argv(ws, *[arg.replace("{ws}", str(ws)) for arg in extra])
    before = tree_state(ws)
    with monkeypatch.context() as patch:
        patch.setattr(module, attribute, fail_after(getattr(module, attribute), KeyboardInterrupt()))
        assert run_in_process(onboard.main, argv) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "put back exactly as it was" in err and RETRY in err, err
    assert differences(before, tree_state(ws)) == []
    assert run_in_process(onboard.main, argv) == 0
    assert registered(ws / "platform") == ["cart", "shop"] and (ws / "platform" / SOURCES / "cart-deploy-key.sops.yaml").is_file()


def test_ctrl_c_after_offboarding_deleted_the_secrets(ws, monkeypatch, capsys):
    before = tree_state(ws)
    with monkeypatch.context() as patch:
        patch.setattr(gitrepo, "stage", fail_after(gitrepo.stage, KeyboardInterrupt()))
        assert run_in_process(offboard.main, offboard_argv(ws)) == 130
    assert "put back exactly as it was" in capsys.readouterr().err
    assert differences(before, tree_state(ws)) == []
    assert (ws / "platform" / SOURCES / "shop-deploy-key.sops.yaml").is_file()
    assert run_in_process(offboard.main, offboard_argv(ws)) == 0
    assert registered(ws / "platform") == []


# Unusable paths and values: a clear refusal naming them, never a traceback ---------------------


def customer_of(platform: Path) -> str:
    return yaml.safe_load((platform / ".copier-answers.yml").read_text())["customer_name"]


AGE_KEY_COMMANDS = {
    # name: (module, argv after the platform path, the key file it would create: (customer) -> path)
    "platform-copy-task": (platform_setup, lambda ws: ["--customer", "acme", "--cluster", "edge"],
                           lambda ws: agekeys.platform_key_file("acme", "edge")),
    "cluster-add": (cluster_admin, lambda ws: ["add", "staging", "--platform", str(ws / "platform")],
                    lambda ws: agekeys.platform_key_file(customer_of(ws / "platform"), "staging")),
    "rotate-age-key-start": (app_admin, lambda ws: ["rotate-age-key", "--platform", str(ws / "platform"),
                                                    "--cluster", "prod", "--start"],
                             lambda ws: app_admin.next_key_file(customer_of(ws / "platform"), "prod")),
}


@pytest.mark.parametrize("blocked", ["folder-is-a-file", "key-path-is-a-folder"])
@pytest.mark.parametrize("command", AGE_KEY_COMMANDS)
def test_an_unusable_age_key_path_is_refused_naming_it(command, blocked, ws, tmp_path, monkeypatch, capsys):
    """The key folder cannot be made (a file stands where it goes: ENOTDIR, for root too), or a
    folder stands where the key file goes: one line naming the path, exit 2, nothing changed."""
    module, argv, key_file = AGE_KEY_COMMANDS[command]
    if blocked == "folder-is-a-file":
        (tmp_path / "blocker").write_text("not a folder\n")
        monkeypatch.setenv("OPENCENTER_AGE_KEY_DIR", str(tmp_path / "blocker" / "age"))
    else:
        key_file(ws).mkdir(parents=True)
    monkeypatch.chdir(ws)  # the copy task writes into the current directory
    before = tree_state(tmp_path)
    with pytest.raises(SystemExit) as done:
        run_main(module.main, argv(ws))
    err = capsys.readouterr().err
    assert done.value.code == 2 and "Traceback" not in err, err
    assert err.startswith(f"error: {key_file(ws)}: "), err
    assert ("cannot create the age key file (Not a directory)" if blocked == "folder-is-a-file"
            else "cannot be read as an age key file (Is a directory)") in err, err
    assert differences(before, tree_state(tmp_path)) == []


def test_a_known_hosts_file_that_is_not_text_is_refused(ws, tmp_path, capsys):
    binary = tmp_path / "known_hosts"
    binary.write_bytes(b"\xff\xfe\x00git.example.com ssh-ed25519 \x80\x81\n")
    before = tree_state(ws)
    argv = ["-m", "hooks.onboard", "--platform", str(ws / "platform"), "--name", "cart",
            "--url", "ssh://git@git.example.com/acme/cart", "--known-hosts-file", str(binary)]
    assert run_in_process(onboard.main, argv) == 2
    assert capsys.readouterr().err == (f"error: known_hosts: {binary} is not UTF-8 text: give the known_hosts lines "
                                       "(ssh-keyscan's output), not a binary file\n")
    assert differences(before, tree_state(ws)) == []


@pytest.mark.parametrize("wait", ["nan", "inf", "-1"])
def test_a_lock_wait_that_is_no_duration_is_refused(wait, ws, capsys):
    before = tree_state(ws)
    assert run_in_process(onboard.main, onboard_argv(ws, "--lock-wait", wait)) == 2
    assert f"--lock-wait: must be a number of seconds, 0 or more (got {float(wait)})" in capsys.readouterr().err
    assert differences(before, tree_state(ws)) == []


def test_the_platform_repository_as_app_repository_is_refused(ws, capsys):
    """Its docs/deploy-key.pub would be left untracked in the platform repository."""
    before = tree_state(ws)
    assert run_in_process(onboard.main, onboard_argv(ws, "--app-repo", str(ws / "platform"))) == 2
    assert "is the platform repository" in capsys.readouterr().err
    assert differences(before, tree_state(ws)) == []


def test_the_suite_never_uses_a_callers_repository(tmp_path):
    """Run from a git hook, the tests inherit GIT_DIR, GIT_WORK_TREE and GIT_INDEX_FILE of the
    hook's repository; conftest drops them, so the tests' git commands stay in their own."""
    caller = tmp_path / "caller"
    caller.mkdir()
    commit_all(caller, "the caller's own commit")
    own = tmp_path / "own"
    own.mkdir()
    (own / "file").write_text("test data\n")
    script = ("import sys; sys.path[:0] = [sys.argv[1]]; import conftest; "
              "conftest.commit_all(conftest.Path(sys.argv[2]), 'a test commit')")
    env = {**os.environ, "GIT_DIR": str(caller / ".git"), "GIT_WORK_TREE": str(caller),
           "GIT_INDEX_FILE": str(caller / ".git" / "index")}
    done = run(sys.executable, ["-c", script, str(ROOT / "tests"), str(own)], env)
    assert done.returncode == 0, done.stderr
    assert git("log", "--format=%s", cwd=caller).splitlines() == ["the caller's own commit"]
    assert git("log", "--format=%s", cwd=own).splitlines() == ["a test commit"]


# Stopped from outside: SIGTERM, SIGHUP, a second Ctrl-C during the rollback ---------------------


def signal_after(real: Callable, signum: int) -> Callable:
    """A step that does its work, then receives `signum` (a timeout, a cancelled CI job, a closed
    terminal): a real signal, delivered to this process."""

    def step(*args, **kwargs):
        real(*args, **kwargs)
        os.kill(os.getpid(), signum)

    return step


def test_ctrl_c_or_a_stop_signal_after_the_first_key_file_rolls_back(ws, monkeypatch, capsys):
    """Ctrl-C, then SIGTERM, then SIGHUP (a stop signal rolls back like Ctrl-C) just after the first
    secret file is written, on the same workspace (each leaves it as it was), then one retry."""
    argv = onboard_argv(ws, "--receiver")
    before = tree_state(ws)
    with monkeypatch.context() as patch:
        patch.setattr(onboard, "write_once", fail_after(onboard.write_once, KeyboardInterrupt()))
        assert run_in_process(onboard.main, argv) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "put back exactly as it was" in err and RETRY in err, err
    assert differences(before, tree_state(ws)) == []
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with monkeypatch.context() as patch:
            patch.setattr(onboard, "write_once", signal_after(onboard.write_once, signum))
            assert run_in_process(onboard.main, argv) == 128 + signum
        err = capsys.readouterr().err
        assert f"error: interrupted ({signal.Signals(signum).name})" in err and "put back exactly as it was" in err, err
        assert differences(before, tree_state(ws)) == [], signum
        assert signal.getsignal(signum) is not errors._terminate  # run_main put the previous handler back
    assert run_in_process(onboard.main, argv) == 0
    assert registered(ws / "platform") == ["cart", "shop"]
    assert (ws / "platform" / SOURCES / "cart-deploy-key.sops.yaml").is_file()


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_a_second_interruption_does_not_stop_the_rollback_half_way(second, ws, monkeypatch, capsys):
    """Ctrl-C after the secrets are written and staged on the review branch, and again once the
    rollback has begun (as it switches back from that branch, before the files go back): the
    second is ignored and the rollback finishes."""
    argv = onboard_argv(ws, "--review-branch", "--receiver")
    before = tree_state(ws)
    switches = []

    def git_switching_back(repo, *args, **kwargs):
        if args[0] == "switch" and "-c" not in args:  # only the rollback switches back
            switches.append(args)
            os.kill(os.getpid(), second)
        return real_git(repo, *args, **kwargs)

    real_git = gitrepo.git
    with monkeypatch.context() as patch:
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
        try:
            patch.setattr(gitrepo, "git", git_switching_back)
            patch.setattr(gitrepo, "stage", fail_after(gitrepo.stage, KeyboardInterrupt()))
            assert run_in_process(onboard.main, argv) == 130
        finally:
            signal.signal(signal.SIGINT, previous)
    assert len(switches) == 1
    assert "put back exactly as it was" in capsys.readouterr().err
    assert differences(before, tree_state(ws)) == []


# A rollback puts back only what the run changed ---------------------------------------------------


def test_a_rollback_keeps_edits_made_while_the_keys_were_generated(ws, monkeypatch, capsys):
    """Someone edits README.md and creates NOTES.md while onboarding generates the keys; then the
    change fails. The rollback undoes the onboarding's files and staging, and keeps those edits."""
    platform = ws / "platform"
    before = tree_state(ws)

    def material_while_someone_edits(*args, **kwargs):
        with (platform / "README.md").open("a") as readme:
            readme.write("\nA note of my own.\n")
        (platform / "NOTES.md").write_text("my notes\n")
        return real_material(*args, **kwargs)

    real_material = onboard.make_material
    with monkeypatch.context() as patch:
        patch.setattr(onboard, "make_material", material_while_someone_edits)
        patch.setattr(gitrepo, "stage", fail_after(gitrepo.stage, RuntimeError("simulated failure")))
        assert run_in_process(onboard.main, onboard_argv(ws)) == 2
    assert "put back exactly as it was" in capsys.readouterr().err
    assert (platform / "NOTES.md").read_text() == "my notes\n"
    assert (platform / "README.md").read_text().endswith("\nA note of my own.\n")
    assert sorted(differences(before, tree_state(ws))) == [
        "added: platform/NOTES.md", "changed: platform/.git ['status']", "changed: platform/README.md"]
    assert git("diff", "--cached", "--name-only", cwd=platform) == ""  # nothing of the run left staged
    assert registered(platform) == ["shop"] and not (platform / SOURCES / "cart-deploy-key.sops.yaml").exists()


def someone_edits(platform: Path) -> None:
    """A person at work in the checkout: a tracked file of the template edited, a file of their own."""
    with (platform / ".yamllint.yaml").open("a") as config:
        config.write("# a rule of my own\n")
    (platform / "mynotes.txt").write_text("my notes\n")


def their_edits_are_there(platform: Path) -> None:
    assert (platform / ".yamllint.yaml").read_text().endswith("# a rule of my own\n")
    assert (platform / "mynotes.txt").read_text() == "my notes\n"


# Where the person's edits land, within the transaction: while Copier renders (the run's own files
# are told apart by the paths the render can write), and between two of the run's writes.
EDITS_DURING = {"the-render": (onboard, "render_apps"), "the-key-files": (onboard, "write_once")}


@pytest.mark.parametrize("during", EDITS_DURING)
def test_a_rollback_keeps_edits_made_while_the_run_writes(during, ws, monkeypatch, capsys):
    """While onboarding changes the platform repository, someone edits a tracked file and creates
    one of their own; then the run is stopped (SIGTERM). Its rollback undoes its own files and
    staging only: both edits are still there, as the person left them."""
    platform = ws / "platform"
    before = tree_state(ws)
    module, attribute = EDITS_DURING[during]
    real = getattr(module, attribute)

    def step_while_someone_edits(*args, **kwargs):
        if not (platform / "mynotes.txt").exists():
            someone_edits(platform)
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(module, attribute, step_while_someone_edits)
        patch.setattr(gitrepo, "stage", signal_after(gitrepo.stage, signal.SIGTERM))
        assert run_in_process(onboard.main, onboard_argv(ws, "--receiver")) == 128 + signal.SIGTERM
    assert "put back exactly as it was" in capsys.readouterr().err
    their_edits_are_there(platform)
    assert sorted(differences(before, tree_state(ws))) == [
        "added: platform/mynotes.txt", "changed: platform/.git ['status']", "changed: platform/.yamllint.yaml"]
    assert git("diff", "--cached", "--name-only", cwd=platform) == ""  # nothing of the run left staged
    assert registered(platform) == ["shop"] and not (platform / SOURCES / "cart-deploy-key.sops.yaml").exists()


def test_a_review_branch_commits_only_the_runs_own_changes(ws, monkeypatch, capsys):
    """A file someone creates (and one they stage) while a --review-branch onboarding runs is not
    committed with "Onboard app cart": it stays theirs, uncommitted, beside the review branch."""
    platform = ws / "platform"
    real = onboard.write_once

    def key_file_while_someone_edits(*args, **kwargs):
        if not (platform / "mynotes.txt").exists():
            someone_edits(platform)
            (platform / "staged.txt").write_text("staged by me\n")
            git("add", "staged.txt", cwd=platform)
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(onboard, "write_once", key_file_while_someone_edits)
        assert run_in_process(onboard.main, onboard_argv(ws, "--review-branch")) == 0
    capsys.readouterr()
    committed = git("show", "--name-only", "--format=%s", "HEAD", cwd=platform).split()
    assert committed[:3] == ["Onboard", "app", "cart"] and f"{SOURCES}/cart-deploy-key.sops.yaml" in committed
    assert not {"mynotes.txt", "staged.txt", ".yamllint.yaml"} & set(committed), committed
    their_edits_are_there(platform)
    assert sorted(git("status", "--porcelain", cwd=platform).splitlines()) == [
        " M .yamllint.yaml", "?? mynotes.txt", "A  staged.txt"]


@pytest.mark.parametrize("command", ["onboard", "offboard"])
def test_a_review_branch_without_a_git_identity_is_refused_before_anything(ws, monkeypatch, capsys, command):
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    # No identity from the host name either: only configured ones count (HOME is the test's own).
    for name, value in {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "user.useConfigOnly",
                        "GIT_CONFIG_VALUE_0": "true"}.items():
        monkeypatch.setenv(name, value)
    before = tree_state(ws)
    main, argv = (onboard.main, onboard_argv) if command == "onboard" else (offboard.main, offboard_argv)
    assert run_in_process(main, argv(ws, "--review-branch")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --review-branch: commits, but git has no identity here"), err
    assert "put back" not in err  # refused before the transaction, not rolled back
    assert differences(before, tree_state(ws)) == []


# Ctrl-C during `copier copy`: Copier kills its task 0.25 s after the interrupt ----------------------


def paused_git(folder: Path, platform: Path, mark: Path) -> str:
    """A PATH whose git is the real one, except in the platform repository: it marks, then pauses
    before staging (the test interrupts there, every file of the registration written), and takes
    half a second to put the index back (the rollback, still under way when Copier's kill comes
    0.25 s after the interrupt: cut short by that kill, it would show)."""
    folder.mkdir()
    (folder / "git").write_text(
        "#!/bin/sh\n"
        f'if [ "$(pwd -P)" = "{platform.resolve()}" ]; then\n'
        '  case "$*" in\n'
        f'    "--literal-pathspecs add -A --pathspec-from-file=- --pathspec-file-nul") : > "{mark}"; sleep 30 ;;\n'
        '    "update-index -z --index-info") sleep 0.5 ;;\n'
        "  esac\n"
        "fi\n"
        f'exec "{shutil.which("git")}" "$@"\n'
    )
    (folder / "git").chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def interrupt_copier_copy(whole_group: bool, ws: Path, template: Path, path: str, mark: Path) -> None:
    """Start the app's `copier copy`, wait for onboarding to pause before it stages, send SIGINT
    (to the process group, or only to Copier), and check that the platform repository is back."""
    platform = ws / "platform"
    before, head = tree_state(platform), git("rev-parse", "HEAD", cwd=platform)
    mark.unlink(missing_ok=True)
    # What an interrupted Copier leaves of the app repository goes, so that each interruption
    # starts as on a fresh workspace; the last one's stays for the retry, which copies over it.
    shutil.rmtree(ws / "cart", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([sysconfig.get_paths()["purelib"], str(ROOT)]), "PATH": path}
    # As in a terminal, whatever started the suite: a shell's background job (`pytest … &`) and
    # nohup start it with Ctrl-C ignored, which every process started from it would inherit.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        copier = subprocess.Popen([sys.executable, *app_copy_argv(ws, template)], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and copier.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mark.exists(), copier.communicate()[1] if copier.poll() is not None else "onboarding never paused"
        (os.killpg if whole_group else os.kill)(copier.pid, signal.SIGINT)
        # Read until every writer is gone: onboarding's last words may come after Copier's exit.
        _, err = copier.communicate(timeout=120)
    finally:
        if copier.poll() is None:
            os.killpg(copier.pid, signal.SIGKILL)
    assert copier.returncode != 0, whole_group
    assert "put back exactly as it was" in err and "interrupted" in err, err
    assert differences(before, tree_state(platform)) == [], whole_group
    assert git("status", "--porcelain", "--untracked-files=all", cwd=platform) == ""
    assert git("rev-parse", "HEAD", cwd=platform) == head


def test_ctrl_c_during_copier_copy_puts_the_platform_repository_back(ws, template_snapshot, tmp_path):
    """A terminal's Ctrl-C reaches Copier and its task (one process group); `kill -INT` only Copier.
    Either way Copier waits 0.25 s for the task, then kills it (Python's subprocess.run): the
    onboarding's rollback must still finish, whatever the task process's fate. Both, one after the
    other on the same workspace (the first leaves the platform repository as it was), then the same
    copy succeeds."""
    mark = tmp_path / "paused"
    path = paused_git(tmp_path / "bin", ws / "platform", mark)
    interrupt_copier_copy(True, ws, template_snapshot, path, mark)  # Ctrl-C in a terminal
    interrupt_copier_copy(False, ws, template_snapshot, path, mark)  # kill -INT copier
    assert_retry_succeeds("app-copy", ws, template_snapshot)
