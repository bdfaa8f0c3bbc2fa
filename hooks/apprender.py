"""Re-render a platform repository for a new `apps` answer, touching only what `apps` renders.

`copier update --vcs-ref=:current: --data apps=…` renders the whole repository three times (the
recorded answers, the project, the new answers) and forks `git config` for every rendered file:
with 500 apps that is over 3,000 files per onboarding, and the cost grows with every app. Yet a
new `apps` answer changes only these files of the platform repository (apps_files() below, from
the templates in APPS_TEMPLATES):

- the answers file;
- the two kustomization.yaml lists (services/sources, services/fluxcd);
- services/sources/<app>.yaml, services/fluxcd/<app>.yaml and services/tenants/<app>/ of each app
  whose entry changed;

and only in the overlays of the clusters those apps leave, join or stay on.

So Copier renders exactly those (its own `exclude` patterns: `*`, then `!path` for each), from
the template at the recorded `_src_path`/`_commit`, twice into temporary folders, with one Worker's
template clone: once with the recorded answers (what `copier update` replays as "old") and once
with the new `apps`. The per-app templates loop over the computed answer `app_files` (all of
`apps` unless given), which both renders set to the changed apps only, and the overlays over
`cluster_files` (every cluster unless given), set to the touched clusters, so Copier's per-path
loop runs neither over every registered app nor over every cluster. When the repository's copies equal the old render
(nobody edited them by hand), the update would write the new render verbatim, so that is what is
written, the answers file included. When they do not (a hand edit that Copier would have to
merge), the declarative `copier update` runs instead.

tests/test_onboard_fast.py proves that both give byte-identical trees, that a later `copier
update` finds nothing to change, and that no other payload file renders from `apps`. A platform
repository at a release older than `app_files` renders the same files, only more slowly.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any


from hooks import apps as appsmod
from hooks import clusters as clustersmod
from hooks import kept_answers
from hooks.answers import ANSWERS_FILE, load_answers
from hooks.errors import HookError, copier_error

# Payload templates (relative to platform-template/) that render from `apps`; anything else that
# starts to use it must be added here (tests/test_onboard_fast.py fails until it is).
OVERLAY_TEMPLATE = "applications/overlays/{% yield cluster from cluster_list %}{{ cluster.cluster_name }}{% endyield %}"
APPS_TEMPLATES = (
    "{{ _copier_conf.answers_file }}.jinja",
    f"{OVERLAY_TEMPLATE}/services/sources/kustomization.yaml.jinja",
    f"{OVERLAY_TEMPLATE}/services/fluxcd/kustomization.yaml.jinja",
    f"{OVERLAY_TEMPLATE}/services/sources/{{% yield app from cluster.app_files %}}{{{{ app.name }}}}{{% endyield %}}.yaml.jinja",
    f"{OVERLAY_TEMPLATE}/services/fluxcd/{{% yield app from cluster.app_files %}}{{{{ app.name }}}}{{% endyield %}}.yaml.jinja",
    f"{OVERLAY_TEMPLATE}/services/{{% if cluster.app_files %}}tenants{{% endif %}}/"
    "{% yield app from cluster.app_files %}{{ app.name }}{% endyield %}/tenant.yaml.jinja",
)


def changed_names(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Apps added, removed or changed between two `apps` answers."""
    before = {app["name"]: app for app in old}
    after = {app["name"]: app for app in new}
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def only(apps: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    return [app for app in apps if app["name"] in names]


def touched_clusters(answers: dict[str, Any], old: list[dict[str, Any]], new: list[dict[str, Any]],
                     names: list[str]) -> list[str]:
    """The clusters (in the repository's order) that the changed apps leave, join or stay on: no
    other cluster's overlay renders anything different."""
    domains = clustersmod.domains(answers)
    touched = {cluster for app in [*only(old, names), *only(new, names)] for cluster in appsmod.placement(app, domains)}
    return [cluster for cluster in domains if cluster in touched]


def apps_files(clusters: list[str], names: list[str]) -> list[str]:
    """The rendered files a change of `names` in `apps` can touch in `clusters` (answers file
    first): an app can be added to, or removed from, any of them."""
    files = [ANSWERS_FILE]
    for cluster in clusters:
        files += [f"{appsmod.sources_dir(cluster)}/kustomization.yaml", f"{appsmod.fluxcd_dir(cluster)}/kustomization.yaml"]
        for name in names:
            files += appsmod.rendered_files(name, cluster)
    return files


def copier_worker() -> type | None:
    """Copier's Worker class, if it still caches its template clone in a `template` cached_property."""
    try:
        from copier._main import Worker
    except ImportError:
        return None
    return Worker if isinstance(vars(Worker).get("template"), cached_property) else None


def render_both(answers: dict[str, Any], renders: list[tuple[dict[str, Any], list[str], Path]]) -> None:
    """Render, for each (data, paths, dst), just `paths` of the template recorded in `answers`.

    One Copier Worker per render (copier.run_copy's own), sharing one clone of the template at
    `_commit` and its parsed copier.yml: the second render costs no clone and no config parse.
    Worker is Copier's internal class (pinned Copier); should it move, each render goes through
    the public copier.run_copy instead, with a clone of its own.
    """
    import copier

    options = dict(vcs_ref=str(answers["_commit"]), defaults=True, overwrite=True, unsafe=True, quiet=True,
                   skip_tasks=True)

    def restrict(paths: list[str]) -> list[str]:
        return ["*", *(f"!/{rel}" for rel in paths)]

    Worker = copier_worker()
    if Worker is None:
        for data, paths, dst in renders:
            copier.run_copy(str(answers["_src_path"]), dst, data=data, exclude=restrict(paths), **options)
        return
    (data, paths, dst), *rest = renders
    with Worker(src_path=str(answers["_src_path"]), dst_path=dst, data=data, exclude=restrict(paths),
                **options) as first:
        first.run_copy()
        for data, paths, dst in rest:
            with replace(first, dst_path=dst, data=data, exclude=restrict(paths)) as worker:
                worker.__dict__["template"] = first.template  # the cached_property, already cloned
                worker.run_copy()


def read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def scope(platform: Path, apps: list[dict[str, Any]]) -> list[str]:
    """The files a render of `apps` can write in the platform repository, on either path (the
    declarative update renders the same files: tests/test_onboard_fast.py): apps_files of the
    changed apps on the clusters they touch."""
    names, clusters = changes(load_answers(platform), apps)
    return apps_files(clusters, names)


def changes(answers: dict[str, Any], apps: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The apps a new `apps` answer changes, and the clusters they touch."""
    recorded = answers.get("apps") or []
    names = changed_names(recorded, apps)
    return names, touched_clusters(answers, recorded, apps, names)


def render_changed_apps(platform: Path, apps: list[dict[str, Any]]) -> bool:
    """Write what `copier update --data apps=…` would, rendering only the files `apps` changes.

    Returns False, having written nothing, when a file that would change was edited by hand (or
    deleted): Copier's three-way merge is then needed, and the caller runs the full update.
    """
    answers = load_answers(platform)
    recorded = {key: value for key, value in answers.items() if not key.startswith("_")}
    names, clusters = changes(answers, apps)
    paths = apps_files(clusters, names)
    with tempfile.TemporaryDirectory(prefix="opencenter-apps-") as tmp:
        old, new = Path(tmp) / "old", Path(tmp) / "new"
        # app_files: the apps whose own files are rendered (all of `apps` by default), cluster_files:
        # the clusters whose overlays are (all by default); the template's yield loops run over them,
        # so only the changed apps on the clusters they touch cost anything.
        render_both(answers, [
            ({**recorded, "apps": apps, "app_files": only(apps, names), "cluster_files": clusters}, paths, new),
            ({**recorded, "app_files": only(recorded.get("apps") or [], names), "cluster_files": clusters},
             paths[1:], old),
        ])
        # The answers file is rewritten by any update; every other file must be as rendered.
        if any(read(platform / rel) != read(old / rel) for rel in paths[1:]):
            return False
        for rel in paths:
            target, rendered = platform / rel, new / rel
            if not rendered.is_file():
                target.unlink(missing_ok=True)
                for folder in (target.parent, target.parent.parent):  # services/tenants/<app>, then tenants/
                    if folder.is_dir() and not any(folder.iterdir()):
                        folder.rmdir()
            elif read(target) != rendered.read_bytes():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(rendered, target)
                shutil.copymode(rendered, target)
    return True


def update_all(platform: Path, apps: list[dict[str, Any]]) -> None:
    """The declarative path: `copier update --vcs-ref=:current: --data apps=…` (three full renders)."""
    import copier

    # skip_tasks: only `apps` changes, and the platform tasks depend on other answers (they run,
    # three times, on every update: Copier replays old and new renders in temporary folders).
    copier.run_update(
        platform, data={"apps": apps}, defaults=True, overwrite=True, unsafe=True,
        vcs_ref=copier.VcsRef.CURRENT, quiet=True, skip_tasks=True,
    )


def render_apps(platform: Path, apps: list[dict[str, Any]]) -> None:
    """Re-render the platform repository with a new `apps` answer, at its recorded template version."""
    before = load_answers(platform)
    try:
        if not render_changed_apps(platform, apps):
            update_all(platform, apps)
        kept_answers.verify({**before, "apps": apps}, load_answers(platform))
    except HookError:
        raise
    except Exception as error:  # Copier raises many types; all mean the render failed
        raise copier_error(error) from None
