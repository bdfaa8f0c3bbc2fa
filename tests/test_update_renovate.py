"""The Renovate configuration every generated repository carries (renovate.json).

Renovate reads it on the customer's engine: the copier manager opens a PR per template release,
the flux manager regenerates gotk-components.yaml, and regex custom managers move flux_version and
openCenter-gitops-base's tag wherever the template writes them. Checked here: it is JSON, each
manager finds the files it targets, each regex matches there, and a Renovate-style bump leaves
exactly the tree that `copier copy` renders with the new versions (nothing stale for a later
`copier update` to resurrect). Renovate's own defaults below are quoted from its documentation
(docs.renovatebot.com/modules/manager/copier and /flux) and its flux manager source.
Renovate itself (config validator, offline extract) runs in tests/test_renovate.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from pyrage import x25519

from conftest import all_services, ROOT
from updating import COMPONENTS, OVERLAY, assert_same_tree

CATALOG = yaml.safe_load((ROOT / "includes/services.yml").read_text())
COPIER_FILES = re.compile(r"(^|/)\.copier-answers(\..+)?\.ya?ml")  # copier manager default
FLUX_FILES = re.compile(r"(?:^|/)gotk-components\.ya?ml$")  # flux manager default
FLUX_HEADER = re.compile(r"#\s*Flux\s+Version:\s*(\S+)(?:\s*#\s*Components:\s*([A-Za-z,-]+))?")  # its system manifest header
RECIPIENT = str(x25519.Identity.generate().to_public())
# The regex managers' dependencies of the (only) cluster prod: one per cluster and kind.
FLUX, BASE = "Flux on prod", "openCenter-gitops-base on prod"


def config(repo: Path) -> dict:
    return json.loads((repo / "renovate.json").read_text())


def files(repo: Path) -> list[str]:
    return sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts)


def file_pattern(pattern: str) -> re.Pattern[str]:
    """managerFilePatterns entries are /regex/ (a bare string would be a glob)."""
    assert pattern.startswith("/") and pattern.endswith("/"), pattern
    return re.compile(pattern[1:-1])


def match_string(pattern: str) -> re.Pattern[str]:
    """Renovate's ECMAScript named groups (?<name>…) in Python's spelling (?P<name>…)."""
    return re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", pattern))


def targets(repo: Path, manager: dict) -> list[str]:
    patterns = [file_pattern(p) for p in manager["managerFilePatterns"]]
    return [rel for rel in files(repo) if any(p.search(rel) for p in patterns)]


def current_values(repo: Path, manager: dict) -> dict[str, list[str]]:
    """What Renovate extracts (matchStringsStrategy `any`: every regex, globally, per file)."""
    found = {}
    for rel in targets(repo, manager):
        text = (repo / rel).read_text()
        found[rel] = [m.group("currentValue") for s in manager["matchStrings"] for m in match_string(s).finditer(text)]
    return found


def bump(repo: Path, manager: dict, new_value: str) -> None:
    """Renovate's replacement: currentValue swapped for the new value inside each matched string."""
    for rel in targets(repo, manager):
        path = repo / rel
        text = path.read_text()
        spans = sorted(m.span("currentValue") for s in manager["matchStrings"] for m in match_string(s).finditer(text))
        for start, end in reversed(spans):
            text = text[:start] + new_value + text[end:]
        path.write_text(text)


def manager_for(cfg: dict, dep_name: str) -> dict:
    [manager] = [m for m in cfg["customManagers"] if m["depNameTemplate"] == dep_name]
    assert manager["customType"] == "regex"
    return manager


def test_platform_config_enables_copier_flux_and_regex_managers(rendered):
    repo = rendered(template="platform", sops_age_recipients=RECIPIENT)
    cfg = config(repo)
    assert cfg["$schema"] == "https://docs.renovatebot.com/renovate-schema.json"
    assert cfg["enabledManagers"] == ["copier", "flux", "custom.regex", "github-actions", "pre-commit"]
    assert cfg["ignoreScripts"] is False  # copier update --trust (with self-hosted allowScripts)
    rules = {tuple(r.get("matchDepNames", r.get("matchFileNames", r.get("matchManagers")))): r for r in cfg["packageRules"]}
    # One PR per cluster: its components (flux manager, by folder) and its flux_version (regex) together.
    assert rules[("applications/overlays/prod/**",)]["groupName"] == rules[(FLUX,)]["groupName"] == "Flux on prod"
    flux = manager_for(cfg, FLUX)
    assert flux["packageNameTemplate"] == "fluxcd/flux2" and flux["datasourceTemplate"] == "github-releases"
    assert flux["extractVersionTemplate"] == "^v(?<version>.+)$"
    base = manager_for(cfg, BASE)
    assert base["datasourceTemplate"] == "git-tags"
    assert base["packageNameTemplate"] == "https://github.com/opencenter-cloud/openCenter-gitops-base.git"
    calver = re.sub(r"^regex:", "", rules[(BASE,)]["versioning"])
    assert match_string(calver).fullmatch("2026.01") and not match_string(calver).fullmatch("v1.0.0")


def test_the_builtin_managers_find_their_files(rendered):
    repo = rendered(template="platform", sops_age_recipients=RECIPIENT)
    assert [rel for rel in files(repo) if COPIER_FILES.search(rel)] == [".copier-answers.yml"]
    assert [rel for rel in files(repo) if FLUX_FILES.search(rel)] == [COMPONENTS]
    # The placeholder carries the header, so the flux manager can replace it with a real manifest.
    assert FLUX_HEADER.search((repo / COMPONENTS).read_text()).group(1) == "v2.9.4"
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["_src_path"] and answers["_commit"]  # what the copier manager reads


@pytest.mark.parametrize(
    "answers",
    [
        {},
        {"platform_services": all_services(), "flux_allow_remote_bases": True, "gitops_base_tag": "2026.10",
         "flux_version": "2.8.1", "gitops_base_url": "ssh://git@git.example.net/mirror/gitops-base"},
        {"platform_services": []},
    ],
    ids=["defaults", "every-service", "no-service"],
)
def test_every_regex_matches_the_rendered_files_it_targets(rendered, answers):
    repo = rendered(template="platform", sops_age_recipients=RECIPIENT, **answers)
    cfg = config(repo)
    expected = {
        FLUX: answers.get("flux_version", "2.9.4"),
        BASE: answers.get("gitops_base_tag", "2026.01"),
    }
    sources = [rel for rel in files(repo) if re.search(r"/services/sources/opencenter-[^/]+\.yaml$", rel)]
    for dep_name, value in expected.items():
        manager = manager_for(cfg, dep_name)
        found = current_values(repo, manager)
        assert ".copier-answers.yml" in found and f"{OVERLAY}/README.md" in found
        for rel, values in found.items():
            assert values, f"{dep_name}: no regex matches {rel}"
            assert set(values) == {value}, f"{dep_name} in {rel}: {values}"
        for pattern in manager["matchStrings"] if sources or dep_name == FLUX else []:
            assert any(match_string(pattern).search((repo / rel).read_text()) for rel in found), pattern
        if dep_name == BASE:
            assert sorted(set(found) - {".copier-answers.yml", f"{OVERLAY}/README.md"}) == sources
            assert base_url_in(cfg) == answers.get(
                "gitops_base_url", "https://github.com/opencenter-cloud/openCenter-gitops-base.git")
            for rel in sources:  # the comment and ref.tag of every GitRepository
                assert len(found[rel]) == 2, rel


def base_url_in(cfg: dict) -> str:
    return manager_for(cfg, BASE)["packageNameTemplate"]


def test_a_renovate_bump_leaves_what_copier_renders_with_the_new_versions(rendered):
    """Renovate edits the answer and every rendered occurrence; a later copier update then finds the
    old render (replayed with the new answers) equal to the project, so nothing stale survives."""
    repo = rendered(template="platform", sops_age_recipients=RECIPIENT)
    cfg = config(repo)
    bump(repo, manager_for(cfg, FLUX), "2.10.0")
    bump(repo, manager_for(cfg, BASE), "2026.04")
    fresh = rendered(template="platform", sops_age_recipients=RECIPIENT, flux_version="2.10.0", gitops_base_tag="2026.04")
    # gotk-components.yaml is the flux manager's: it runs `flux install --export` itself.
    (repo / COMPONENTS).write_text((fresh / COMPONENTS).read_text())
    assert_same_tree(repo, fresh)


def test_app_config_enables_the_copier_image_ci_and_pre_commit_managers(rendered):
    repo = rendered(template="app")
    cfg = config(repo)
    assert cfg["enabledManagers"] == ["copier", "kubernetes", "custom.regex", "github-actions", "pre-commit"]
    assert cfg["ignoreScripts"] is False
    assert [rel for rel in files(repo) if COPIER_FILES.search(rel)] == [".copier-answers.yml"]
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["_src_path"] and answers["_commit"]


def test_an_image_bump_leaves_what_copier_renders_with_the_new_image(copie):
    """The kubernetes manager replaces the image in deployment.yaml, the regex manager the answer
    (its autoReplaceStringTemplate, digest included): together they leave the fresh render."""
    old, new = "docker.io/nginxinc/nginx-unprivileged:1.27-alpine", "docker.io/nginxinc/nginx-unprivileged:1.28-alpine"
    digest = "sha256:" + "ab" * 32
    result = copie.copy(extra_answers={"template": "app", "image": old})
    assert result.exit_code == 0, result.exception
    repo = result.project_dir
    deployment = repo / "deployment.yaml"
    deployment.write_text(deployment.read_text().replace(f"image: {old}\n", f"image: {new}@{digest}\n"))
    [manager] = config(repo)["customManagers"]
    answers = repo / ".copier-answers.yml"
    text = answers.read_text()
    [match] = match_string(manager["matchStrings"][0]).finditer(text)
    name, tag = new.rsplit(":", 1)
    assert (match.group("depName"), match.group("currentValue")) == tuple(old.rsplit(":", 1))
    replacement = (manager["autoReplaceStringTemplate"].replace("{{{depName}}}", name).replace("{{{newValue}}}", tag)
                   .replace("{{#if newDigest}}@{{{newDigest}}}{{/if}}", "@" + digest))
    answers.write_text(text[:match.start()] + replacement + text[match.end():])
    fresh = copie.copy(extra_answers={"template": "app", "image": f"{new}@{digest}"})
    assert fresh.exit_code == 0, fresh.exception
    assert_same_tree(repo, fresh.project_dir)
