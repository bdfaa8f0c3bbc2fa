"""One writer at a time: onboarding and offboarding runs started together on one platform repository.

Real parallel processes, as a script onboarding a list of apps or two terminals would start them.
Every run that reports success is in the final state; every other run says why and left nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pyrage import x25519

from conftest import ROOT
from hooks.gitrepo import LOCK_FILE
from reliability import FLUXCD, SOURCES, build_workspace, copy_workspace, differences, tree_state

APPS = ["cart", "billing", "search", "media", "mail", "login"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, template_snapshot: Path) -> Path:
    return build_workspace(tmp_path_factory.mktemp("concurrency") / "ws", template_snapshot, x25519.Identity.generate())


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


def test_a_run_that_cannot_wait_names_the_holder_and_changes_nothing(workspace, tmp_path):
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
        run = subprocess.run([sys.executable, "-m", "hooks.offboard", "--platform", str(platform), "--name", "shop",
                              "--lock-wait", "1"], cwd=ROOT, capture_output=True, text=True)
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"error: {platform}: onboarding of app 'cart' (pid 4242, since 2026-12-02 10:00:00) holds this repository; "
        "nothing was changed. Run this again once it has finished (it waited 1 s)")
    assert differences(before, tree_state(ws)) == []
    # the holder gone (however it ended), the lock is free again
    assert subprocess.run([sys.executable, "-m", "hooks.offboard", "--platform", str(platform), "--name", "shop",
                           "--lock-wait", "1"], cwd=ROOT, capture_output=True, text=True).returncode == 0
