"""age keys: parse recipients, and create or reuse the cluster's key file outside the repository.

pyrage is imported by the functions that parse or make keys, not with the module: where the key
file lives (platform_key_file) is all hooks/placeholders.py needs, and that task runs on every
`copier update`, with a Copier that may lack pyrage (hooks/preflight.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from hooks.errors import HookError

if TYPE_CHECKING:
    from pyrage import x25519


def parse_recipients(value: str, field: str = "sops_age_recipients") -> list[str]:
    """Comma-separated age public keys, each checked with its bech32 checksum."""
    from pyrage import x25519

    keys = [part.strip() for part in value.split(",") if part.strip()]
    for key in keys:
        try:
            x25519.Recipient.from_str(key)
        except Exception as error:  # pyrage raises its own RecipientError
            raise HookError(field, f"'{key}' is not a valid age public key ({error})") from None
    return keys


def default_key_dir() -> Path:
    """Where generated keys go: $OPENCENTER_AGE_KEY_DIR, else sops' own age folder."""
    if env := os.environ.get("OPENCENTER_AGE_KEY_DIR"):
        return Path(env)
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "sops" / "age"


def platform_key_file(customer: str, cluster: str) -> Path:
    """The platform's generated key pair (platform_setup writes it once); also what the commands
    printed for sops name in SOPS_AGE_KEY_FILE."""
    return default_key_dir() / f"{customer}-{cluster}.agekey"


def key_file_text(identity: x25519.Identity) -> str:
    """The age-keygen file format, readable by sops (SOPS_AGE_KEY_FILE) and by age."""
    return f"# public key: {identity.to_public()}\n{identity}\n"


def identity_in(text: str) -> x25519.Identity | None:
    """The identity of an age key file's text (its first AGE-SECRET-KEY line); None without a valid one."""
    from pyrage import x25519

    line = next((line.strip() for line in text.splitlines() if line.startswith("AGE-SECRET-KEY-")), None)
    try:
        return x25519.Identity.from_str(line) if line else None
    except Exception:  # pyrage raises its own IdentityError for a damaged line
        return None


def public_key_of(path: Path) -> str:
    """The public key of an existing age key file; refuses a file that holds no identity."""
    try:
        identity = identity_in(path.read_text())
    except OSError as error:  # a directory in its place, no permission
        raise HookError(str(path), f"cannot be read as an age key file ({error.strerror}); move it away or fix it") from None
    except UnicodeDecodeError:
        identity = None
    if identity is None:
        raise HookError(str(path), "exists but holds no valid AGE-SECRET-KEY line; move it away or fix it")
    return str(identity.to_public())


def ensure_key_file(path: Path) -> tuple[str, bool]:
    """Create the key file (mode 0600, exclusive create) unless it exists; return (public key, created).

    An existing file is never overwritten: its key is reused, so re-running is harmless.
    """
    if os.path.lexists(path):
        return public_key_of(path), False
    from pyrage import x25519

    identity = x25519.Identity.generate()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        where = "OPENCENTER_AGE_KEY_DIR" if os.environ.get("OPENCENTER_AGE_KEY_DIR") else "XDG_CONFIG_HOME or HOME"
        raise HookError(str(path), f"cannot create the age key file ({error.strerror}); make its folder writable, "
                                   f"or point {where} at one that is") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(key_file_text(identity))
    return str(identity.to_public()), True
