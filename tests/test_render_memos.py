"""The suite's memos (tests/site: Jinja's compile, Copier's YAML parsing and its answers) change no render: a
platform repository with several clusters, services and apps (file names from `{% yield %}`) and an app repository
with environments, rendered with Jinja's and Copier's own functions, with the memos, and with code a process finds in
the memo's disk folder, are byte-identical; and the Pythons the tests start have the memo too. The kustomize build memo
changes no check: the same builds and findings with it as with kubectl every time, and a changed file is built
again; folders built together are kept as one entry, a joint build that fails never. The template clone memo changes no render, and a template changed since (a draft change, a new commit) is
cloned again. The file-mode memo changes no index: where git ignores file modes, Copier still
corrects a tracked file's executable bit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import copier
from copier import _template
import pytest
from jinja2 import Environment

import answers_memo
import clone_memo
import filemode_memo
import jinja_cache
import kustomize_memo
import yaml_memo
from conftest import cluster_entry, commit_all, git
from hooks import kustomize
from hooks.check import check_repo
from updating import tree

KEY = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
APP = {"name": "shop", "url": "ssh://git@github.com/acme/shop", "branch": "main", "secrets": True,
       "receiver": "github", "known_hosts": "", "clusters": ["prod", "staging"]}
ANSWERS = {
    "platform": {"sops_age_recipients": KEY, "platform_services": ["cert-manager", "gateway-api", "gateway", "kyverno"],
                 "clusters": [cluster_entry("staging", KEY, platform_services=["gateway-api", "gateway", "velero"])],
                 "apps": [APP]},
    "app": {"app_name": "shop", "environments": "staging,prod", "secret_keys": "TOKEN", "secrets_age_recipients": KEY},
}


@pytest.mark.parametrize("template", ["platform", "app"])
def test_the_compile_memo_changes_no_rendered_byte(template_snapshot, tmp_path, template, monkeypatch):
    def render(dst: Path) -> dict[str, bytes]:
        copier.run_copy(str(template_snapshot), dst, data={"template": template, **ANSWERS[template]}, defaults=True,
                        unsafe=True, vcs_ref="0.0.1", quiet=True, skip_tasks=True)
        return tree(dst)

    assert Environment.compile is jinja_cache._cached_compile  # installed by conftest
    assert _template.load_template_config is yaml_memo.load_template_config
    assert copier._main.Worker._render_template is answers_memo._render_template
    Environment.compile = jinja_cache._compile
    yaml_memo.install(on=False)
    answers_memo.install(on=False)
    try:
        plain = render(tmp_path / "plain")
    finally:
        jinja_cache.install()
        yaml_memo.install()
        answers_memo.install()
    # A disk folder of this test's own, and a process that has compiled nothing yet.
    monkeypatch.setenv("JINJA_CACHE_DIR", str(tmp_path / "disk"))
    (tmp_path / "disk").mkdir()
    monkeypatch.setattr(jinja_cache, "_compiled", {})
    stored = []
    for name in ("first", "again", "from-disk"):  # compiles; hits in memory; reads the disk folder
        if name == "from-disk":
            monkeypatch.setattr(jinja_cache, "_compiled", {})
        assert render(tmp_path / name) == plain
        stored.append(len(list((tmp_path / "disk").iterdir())))
    # What names the destination or the clone of the template (a temporary folder) is not stored.
    assert stored[0] > 100 and stored[0] == stored[1] == stored[2], stored


def test_the_pythons_the_tests_start_have_the_memo():
    compile_fn = subprocess.run([sys.executable, "-c", "import jinja2; print(jinja2.Environment.compile.__qualname__)"],
                                capture_output=True, text=True, check=True).stdout.strip()
    assert compile_fn == "_cached_compile"


def test_the_pythons_the_tests_start_have_the_kustomize_clone_file_mode_and_answers_memos():
    installed = subprocess.run([sys.executable, "-c", "import hooks.kustomize as k, copier._template as t, copier._main as m; "
                                "print(k._run_build.__module__, t.clone.__module__, "
                                "m.Worker._sync_git_index_executable_bit.__module__, m.Worker._render_template.__module__)"],
                               capture_output=True, text=True, check=True).stdout.split()
    assert installed == ["kustomize_memo", "clone_memo", "filemode_memo", "answers_memo"]


@pytest.mark.filterwarnings("ignore::copier.errors.DirtyLocalWarning")  # the draft change below, on purpose
def test_the_clone_memo_changes_no_render_and_clones_a_changed_template_again(template_snapshot, tmp_path, monkeypatch):
    src = shutil.copytree(template_snapshot, tmp_path / "template", symlinks=True)  # a template of this test's own
    memo = tmp_path / "memo"
    memo.mkdir()
    monkeypatch.setenv("COPIER_CLONE_MEMO_DIR", str(memo))

    def render(name: str) -> dict[str, bytes]:
        copier.run_copy(str(src), tmp_path / name, data={"template": "app", "app_name": "shop"}, defaults=True,
                        unsafe=True, vcs_ref="HEAD", quiet=True, skip_tasks=True)
        return tree(tmp_path / name)

    clone_memo.install(on=False)
    try:
        plain = render("plain")
    finally:
        clone_memo.install()
    assert render("first") == plain and render("again") == plain
    assert len(list(memo.iterdir())) == 1
    # A draft change (Copier copies a dirty HEAD's changes), then the same change committed.
    readme = src / "app-template/README.md.jinja"
    readme.write_text(readme.read_text() + "\nA draft line.\n")
    drafted = render("drafted")
    assert drafted["README.md"].endswith(b"A draft line.\n") and len(list(memo.iterdir())) == 2
    commit_all(src, "the draft")
    assert render("committed") == drafted and len(list(memo.iterdir())) == 3


def test_the_kustomize_memo_changes_no_check_and_builds_a_changed_repository_again(rendered, tmp_path, monkeypatch):
    repo = rendered(template="platform", commit=True)
    monkeypatch.setenv("KUSTOMIZE_MEMO_DIR", str(tmp_path / "memo"))  # empty: this test's own
    (tmp_path / "memo").mkdir()

    def everything() -> list[tuple]:
        return [(b.root, b.objects, b.error) for b in kustomize.build_all(kustomize.find_roots(repo))]

    kustomize_memo.install(on=False)
    try:
        plain, plain_builds = check_repo(repo), everything()
    finally:
        kustomize_memo.install()
    runs = []
    monkeypatch.setattr(kustomize_memo, "ORIGINAL", lambda *args: runs.append(args) or kustomize_memo.ORIGINAL_RUN(*args))
    assert everything() == plain_builds and len(runs) == len(plain_builds) > 1
    assert everything() == plain_builds and len(runs) == len(plain_builds)  # the second time, none runs kubectl
    assert check_repo(repo) == plain
    # A changed file: the repository's builds run again, and see the change.
    overlay = repo / "applications/overlays/prod/services/cert-manager/kustomization.yaml"
    overlay.write_text(overlay.read_text() + "commonLabels: {memo: test}\n")
    changed = everything()
    assert len(runs) == 2 * len(plain_builds)
    assert any((obj.get("metadata") or {}).get("labels", {}).get("memo") == "test" for _, objects, _ in changed for obj in objects)


def test_the_kustomize_memo_keeps_joint_builds_of_tenant_folders_and_no_failed_one(rendered, tmp_path, monkeypatch):
    repo = rendered(template="platform", **{**ANSWERS["platform"], "apps": [APP, {**APP, "name": "cart"}]})
    monkeypatch.setenv("KUSTOMIZE_MEMO_DIR", str(tmp_path / "memo"))  # empty: this test's own
    (tmp_path / "memo").mkdir()
    folders = sorted((repo / "applications/overlays/prod/services/tenants").iterdir())
    command = kustomize.build_command()
    real = kustomize_memo.ORIGINAL_TOGETHER  # kustomize's own
    plain = real(folders, command)
    assert len(folders) == 2 and plain is not None and all(built.objects for built in plain)
    runs = []
    monkeypatch.setattr(kustomize_memo, "ORIGINAL_TOGETHER", lambda *args: runs.append(args) or real(*args))
    assert kustomize.build_together(folders, command) == plain and len(runs) == 1
    assert kustomize.build_together(folders, command) == plain and len(runs) == 1  # the second time, no kubectl
    # A folder that breaks the joint build: nothing stored, built again every time.
    (folders[1] / "broken.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    assert kustomize.build_together(folders, command) is None and kustomize.build_together(folders, command) is None
    assert len(runs) == 3


def test_the_file_mode_memo_changes_no_index_where_git_ignores_modes(template_snapshot, tmp_path):
    """In a repository with core.fileMode false, README.md tracked as executable: Copier sets its
    index entry back to 100644 (the template's mode) with the memo as without it."""
    def render(name: str, memo: bool) -> str:
        dst = tmp_path / name
        copy = dict(data={"template": "app", "app_name": "shop"}, defaults=True, unsafe=True, vcs_ref="HEAD",
                    quiet=True, skip_tasks=True, overwrite=True)
        copier.run_copy(str(template_snapshot), dst, **copy)
        git("init", "-q", cwd=dst)
        git("config", "core.fileMode", "false", cwd=dst)
        commit_all(dst, "first")
        git("update-index", "--chmod=+x", "README.md", cwd=dst)
        (dst / "README.md").write_text("edited\n")
        filemode_memo.install(on=memo)
        try:
            copier.run_copy(str(template_snapshot), dst, **copy)
        finally:
            filemode_memo.install()
        return git("ls-files", "-s", cwd=dst)

    plain = render("plain", memo=False)
    assert "100644 " in next(line for line in plain.splitlines() if line.endswith("\tREADME.md"))
    assert render("memo", memo=True) == plain
