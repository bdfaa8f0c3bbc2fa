"""Key material of an app, generated in memory: ed25519 deploy key, age key, receiver token.

Nothing here touches the disk: the clear Secret manifests built below go to sops on stdin
(hooks/sops.py) and only the encrypted output is written.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyrage import x25519

from hooks.agekeys import key_file_text

FLUX_NAMESPACE = "flux-system"
# The entries of an app's <app>-sops-age Secret: its key, and the next one while a rotation is under way.
AGE_KEY_ENTRY = "age.agekey"
NEXT_AGE_KEY_ENTRY = "age-next.agekey"


@dataclass(frozen=True)
class DeployKey:
    private_openssh: str  # the OpenSSH (PEM-armoured) private key text, kept in memory only
    public_openssh: str  # ssh-ed25519 AAAA… <comment>


def generate_deploy_key(comment: str) -> DeployKey:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return DeployKey(private, f"{public.decode()} {comment}")


def generate_token() -> str:
    return secrets.token_urlsafe(32)


def webhook_path(token: str, receiver: str, namespace: str = FLUX_NAMESPACE) -> str:
    """The path notification-controller serves a Receiver on: /hook/sha256(token+name+namespace)
    (Receiver.GetWebhookPath in fluxcd/notification-controller api/v1)."""
    return "/hook/" + hashlib.sha256((token + receiver + namespace).encode()).hexdigest()


def _secret(name: str, app: str, string_data: dict[str, str], labels: dict[str, str] | None = None) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": FLUX_NAMESPACE,
            "labels": {"toolkit.fluxcd.io/tenant": app, "opencenter/managed-by": "opencenter", **(labels or {})},
        },
        "type": "Opaque",
        "stringData": string_data,
    }
    return yaml.safe_dump(doc, sort_keys=False, width=4096)


def deploy_key_secret(app: str, key: DeployKey, known_hosts: str) -> str:
    """The GitRepository's ssh auth Secret (keys Flux reads: identity, identity.pub, known_hosts)."""
    return _secret(
        f"{app}-deploy-key",
        app,
        {"identity": key.private_openssh, "identity.pub": key.public_openssh + "\n", "known_hosts": known_hosts},
    )


def generate_age_identity() -> x25519.Identity:
    return x25519.Identity.generate()


def sops_age_secret(app: str, identity: x25519.Identity, upcoming: x25519.Identity | None = None) -> str:
    """The app's own SOPS key for Flux: its Kustomization's decryption.secretRef (`*.agekey` entry,
    age-keygen format). Only this app's Kustomization uses it, so a ciphertext made for the
    platform's key (or another app's) that a tenant copies into its repository never decrypts.
    During a rotation it holds the upcoming key too: Flux imports every `*.agekey` entry of the
    Secret and decrypts with whichever opens a file."""
    keys = {AGE_KEY_ENTRY: key_file_text(identity)}
    if upcoming is not None:
        keys[NEXT_AGE_KEY_ENTRY] = key_file_text(upcoming)
    return _secret(f"{app}-sops-age", app, keys)


def receiver_token_secret(app: str, token: str) -> str:
    # The watch label makes notification-controller pick up a rotated token at once.
    return _secret(f"{app}-receiver-token", app, {"token": token}, {"reconcile.fluxcd.io/watch": "Enabled"})

