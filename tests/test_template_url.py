"""The templates used as platform engineers use them: from a git URL, not a local checkout.

The "remote" is a bare repository served over file:// (no network here); https and ssh URLs are
pointed at it with git's own url.<base>.insteadOf (conftest `serve_templates_at`), so Copier, git
and the recorded `_src_path` see exactly the URL a user would type.
"""

from __future__ import annotations

from pathlib import Path

import copier
import pytest
import yaml

from conftest import commit_all, git

UPSTREAM = "https://github.com/opencenter-cloud/openCenter-gitops-templates.git"
SERVED = "https://git.example.test/platform/templates.git"


def answers(repo: Path) -> dict:
    return yaml.safe_load((repo / ".copier-answers.yml").read_text())


def copy(src: str, dst: Path, **data: str) -> Path:
    copier.run_copy(src, dst, data={"template": "platform", **data}, defaults=True, unsafe=True, quiet=True)
    return dst


def test_copy_and_update_from_a_git_url(template_remote, tmp_path):
    server = tmp_path / "server.git"  # its own, as this test pushes a release to it
    git("clone", "-q", "--bare", str(template_remote), str(server), cwd=tmp_path)
    url = server.as_uri()
    repo = copy(url, tmp_path / "acme-gitops")
    recorded = answers(repo)
    assert (recorded["_src_path"], recorded["_commit"]) == (url, "0.0.1")
    # The tasks ran from Copier's clone of the URL: a key pair was generated and recorded.
    assert yaml.safe_load((repo / ".sops.yaml").read_text())["creation_rules"][0]["age"].startswith("age1")
    # A file:// source cannot serve CI: the check is installed from the upstream repository.
    assert recorded["check_package_url"] == UPSTREAM

    # A release of the templates, pushed to the server: `copier update` takes the newest tag.
    work = tmp_path / "templates"
    git("clone", "-q", url, str(work), cwd=tmp_path)
    readme = work / "platform-template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nReleased as 0.0.2.\n")
    commit_all(work, "a standard change")
    git("tag", "0.0.2", cwd=work)
    git("push", "-q", "origin", "HEAD:main", "0.0.2", cwd=work)
    commit_all(repo)
    copier.run_update(repo, defaults=True, overwrite=True, unsafe=True, quiet=True)
    assert answers(repo)["_commit"] == "0.0.2"
    assert (repo / "README.md").read_text().endswith("\nReleased as 0.0.2.\n")


@pytest.mark.parametrize("src", [SERVED, "git@git.example.test:platform/templates.git",
                                 "ssh://git@git.example.test:2222/platform/templates.git"])
def test_generated_ci_installs_the_check_from_where_the_templates_came_from(serve_templates_at, tmp_path, src):
    serve_templates_at(src)
    repo = copy(src, tmp_path / "acme-gitops", ci="github")
    recorded = answers(repo)
    assert (recorded["_src_path"], recorded["check_package_url"]) == (src, SERVED)
    workflow = (repo / ".github/workflows/validate.yaml").read_text()
    assert f'"opencenter-gitops-templates @ git+{SERVED}@${{COMMIT}}"' in workflow
