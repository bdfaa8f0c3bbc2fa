"""examples/multi-cluster.sh, run as a user runs it: the commands of README.md's "Several clusters"
section and of docs/multi-cluster.md, exactly as printed there (checked line by line), then what
they built: a platform repository with clusters prod and staging, app shop on both (a new image
on staging, promoted to prod), a Flux upgrade on staging that left prod byte-identical, cluster dev
added and removed again, every repository committed, the check passing, the private keys outside
the repositories. Copied from the working-tree snapshot (TEMPLATES): a dirty checkout records a
commit no repository has."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT, git

SCRIPT = ROOT / "examples/multi-cluster.sh"
TEMPLATES_URL = "https://github.com/opencenter-cloud/openCenter-gitops-templates.git"


def shown_commands(page: Path, heading: str) -> list[str]:
    """The lines of the first ```sh block after `heading` in a page, the templates' URL as the
    script spells its copy source."""
    text = page.read_text()
    block = re.search(r"```sh\n(.*?)```", text[text.index(heading):], re.DOTALL)
    assert block, (page, heading)
    return [line.replace(TEMPLATES_URL, '"$templates"') for line in block.group(1).splitlines() if line.strip()]


def test_the_walkthrough_runs_exactly_the_commands_the_docs_show():
    script = [line for line in SCRIPT.read_text().splitlines() if line.strip()]
    readme = shown_commands(ROOT / "README.md", "## Several clusters")
    docs = shown_commands(ROOT / "docs/multi-cluster.md", "# Several clusters")
    for shown in (readme, docs):
        assert shown[0] in script, shown[0]
        start = script.index(shown[0])
        assert script[start:start + len(shown)] == shown
    assert script.index(readme[0]) < script.index(docs[0])


def changed_by(repo: Path, subject: str) -> list[str]:
    commit = git("log", "--format=%H", f"--grep=^{re.escape(subject)}$", cwd=repo).split()
    assert len(commit) == 1, subject
    return git("show", "--format=", "--name-only", commit[0], cwd=repo).split()


def test_the_multi_cluster_walkthrough_builds_what_the_docs_show(tmp_path, isolated_env, template_snapshot):
    dest = tmp_path / "walkthrough"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GIT_AUTHOR", "GIT_COMMITTER"))}
    result = subprocess.run(["bash", str(SCRIPT), str(dest)], capture_output=True,
                            text=True, env={**env, "PYTHON": sys.executable, "TEMPLATES": str(template_snapshot)})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    platform, shop = dest / "acme-gitops", dest / "shop"
    for repo in (platform, shop):
        assert git("status", "--porcelain", cwd=repo) == "", repo  # everything committed
    answers = yaml.safe_load((platform / ".copier-answers.yml").read_text())
    assert answers["cluster_name"] == "prod" and [c["cluster_name"] for c in answers["clusters"]] == ["staging"]
    placed = {app["name"]: (app.get("clusters"), app.get("overlays")) for app in answers["apps"]}
    assert placed == {"cart": (["staging"], True), "shop": (["staging", "prod"], None)}
    # Promoted: both environments run the new tag.
    tags = {env: yaml.safe_load((shop / f"deploy/overlays/{env}/kustomization.yaml").read_text())["images"][0]["newTag"]
            for env in ("staging", "prod")}
    assert tags == {"staging": "1.28-alpine", "prod": "1.28-alpine"}
    assert changed_by(shop, "Promote it to prod") == ["deploy/overlays/prod/kustomization.yaml"]
    # Flux on staging only: prod's overlay byte-identical, staging's components and answer moved.
    upgrade = changed_by(platform, "Flux 2.10.0 on staging")
    assert not [rel for rel in upgrade if rel.startswith("applications/overlays/prod/")], upgrade
    assert "applications/overlays/staging/flux-system/gotk-components.yaml" in upgrade
    assert answers["flux_version"] == "2.9.4" and answers["clusters"][0]["flux_version"] == "2.10.0"
    # cart left dev: staging's Kustomization still applies its overlay, not the root.
    cart = yaml.safe_load_all((platform / "applications/overlays/staging/services/fluxcd/cart.yaml").read_text())
    assert [doc["spec"]["path"] for doc in cart][-1] == "./deploy/overlays/staging"
    assert not (platform / "applications/overlays/dev").exists()
    # The private keys stayed outside the repositories; the removed cluster's key is kept.
    keys = sorted(path.name for path in (dest / "keys").iterdir())
    assert keys == ["acme-dev.agekey", "acme-prod.agekey", "acme-staging.agekey"]
    for repo in (platform, shop):
        tracked = git("ls-files", cwd=repo).split()
        assert not [rel for rel in tracked if "AGE-SECRET-KEY-" in (repo / rel).read_text(errors="replace")]
    assert "error" not in result.stderr.lower()


def test_the_walkthrough_refuses_an_existing_destination(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True,
                            text=True, env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 2 and "exists" in result.stderr and list(tmp_path.iterdir()) == []
