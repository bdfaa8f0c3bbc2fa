"""Shared by tests/test_update_*.py: a throwaway tagged history of the template, and helpers.

Nothing here depends on this repository's own tags: `history` (a session fixture) clones the
working-tree snapshot, tags it 1.0.0, applies a "standard change" to both templates and tags that
1.1.0. Tests copy from 1.0.0, commit, make owner edits and `copier update` to 1.1.0.
`copied` gives a test its own copy of such a copy, made once per session (conftest `shared_renders`).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import copier
import pytest
import yaml

from conftest import ROOT, commit_all, copy_of, fake_flux  # noqa: F401  (re-exported for the update tests)
from hooks.apprender import OVERLAY_TEMPLATE

OVERLAY = "applications/overlays/prod"
COMPONENTS = f"{OVERLAY}/flux-system/gotk-components.yaml"
SAMPLES = ROOT / "tests" / "samples"
GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
MIGRATIONS = '''
_migrations:
  - version: "1.1.0"
    command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/hooks/migrate.py",
              "--answers-file={{ _copier_conf.answers_file }}", "--template=platform",
              "rename-answer", "gitops_base_tag", "gitops_base_release"]
    when: "{{ _stage == 'before' }}"
  - version: "1.1.0"
    command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/hooks/migrate.py",
              "--answers-file={{ _copier_conf.answers_file }}", "--template=platform",
              "raise-version", "flux_version", "2.10.0"]
    when: "{{ _stage == 'before' }}"
'''


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace `old` exactly `count` times (fails loudly when the template moved under the test)."""
    text = path.read_text()
    assert text.count(old) == count, f"{path}: expected {count}× {old!r}, found {text.count(old)}"
    path.write_text(text.replace(old, new))


def standard_change(tpl: Path) -> None:
    """Release 1.1.0 of the throwaway history: what a real standard change looks like.

    - a changed file nobody edits: every platform service Kustomization gets a longer timeout;
    - a changed file its owner also edits (elsewhere): the service overlay kustomization comment;
    - a renamed answer, gitops_base_tag -> gitops_base_release, with its migration;
    - a Flux upgrade: the flux_version default moves to 2.10.0, and a migration raises older
      recorded answers to it (the fleet's new floor);
    - app template: a tighter NetworkPolicy baseline and a Deployment default nobody edits.
    """
    payload = tpl / "platform-template"
    fluxcd = payload / OVERLAY_TEMPLATE / "services/fluxcd"
    edit(next(fluxcd.glob("{% yield svc from cluster.platform_services %}*")), "  timeout: 10m\n", "  timeout: 15m\n")
    overlay = next((payload / OVERLAY_TEMPLATE / "services").glob("{% yield svc from cluster.helm_overlay*"))
    edit(overlay / "kustomization.yaml.jinja", "  # Name and key are what", "  # Name and key (1.1.0) are what")
    for path in [tpl / "questions/platform.yml", tpl / "includes/validators.jinja", *payload.rglob("*.jinja")]:
        text = path.read_text()
        if "gitops_base_tag" in text:
            path.write_text(text.replace("gitops_base_tag", "gitops_base_release"))
    edit(tpl / "questions/platform.yml", 'default: "2.9.4"', 'default: "2.10.0"')
    edit(tpl / "questions/migrations.yml", "_migrations: []\n", MIGRATIONS)
    app = tpl / "includes/app"  # the app's manifests, shared by the flat layout and deploy/base
    edit(app / "networkpolicies.yaml.jinja", "  name: default-deny-all\n",
         "  name: default-deny-all\n  labels:\n    opencenter.io/baseline: \"true\"\n")
    edit(app / "deployment.yaml.jinja", "            sizeLimit: 64Mi\n", "            sizeLimit: 128Mi\n")


def run_git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **GIT_ENV})


@pytest.fixture(scope="session")
def history(template_snapshot: Path, shared_renders) -> Path:
    """The working tree tagged 1.0.0, then the standard change tagged 1.1.0, in a temp repo: one for
    all workers, so that the copies `copied` shares between them record one source path."""

    def build(tpl: Path) -> None:
        tpl.parent.mkdir(parents=True, exist_ok=True)
        run_git("clone", "-q", str(template_snapshot), str(tpl), cwd=tpl.parent)
        run_git("tag", "1.0.0", cwd=tpl)
        standard_change(tpl)
        run_git("commit", "-q", "-am", "standard change", cwd=tpl)
        run_git("tag", "1.1.0", cwd=tpl)

    return shared_renders.get(("template history",), build)


def copy(src: Path, dst: Path, ref: str, template: str = "platform", **data) -> Path:
    """`copier copy --trust --defaults` at `ref`, committed: what `copier update` needs."""
    copier.run_copy(str(src), dst, data={"template": template, **data}, defaults=True, unsafe=True,
                    vcs_ref=ref, quiet=True)
    commit_all(dst, f"copy {ref}")
    return dst


@pytest.fixture
def copied(shared_renders, history: Path, tmp_path: Path):
    """`copied(name, ref, template="platform", **data)`: what `copy(history, tmp_path / name, ref,
    template, **data)` gives, made once per session and copied for this test. For copies that need
    nothing of the test's own environment (no fake flux on PATH: use `copy` for those)."""

    def get(name: str, ref: str, template: str = "platform", **data) -> Path:
        key = ("history copy", ref, template, json.dumps(data, sort_keys=True))
        shared = shared_renders.get(key, lambda dst: copy(history, dst, ref, template, **data))
        return copy_of(shared, tmp_path / name)

    return get


def sample(template: str) -> dict:
    """The sample answers of a template (tests/samples/<template>-answers.yml)."""
    return yaml.safe_load((SAMPLES / f"{template}-answers.yml").read_text())


def update(dst: Path, ref: str, **data) -> None:
    """`copier update --defaults --trust [--data …] --vcs-ref ref`; the API wants VcsRef.CURRENT
    for the CLI's `:current:` (the string is taken as a git revision)."""
    vcs_ref = copier.VcsRef.CURRENT if ref == ":current:" else ref
    copier.run_update(dst, data=data, defaults=True, overwrite=True, unsafe=True, vcs_ref=vcs_ref, quiet=True)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root but .git, with the answers file's `_commit` normalised."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == ".git" or rel.startswith(".git/") or not path.is_file():
            continue
        data = path.read_bytes()
        if rel == ".copier-answers.yml":
            data = b"\n".join(l for l in data.split(b"\n") if not l.startswith(b"_commit:"))
        files[rel] = data
    return files


def assert_same_tree(left: Path, right: Path) -> None:
    a, b = tree(left), tree(right)
    assert sorted(a) == sorted(b), f"only left: {sorted(set(a) - set(b))}, only right: {sorted(set(b) - set(a))}"
    differ = [rel for rel in a if a[rel] != b[rel]]
    assert not differ, "differ: " + ", ".join(differ) + "\n" + "\n".join(
        f"--- {rel}\n{a[rel].decode()}\n+++\n{b[rel].decode()}" for rel in differ[:2]
    )


def conflicted(repo: Path) -> list[str]:
    """Files holding conflict markers or .rej leftovers."""
    found = []
    for rel, data in tree(repo).items():
        if rel.endswith(".rej") or any(l.startswith((b"<<<<<<< ", b">>>>>>> ")) for l in data.splitlines()):
            found.append(rel)
    return found


def answers(repo: Path) -> dict:
    return yaml.safe_load((repo / ".copier-answers.yml").read_text())


