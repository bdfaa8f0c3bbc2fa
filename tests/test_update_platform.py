"""Pulling standard changes into a platform repository: copier update from an older template tag.

The throwaway history (1.0.0 = the working tree, 1.1.0 = a standard change) is tests/updating.py's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import copier
import pytest
import yaml

from conftest import ROOT, commit_all, git
from updating import (  # noqa: F401  (history and copied are fixtures)
    OVERLAY, COMPONENTS, answers, assert_same_tree, conflicted, copied, copy, edit, history, sample, update,
)

APP = {"name": "shop", "url": "ssh://git@github.com/acme/shop", "branch": "main", "secrets": False,
       "receiver": "", "known_hosts": ""}


def owner_edits(repo: Path) -> dict[str, str]:
    """What a platform team changes after the first render; returns the expected file contents."""
    overlay = repo / OVERLAY
    expected = {}
    values = overlay / "services/cert-manager/helm-values/override-values.yaml"
    values.write_text(values.read_text().replace("{}\n", "replicaCount: 2\nprometheus:\n  enabled: true\n"))
    expected[values] = values.read_text()
    kustomization = overlay / "services/cert-manager/kustomization.yaml"
    edit(kustomization, "resources: []\n", "resources:\n  - cluster-issuer.yaml\n")
    (overlay / "services/cert-manager/cluster-issuer.yaml").write_text(
        "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: letsencrypt\n"
        "spec:\n  acme:\n    server: https://acme-v02.api.letsencrypt.org/directory\n"
    )
    expected[overlay / "services/cert-manager/cluster-issuer.yaml"] = (
        overlay / "services/cert-manager/cluster-issuer.yaml").read_text()
    flux_kustomization = overlay / "flux-system/kustomization.yaml"
    flux_kustomization.write_text(
        flux_kustomization.read_text() + "replicas:\n  - name: source-controller\n    count: 2\n"
    )
    gateway = overlay / "services/gateway/kustomization.yaml"
    edit(gateway, "  - http-redirect.yaml\n", "  - http-redirect.yaml\n  - allow-monitoring.yaml\n")
    (overlay / "services/gateway/allow-monitoring.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-monitoring\n"
        "spec:\n  podSelector: {}\n  policyTypes: [Ingress]\n  ingress:\n    - from:\n"
        "        - namespaceSelector:\n            matchLabels:\n"
        "              kubernetes.io/metadata.name: observability\n"
    )
    expected[overlay / "services/gateway/allow-monitoring.yaml"] = (
        overlay / "services/gateway/allow-monitoring.yaml").read_text()
    commit_all(repo, "owner edits")
    # An application registered after the copy, with the onboarding command (an answer change at
    # the repository's current template version, plus its encrypted deploy key).
    subprocess.run([sys.executable, str(ROOT / "hooks/onboard.py"), f"--platform={repo}", "--name=shop",
                    f"--url={APP['url']}"], check=True, capture_output=True)
    commit_all(repo, "register shop")
    onboarded = [rel for rel in git("ls-files", cwd=repo).splitlines() if "shop" in rel]
    assert len(onboarded) >= 3, onboarded  # GitRepository, Kustomization and tenant, deploy key
    expected.update({repo / rel: (repo / rel).read_text() for rel in onboarded})
    return expected


def test_owner_edits_survive_an_update_to_the_new_release(copied):
    repo = copied("acme", "1.0.0", gitops_base_tag="2026.04")
    expected = owner_edits(repo)
    assert answers(repo)["apps"] == [APP]
    update(repo, "1.1.0")

    assert conflicted(repo) == []
    for path, text in expected.items():
        assert path.read_text() == text, path
    overlay = repo / OVERLAY
    cert_manager = (overlay / "services/cert-manager/kustomization.yaml").read_text()
    assert "resources:\n  - cluster-issuer.yaml\n" in cert_manager  # the owner's resource ...
    assert "# Name and key (1.1.0) are what" in cert_manager  # ... and the template's change
    assert (overlay / "flux-system/kustomization.yaml").read_text().endswith(
        "replicas:\n  - name: source-controller\n    count: 2\n"
    )
    assert "  - allow-monitoring.yaml\n" in (overlay / "services/gateway/kustomization.yaml").read_text()
    # The standard change arrived where nobody had edited.
    for name in ("cert-manager", "kyverno", "gateway-api", "gateway"):
        text = (overlay / f"services/fluxcd/{name}.yaml").read_text()
        assert "timeout: 15m" in text and "timeout: 10m" not in text, name
    recorded = answers(repo)
    assert recorded["_commit"] == "1.1.0"
    assert recorded["apps"] == [APP]
    # Migrations: the renamed answer kept its value (not the new default), Flux raised to the floor.
    assert recorded["gitops_base_release"] == "2026.04" and "gitops_base_tag" not in recorded
    for path in (overlay / "services/sources").glob("opencenter-*.yaml"):
        assert 'tag: "2026.04"' in path.read_text(), path
    assert recorded["flux_version"] == "2.10.0"
    assert "# Flux Version: v2.10.0" in (repo / COMPONENTS).read_text()
    assert git("status", "--porcelain", cwd=repo) != ""  # the update is left for review, uncommitted


def test_a_conflicting_edit_shows_markers_that_pre_commit_rejects(copied):
    repo = copied("acme", "1.0.0")
    target = repo / OVERLAY / "services/fluxcd/kyverno.yaml"
    edit(target, "  timeout: 10m\n", "  timeout: 30m\n", count=3)  # policy engine, overlay, default ruleset
    commit_all(repo, "kyverno needs longer")
    update(repo, "1.1.0")

    text = target.read_text()
    assert "<<<<<<< before updating\n" in text and ">>>>>>> after updating\n" in text
    assert "timeout: 30m" in text and "timeout: 15m" in text  # both sides, for the owner to resolve
    assert conflicted(repo) == [f"{OVERLAY}/services/fluxcd/kyverno.yaml"]
    # The generated repository's pre-commit hook (check-merge-conflict --assume-in-merge) refuses it.
    hook = shutil.which("check-merge-conflict", path=str(Path(sys.executable).parent))
    assert hook, "pre-commit-hooks (test extra) provides check-merge-conflict"
    result = subprocess.run([hook, "--assume-in-merge", str(target)], capture_output=True, text=True)
    assert result.returncode == 1 and "Merge conflict string" in result.stdout
    clean = subprocess.run([hook, "--assume-in-merge", str(repo / OVERLAY / "services/fluxcd/cert-manager.yaml")])
    assert clean.returncode == 0


def test_pre_commit_config_of_the_generated_repo_checks_merge_conflicts(copied):
    repo = copied("acme", "1.0.0")
    config = repo / ".pre-commit-config.yaml"
    if not config.exists():
        pytest.skip("the platform template has no .pre-commit-config.yaml yet (issue 5)")
    hooks = [hook for entry in yaml.safe_load(config.read_text())["repos"] for hook in entry["hooks"]]
    merge = [hook for hook in hooks if hook["id"] == "check-merge-conflict"]
    assert merge and "--assume-in-merge" in merge[0].get("args", [])


def test_copy_at_the_old_tag_then_update_equals_a_copy_at_the_new_tag(history, tmp_path):
    old = copy(history, tmp_path / "updated", "1.0.0", **sample("platform"))
    update(old, "1.1.0")
    renamed = {("gitops_base_release" if k == "gitops_base_tag" else k): v for k, v in sample("platform").items()}
    new = tmp_path / "fresh"
    copier.run_copy(str(history), new, data={"template": "platform", **renamed}, defaults=True, unsafe=True,
                    vcs_ref="1.1.0", quiet=True)
    assert_same_tree(old, new)


def test_update_without_a_new_release_is_a_no_op(history, tmp_path):
    repo = copy(history, tmp_path / "acme", "1.1.0", **{"gitops_base_release": "2026.04"})
    update(repo, "1.1.0")
    assert git("status", "--porcelain", cwd=repo) == ""



def test_renovate_style_update_runs_the_migrations_too(copied):
    """Renovate's copier manager runs `copier update --skip-answered --defaults --trust --vcs-ref X`."""
    repo = copied("acme", "1.0.0", gitops_base_tag="2026.04")
    copier.run_update(repo, defaults=True, overwrite=True, unsafe=True, vcs_ref="1.1.0", quiet=True,
                      skip_answered=True)
    recorded = answers(repo)
    assert recorded["gitops_base_release"] == "2026.04" and "gitops_base_tag" not in recorded
    assert recorded["flux_version"] == "2.10.0"
    assert 'tag: "2026.04"' in (repo / OVERLAY / "services/sources/opencenter-kyverno.yaml").read_text()
    assert conflicted(repo) == []


def test_the_update_tasks_run_in_the_project_only_never_in_copiers_replays(copied, monkeypatch):
    """Copier runs an update's tasks in its old and new replays too; there they have nothing to do
    (questions/tasks.yml, copier_replay), so no task Python starts there."""
    import copier._main

    repo = copied("acme", "1.0.0", gitops_base_tag="2026.04")
    ran, run = [], copier._main.subprocess.run

    def recording(command, *args, **kwargs):
        if isinstance(command, list) and str(command[1]).endswith(".py"):  # a task (Copier runs git too)
            ran.append((Path.cwd().resolve(), Path(command[1]).name))
        return run(command, *args, **kwargs)

    monkeypatch.setattr(copier._main.subprocess, "run", recording)
    copier.run_update(repo, defaults=True, overwrite=True, unsafe=True, vcs_ref="1.1.0", quiet=True)
    assert ran == [(repo.resolve(), script) for script in
                   ["migrate.py", "migrate.py", "kept_answers.py", "flux_components.py"]]
