"""examples/multi-cluster.sh, run as a user runs it: the commands of README.md's "Several clusters"
section and of docs/multi-cluster.md, exactly as printed there (checked line by line), then what
they built, the state the README shows: a platform repository with clusters prod and staging, app
shop on both (a new image on staging, promoted to prod, then a newer one on staging: a different tag
per environment), app billing on staging only, their app repositories shop and billing, a Flux
upgrade on staging that left prod byte-identical, cluster dev and app cart added and removed again,
every repository committed, the check passing on each after the README's commands and on the
platform with both apps as tenants at the end, the private keys outside the repositories. Copied
from the working-tree snapshot (TEMPLATES): a dirty checkout records a commit no repository has."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT, git
from hooks.kustomize import build, build_command

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


def commit_of(repo: Path, subject: str) -> str:
    commit = git("log", "--format=%H", f"--grep=^{re.escape(subject)}$", cwd=repo).split()
    assert len(commit) == 1, subject
    return commit[0]


def changed_by(repo: Path, subject: str) -> list[str]:
    return git("show", "--format=", "--name-only", commit_of(repo, subject), cwd=repo).split()


def built(root: Path) -> dict[str, dict]:
    """The objects kustomize builds from a root, by kind (one each in an app repository)."""
    result = build(root, build_command())
    assert result.error is None, result.error
    return {obj["kind"]: obj for obj in result.objects}


def test_the_multi_cluster_walkthrough_builds_what_the_docs_show(tmp_path, isolated_env, template_snapshot):
    dest = tmp_path / "walkthrough"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GIT_AUTHOR", "GIT_COMMITTER"))}
    result = subprocess.run(["bash", str(SCRIPT), str(dest)], capture_output=True,
                            text=True, env={**env, "PYTHON": sys.executable, "TEMPLATES": str(template_snapshot)})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    platform, shop, billing = repos = [dest / name for name in ("acme-gitops", "shop", "billing")]
    assert sorted(path.name for path in dest.iterdir()) == ["acme-gitops", "billing", "keys", "shop"]
    for repo in repos:  # everything committed, nothing left beside the commits (not even ignored files)
        assert git("status", "--porcelain", "--ignored", cwd=repo) == "", repo
    answers = yaml.safe_load((platform / ".copier-answers.yml").read_text())
    assert answers["cluster_name"] == "prod" and [c["cluster_name"] for c in answers["clusters"]] == ["staging"]
    placed = {app["name"]: (app["clusters"], app["url"], app.get("overlays")) for app in answers["apps"]}
    assert placed == {"billing": (["staging"], "ssh://git@github.com/acme/billing", None),
                      "shop": (["staging", "prod"], "ssh://git@github.com/acme/shop", None)}
    # shop: promoted to prod (one line), then a newer image on staging: each environment its own tag.
    tags = {env: yaml.safe_load((shop / f"deploy/overlays/{env}/kustomization.yaml").read_text())["images"][0]["newTag"]
            for env in ("staging", "prod")}
    assert tags == {"staging": "1.29-alpine", "prod": "1.28-alpine"}
    assert changed_by(shop, "Promote it to prod") == ["deploy/overlays/prod/kustomization.yaml"]
    images = {env: built(shop / f"deploy/overlays/{env}")["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
              for env in ("staging", "prod")}
    assert images == {env: f"docker.io/nginxinc/nginx-unprivileged:{tag}" for env, tag in tags.items()}
    # billing: on staging only. Its GitRepository, tenant and Kustomization in staging's overlay and
    # nowhere else; that Kustomization applies the repository root, which builds its staging environment.
    overlays = platform / "applications/overlays"
    assert sorted(path.name for path in overlays.iterdir()) == ["prod", "staging"]
    assert [path for path in (overlays / "prod").rglob("*") if path.is_file() and b"billing" in path.read_bytes()] == []
    assert {path.relative_to(overlays / "staging").as_posix() for path in (overlays / "staging").rglob("billing*")} >= {
        "services/sources/billing.yaml", "services/fluxcd/billing.yaml", "services/tenants/billing"}
    flux = {doc["metadata"]["name"]: doc["spec"] for doc in
            yaml.safe_load_all((overlays / "staging/services/fluxcd/billing.yaml").read_text())}
    assert flux["billing"]["path"] == "./" and flux["billing"]["sourceRef"]["name"] == "billing"
    source = yaml.safe_load((overlays / "staging/services/sources/billing.yaml").read_text())
    assert source["spec"]["url"] == "ssh://git@github.com/acme/billing"
    assert built(billing)["HTTPRoute"]["spec"]["hostnames"] == ["billing.staging.acme.example.com"]
    assert yaml.safe_load((billing / ".copier-answers.yml").read_text())["app_domain"] == "staging.acme.example.com"
    # Flux on staging only: prod's overlay byte-identical, staging's components and answer moved.
    upgrade = changed_by(platform, "Flux 2.10.0 on staging")
    assert not [rel for rel in upgrade if rel.startswith("applications/overlays/prod/")], upgrade
    assert "applications/overlays/staging/flux-system/gotk-components.yaml" in upgrade
    assert answers["flux_version"] == "2.9.4" and answers["clusters"][0]["flux_version"] == "2.10.0"
    # cart left dev first: staging's Kustomization then still applied its overlay, not the root.
    left = commit_of(platform, "cart leaves dev")
    cart = yaml.safe_load_all(git("show", f"{left}:applications/overlays/staging/services/fluxcd/cart.yaml", cwd=platform))
    assert [doc["spec"]["path"] for doc in cart][-1] == "./deploy/overlays/staging"
    assert not list(platform.rglob("*cart*"))  # then it left every cluster
    # The check passed on the platform (both apps as tenants) and on each app repository after the
    # README's commands (three OK lines: `check shop && check billing` under `set -e` would not stop
    # the script were shop's to fail), and on the platform with both tenants at the end.
    readme_part, final = result.stdout.split("== The check, once more")
    assert len([line for line in readme_part.splitlines() if line.startswith("OK: ")]) == 3, readme_part
    assert len([line for line in final.splitlines() if line.startswith("OK: ")]) == 1, final
    # The private keys stayed outside the repositories (the removed cluster's key is kept); the apps'
    # own keys are in the platform encrypted only.
    keys = sorted(path.name for path in (dest / "keys").iterdir())
    assert keys == ["acme-dev.agekey", "acme-prod.agekey", "acme-staging.agekey"]
    for repo in repos:
        files = [path for path in repo.rglob("*") if ".git" not in path.relative_to(repo).parts and path.is_file()]
        assert files and not [path for path in files if b"AGE-SECRET-KEY-" in path.read_bytes()], repo
    assert "error" not in result.stderr.lower()


def test_the_walkthrough_refuses_an_existing_destination(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True,
                            text=True, env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 2 and "exists" in result.stderr and list(tmp_path.iterdir()) == []
