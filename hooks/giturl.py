"""Git repository URLs compared as the repositories they name, pure: the openCenter-gitops-base
references of a platform repository (hooks/gitops_base.py) and the apps that deploy one
repository (hooks/apps) ask the same question.

Only URL forms (scheme://[user@]host[:port]/path) are compared by their parts; Flux's
GitRepository and the `apps` answer take no other, so a scp-like git@host:path is compared as
written.
"""

from __future__ import annotations


def _repository_key(url: str) -> str:
    """The spelling of `url` that another spelling of the same repository shares: the scheme and
    host in lowercase (DNS and URL schemes ignore case; the user and path keep theirs), without
    a trailing '/' or '.git' (git and the Git hosts serve the repository either way)."""
    value = url.strip().rstrip("/").removesuffix(".git")
    scheme, sep, rest = value.partition("://")
    if not sep:
        return value
    authority, slash, path = rest.partition("/")
    user, at, host = authority.rpartition("@")
    return f"{scheme.lower()}://{user}{at}{host.lower()}{slash}{path}"


def same_repository(url: str, other: str) -> bool:
    """Whether two git URLs name one repository (_repository_key)."""
    return _repository_key(url) == _repository_key(other)
