"""Pulling standard changes into an application repository: copier update from an older tag.

The throwaway history (1.0.0 = the working tree, 1.1.0 = a standard change that tightens the
NetworkPolicy baseline and changes a Deployment default) is tests/updating.py's.
"""

from __future__ import annotations

import copier
import yaml

from conftest import commit_all, git, release_history
from updating import (  # noqa: F401  (history and copied are fixtures)
    answers, assert_same_tree, conflicted, copied, copy, edit, history, sample, update,
)


def test_owner_edits_survive_an_update_to_the_new_release(copied):
    repo = copied("shop", "1.0.0", template="app")
    edit(repo / "deployment.yaml", "  replicas: 2\n", "  replicas: 4\n")
    edit(repo / "config.env", "LOG_LEVEL=info\n", "LOG_LEVEL=debug\nFEATURE_CHECKOUT=on\n")
    edit(repo / "kustomization.yaml", "  - networkpolicies.yaml\n",
         "  - networkpolicies.yaml\n  - allow-metrics.yaml\n  - pdb.yaml\n")
    extra_policy = (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-metrics\n"
        "spec:\n  podSelector: {}\n  policyTypes: [Ingress]\n  ingress:\n    - from:\n"
        "        - namespaceSelector:\n            matchLabels:\n"
        "              kubernetes.io/metadata.name: observability\n"
    )
    (repo / "allow-metrics.yaml").write_text(extra_policy)
    pdb = ("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: shop\nspec:\n"
           "  minAvailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: shop\n")
    (repo / "pdb.yaml").write_text(pdb)
    commit_all(repo, "owner edits")
    update(repo, "1.1.0")

    assert conflicted(repo) == []
    deployment = (repo / "deployment.yaml").read_text()
    assert "  replicas: 4\n" in deployment  # the owner's ...
    assert "sizeLimit: 128Mi" in deployment and "sizeLimit: 64Mi" not in deployment  # ... and the release's
    assert (repo / "config.env").read_text().endswith("LOG_LEVEL=debug\nFEATURE_CHECKOUT=on\n")
    assert "  - networkpolicies.yaml\n  - allow-metrics.yaml\n  - pdb.yaml\n" in (repo / "kustomization.yaml").read_text()
    assert (repo / "allow-metrics.yaml").read_text() == extra_policy
    assert (repo / "pdb.yaml").read_text() == pdb
    assert 'opencenter.io/baseline: "true"' in (repo / "networkpolicies.yaml").read_text()
    recorded = answers(repo)
    assert recorded["_commit"] == "1.1.0" and recorded["template"] == "app"
    assert recorded["replicas"] == 2  # the answer is unchanged: the owner's edit lives in the file


def test_a_conflicting_edit_shows_markers(copied):
    repo = copied("shop", "1.0.0", template="app")
    edit(repo / "deployment.yaml", "            sizeLimit: 64Mi\n", "            sizeLimit: 1Gi\n")
    commit_all(repo, "bigger scratch space")
    update(repo, "1.1.0")
    text = (repo / "deployment.yaml").read_text()
    assert "<<<<<<< before updating\n" in text and ">>>>>>> after updating\n" in text
    assert "sizeLimit: 1Gi" in text and "sizeLimit: 128Mi" in text
    assert conflicted(repo) == ["deployment.yaml"]


def test_copy_at_the_old_tag_then_update_equals_a_copy_at_the_new_tag(history, tmp_path):
    old = copy(history, tmp_path / "updated", "1.0.0", template="app", **sample("app"))
    update(old, "1.1.0")
    new = tmp_path / "fresh"
    copier.run_copy(str(history), new, data={"template": "app", **sample("app")}, defaults=True, unsafe=True,
                    vcs_ref="1.1.0", quiet=True)
    assert_same_tree(old, new)


def test_update_without_a_new_release_is_a_no_op(history, tmp_path):
    repo = copy(history, tmp_path / "shop", "1.1.0", template="app", **sample("app"))
    update(repo, "1.1.0")
    assert git("status", "--porcelain", cwd=repo) == ""


# The last commit before platform_check_branch: the app's CI cloned the platform's default branch.
BEFORE_PLATFORM_CHECK_BRANCH = "357addc"


def test_an_update_keeps_ci_on_the_platforms_default_branch_without_asking(template_snapshot, tmp_path):
    """`copier update --defaults` from before platform_check_branch: the default applies (empty: the
    platform's default branch, as before), and the CI line stays as it was; `--data` names the
    branch the platform's Flux reconciles, and the CI line gains `--platform-branch`."""
    templates = release_history(BEFORE_PLATFORM_CHECK_BRANCH, template_snapshot, tmp_path / "templates")
    url = "ssh://git@github.com/acme/acme-gitops"
    repo = tmp_path / "shop"
    copier.run_copy(str(templates), repo, data={"template": "app", "platform_check_url": url}, defaults=True,
                    unsafe=True, vcs_ref="1.0.0", quiet=True)
    commit_all(repo)

    def ci_line() -> str:
        return yaml.safe_load((repo / ".github/workflows/validate.yaml").read_text())["jobs"]["check"]["steps"][-1]["run"]

    assert ci_line() == f"opencenter-check . --platform {url}"
    copier.run_update(repo, defaults=True, overwrite=True, unsafe=True, vcs_ref="2.0.0", quiet=True)
    assert ci_line() == f"opencenter-check . --platform {url}"
    assert answers(repo)["platform_check_branch"] == ""
    commit_all(repo, "update")
    copier.run_update(repo, data={"platform_check_branch": "production"}, defaults=True, overwrite=True, unsafe=True,
                      vcs_ref="2.0.0", quiet=True)
    assert ci_line() == f"opencenter-check . --platform {url} --platform-branch production"
