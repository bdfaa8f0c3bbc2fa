"""examples/multi-cluster.sh, run as a user runs it: a platform repository with clusters prod and
staging, app shop on both (staging one image tag ahead), app billing on staging only, every
repository committed, the check passing, the private keys outside the repositories. Copied from
the working-tree snapshot (TEMPLATES): a dirty checkout records a commit no repository has."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT, git


def test_the_multi_cluster_walkthrough_builds_what_the_docs_show(tmp_path, isolated_env, template_snapshot):
    dest = tmp_path / "walkthrough"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GIT_AUTHOR", "GIT_COMMITTER"))}
    result = subprocess.run(["bash", str(ROOT / "examples/multi-cluster.sh"), str(dest)], capture_output=True,
                            text=True, env={**env, "PYTHON": sys.executable, "TEMPLATES": str(template_snapshot)})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    platform, shop, billing = dest / "acme-gitops", dest / "shop", dest / "billing"
    for repo in (platform, shop, billing):
        assert git("status", "--porcelain", cwd=repo) == "", repo  # everything committed
    answers = yaml.safe_load((platform / ".copier-answers.yml").read_text())
    assert answers["cluster_name"] == "prod" and [c["cluster_name"] for c in answers["clusters"]] == ["staging"]
    placed = {app["name"]: app.get("clusters") for app in answers["apps"]}
    assert placed == {"billing": ["staging"], "shop": ["staging", "prod"]}
    tags = {env: yaml.safe_load((shop / f"deploy/overlays/{env}/kustomization.yaml").read_text())["images"][0]["newTag"]
            for env in ("staging", "prod")}
    assert tags == {"staging": "1.28-alpine", "prod": "1.27-alpine"}
    # The private keys stayed outside the three repositories.
    keys = sorted(path.name for path in (dest / "keys").iterdir())
    assert keys == ["acme-prod.agekey", "acme-staging.agekey"]
    for repo in (platform, shop, billing):
        tracked = git("ls-files", cwd=repo).split()
        assert not [rel for rel in tracked if "AGE-SECRET-KEY-" in (repo / rel).read_text(errors="replace")]
    assert "error" not in result.stderr.lower()


def test_the_walkthrough_refuses_an_existing_destination(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "examples/multi-cluster.sh"), str(tmp_path)], capture_output=True,
                            text=True, env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 2 and "exists" in result.stderr and list(tmp_path.iterdir()) == []
