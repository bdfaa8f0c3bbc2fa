"""One writer at a time: onboarding and offboarding runs started together on one platform repository.

Real parallel processes, as a script onboarding a list of apps or two terminals would start them.
Every run that reports success is in the final state; every other run says why and left nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, git
from hooks import offboard
from hooks.errors import run_main
from hooks.gitrepo import LOCK_FILE
from reliability import FLUXCD, SOURCES, copy_workspace, differences, tree_state

APPS = ["cart", "billing", "search", "media", "mail", "login"]


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def registered(platform: Path) -> list[str]:
    return sorted(app["name"] for app in yaml.safe_load((platform / ".copier-answers.yml").read_text()).get("apps") or [])


def test_six_parallel_onboardings_never_lose_a_reported_success(workspace, tmp_path):
    ws = copy_workspace(workspace, tmp_path / "ws")
    platform = ws / "platform"
    runs = {name: start(["hooks.onboard", "--platform", str(platform), "--name", name,
                         "--url", f"ssh://git@github.com/acme/{name}"]) for name in APPS}
    results = {name: (run.wait(timeout=300), run.stdout.read(), run.stderr.read()) for name, run in runs.items()}
    succeeded = sorted(name for name, (code, _, _) in results.items() if code == 0)
    assert succeeded, results  # the first to take the lock always gets through
    assert registered(platform) == sorted(["shop", *succeeded])
    for name in succeeded:
        assert (platform / SOURCES / f"{name}-deploy-key.sops.yaml").is_file() and (platform / FLUXCD / f"{name}.yaml").is_file()
    for name, (code, out, err) in results.items():
        if code != 0:
            # it waited, then found the winner's changes staged for review: it says so and wrote nothing
            assert code == 2 and "was changed by the command this run waited for" in err, err
            assert "Traceback" not in err and not (platform / SOURCES / f"{name}-deploy-key.sops.yaml").exists()


def offboard_shop(platform: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """`opencenter-offboard … --lock-wait 1`, run in this process (what it waits for is another
    process's lock, not a start of its own): its exit status and stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        run_main(offboard.main, ["--platform", str(platform), "--name", "shop", "--lock-wait", "1"])
    return done.value.code, capsys.readouterr().err


def test_a_run_that_cannot_wait_names_the_holder_and_changes_nothing(workspace, tmp_path, capsys):
    ws = copy_workspace(workspace, tmp_path / "ws")
    platform = ws / "platform"
    before = tree_state(ws)
    # Another command holding the lock (as an onboarding does while it runs).
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "f.write('onboarding of app \\'cart\\' (pid 4242, since 2026-12-02 10:00:00)'); f.flush(); "
        "print('held', flush=True); time.sleep(60)"), str(platform / ".git" / LOCK_FILE)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        code, err = offboard_shop(platform, capsys)
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
    assert code == 2
    assert err.strip() == (
        f"error: {platform}: onboarding of app 'cart' (pid 4242, since 2026-12-02 10:00:00) holds this repository; "
        "nothing was changed. Run this again once it has finished (it waited 1 s)")
    assert differences(before, tree_state(ws)) == []
    # the holder gone (however it ended), the lock is free again
    assert offboard_shop(platform, capsys)[0] == 0


def has_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (Linux /proc): a run that opened the lock file waits on it."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(Path(os.readlink(fd)) == path for fd in fds.iterdir())
    except OSError:  # the process is gone, or a descriptor closed meanwhile
        return False


def test_a_review_branch_run_that_waited_refuses_when_head_moved(workspace, tmp_path):
    """While a --review-branch onboarding waits for the lock, the run holding it commits on a review
    branch of its own (HEAD moves to onboard/cart). Building on that unreviewed commit would stack
    the review branches: the waiting run refuses, saying so, and changes nothing."""
    ws = copy_workspace(workspace, tmp_path / "ws")
    platform = ws / "platform"
    lock = platform / ".git" / LOCK_FILE
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(120)"), str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        waiting = start(["hooks.onboard", "--platform", str(platform), "--name", "billing", "--url",
                         "ssh://git@github.com/acme/billing", "--review-branch", "--lock-wait", "60"])
        deadline = time.monotonic() + 60
        while not has_open(waiting.pid, lock):
            assert waiting.poll() is None and time.monotonic() < deadline, waiting.communicate()
            time.sleep(0.05)
        time.sleep(0.5)  # it records HEAD just after opening the lock file
        head = git("rev-parse", "--short", "HEAD", cwd=platform).strip()
        git("switch", "-q", "-c", "onboard/cart", cwd=platform)
        git("commit", "-q", "--allow-empty", "-m", "Onboard app cart", cwd=platform)
        moved = git("rev-parse", "--short", "HEAD", cwd=platform).strip()
        before = tree_state(ws)
    finally:
        holder.kill()
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 2, err
    assert err.strip() == (
        f"error: {platform}: HEAD moved from branch main at {head} to branch onboard/cart at {moved} while this "
        "run waited for another command; nothing was changed by this run. Review that change, go back to the "
        "branch this should start from, then run this command again")
    assert differences(before, tree_state(ws)) == []
