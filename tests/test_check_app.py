"""hooks.check tenancy rules on small app repositories written in tmp_path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pyrage import x25519

from hooks import sops
from hooks.check import Finding, check_repo

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  MODE: prod\n"
CLUSTER_ROLE = (
    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: shop-reader\n"
    "rules:\n  - apiGroups: ['']\n    resources: [pods]\n    verbs: [get]\n"
)
FOREIGN = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: spy\n  namespace: kube-system\ndata: {}\n"
REMOTE = "https://github.com/acme/shared//base?ref=v1"
NO_REMOTE = ("an app repository may only hold its own files (kustomize-controller-tenants runs with "
             "--no-remote-bases=true whatever flux_allow_remote_bases says)")


def app_repo(root: Path, resources: dict[str, str], extra_entries: tuple[str, ...] = ()) -> Path:
    """An app repository for app `shop`: answers file, root kustomization, the given files."""
    root.mkdir()
    (root / ".copier-answers.yml").write_text("_commit: test\ntemplate: app\napp_name: shop\n")
    entries = [*resources, *extra_entries]
    (root / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
        + "".join(f"  - {entry}\n" for entry in entries)
    )
    for name, text in resources.items():
        (root / name).write_text(text)
    return root


def test_a_clean_app_repo_passes(tmp_path):
    repo = app_repo(tmp_path / "shop", {"configmap.yaml": CONFIGMAP})
    assert check_repo(repo) == []


def sops_encrypted_env(path: Path, text: str) -> None:
    """Write an env file as sops encrypts it (dotenv: ENC[…] values, sops_* metadata lines)."""
    path.write_text(text)
    subprocess.run([sops.require_sops(), "encrypt", "--in-place", "--age", str(x25519.Identity.generate().to_public()),
                    path.name], cwd=path.parent, check=True, capture_output=True)


CLEAR = "in clear text: run `sops --encrypt --in-place {}` from the repository root"


@pytest.mark.parametrize(
    ("generator", "file", "text", "appended", "expected"),
    [
        pytest.param("env: db.env", "db.env", "DB_PASSWORD=hunter2\n", None,
                     "reads DB_PASSWORD from this file " + CLEAR.format("db.env"), id="legacy-env-field"),
        pytest.param("envs: [db.env]", "db.env", "# the database\nDB_PASSWORD=hunter2\nDB_HOST=\n", None,
                     "reads DB_PASSWORD from this file " + CLEAR.format("db.env"), id="env-file"),
        pytest.param("files: [dbpw]", "dbpw", "hunter2\n", None,
                     "reads Secret key dbpw from this file " + CLEAR.format("dbpw"), id="file-of-any-name"),
        pytest.param("files: [tls.crt=certs/server.pem]", "certs/server.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n", None,
                     "reads Secret key tls.crt from this file " + CLEAR.format("certs/server.pem"), id="keyed-file"),
        pytest.param("envs: [db.env]", "db.env", "DB_PASSWORD=hunter2\nDB_HOST=db\n", "", None, id="sops-env-file"),
        pytest.param("envs: [db.env]", "db.env", "DB_PASSWORD=hunter2\n", "API_TOKEN=cleartext-token\n",
                     "reads API_TOKEN from this SOPS-encrypted file in clear text: delete those lines and add the "
                     "values with `sops edit db.env` from the repository root", id="clear-line-in-sops-env-file"),
        pytest.param("files: [db.env]", "db.env", "DB_PASSWORD=hunter2\n", "", None, id="sops-file"),
    ],
)
def test_secret_data_an_app_generates_is_encrypted(tmp_path, generator, file, text, appended, expected):
    """What an app's secretGenerator puts into a Secret comes from SOPS-encrypted files only (a
    literal: tests/test_reliability_corpus.py). `appended` None: the file is in clear; else it is
    SOPS-encrypted and `appended` added to it afterwards by hand."""
    repo = app_repo(tmp_path / "shop", {"configmap.yaml": CONFIGMAP})
    with (repo / "kustomization.yaml").open("a") as kustomization:
        kustomization.write(f"secretGenerator:\n  - name: db\n    {generator}\n")
    (repo / file).parent.mkdir(parents=True, exist_ok=True)
    if appended is None:
        (repo / file).write_text(text)
    else:
        sops_encrypted_env(repo / file, text)
        (repo / file).write_text((repo / file).read_text() + appended)
    assert check_repo(repo) == ([] if expected is None else [
        Finding(file, "", "secret-unencrypted", f"secretGenerator db (kustomization.yaml) {expected}")])


SECRET_GENERATOR = "apiVersion: builtin\nkind: SecretGenerator\nmetadata:\n  name: db\n"


@pytest.mark.parametrize(
    ("generators", "config", "expected"),
    [
        pytest.param("generators: [gen/db.yaml]\n", SECRET_GENERATOR + "literals: [password=hunter2]\n",
                     [Finding("gen/db.yaml", "", "secret-unencrypted", "secretGenerator db: literal password is a "
                              "Secret value in clear text; put it in a SOPS-encrypted env file (envs:) instead")],
                     id="literal-in-a-config-file"),
        # File paths of a builtin config are read from the kustomization's folder, as kustomize does.
        pytest.param("generators: [gen/db.yaml]\n", SECRET_GENERATOR + "envs: [db.env]\n",
                     [Finding("db.env", "", "secret-unencrypted", "secretGenerator db (gen/db.yaml) reads DB_PASSWORD "
                              "from this file " + CLEAR.format("db.env"))], id="env-file-of-a-config-file"),
        pytest.param("generators:\n  - |\n" + "".join(f"    {line}\n" for line in (
                         SECRET_GENERATOR + "literals: [password=hunter2]\nfiles: [db.env]\n").splitlines()), None,
                     [Finding("kustomization.yaml", "", "secret-unencrypted", "secretGenerator db: literal password is "
                              "a Secret value in clear text; put it in a SOPS-encrypted env file (envs:) instead"),
                      Finding("db.env", "", "secret-unencrypted", "secretGenerator db (kustomization.yaml) reads Secret "
                              "key db.env from this file " + CLEAR.format("db.env"))], id="inline-config"),
        # A folder: what its kustomization builds configures the plugins (paths still from the root).
        pytest.param("generators: [gen]\n", SECRET_GENERATOR + "literals: [password=hunter2]\nenvs: [db.env]\n",
                     [Finding("gen/db.yaml", "", "secret-unencrypted", "secretGenerator db: literal password is a "
                              "Secret value in clear text; put it in a SOPS-encrypted env file (envs:) instead"),
                      Finding("db.env", "", "secret-unencrypted", "secretGenerator db (gen/db.yaml) reads DB_PASSWORD "
                              "from this file " + CLEAR.format("db.env"))], id="config-in-a-folder"),
        pytest.param("generators: [gen/db.yaml]\n", SECRET_GENERATOR.replace("Secret", "ConfigMap") + "envs: [db.env]\n",
                     [], id="a-configmap-generator-is-not-secret"),
    ],
)
def test_a_builtin_secret_generator_under_generators_follows_the_secret_generator_rule(tmp_path, generators, config, expected):
    """`generators:` may list builtin SecretGenerator configs (a file, or inline): what they put into
    a Secret is judged as a `secretGenerator:` entry's would be."""
    repo = app_repo(tmp_path / "shop", {"configmap.yaml": CONFIGMAP})
    with (repo / "kustomization.yaml").open("a") as kustomization:
        kustomization.write(generators)
    if config is not None:
        (repo / "gen").mkdir()
        (repo / "gen/db.yaml").write_text(config)
        if generators == "generators: [gen]\n":
            (repo / "gen/kustomization.yaml").write_text("resources: [db.yaml]\n")
    (repo / "db.env").write_text("DB_PASSWORD=hunter2\n")
    assert check_repo(repo) == expected


@pytest.mark.parametrize(
    ("resources", "extra", "expected"),
    [
        pytest.param(
            {"configmap.yaml": CONFIGMAP, "clusterrole.yaml": CLUSTER_ROLE}, (),
            Finding("clusterrole.yaml", "ClusterRole/shop-reader", "tenancy-cluster-scoped",
                    "ClusterRole is cluster-scoped; an app repository only holds objects of namespace shop"),
            id="cluster-role",
        ),
        pytest.param(
            {"configmap.yaml": CONFIGMAP, "spy.yaml": FOREIGN}, (),
            Finding("spy.yaml", "ConfigMap/kube-system/spy", "tenancy-namespace",
                    "metadata.namespace is kube-system; an app repository only holds objects of namespace shop"),
            id="foreign-namespace",
        ),
        pytest.param(
            {"configmap.yaml": CONFIGMAP}, (REMOTE,),
            Finding("kustomization.yaml", "", "tenancy-remote-resource",
                    f"remote entry '{REMOTE}' (not built): {NO_REMOTE}"),
            id="remote-base",
        ),
        pytest.param(
            {"configmap.yaml": CONFIGMAP}, ("github.com/acme/shared/base",),
            Finding("kustomization.yaml", "", "tenancy-remote-resource",
                    f"remote entry 'github.com/acme/shared/base' (not built): {NO_REMOTE}"),
            id="scheme-less-remote-base",
        ),
    ],
)
def test_tenancy_faults_are_caught_with_their_rule(tmp_path, resources, extra, expected):
    repo = app_repo(tmp_path / "shop", resources, extra)
    assert check_repo(repo) == [expected]


def test_a_local_folder_named_like_a_host_is_not_remote(tmp_path):
    repo = app_repo(tmp_path / "shop", {"configmap.yaml": CONFIGMAP}, ("example.com/",))
    (repo / "example.com").mkdir()
    (repo / "example.com/kustomization.yaml").write_text("resources: []\n")
    assert check_repo(repo) == []


# Containment: a build never reads outside the repository (Flux's kustomize cannot either) ----------

DEPLOYMENT = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\nspec:\n  selector:\n    matchLabels: {app: shop}\n"
    "  template:\n    metadata:\n      labels: {app: shop}\n    spec:\n      containers:\n        - {name: shop, image: nginx}\n"
)
EXFILTRATE = (
    "resources: [deployment.yaml]\nconfigMapGenerator:\n  - {name: loot, files: [token=/proc/self/environ]}\n"
    "replacements:\n  - source: {kind: ConfigMap, name: loot, fieldPath: data.token}\n"
    "    targets: [{select: {kind: Deployment, name: shop}, fieldPaths: [spec.replicas]}]\n"
)
OUTSIDE = "resolves outside the repository: Flux cannot read it either"


@pytest.fixture
def built_roots(monkeypatch):
    """The roots the check hands to kubectl."""
    import hooks.check

    roots: list[Path] = []
    real = hooks.check.build_all

    def recording(to_build):
        roots.extend(to_build)
        return real(to_build)

    monkeypatch.setattr(hooks.check, "build_all", recording)
    return roots


def test_a_generator_reading_the_runner_environment_is_refused_and_not_built(tmp_path, monkeypatch, capsys, built_roots):
    from hooks.check import main

    sentinel = "sentinel-3f9c1e-not-for-output"
    monkeypatch.setenv("OPENCENTER_TEST_SECRET", sentinel)
    repo = app_repo(tmp_path / "shop", {"deployment.yaml": DEPLOYMENT})
    (repo / "kustomization.yaml").write_text(EXFILTRATE)
    findings = check_repo(repo)
    assert findings == [Finding("kustomization.yaml", "", "kustomize-outside",
                                f"configMapGenerator[0].files 'token=/proc/self/environ' {OUTSIDE}")]
    assert built_roots == []
    assert main([str(repo), "--format", "json"]) == 1
    assert main([str(repo)]) == 1
    out = capsys.readouterr()
    assert sentinel not in out.out + out.err
    assert "kustomize-outside" in out.out


@pytest.mark.parametrize(
    ("kustomization", "expected"),
    [
        pytest.param("resources:\n  - ../outside.yaml\n", f"resources '../outside.yaml' {OUTSIDE}", id="dotdot-resource"),
        pytest.param("resources:\n  - {outside}\n", f"resources '{{outside}}' {OUTSIDE}", id="absolute-resource"),
        pytest.param("resources: [configmap.yaml]\npatches:\n  - path: ../outside.yaml\n",
                     f"patches[0].path '../outside.yaml' {OUTSIDE}", id="patch-path"),
        pytest.param("resources: [configmap.yaml]\nsecretGenerator:\n  - name: s\n    envs: [../outside.env]\n",
                     f"secretGenerator[0].envs '../outside.env' {OUTSIDE}", id="generator-env"),
        pytest.param("resources: [configmap.yaml]\ntransformers:\n  - |\n    apiVersion: builtin\n    kind: PatchTransformer\n"
                     "    metadata: {name: p}\n    path: ../outside.yaml\n",
                     f"transformers path '../outside.yaml' {OUTSIDE}", id="inline-transformer-path"),
    ],
)
def test_a_path_leaving_the_repository_is_refused_and_not_built(tmp_path, built_roots, kustomization, expected):
    (tmp_path / "outside.yaml").write_text(CONFIGMAP)
    (tmp_path / "outside.env").write_text("TOKEN=secret\n")
    outside = str(tmp_path / "outside.yaml")
    repo = app_repo(tmp_path / "shop", {"configmap.yaml": CONFIGMAP})
    (repo / "kustomization.yaml").write_text(kustomization.replace("{outside}", outside))
    assert check_repo(repo) == [Finding("kustomization.yaml", "", "kustomize-outside", expected.replace("{outside}", outside))]
    assert built_roots == []


def test_a_nested_kustomization_leaving_the_repository_refuses_its_root(tmp_path, built_roots):
    (tmp_path / "outside.yaml").write_text(CONFIGMAP)
    repo = app_repo(tmp_path / "shop", {"configmap.yaml": CONFIGMAP}, ("base",))
    (repo / "base").mkdir()
    (repo / "base/kustomization.yaml").write_text("resources:\n  - ../../outside.yaml\n")
    assert check_repo(repo) == [Finding("base/kustomization.yaml", "", "kustomize-outside",
                                        f"resources '../../outside.yaml' {OUTSIDE}")]
    assert built_roots == []  # neither the root nor base/


def test_a_root_including_a_base_with_a_remote_entry_is_not_built(tmp_path, built_roots):
    """kubectl would fetch the nested base's URL while building the root: neither is built."""
    repo = app_repo(tmp_path / "shop", {"configmap.yaml": CONFIGMAP}, ("base",))
    (repo / "base").mkdir()
    (repo / "base/kustomization.yaml").write_text(f"resources:\n  - {REMOTE}\n")
    assert [(f.file, f.rule) for f in check_repo(repo)] == [("base/kustomization.yaml", "tenancy-remote-resource")]
    assert built_roots == []


def test_a_symlink_leading_out_of_the_repository_is_refused_and_nothing_is_built(tmp_path, built_roots):
    (tmp_path / "outside.yaml").write_text(CONFIGMAP.replace("settings", "stolen"))
    repo = app_repo(tmp_path / "shop", {"configmap.yaml": CONFIGMAP}, ("leak.yaml",))
    (repo / "leak.yaml").symlink_to(tmp_path / "outside.yaml")
    findings = check_repo(repo)
    assert Finding("leak.yaml", "", "kustomize-outside", f"symlink '{tmp_path / 'outside.yaml'}' {OUTSIDE}") in findings
    assert Finding("kustomization.yaml", "", "kustomize-outside", f"resources 'leak.yaml' {OUTSIDE}") in findings
    assert {f.rule for f in findings} == {"kustomize-outside"}
    assert "stolen" not in repr(findings)
    assert built_roots == []


def test_an_unparsable_kustomization_is_not_built(tmp_path, built_roots):
    repo = app_repo(tmp_path / "shop", {"configmap.yaml": CONFIGMAP})
    (repo / "kustomization.yaml").write_text("resources: [configmap.yaml]\nresources: [/etc/passwd]\n")
    assert [(f.file, f.rule) for f in check_repo(repo)] == [("kustomization.yaml", "kustomize-outside")]
    assert built_roots == []


def test_in_repository_parent_references_and_symlinks_still_build(tmp_path, built_roots):
    """A platform-like layout: overlays name ../../base; an in-repository symlink is fine."""
    repo = app_repo(tmp_path / "shop", {"configmap.yaml": CONFIGMAP})
    (repo / "base").mkdir()
    (repo / "base/deployment.yaml").write_text(DEPLOYMENT)
    (repo / "base/kustomization.yaml").write_text("resources: [deployment.yaml]\n")
    (repo / "overlays/prod").mkdir(parents=True)
    (repo / "overlays/prod/replicas.yaml").write_text("- {op: add, path: /spec/replicas, value: 2}\n")
    (repo / "overlays/prod/settings.env").symlink_to(repo / "base/settings.env")
    (repo / "base/settings.env").write_text("MODE=prod\n")
    (repo / "overlays/prod/kustomization.yaml").write_text(
        "resources: [../../base]\npatches:\n  - path: replicas.yaml\n    target: {kind: Deployment, name: shop}\n"
        "configMapGenerator:\n  - {name: settings-prod, envs: [settings.env]}\n")
    assert check_repo(repo) == []
    assert sorted(root.relative_to(repo).as_posix() for root in built_roots) == [".", "base", "overlays/prod"]
