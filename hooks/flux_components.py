"""Task of the platform template, on copy and on every update: each cluster's gotk-components.yaml
follows its flux_version.

The file is in `_skip_if_exists`: the template renders a placeholder once and never overwrites it,
because it is either this task's `flux install --export` output or the owner's (bootstrap writes
it too). This task is what moves it when flux_version changes (a new template release whose
migration raises the answer, `copier update --data flux_version=…`, or Renovate's Flux group):

- the file already is flux_version (its `# Flux Version: vX` header): nothing to do;
- a `flux` binary is on PATH: regenerate it with `flux install --export --version=v<flux_version>`,
  keeping the components listed in the header (`--components=…`, as Renovate's flux manager does);
- no flux, the file is still the placeholder: rewrite the placeholder for the new version;
- no flux, a real manifest of another version: leave it and print the exact command;
- the file is newer than flux_version: never downgrade; print how to record its version.

Copier runs update tasks three times (replay of the old version, the project, render of the new
version). The replays are temporary folders that are not git work trees, and their copy of this
file never reaches the project (it is skip-if-exists, so left out of the update's patch): the task
does nothing there, so an update never runs `flux install` for them. In the project it is
idempotent: a second run finds the file at flux_version and stops.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":  # a template task: say what is missing before anything imports it
    from hooks.preflight import require

    require([])  # Copier's own dependencies (packaging) suffice: it runs on every update

from packaging.version import InvalidVersion, Version  # noqa: E402

from hooks import fluxcli, gitrepo  # noqa: E402
from hooks.errors import HookError, run_main  # noqa: E402

PLACEHOLDER_MARK = "# PLACEHOLDER"
# The header `flux install --export` writes (and Renovate's flux manager reads).
VERSION_RE = re.compile(r"^#\s*Flux\s+Version:\s*v?(\S+)\s*$", re.MULTILINE)
COMPONENTS_RE = re.compile(r"^#\s*Components:\s*([A-Za-z,-]+)\s*$", re.MULTILINE)
# Placeholders rendered before the placeholder carried the header.
LEGACY_PLACEHOLDER_RE = re.compile(r"Flux v(\d+\.\d+\.\d+) install manifests")


def components_path(cluster: str) -> Path:
    return Path("applications") / "overlays" / cluster / "flux-system" / "gotk-components.yaml"


def file_version(text: str) -> str | None:
    """The Flux version a gotk-components.yaml (real or placeholder) is for, if it says."""
    match = VERSION_RE.search(text) or LEGACY_PLACEHOLDER_RE.search(text)
    return match.group(1) if match else None


def file_components(text: str) -> str | None:
    match = COMPONENTS_RE.search(text)
    return match.group(1) if match else None


def is_newer(current: str, wanted: str) -> bool:
    try:
        return Version(current) > Version(wanted)
    except InvalidVersion:
        return False


def sync(repo: Path, cluster: str, version: str, remind: bool = True) -> str:
    """Bring gotk-components.yaml to `version`; returns what was done (for the message). `remind`
    False: a placeholder already for `version` is "unchanged" (it was announced when it was written)."""
    rel = components_path(cluster)
    target = repo / rel
    text = target.read_text() if target.is_file() else ""
    current = file_version(text)
    placeholder = not text or text.startswith(PLACEHOLDER_MARK)
    if not placeholder:
        if current == version:
            return "unchanged"
        if current and is_newer(current, version):
            return (
                f"{rel} is Flux v{current}, newer than flux_version {version}: left as it is (no downgrade). "
                f"Record its version with\n  copier update --trust --defaults --vcs-ref=:current: "
                f"--data flux_version={current}"
            )
    components = None if placeholder else file_components(text)
    command = f"{' '.join(fluxcli.install_command(version, components))} > {rel}"
    if fluxcli.render_components(target, version, components):
        return f"Rendered {rel} with {command.split(' > ')[0]}."
    if not placeholder:
        return (
            f"No flux binary on PATH: {rel} is still Flux v{current or '(unknown)'}, flux_version is "
            f"{version}. Regenerate it and commit:\n  {command}"
        )
    if current and current != version:
        target.write_text(text.replace(f"v{current}", f"v{version}"))
    elif current == version and not remind:
        return "unchanged"
    return f"No flux binary on PATH: {rel} is a placeholder for v{version}. Generate it with\n  {command}"


def parse_clusters(value: str) -> list[tuple[str, str]]:
    """`prod=2.9.4,staging=2.10.0`: every cluster of the repository with its flux_version."""
    pairs = [item.partition("=") for item in value.split(",") if item]
    if not pairs or any(not name or not version for name, _, version in pairs):
        raise HookError("--clusters", f"must be NAME=VERSION[,NAME=VERSION…] (got {value!r})")
    return [(name, version) for name, _, version in pairs]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", required=True, help="NAME=FLUX_VERSION for every cluster, comma-separated")
    parser.add_argument("--operation", choices=["copy", "update"], default="copy")
    args = parser.parse_args(argv)
    if args.operation == "update" and not gitrepo.is_work_tree(Path.cwd()):
        return 0  # one of Copier's temporary replays (the project itself is a git work tree)
    for cluster, version in parse_clusters(args.clusters):
        if not (Path.cwd() / components_path(cluster)).parent.is_dir():
            raise HookError("cluster_name", f"no {components_path(cluster).parent} in {Path.cwd()}")
        # An update that did not touch this cluster (its placeholder committed as it is) says nothing
        # about it: `opencenter-cluster set staging …` must not remind of prod's placeholder.
        untouched = args.operation == "update" and gitrepo.git(
            Path.cwd(), "status", "--porcelain", "--", str(components_path(cluster)), check=False).stdout.strip() == ""
        outcome = sync(Path.cwd(), cluster, version, remind=not untouched)
        if outcome != "unchanged":
            print(outcome, file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
