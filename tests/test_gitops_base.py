"""The machine-checked link to openCenter-gitops-base (issue 16, item 3).

The listing of the pinned release ships in hooks/data (scripts/gitops_base_listing.py made it
from a checkout of the tag); the catalog (includes/services.yml) is proved against it, and
`opencenter-check --gitops-base` looks a platform repository's tags and paths up in a checkout
or URL. Hermetic: the gitops-base repositories here are built from the shipped listing.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml
from pyrage import x25519

from conftest import ROOT, all_services, cluster_entry, git, isolated
from hooks import gitops_base
from hooks.check import collect, main, run_checks
from hooks.errors import HookError
from hooks.gitops_base import BasePath, BaseSource, Release, catalog_findings, reference_findings
from hooks.rules import Finding

spec = importlib.util.spec_from_file_location("gitops_base_listing", ROOT / "scripts" / "gitops_base_listing.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)

QUESTIONS = yaml.safe_load((ROOT / "questions" / "platform.yml").read_text())
PINNED_TAG = QUESTIONS["gitops_base_tag"]["default"]
BASE_URL = QUESTIONS["gitops_base_url"]["default"]
CATALOG = yaml.safe_load((ROOT / "includes" / "services.yml").read_text())
LISTING = gitops_base.load_listing(PINNED_TAG)
OVERLAY = "applications/overlays/prod"
SERVICES = "applications/base/services"

# Where the catalog and the pinned release disagree today. Each is a real defect of the catalog or
# the template, listed here so that it is seen and so that any new disagreement fails the test;
# fixing one fails the test too, until its line is removed.
KNOWN_DISAGREEMENTS: list[Finding] = []  # gateway-api's values Secret name, fixed by its catalog entry
# Components of the pinned release that no catalog service applies: issue 16 expects this list to
# become empty as the catalog grows. Growing the catalog changes it: update it in the same change.
UNREACHED: list[str] = []
# HelmReleases whose chart source no component of their service defines (loki and tempo install from
# HelmRepository grafana: observability/sources is a prestage of the observability group now).
CHART_GAPS: list[str] = []
# Key paths of the override-values comments (includes/override-values/) that the base's values do not
# spell out, each read in the chart: anything under them is taken as a key of the base values. Each
# must be needed (a comment uses a key under it that the base values lack).
CHART_KEYS_OUTSIDE_BASE_VALUES: dict[str, dict[str, str]] = {
    "kube-prometheus-stack": {"/grafana": "the base's values file is {}: the chart's defaults are not in the base",
                              "/prometheus/prometheusSpec": "likewise (the base sets storageSpec only)"},
    "istiod": {"/meshConfig": "Istio's MeshConfig: the base sets one field of it"},
    "openstack-ccm": {"/cloudConfig": "the sections of cloud.conf: the base sets one option"},
    "opentelemetry-kube-stack": {"/collectors": "collector specs of the operator's OpenTelemetryCollector"},
    "harbor": {"/persistence/imageChartStorage/s3": "accesskey, secretkey: commented out in the chart's values"},
    "loki": {"/loki/storage/bucketNames": "commented out in the chart's values"},
    "openstack-csi": {"/secret": "name, data: commented out in the chart's values"},
    "postgres-operator": {"/configAwsOrGcp": "the operator's configuration: the chart's values list none of it"},
    "tempo": {"/storage/trace/s3": "commented out in the chart's values"},
    "vsphere-csi": {"/global/config/global": "cluster-id: commented out in the chart's values"},
}


# The shipped listing -----------------------------------------------------------------------------


def test_the_listing_of_the_pinned_release_ships_with_its_source_and_licence():
    text = gitops_base.listing_file(PINNED_TAG).read_text()
    assert script.dump(json.loads(text)) == text  # the script's deterministic form, never edited by hand
    assert LISTING["tag"] == PINNED_TAG and LISTING["source"] == BASE_URL
    assert re.fullmatch(r"[0-9a-f]{40}", LISTING["commit"])
    assert LISTING["license"] == "Apache-2.0"
    sources = (ROOT / "hooks" / "data" / "SOURCES.md").read_text()
    assert f"`gitops-base-{PINNED_TAG}.json`" in sources and LISTING["commit"] in sources
    assert PINNED_TAG in gitops_base.shipped_tags()
    assert all(not entry["unresolved"] for entry in LISTING["components"].values())


def test_no_listing_for_an_unknown_tag_is_an_error():
    with pytest.raises(HookError, match="no listing of openCenter-gitops-base 1999.01"):
        gitops_base.load_listing("1999.01")


# The catalog against the pinned release -----------------------------------------------------------


def test_every_catalog_path_is_a_component_of_the_pinned_release():
    report = catalog_findings(CATALOG, LISTING)
    assert [f for f in report.findings if f.rule == "catalog-path"] == []
    paths = [spec["path"] for spec in CATALOG.values() if "path" in spec]
    paths += [entry["path"] for spec in CATALOG.values() for key in ("prestages", "steps") for entry in spec.get(key, [])]
    assert paths and set(paths) <= set(LISTING["components"])


def test_the_catalog_and_the_pinned_release_agree_on_secrets_and_namespaces():
    """Override Secret names (and key, optional where the base installs first) are what the base's
    HelmRelease valuesFrom expects; each service's namespace is its HelmReleases' and is created."""
    assert catalog_findings(CATALOG, LISTING).findings == KNOWN_DISAGREEMENTS


def test_the_components_no_service_reaches_are_exactly_the_known_ones():
    report = catalog_findings(CATALOG, LISTING)
    assert report.unreached == UNREACHED
    assert report.chart_gaps == CHART_GAPS


# The override-values comments against the base's values ---------------------------------------------


def comment_findings(svc: str, text: str | None = None, outside: dict[str, str] | None = None) -> list[str]:
    """values_findings of a service's override-values comment against the listing's values_keys."""
    kinds = LISTING["components"][CATALOG[svc]["path"]]["values_keys"]
    text = (ROOT / "includes" / "override-values" / f"{svc}.yaml").read_text() if text is None else text
    outside = CHART_KEYS_OUTSIDE_BASE_VALUES.get(svc, {}) if outside is None else outside
    return gitops_base.values_findings(gitops_base.comment_values(text), {**kinds, **dict.fromkeys(outside, "open")})


COMMENTED = sorted(path.stem for path in (ROOT / "includes" / "override-values").glob("*.yaml"))


@pytest.mark.parametrize("svc", COMMENTED)
def test_every_key_of_an_override_values_comment_is_a_key_of_the_base_values(svc):
    """The comments show keys the pinned base's values have (of the same kind): a comment written for
    another chart version would be copied into a cluster's values and silently ignored by Helm."""
    assert gitops_base.comment_values((ROOT / "includes" / "override-values" / f"{svc}.yaml").read_text())
    assert comment_findings(svc) == []
    for prefix in CHART_KEYS_OUTSIDE_BASE_VALUES.get(svc, {}):
        assert any(finding.startswith(prefix + "/") or finding.startswith(prefix + ":")
                   for finding in comment_findings(svc, outside={})), f"{svc}: {prefix} is not needed"


def test_the_catalog_keys_outside_the_base_values_are_of_commented_services():
    assert set(CHART_KEYS_OUTSIDE_BASE_VALUES) <= set(COMMENTED)


@pytest.mark.parametrize(("svc", "comment", "expected"), [
    # What the comments said before they were checked: the chart versions of the pinned release moved them.
    ("istiod", "# pilot:\n#   autoscaleMin: 2\n", ["/pilot: not a key of the base values"]),
    ("longhorn", "# defaultSettings:\n#   backupTarget: s3://b@r/\n#   defaultDataPath: /var/lib/longhorn\n",
     ["/defaultSettings/backupTarget: not a key of the base values"]),
    ("kyverno", "# config:\n#   webhooks:\n#     - namespaceSelector: {}\n",
     ["/config/webhooks: a list, but the base values have a map there"]),
    ("kyverno", "# config:\n#   webhooks:\n#     namespaceSelector:\n#       matchExpressions: {key: k}\n",
     ["/config/webhooks/namespaceSelector/matchExpressions: a map, but the base values have a list there"]),
])
def test_a_comment_key_the_base_values_lack_is_found(svc, comment, expected):
    assert comment_findings(svc, comment) == expected


def test_the_overlays_generate_the_secret_names_the_catalog_check_assumes(rendered):
    """catalog_findings reasons about `override_secret(svc)`: the render is the proof of that name."""
    repo = rendered(template="platform", platform_services=all_services(), flux_allow_remote_bases=True)
    for svc, spec in CATALOG.items():
        if svc not in all_services():
            continue  # vsphere-csi: rendered on a vsphere cluster (test_platform_render)
        kustomization = repo / OVERLAY / "services" / svc / "kustomization.yaml"
        expected = gitops_base.override_secret(svc, spec)
        if expected is None:
            assert not kustomization.exists() or "secretGenerator" not in kustomization.read_text(), svc
            continue
        (generator,) = yaml.safe_load(kustomization.read_text())["secretGenerator"]
        assert generator["name"] == expected
        assert [entry.split("=", 1)[0] for entry in generator["files"]] == [gitops_base.OVERRIDE_KEY]


def _component(**fields) -> dict:
    return {"namespaces": [], "helm_releases": [], "sources": [], "includes": [], "remote_resources": [],
            "unresolved": [], "values_keys": {}, **fields}


def _release(name: str, namespace: str, *values: tuple[str, str, bool], chart: str = "HelmRepository/r") -> dict:
    return {"name": name, "namespace": namespace, "chart": chart,
            "values_from": [{"kind": "Secret", "name": n, "key": k, "optional": o} for n, k, o in values]}


def test_numbered_steps_out_of_their_order_are_a_finding():
    """keycloak's folders 00-postgres → 10-operator → 20-keycloak → 30-oidc-rbac: the catalog applies
    them in that order; swapping two steps is caught against the shipped listing."""
    assert not [f for f in catalog_findings(CATALOG, LISTING).findings if f.rule == "catalog-order"]
    steps = CATALOG["keycloak"]["steps"]
    swapped = {**CATALOG, "keycloak": {**CATALOG["keycloak"], "steps": [steps[1], steps[0], *steps[2:]]}}
    (found,) = [f for f in catalog_findings(swapped, LISTING).findings if f.rule == "catalog-order"]
    assert found.object == "keycloak" and "20-keycloak, applications/base/services/keycloak/10-operator" in found.message


def test_catalog_rules_on_a_small_release():
    listing = {"tag": "9.9", "components": {
        "b/a": _component(namespaces=["a"], sources=["HelmRepository/r"],
                          helm_releases=[_release("a", "a", ("a-values-base", "values.yaml", False),
                                                  ("a-values-override", "override.yaml", False))]),
        "b/ns": _component(namespaces=["c"]),
        "b/c": _component(helm_releases=[_release("c", "c", ("c-values-override", "values.yaml", True),
                                                  chart="HelmRepository/elsewhere")], includes=["b/ns"]),
        "b/d": _component(helm_releases=[_release("d", "other", ("d-values-override", "override.yaml", True))],
                          sources=["HelmRepository/r"]),
        "b/lonely": _component(sources=["HelmRepository/elsewhere"]),
    }}
    catalog = {
        "a": {"namespace": "a", "path": "b/a", "stages": "base-first"},
        "c": {"namespace": "c", "path": "b/c", "stages": "override-first"},
        "d": {"namespace": "d", "path": "b/d", "stages": "base-first", "values_secret": "d-other"},
        "gone": {"namespace": "g", "path": "b/gone", "stages": "base-only", "prestages": [{"name": "x", "path": "b/x"}]},
        "gateway": {"namespace": "", "stages": "overlay-only"},
    }
    report = catalog_findings(catalog, listing)
    assert [(f.object, f.rule) for f in report.findings] == [
        ("a", "catalog-values-secret"),  # base-first, but the override is not optional
        ("c", "catalog-values-secret"),  # read under values.yaml
        ("d", "catalog-values-secret"),  # the catalog names d-other: no HelmRelease reads it
        ("d", "catalog-namespace"),      # HelmRelease in `other`
        ("d", "catalog-namespace"),      # and nothing creates `d`
        ("gone", "catalog-path"), ("gone", "catalog-path"),
    ]
    assert "without optional: true" in report.findings[0].message
    assert "under key values.yaml" in report.findings[1].message
    assert "(its optional valuesFrom Secrets: d-values-override)" in report.findings[2].message
    assert report.unreached == ["b/lonely"]  # b/ns is reached through b/c's includes
    assert report.chart_gaps == ["c: HelmRelease c/c needs HelmRepository/elsewhere, defined by b/lonely, "
                                 "which the service does not apply"]


# The script --------------------------------------------------------------------------------------


def write_release(root: Path, components: dict, licence: str = "Apache License\n Version 2.0, January 2004\n") -> None:
    """A gitops-base tree whose components are what a listing says (one manifest file each)."""
    (root / "LICENSE").write_text(licence)
    for path, entry in components.items():
        folder = root / path
        folder.mkdir(parents=True, exist_ok=True)
        docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in entry["namespaces"]]
        docs += [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": source.split("/")[0],
                  "metadata": {"name": source.split("/")[1]}, "spec": {"interval": "1h"}} for source in entry["sources"]]
        for release in entry["helm_releases"]:
            kind, name = release["chart"].split("/")
            docs.append({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                         "metadata": {"name": release["name"], "namespace": release["namespace"]},
                         "spec": {"chart": {"spec": {"chart": release["name"], "sourceRef": {"kind": kind, "name": name}}},
                                  "valuesFrom": [{"kind": v["kind"], "name": v["name"], "valuesKey": v["key"],
                                                  **({"optional": True} if v["optional"] else {})}
                                                 for v in release["values_from"]]}})
        (folder / "objects.yaml").write_text(yaml.safe_dump_all(docs) if docs else "")
        resources = ["objects.yaml", *entry["remote_resources"],
                     *(Path(inner).relative_to(path).as_posix() for inner in entry["includes"])]
        kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}
        if entry["values_keys"]:  # every values Secret its HelmRelease reads; the first holds those keys
            (folder / "values.yaml").write_text(yaml.safe_dump(values_of(entry["values_keys"])))
            (folder / "empty.yaml").write_text("{}\n")
            generators: dict[str, list[str]] = {}
            for index, v in enumerate(entry["helm_releases"][0]["values_from"]):
                generators.setdefault(v["name"], []).append(f"{v['key']}={'empty' if index else 'values'}.yaml")
            kustomization["secretGenerator"] = [{"name": name, "files": files} for name, files in generators.items()]
        (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))


def values_of(kinds: dict[str, str]) -> dict:
    """A values document with these key paths and kinds (a map the listing names no key of gets one
    the comments do not use)."""
    values: dict = {}
    for path, kind in sorted(kinds.items()):
        *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]
        node = values
        for part in parents:
            node = node.setdefault(part, {})
            node.pop("unused", None)
        node[last] = {"map": {"unused": 0}, "open": None, "list": [], "scalar": 0}[kind]
    return values


def commit_and_tag(repo: Path, tag: str) -> str:
    git("add", "-A", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", f"release {tag}", cwd=repo)
    git("tag", tag, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo).strip()


@pytest.fixture(scope="module")
def fake_base(tmp_path_factory) -> Path:
    """A git repository laid out like the pinned release (from the shipped listing): tag PINNED_TAG,
    and tag 2026.02 without kyverno's policy engine."""
    top = tmp_path_factory.mktemp("gitops-base")
    repo = top / "openCenter-gitops-base"
    repo.mkdir()
    with isolated(top / "home"):
        git("init", "-q", "-b", "main", cwd=repo)
        write_release(repo, LISTING["components"])
        commit_and_tag(repo, PINNED_TAG)
        shutil.rmtree(repo / SERVICES / "kyverno" / "policy-engine")
        commit_and_tag(repo, "2026.02")
    return repo


def test_the_script_derives_the_shipped_components_from_a_release_of_that_layout(fake_base, tmp_path):
    """Round trip: a release written from the shipped listing lists back to the same components."""
    assert script.main([str(fake_base), "--tag", PINNED_TAG, "--out", str(tmp_path), "--url", BASE_URL]) == 0
    made = json.loads((tmp_path / f"gitops-base-{PINNED_TAG}.json").read_text())
    assert made["components"] == LISTING["components"]
    assert made["commit"] == git("rev-parse", f"{PINNED_TAG}^{{commit}}", cwd=fake_base).strip()
    assert made["license"] == "Apache-2.0" and made["tag"] == PINNED_TAG
    # Read at the tag, not from the work tree (which is at 2026.02 here).
    assert script.main([str(fake_base), "--tag", "2026.02", "--out", str(tmp_path)]) == 0
    later = json.loads((tmp_path / "gitops-base-2026.02.json").read_text())
    assert set(made["components"]) - set(later["components"]) == {f"{SERVICES}/kyverno/policy-engine"}


def test_the_script_applies_kustomize_namespaces_and_follows_includes(tmp_path):
    root = tmp_path / "release"
    (root / "applications/base/svc/namespace").mkdir(parents=True)
    (root / "LICENSE").write_text("MIT License\n\nPermission is hereby granted, free of charge, to any person\n")
    (root / "applications/base/svc/kustomization.yaml").write_text(
        "namespace: svc\nresources:\n  - namespace\n  - release.yaml\n  - missing.yaml\n"
        "  - github.com/org/repo//deploy?ref=v1\n")
    (root / "applications/base/svc/release.yaml").write_text(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: svc\n  namespace: elsewhere\n"
        "spec:\n  chartRef:\n    kind: OCIRepository\n    name: svc\n  valuesFrom:\n    - kind: Secret\n      name: svc-values\n"
        "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: svc\n")
    (root / "applications/base/svc/namespace/kustomization.yaml").write_text("resources: [ns.yaml]\n")
    (root / "applications/base/svc/namespace/ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: wrong\n")
    assert script.main([str(root), "--tag", "1.0", "--commit", "c0ffee", "--out", str(tmp_path)]) == 0
    made = json.loads((tmp_path / "gitops-base-1.0.json").read_text())
    assert made["license"] == "MIT" and made["commit"] == "c0ffee"
    assert made["components"]["applications/base/svc"] == {
        "namespaces": ["svc"],  # kustomize renames a Namespace to the kustomization's namespace
        "helm_releases": [{"name": "svc", "namespace": "svc", "chart": "OCIRepository/svc",
                           "values_from": [{"kind": "Secret", "name": "svc-values", "key": "values.yaml", "optional": False}]}],
        "sources": ["OCIRepository/svc"],
        "includes": ["applications/base/svc/namespace"],
        "remote_resources": ["github.com/org/repo//deploy?ref=v1"],
        "unresolved": ["applications/base/svc: missing.yaml (does not exist)"],
        "values_keys": {},
    }
    assert made["components"]["applications/base/svc/namespace"]["namespaces"] == ["wrong"]


# opencenter-check --gitops-base ------------------------------------------------------------------


def check(repo: Path, base: Path | str | None):
    report = run_checks(repo, gitops_base=base)
    return [f for f in report.findings if f.rule.startswith("gitops-base")], report.notes, report.findings


def set_tag(repo: Path, overlay: str, source: str, tag: str) -> None:
    path = repo / overlay / "services/sources" / f"{source}.yaml"
    text = path.read_text()
    assert f'tag: "{PINNED_TAG}"' in text
    path.write_text(text.replace(f'tag: "{PINNED_TAG}"', f'tag: "{tag}"'))


def test_every_catalog_path_exists_at_the_pinned_tag_of_a_rendered_repository(rendered, fake_base, capsys):
    """Every service rendered; the fake release from the shipped listing has every path it uses."""
    repo = rendered(template="platform", platform_services=all_services(), flux_allow_remote_bases=True)
    assert main([str(repo), "--gitops-base", str(fake_base), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["findings"] == [] and out["notes"] == []


def test_a_missing_tag_and_a_missing_path_are_findings_looked_up_by_url(rendered, fake_base):
    repo = rendered(template="platform")
    set_tag(repo, OVERLAY, "opencenter-cert-manager", "2099.01")
    set_tag(repo, OVERLAY, "opencenter-kyverno", "2026.02")  # a release without kyverno/policy-engine
    url = fake_base.as_uri()
    found, notes, everything = check(repo, url)
    assert found == [
        Finding(f"{OVERLAY}/services/sources/opencenter-cert-manager.yaml",
                "GitRepository/flux-system/opencenter-cert-manager", "gitops-base-tag",
                f"spec.ref.tag 2099.01 does not exist in {url} (Kustomizations on it: cert-manager-base)"),
        Finding(f"{OVERLAY}/services/fluxcd/kyverno.yaml", "Kustomization/flux-system/kyverno-base", "gitops-base-path",
                f"spec.path ./{SERVICES}/kyverno/policy-engine does not exist in {url} at tag 2026.02 "
                "(GitRepository opencenter-kyverno)"),
    ]
    assert notes == [] and everything == found


def test_without_the_option_nothing_is_looked_up(rendered, fake_base):
    repo = rendered(template="platform")
    set_tag(repo, OVERLAY, "opencenter-cert-manager", "2099.01")
    found, notes, everything = check(repo, None)
    assert (found, notes, everything) == ([], [], [])


@pytest.mark.parametrize("where", ["file:///nonexistent/openCenter-gitops-base.git", "not-a-repo"])
def test_a_release_that_cannot_be_read_is_a_note_not_a_finding(rendered, tmp_path, where):
    repo = rendered(template="platform")
    if where == "not-a-repo":
        where = tmp_path / "not-a-repo"
        where.mkdir()
    found, notes, everything = check(repo, where)
    assert found == [] and everything == []
    (note,) = notes
    assert note.startswith(f"openCenter-gitops-base not looked up (tags {PINNED_TAG} and their paths unchecked): "
                           f"cannot read {where} (")


def test_each_cluster_is_looked_up_at_its_own_tag(rendered, fake_base):
    """prod pins the release tag, staging 2026.02: only staging's kyverno path is missing."""
    key = str(x25519.Identity.generate().to_public())
    staging = cluster_entry("staging", key, cluster_domain="staging.example.com", gitops_base_tag="2026.02",
                            platform_services=["cert-manager", "kyverno"])
    repo = rendered(template="platform", clusters=[staging])
    found, notes, _ = check(repo, fake_base)
    assert [(f.file, f.object, f.rule) for f in found] == [
        ("applications/overlays/staging/services/fluxcd/kyverno.yaml", "Kustomization/flux-system/kyverno-base",
         "gitops-base-path")]
    assert notes == []


def test_the_option_is_for_platform_repositories(tmp_path):
    (tmp_path / ".copier-answers.yml").write_text("template: app\n")
    with pytest.raises(HookError, match="--gitops-base"):
        run_checks(tmp_path, gitops_base="file:///x")


def test_references_follow_each_source_and_skip_paths_of_a_missing_tag():
    """The pure rule: a root path always exists; a ref that is not a tag is not judged."""
    on = BaseSource("s.yaml", "GitRepository/flux-system/a", "flux-system", "a", "1.0", '{"tag": "1.0"}')
    off = BaseSource("t.yaml", "GitRepository/flux-system/b", "flux-system", "b", None, '{"branch": "main"}')
    gone = BaseSource("u.yaml", "GitRepository/flux-system/c", "flux-system", "c", "0.1", '{"tag": "0.1"}')
    release = Release({"1.0"}, {"1.0": {"x", "x/y"}})
    findings = reference_findings([
        (on, [BasePath("k.yaml", "Kustomization/flux-system/k", ""), BasePath("k.yaml", "Kustomization/flux-system/l", "x/y"),
              BasePath("k.yaml", "Kustomization/flux-system/m", "x/z")]),
        (off, [BasePath("k.yaml", "Kustomization/flux-system/n", "nope")]),
        (gone, [BasePath("k.yaml", "Kustomization/flux-system/o", "nope")]),
    ], release, "BASE")
    assert [(f.object, f.rule) for f in findings] == [
        ("Kustomization/flux-system/m", "gitops-base-path"), ("GitRepository/flux-system/c", "gitops-base-tag")]


def test_a_branch_ref_is_noted(rendered, fake_base):
    repo = rendered(template="platform")
    path = repo / OVERLAY / "services/sources/opencenter-kyverno.yaml"
    path.write_text(path.read_text().replace(f'tag: "{PINNED_TAG}"', "branch: main"))
    with ExitStack() as cleanup:
        notes: list[str] = []
        objects = collect(repo, "platform").objects
        assert gitops_base.check_references(objects, BASE_URL, fake_base, cleanup, notes) == []
    assert notes == [f"{OVERLAY}/services/sources/opencenter-kyverno.yaml: GitRepository/flux-system/opencenter-kyverno "
                     'is not pinned to a tag (ref {"branch": "main"}): its paths were not looked up in openCenter-gitops-base']
