"""Regression tests for openCenter's known failures (openCenter reference notes, §6 "known failures"), one per
item that applies to what these templates render. Item 9 (a pinned openCenter-gitops-base tag
that lacks a path the generator references) is not checkable offline: docs/safety.md.

One platform repository with every service, a cluster named `dev-cluster` (item 5), a tag YAML
would read as a number (item 2), a non-default listener (item 4) and hand edits (item 6), on which
app `shop` is then registered from the app side (a re-render by onboarding). The same repository
shows that every service needing customer data got its placeholder Secret, and keeps it.
"""

from __future__ import annotations

import re
from pathlib import Path

import copier
import pytest
import yaml
from pyrage import x25519

from conftest import all_services, assert_placeholders, commit_all, copy_of, load_all
from hooks import apps as appsmod
from hooks.check import check_repo
from reliability import copy_template, isolated

CLUSTER = "dev-cluster"
OVERLAY = f"applications/overlays/{CLUSTER}"
SERVICES = f"{OVERLAY}/services"
CATALOG = appsmod.load_catalog()
EDITED_VALUES = f"{SERVICES}/cert-manager/helm-values/override-values.yaml"
OWN_FILE = f"{SERVICES}/cert-manager/cluster-issuer-notes.yaml"
EDITED_FLUX = f"{SERVICES}/fluxcd/kyverno.yaml"
AGE_KEY = x25519.Identity.generate()  # the platform's recipient: the test decrypts with it


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory, template_snapshot: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("regressions")
    platform, app = root / "platform", root / "shop"
    with isolated(root / "home"):
        copy_template(template_snapshot, platform, template="platform", cluster_name=CLUSTER,
                      gitops_base_tag="2026.10", gateway_listener="apps-https", flux_allow_remote_bases=True,
                      platform_services=all_services(), sops_age_recipients=str(AGE_KEY.to_public()))
        (platform / EDITED_VALUES).write_text("# customer values\ninstallCRDs: false\n")
        (platform / OWN_FILE).write_text("# the customer's own file\n")
        flux = platform / EDITED_FLUX
        flux.write_text("# edited by the platform team\n" + flux.read_text())
        commit_all(platform, "platform with hand edits")
        copy_template(template_snapshot, app, template="app", app_name="shop", platform_repo=str(platform))
    return platform, app


def objects(folder: Path) -> list[dict]:
    return [doc for path in sorted(folder.rglob("*.yaml")) if ".git" not in path.parts for doc in load_all(path)
            if isinstance(doc, dict) and "kind" in doc]


def kustomizations(platform: Path) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in objects(platform / SERVICES / "fluxcd")
            if doc["apiVersion"].startswith("kustomize.toolkit.fluxcd.io/")}


def test_1_base_and_override_stages_cannot_deadlock(repos):
    """§6.1 (OCTR-632, OCTR-622): override-first services apply the namespace, then the override
    (values Secret), then the base; base-first the reverse; the dependsOn graph has no cycle."""
    graph = {name: [dep["name"] for dep in doc["spec"].get("dependsOn", [])] for name, doc in kustomizations(repos[0]).items()}
    for svc, spec in ((s, p) for s, p in CATALOG.items() if s in all_services()):
        first, then = {"override-first": ("override", "base"), "base-first": ("base", "override")}.get(spec["stages"], (None, None))
        if first:
            assert f"{svc}-{first}" in graph[f"{svc}-{then}"], svc
            assert f"{svc}-{then}" not in graph[f"{svc}-{first}"], svc
        if f"{svc}-override" in graph and spec["stages"] == "override-first":
            assert {entry["name"] for entry in spec.get("prestages", [])} <= set(graph[f"{svc}-override"]), svc
    done: set[str] = set()
    while len(done) < len(graph):  # Kahn: every round must be able to apply something
        ready = {name for name, deps in graph.items() if name not in done and set(deps) <= done | {"sources"}}
        assert ready, f"dependsOn cycle among {sorted(set(graph) - done)}"
        done |= ready


def test_2_tags_stay_strings_and_quoted(repos):
    """§6.2: an unquoted 2026.01 was read as a float; tags are always quoted and stay strings."""
    sources = repos[0] / SERVICES / "sources"
    texts = [path.read_text() for path in sources.glob("opencenter-*.yaml")]
    assert texts and all('tag: "2026.10"' in text for text in texts)
    assert {doc["spec"]["ref"]["tag"] for doc in objects(sources) if doc["kind"] == "GitRepository" and "tag" in doc["spec"]["ref"]} == {"2026.10"}


def test_3_one_ref_per_source_no_invalid_fields_and_a_strictly_valid_repository(repos):
    """§6.3: branch and tag set together; a `spec.cluster` field on Kustomizations; YAML
    indentation bugs. Every GitRepository sets one ref; the strict check (unknown fields refused,
    every file parsed) passes on the repository after onboarding re-rendered it."""
    for doc in objects(repos[0]):
        if doc["kind"] == "GitRepository":
            assert len(doc["spec"]["ref"]) == 1, doc["metadata"]["name"]
    assert check_repo(repos[0]) == []


def test_4_app_routes_attach_to_a_listener_that_exists(repos):
    """§6.4: an HTTPRoute named a listener the Gateway did not have (longhorn-https)."""
    platform, app = repos
    gateway = next(doc for doc in objects(platform / SERVICES / "gateway") if doc["kind"] == "Gateway")
    listeners = {listener["name"] for listener in gateway["spec"]["listeners"]}
    routes = [doc for folder in (platform, app) for doc in objects(folder) if doc["kind"] == "HTTPRoute"]
    assert len(routes) >= 2
    for route in routes:
        for parent in route["spec"]["parentRefs"]:
            assert parent["name"] == gateway["metadata"]["name"] and parent["sectionName"] in listeners, parent
    assert "apps-https" in listeners


def test_5_the_bootstrap_path_is_the_overlay_directory(repos):
    """§6.5: clusters/<cluster> vs applications/overlays/<cluster>, and overlays pointing at dev/
    while the folder was dev-cluster. One path, and every Flux path on this repository exists."""
    platform = repos[0]
    sync = [doc for doc in load_all(platform / OVERLAY / "flux-system" / "gotk-sync.yaml") if doc["kind"] == "Kustomization"]
    assert [doc["spec"]["path"] for doc in sync] == [f"./{OVERLAY}"]
    for doc in kustomizations(platform).values():
        if doc["spec"]["sourceRef"]["name"] == "flux-system":
            assert (platform / doc["spec"]["path"]).is_dir(), doc["spec"]["path"]
            assert doc["spec"]["path"].startswith(f"./{OVERLAY}/")


def test_6_re_rendering_keeps_hand_edits(repos):
    """§6.6: regeneration wiped the renderer-owned overlay paths. Onboarding re-renders the platform
    repository; the edited values, the team's own file and an edited rendered file all survive."""
    platform = repos[0]
    assert "shop" in (platform / SERVICES / "fluxcd" / "kustomization.yaml").read_text()
    assert (platform / EDITED_VALUES).read_text() == "# customer values\ninstallCRDs: false\n"
    assert (platform / OWN_FILE).is_file()
    assert (platform / EDITED_FLUX).read_text().startswith("# edited by the platform team\n")


def test_7_the_customer_readme_names_what_was_rendered(repos):
    """§6.7: docs and code drifted. Every repository path the platform READMEs (the repository's
    and each cluster's) name exists, and they name the Gateway and listener actually rendered."""
    platform = repos[0]
    readme = "\n".join(path.read_text() for path in [platform / "README.md",
                                                     *sorted(platform.glob("applications/overlays/*/README.md"))])
    paths = set(re.findall(r"applications/[A-Za-z0-9_./-]*[A-Za-z0-9_-]", readme))
    assert paths and [path for path in paths if not (platform / path).exists()] == []
    gateway = next(doc for doc in objects(platform / SERVICES / "gateway") if doc["kind"] == "Gateway")
    stated = "Gateway `{}` in `{}`,\nlistener (sectionName) `apps-https`".format(
        gateway["metadata"]["name"], gateway["metadata"]["namespace"])
    assert stated in readme and "apps-https" in {listener["name"] for listener in gateway["spec"]["listeners"]}


def test_8_pinned_images_gateway_api_v1_and_labels(repos):
    """§6.8: an unpinned Envoy chart (v0.0.0-latest), a v1beta1 Gateway, nginx:latest and
    commonLabels in the app example."""
    platform, app = repos
    gateway_api = [doc for folder in repos for doc in objects(folder) if doc["apiVersion"].startswith("gateway.networking.k8s.io/")]
    assert gateway_api and {doc["apiVersion"] for doc in gateway_api} == {"gateway.networking.k8s.io/v1"}
    for folder in repos:
        text = "\n".join(path.read_text() for path in folder.rglob("*.yaml") if ".git" not in path.parts)
        assert ":latest" not in text and "v0.0.0-latest" not in text and "commonLabels" not in text
    image = next(doc for doc in objects(app) if doc["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert re.search(r":[A-Za-z0-9_][A-Za-z0-9._-]*$|@sha256:", image) and not image.endswith(":latest")


def test_10_secret_manifests_encrypt_data_and_string_data(repos):
    """§6.10: the rule `^(secret)$` left data/stringData in clear. Secret manifests are encrypted on
    ^(data|stringData)$, helm values whole-file, and the onboarded deploy key has no clear value."""
    platform = repos[0]
    rules = yaml.safe_load((platform / ".sops.yaml").read_text())["creation_rules"]
    assert any(rule.get("encrypted_regex") == "^(data|stringData)$" for rule in rules)
    assert any("helm-values" in rule["path_regex"] and "encrypted_regex" not in rule for rule in rules)
    deploy_key = yaml.safe_load((platform / SERVICES / "sources" / "shop-deploy-key.sops.yaml").read_text())
    assert deploy_key["stringData"] and all(value.startswith("ENC[") for value in deploy_key["stringData"].values())


def test_11_apps_get_receivers_and_tenant_scoped_kustomizations(template_snapshot, tmp_path):
    """§6.11: no webhook receivers; customer Kustomizations without serviceAccountName or
    targetNamespace."""
    entry = {"name": "billing", "url": "ssh://git@github.com/acme/billing", "branch": "main", "secrets": True,
             "receiver": "github", "known_hosts": ""}
    copy_template(template_snapshot, tmp_path / "p", template="platform", apps=[entry])
    services = tmp_path / "p" / "applications/overlays/prod/services"
    receiver = next(doc for doc in load_all(services / "sources" / "billing.yaml") if doc["kind"] == "Receiver")
    assert receiver["apiVersion"] == "notification.toolkit.fluxcd.io/v1" and receiver["spec"]["type"] == "github"
    flux = next(doc for doc in load_all(services / "fluxcd" / "billing.yaml") if doc["metadata"]["name"] == "billing")
    assert flux["spec"]["serviceAccountName"] == "tenant-billing" and flux["spec"]["targetNamespace"] == "billing"


def test_12_every_file_an_overlay_references_is_written(repos):
    """§6.12: overlays referenced files the generator never wrote (netpol.yaml, patches.yaml,
    ../base/<svc>). Every local entry of every kustomization.yaml exists."""
    platform = repos[0]
    missing = []
    for kustomization in platform.rglob("kustomization.yaml"):
        doc = yaml.safe_load(kustomization.read_text()) or {}
        entries = [*doc.get("resources", []), *doc.get("components", []),
                   *(patch["path"] for patch in doc.get("patches", []) if isinstance(patch, dict) and "path" in patch),
                   *(file.split("=")[-1] for gen in doc.get("secretGenerator", []) + doc.get("configMapGenerator", [])
                     for file in gen.get("files", []))]
        missing += [f"{kustomization.relative_to(platform)}: {entry}" for entry in entries
                    if "://" not in entry and not (kustomization.parent / entry).exists()]
    assert missing == []


def test_every_service_needing_customer_data_keeps_its_encrypted_placeholder(repos, tmp_path):
    """Each service with catalog `placeholders` got its Secret at copy: encrypted for the platform
    key, CHANGE-ME inside, applied by the service's override Kustomization (its overlay lists the
    file). A later `copier update` (tasks included) leaves every one byte-identical, and the
    repository still passes the check."""
    platform = copy_of(repos[0], tmp_path / "platform")
    commit_all(platform, "onboarding's staged registration")
    needing = [svc for svc in all_services() if "placeholders" in CATALOG[svc]]
    assert needing
    written = {}
    for svc in needing:
        written.update(assert_placeholders(platform, CLUSTER, svc, str(AGE_KEY)))
        override = kustomizations(platform)[f"{svc}-override"]["spec"]
        assert override["path"] == f"./{SERVICES}/{svc}" and override["decryption"]["provider"] == "sops"
    copier.run_update(platform, defaults=True, overwrite=True, unsafe=True, vcs_ref=copier.VcsRef.CURRENT, quiet=True)
    assert {rel: (platform / rel).read_bytes() for rel in written} == written
    assert check_repo(platform) == []
