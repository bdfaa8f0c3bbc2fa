"""The flux CLI, when one is installed: it renders gotk-components.yaml for the pinned release."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hooks.errors import HookError


def install_command(version: str) -> list[str]:
    """`flux install --export` for exactly the pinned release (the CLI wants a leading v)."""
    return ["flux", "install", "--export", f"--version=v{version}"]


def render_components(target: Path, version: str) -> bool:
    """Write gotk-components.yaml from `flux install --export`; False when no flux is on PATH."""
    if shutil.which("flux") is None:
        return False
    result = subprocess.run(install_command(version), capture_output=True, text=True, check=False)
    if result.returncode != 0 or "kind: " not in result.stdout:
        raise HookError("flux_version", f"`{' '.join(install_command(version))}` failed: {result.stderr.strip()}")
    target.write_text(result.stdout)
    return True
