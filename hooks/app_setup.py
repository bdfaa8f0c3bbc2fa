"""Copy-only task of the app template: encrypt the app's Secret before anyone can commit it.

Runs once, in the freshly rendered app repository (cwd), after Copier rendered it. When the app
has secrets (secret.sops.yaml was rendered, with placeholder values only), it
1. checks the age recipients' checksums (the question validator can only check their form);
2. encrypts the file in place with sops and the repository's .sops.yaml (public keys only);
3. verifies that every value is encrypted.
A failure exits non-zero; Copier then deletes the new repository, so no clear Secret is left.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hooks import agekeys, sops  # noqa: E402
from hooks.errors import HookError, run_main  # noqa: E402

SECRET_FILE = "secret.sops.yaml"
SOPS_CONFIG = ".sops.yaml"


def encrypt_command(binary: str, path: str) -> list[str]:
    """Encrypt in place following the repository's own rules (run with cwd = the repository)."""
    return [binary, "--config", SOPS_CONFIG, "--encrypt", "--in-place", path]


def unencrypted_values(text: str) -> list[str]:
    """Keys of data/stringData whose value is not a SOPS ENC[…] string, or ['sops'] without metadata."""
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc.get("sops"), dict) or "mac" not in doc["sops"]:
        return ["sops"]
    values = {**(doc.get("data") or {}), **(doc.get("stringData") or {})}
    return [key for key, value in values.items() if not str(value).startswith("ENC[")]


def encrypt_secret(repo: Path, recipients: str) -> bool:
    """Encrypt repo/secret.sops.yaml if it exists; False when the app has no secrets."""
    secret = repo / SECRET_FILE
    if not secret.exists():
        return False
    agekeys.parse_recipients(recipients, field="secrets_age_recipients")
    result = subprocess.run(
        encrypt_command(sops.require_sops(), SECRET_FILE), cwd=repo, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise HookError(SECRET_FILE, f"sops could not encrypt it: {result.stderr.strip()}")
    if left := unencrypted_values(secret.read_text()):
        raise HookError(SECRET_FILE, f"still unencrypted after sops ran: {', '.join(left)}")
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", default="")
    args = parser.parse_args(argv)
    if encrypt_secret(Path.cwd(), args.recipients):
        print(
            f"Encrypted {SECRET_FILE} for the platform's age key(s). Put the real values in with\n"
            f"  sops edit {SECRET_FILE}        (needs a private key among the recipients)\n"
            "or replace the file whole as README.md explains; never commit it decrypted.",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    run_main(main)
