"""Secrets audit (issue 8): after every kind of render and every onboarding path, no private key
material and no clear value of a generated Secret is anywhere it could leak from: the files of
either repository (git objects included), what was left in the temporary directory, HOME, and
everything the commands printed.

Paths: platform copy with a generated age key and with a given one; app copy with a Secret,
stand-alone; onboarding from the platform side (secrets, receiver, --app-repo) and from the app
side (copy with platform_repo and a Secret); --update; onboarding from a file; rotating an app's
deploy key and its age key (start, finish); offboarding. TMPDIR points at a folder of
this test (for subprocesses, Copier's tasks and this process), so temporary files left behind are
seen; files created and removed within a run are not (sops and onboarding never write clear key
material to a file at all: hooks/sops.py feeds sops on stdin).

The clear values are found by decrypting every SOPS file with the test key, given in memory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from pyrage import x25519

from conftest import ROOT, commit_all
from reliability import (
    AGE_SECRET_KEY_PATTERN,
    AGE_SECRET_MARKER,
    PEM_PRIVATE_MARKER,
    PRIVATE_KEY_MARKERS,
    copy_template,
    decrypt,
)

PUBLIC_VALUES = ("identity.pub", "known_hosts")  # Secret keys whose values are public by design


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and not path.is_symlink()]


def git_objects(repo: Path) -> bytes:
    """Every object of a repository, decompressed (a clear value committed or staged would be here)."""
    result = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo, capture_output=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def clear_values(repos: list[Path], age_key: x25519.Identity) -> set[bytes]:
    """Pieces of every private value held in the repositories' SOPS files: each line of 16 characters
    or more of a value (a PEM key is found line by line), public keys and placeholders excepted.

    Files encrypted for an app's own age key are decrypted with that key once it has been found in
    a file the test key opens (the platform holds it SOPS-encrypted)."""
    pending = [path for repo in repos for path in repo.rglob("*.sops.yaml")
               if ".git" not in path.parts and path.name != ".sops.yaml"]
    keys, needles = [str(age_key)], set()
    while pending:
        opened = []
        for path in pending:
            try:
                doc = yaml.safe_load(decrypt(path, "\n".join(keys)))
            except AssertionError:  # not (yet) a key we hold
                continue
            opened.append(path)
            values = {**(doc.get("data") or {}), **(doc.get("stringData") or {})}
            for key, value in values.items():
                keys += re.findall(AGE_SECRET_KEY_PATTERN, str(value))
                if key in PUBLIC_VALUES or str(value).startswith("REPLACE"):
                    continue
                needles |= {line.strip().encode() for line in str(value).splitlines()
                            if len(line.strip()) >= 16 and "-----" not in line}
        assert opened, f"no key opens {[str(path) for path in pending]}"
        pending = [path for path in pending if path not in opened]
    return needles


def leaks(needles: set[bytes], blobs: dict[str, bytes]) -> list[str]:
    found = []
    for where, blob in blobs.items():
        found += [f"{where}: {marker.decode()}" for marker in PRIVATE_KEY_MARKERS if marker in blob]
        found += [f"{where}: clear value {needle[:8].decode()}…" for needle in needles if needle in blob]
    return found


def test_no_private_key_or_clear_secret_value_leaks_on_any_path(template_snapshot, tmp_path, set_env, monkeypatch,
                                                                capfd, isolated_env):
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    set_env(TMPDIR=str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    age_key = x25519.Identity.generate()
    public = str(age_key.to_public())
    ws = tmp_path / "ws"
    output: list[str] = []

    def command(*argv: str) -> None:
        # ROOT for `-m hooks.…` from tmp_path, then the PYTHONPATH conftest gives every Python the
        # tests start (tests/site: the suite's render and build memos, test speed only).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=tmp_path)
        output.extend([done.stdout, done.stderr])
        assert done.returncode == 0, done.stderr

    # Renders: the generated age key goes to OPENCENTER_AGE_KEY_DIR (HOME), nowhere else.
    copy_template(template_snapshot, ws / "generated-key", template="platform")
    platform = ws / "platform"
    copy_template(template_snapshot, platform, template="platform", sops_age_recipients=public)
    commit_all(platform)
    copy_template(template_snapshot, ws / "standalone-app", template="app", app_name="web", secret_keys="TOKEN",
                  secrets_age_recipients=public)
    # Onboarding, platform side, with every kind of Secret, then an update, then the app side.
    app = ws / "shop"
    app.mkdir()
    command("-m", "hooks.onboard", "--platform", str(platform), "--name", "shop", "--url",
            "ssh://git@github.com/acme/shop", "--secrets", "--receiver", "--app-repo", str(app))
    commit_all(platform, "onboard shop")
    command("-m", "hooks.onboard", "--platform", str(platform), "--name", "shop", "--url",
            "ssh://git@github.com/acme/shop", "--secrets", "--receiver=generic", "--update")
    commit_all(platform, "update shop")
    command("-m", "copier", "copy", "--trust", "--defaults", "--vcs-ref=0.0.1", "--data", "template=app",
            "--data", "app_name=cart", "--data", f"platform_repo={platform}", "--data", "secret_keys=DB_URL,API_KEY",
            str(template_snapshot), str(ws / "cart"))
    commit_all(platform, "onboard cart")
    # Many apps from a file, then the day-two rotations (an app's age key is opened with the test
    # key from a file of this test's own, outside every folder searched below).
    entries = tmp_path / "apps.yaml"
    entries.write_text(yaml.safe_dump([{"name": "api", "url": "ssh://git@github.com/acme/api", "secrets": True},
                                       {"name": "web", "url": "ssh://git@github.com/acme/web", "receiver": "github"}]))
    command("-m", "hooks.onboard", "--platform", str(platform), "--from-file", str(entries))
    commit_all(platform, "onboard api and web")
    command("-m", "hooks.apps", "rotate-deploy-key", "--platform", str(platform), "--name", "api")
    commit_all(platform, "rotate api's deploy key")
    key_file = tmp_path / "keys" / "platform.agekey"
    key_file.parent.mkdir()
    key_file.write_text(f"{age_key}\n")
    set_env(SOPS_AGE_KEY_FILE=str(key_file))
    for step in ("--start", "--finish"):
        command("-m", "hooks.apps", "rotate-age-key", "--platform", str(platform), "--app", "api", step)
        commit_all(platform, f"rotate api's age key {step}")
    repos = [platform, ws / "cart", ws / "standalone-app"]
    needles = clear_values(repos, age_key)
    assert any(len(needle) > 40 for needle in needles), "no private value was found to look for"
    command("-m", "hooks.offboard", "--platform", str(platform), "--name", "shop")
    out, err = capfd.readouterr()
    output += [out, err]

    home_key = next(Path(os.environ["OPENCENTER_AGE_KEY_DIR"]).glob("*.agekey"))
    assert home_key.stat().st_mode & 0o077 == 0
    blobs = {str(path): path.read_bytes() for folder in (ws, tmpdir, isolated_env) for path in files_under(folder)
             if path != home_key}
    blobs |= {f"{repo} (git objects)": git_objects(repo) for repo in (platform, app) if (repo / ".git").is_dir()}
    blobs["captured output"] = "\n".join(output).encode()
    assert leaks(needles, blobs) == []
    # The generated key file is the only place a private age key exists, and it is outside every repo.
    assert re.search(AGE_SECRET_KEY_PATTERN, home_key.read_text())
    assert not home_key.is_relative_to(ws)


def test_the_audit_finds_what_it_looks_for():
    """Guards the scan above against passing by looking at nothing."""
    value = b"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
    blobs = {
        "a": f"key: {AGE_SECRET_MARKER}QQQ".encode(),
        "b": f"-----BEGIN OPENSSH {PEM_PRIVATE_MARKER}".encode(),
        "c": b"x" + value,
        "d": b"ok",
    }
    assert [where.split(":")[0] for where in leaks({value}, blobs)] == ["a", "b", "c"]
