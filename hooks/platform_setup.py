"""Copy-only task of the platform template: the age key.

Runs once, in the freshly rendered platform repository (cwd), after Copier rendered it:
1. checks the age recipients' checksums (the question validator can only check their form);
2. with no recipient given, creates (or reuses) the cluster's age key outside the repository and
   records its public key in .sops.yaml and in the answers file, exactly as rendering with that
   answer would have written them, so a later `copier update` sees no difference.
gotk-components.yaml is hooks/flux_components.py's task, which also runs on update.
A failure exits non-zero; Copier then deletes the new repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":  # a template task: say what is missing before anything imports it
    from hooks.preflight import require

    require(["pyrage"])  # the age key (hooks.agekeys)

from hooks import agekeys  # noqa: E402
from hooks.answers import ANSWERS_FILE  # noqa: E402
from hooks.errors import HookError, run_main  # noqa: E402

PLACEHOLDER = "AGE-RECIPIENT-GENERATED-AT-COPY"


def record_generated_recipient(repo: Path, public_key: str) -> None:
    """Write the generated public key where the template would have rendered the answer."""
    sops = repo / ".sops.yaml"
    sops.write_text(sops.read_text().replace(PLACEHOLDER, public_key))
    answers = repo / ANSWERS_FILE
    text = answers.read_text()
    empty = "sops_age_recipients: ''\n"
    if empty not in text:
        raise HookError(ANSWERS_FILE, "has no empty sops_age_recipients answer to record the generated key in")
    answers.write_text(text.replace(empty, f"sops_age_recipients: {public_key}\n"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customer", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--recipients", default="")
    args = parser.parse_args(argv)
    repo = Path.cwd()

    if not agekeys.parse_recipients(args.recipients):
        key_file = agekeys.platform_key_file(args.customer, args.cluster)
        public_key, created = agekeys.ensure_key_file(key_file)
        record_generated_recipient(repo, public_key)
        state = "Generated" if created else "Reused the existing"
        print(
            f"{state} age key {key_file} (mode 0600, keep it out of git; back it up).\n"
            f"  Public key: {public_key}\n"
            f"  Decrypt locally:   export SOPS_AGE_KEY_FILE={key_file}\n"
            f"  Give it to Flux:   kubectl -n flux-system create secret generic sops-age "
            f"--from-file=age.agekey={key_file}",
            file=sys.stderr,
        )

    return 0


if __name__ == "__main__":
    run_main(main)
