"""Fast onboarding (hooks/apprender.py) writes exactly what `copier update --data apps=…` writes.

Onboarding and offboarding render only the files that the `apps` answer changes. These tests
prove, with real Copier on a committed snapshot of this template, that the result is
byte-identical (content and mode of every file, answers file included) to the declarative
`copier update --vcs-ref=:current: --data apps=…`, for additions at 0 and several registered
apps, a changed entry and a removal; that a later plain `copier update` then changes nothing;
that hand edits send it to the full update; and that no other payload file renders from `apps`.

Renders are shared (conftest `shared_renders`): the starting platform repository of each `apps`
answer is rendered once (or is where another case's declarative update left off: STARTS_AFTER), and
the declarative reference once per (before, after); every test works on its own copies of them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import copier
import pytest
import yaml
from pyrage import x25519

from conftest import ROOT, cluster_entry, commit_all, copy_of, git
from hooks import apprender

OTHER_HOST_KEYS = "[git.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
APPS = [
    {"name": "billing", "url": "ssh://git@git.example.com:2222/acme/billing", "branch": "main", "secrets": False,
     "receiver": "generic", "known_hosts": OTHER_HOST_KEYS},
    {"name": "cart", "url": "ssh://git@gitlab.com/acme/cart", "branch": "release/1.0", "secrets": True,
     "receiver": "", "known_hosts": ""},
    {"name": "shop", "url": "ssh://git@github.com/acme/shop.git", "branch": "main", "secrets": False,
     "receiver": "github", "known_hosts": ""},
]
NEW = {"name": "api", "url": "ssh://git@github.com/acme/api.git", "branch": "main", "secrets": True,
       "receiver": "github", "known_hosts": ""}
FLUXCD_KUSTOMIZATION = "applications/overlays/prod/services/fluxcd/kustomization.yaml"


def render_platform(template: Path, dst: Path, apps: list[dict], clusters: list[dict]) -> Path:
    copier.run_copy(
        str(template), dst, vcs_ref="0.0.1", defaults=True, unsafe=True, quiet=True,
        data={"template": "platform", "sops_age_recipients": str(x25519.Identity.generate().to_public()), "apps": apps,
              "clusters": clusters},
    )
    commit_all(dst, "platform")
    return dst


class Platforms:
    """Shared renders (read only; tests copy them): `start(apps, clusters)`, the committed platform
    repository rendered with `apps` (and more `clusters`); `updated(before, after, clusters)`, a copy
    of start(before, clusters) after the declarative `copier update --data apps=after`
    (apprender.update_all), uncommitted; with `base=(b, a)`, a copy of continued(b, a) instead;
    `continued(before, after)`, updated(before, after) committed: a repository with `after`
    registered, as a case's declarative update left it (one render fewer than start(after))."""

    def __init__(self, shared_renders, template: Path) -> None:
        self.shared, self.template = shared_renders, template

    def start(self, apps: list[dict], clusters: list[dict] = ()) -> Path:
        return self.shared.get(("onboard-fast start", json.dumps([apps, clusters], sort_keys=True)),
                               lambda dst: render_platform(self.template, dst, apps, list(clusters)))

    def continued(self, before: list[dict], after: list[dict]) -> Path:
        def build(dst: Path) -> None:
            copy_of(self.updated(before, after), dst)
            commit_all(dst, "platform")

        return self.shared.get(("onboard-fast continued", json.dumps([before, after], sort_keys=True)), build)

    def updated(self, before: list[dict], after: list[dict], clusters: list[dict] = (),
                base: tuple[list[dict], list[dict]] | None = None) -> Path:
        def build(dst: Path) -> None:
            copy_of(self.continued(*base) if base else self.start(before, clusters), dst)
            apprender.update_all(dst, after)

        key = json.dumps([before, after, clusters, base], sort_keys=True)
        return self.shared.get(("onboard-fast updated", key), build)


@pytest.fixture
def platforms(shared_renders, template_snapshot) -> Platforms:
    return Platforms(shared_renders, template_snapshot)


def tree(repo: Path) -> dict[str, tuple[bytes, int]]:
    """Every file outside .git: content and mode."""
    return {
        path.relative_to(repo).as_posix(): (path.read_bytes(), path.stat().st_mode)
        for path in sorted(repo.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(repo).parts
    }


def sorted_apps(apps: list[dict]) -> list[dict]:
    return sorted(apps, key=lambda app: app["name"])


# A second and a third cluster: apps without `clusters` run on the first (prod).
STAGING = [cluster_entry(name, str(x25519.Identity.generate().to_public())) for name in ("staging", "dev")]
CHANGES = {  # (apps before, apps after[, more clusters])
    "add to 0 apps": ([], [NEW]),
    # No case adds to 1 app: the path of "add to 3 apps" (an app in front of a non-empty list, on
    # the one cluster; no template of APPS_TEMPLATES counts the apps), with fewer apps to render.
    "add to 3 apps": (APPS, APPS + [NEW]),
    "change an entry": (APPS, [APPS[0], {**APPS[1], "branch": "main", "secrets": False, "receiver": "gitlab"}, APPS[2]]),
    "remove one of 3": (APPS, [APPS[0], APPS[2]]),
    "remove the only app": ([NEW], []),
    # Only the overlays of the clusters an app leaves, joins or stays on are rendered (cluster_files).
    "add onto 1 of 3 clusters": (APPS, APPS + [{**NEW, "clusters": ["staging"]}], STAGING),
    "move an app to other clusters": (APPS, [APPS[0], APPS[1], {**APPS[2], "clusters": ["staging"]}], STAGING),
}


# A case that starts where another one's declarative update left off (Platforms.continued), which
# the fast path matched byte for byte: a one-app repository without a render of its own.
STARTS_AFTER = {"remove the only app": "add to 0 apps"}
FOLLOWED_BY_UPDATE = ("add to 3 apps", "remove the only app", "add onto 1 of 3 clusters")


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_fast_render_is_byte_identical_to_copier_update(platforms, tmp_path, change):
    before, after, *more = CHANGES[change]
    before, after, clusters = sorted_apps(before), sorted_apps(after), more[0] if more else []
    base = tuple(map(sorted_apps, CHANGES[STARTS_AFTER[change]])) if change in STARTS_AFTER else None
    assert base is None or base[1] == before
    start = platforms.continued(*base) if base else platforms.start(before, clusters)
    fast = copy_of(start, tmp_path / "fast")
    assert apprender.render_changed_apps(fast, after) is True  # the fast path was taken
    # update_all on `before`
    declarative = copy_of(platforms.updated(before, after, clusters, base), tmp_path / "declarative")

    assert tree(fast) == tree(declarative)
    assert yaml.safe_load((fast / ".copier-answers.yml").read_text())["apps"] == after
    # The same files are changed, added and removed in git's eyes too.
    git("add", "-A", cwd=fast)
    git("add", "-A", cwd=declarative)
    assert git("status", "--porcelain", cwd=fast) == git("status", "--porcelain", cwd=declarative)

    # A later copier update with no change (tasks included, as users run it) finds nothing to do:
    # a full render each, so for an addition, a removal and a placement on some clusters only.
    if change in FOLLOWED_BY_UPDATE:
        git("commit", "-q", "-m", change, cwd=fast)
        copier.run_update(fast, defaults=True, overwrite=True, unsafe=True, vcs_ref=copier.VcsRef.CURRENT, quiet=True)
        assert git("status", "--porcelain", "--untracked-files=all", cwd=fast) == ""


def test_without_copiers_worker_each_render_uses_run_copy(platforms, tmp_path, monkeypatch):
    """The shared template clone relies on Copier's internal Worker; without it, same result."""
    assert apprender.copier_worker() is not None  # the pinned Copier has it: one clone per onboarding
    fast = copy_of(platforms.start(APPS), tmp_path / "fast")
    declarative = platforms.updated(APPS, sorted_apps(APPS + [NEW]))  # the "add to 3 apps" reference
    monkeypatch.setattr(apprender, "copier_worker", lambda: None)
    assert apprender.render_changed_apps(fast, sorted_apps(APPS + [NEW])) is True
    assert tree(fast) == tree(declarative)


def test_hand_edits_take_the_declarative_update_which_keeps_them(platforms, tmp_path):
    repo = copy_of(platforms.start(APPS), tmp_path / "platform")
    target = repo / FLUXCD_KUSTOMIZATION
    target.write_text(target.read_text() + "  # our own Kustomization\n  - extra.yaml\n")
    (target.parent / "extra.yaml").write_text("# kept\n")
    commit_all(repo, "hand edit")
    untouched = tree(repo)

    new_apps = sorted_apps(APPS + [NEW])
    assert apprender.render_changed_apps(repo, new_apps) is False
    assert tree(repo) == untouched  # nothing written when the fast path declines

    declarative = tmp_path / "declarative"
    shutil.copytree(repo, declarative, symlinks=True)
    apprender.render_apps(repo, new_apps)
    apprender.update_all(declarative, new_apps)
    assert tree(repo) == tree(declarative)
    assert "  - extra.yaml\n" in target.read_text() and "  - api.yaml\n" in target.read_text()


JINJA = re.compile(r"\{[{%](.*?)[%}]\}", re.DOTALL)


def names_derived_from_apps() -> set[str]:
    """`apps` and every question whose default (transitively) renders from it, e.g. app_files."""
    questions = {}
    for path in (ROOT / "questions").glob("*.yml"):
        for doc in yaml.safe_load_all(path.read_text()):
            questions.update({k: v for k, v in (doc or {}).items() if isinstance(v, dict) and not k.startswith("_")})
    names, grew = {"apps"}, True
    while grew:
        grew = False
        for name, spec in questions.items():
            uses = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
            if name not in names and uses.search(" ".join(JINJA.findall(str(spec.get("default", ""))))):
                names.add(name)
                grew = True
    return names


def test_only_the_files_the_fast_path_renders_use_apps():
    """A payload file that starts to render from `apps` (or from a question computed from it) must
    be added to apprender.APPS_TEMPLATES, or fast onboarding would leave it stale (and the next
    copier update would show a diff)."""
    derived = names_derived_from_apps()
    assert {"app_files", "cluster_list"} <= derived
    # cluster_list carries every cluster's settings too: only its apps and app_files derive from apps.
    names = derived - {"cluster_list"} | {"_copier_answers", r"cluster\.apps", r"cluster\.app_files"}
    uses = re.compile(r"\b(" + "|".join(name if "\\" in name else re.escape(name) for name in names) + r")\b")
    payload = ROOT / "platform-template"
    using = set()
    for path in payload.rglob("*.jinja"):
        rel = path.relative_to(payload).as_posix()
        if uses.search(" ".join(JINJA.findall(rel) + JINJA.findall(path.read_text()))):
            using.add(rel)
    assert using == set(apprender.APPS_TEMPLATES)
