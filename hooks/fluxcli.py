"""The flux CLI, when one is installed: it renders gotk-components.yaml for the pinned release."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hooks.errors import HookError


def available() -> bool:
    return shutil.which("flux") is not None


def install_command(version: str, components: str | None = None) -> list[str]:
    """`flux install --export` for exactly the pinned release (the CLI wants a leading v).

    `components` (comma-separated, from an existing manifest's `# Components:` header) keeps
    the same controllers across an upgrade, as Renovate's flux manager does.
    """
    command = ["flux", "install", "--export", f"--version=v{version}"]
    if components:
        command.append(f"--components={components}")
    return command


def render_components(target: Path, version: str, components: str | None = None) -> bool:
    """Write gotk-components.yaml from `flux install --export`; False when no flux is on PATH."""
    if not available():
        return False
    command = install_command(version, components)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or "kind: " not in result.stdout:
        raise HookError("flux_version", f"`{' '.join(command)}` failed: {result.stderr.strip()}")
    target.write_text(result.stdout)
    return True
