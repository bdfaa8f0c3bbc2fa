"""Benchmark fixtures, built once and cached in bench/.cache (git-ignored), never timed.

- a committed, tagged snapshot of this template's working tree (tag 0.0.1), plus a tag 0.0.2
  whose only change touches every app's rendered files (the "template release" of the update);
- a one-file Copier template (Copier's own fixed cost);
- platform repositories that already hold N apps (on one cluster, or spread over three clusters:
  platform_with_clusters): the answers' `apps` list is generated and
  rendered with ONE `copier copy` (not N onboardings), then each app's once-only files (deploy
  key, receiver token) are generated and SOPS-encrypted by onboarding's own code
  (hooks.onboard.make_material), in parallel; the result is committed.

Everything is keyed by a hash of the template sources, so a change to the template rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
sys.path.insert(0, str(ROOT))

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
# The 0.0.2 release: one more label on every object an app renders (both files of every app).
RELEASE_LABEL = "    opencenter/managed-by: opencenter\n"
RELEASE_CHANGE = RELEASE_LABEL + "    opencenter/release: bench\n"


def isolated_env(home: Path) -> dict[str, str]:
    """Environment for every timed command: no developer config, keys or Copier settings."""
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "copier-settings.yml"
    settings.write_text("{}\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SOPS_AGE_", "COPIER_"))}
    env.update(GIT_ENV)
    env.update({
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
        "OPENCENTER_AGE_KEY_DIR": str(home / "age"), "COPIER_SETTINGS_PATH": str(settings),
        "OPENCENTER_CRD_CACHE": str(CACHE / "crds"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    })
    return env


def git(*args: str, cwd: Path) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV})
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {cwd}: {result.stderr}")
    return result.stdout


def commit_all(repo: Path, message: str) -> None:
    if not (repo / ".git").exists():
        git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", message, cwd=repo)


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    # hooks/includes is a symlink (to includes/): kept as one, as a clone of the templates has it.
    return sorted(rel for rel in listed if rel and ((ROOT / rel).is_file() or (ROOT / rel).is_symlink())
                  and not rel.startswith(("bench/", "tests/")))


# What the rendered platform repositories depend on: the payload, its questions, and the code that
# writes the once-only files. Any other change (e.g. the check) keeps the fixtures.
FIXTURE_INPUTS = ("copier.yml", "questions/", "includes/", "platform-template/", "hooks/apps/",
                  "hooks/deploykeys.py", "hooks/onboard.py", "hooks/sops.py", "hooks/knownhosts.py", "bench/fixtures.py")


def content_hash(files: list[str]) -> str:
    digest = hashlib.sha256()
    for rel in files:
        path = ROOT / rel
        content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        digest.update(rel.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:12]


def cache_dir() -> Path:
    """Where the platform repositories with N apps live (rebuilt when FIXTURE_INPUTS change)."""
    return CACHE / ("fixtures-" + content_hash([rel for rel in tracked_files() + ["bench/fixtures.py"]
                                                if rel.startswith(FIXTURE_INPUTS)]))


def template_snapshot() -> Path:
    """This working tree as a git repo tagged 0.0.1, and 0.0.2 = 0.0.1 + RELEASE_CHANGE.

    Always at the same path (repositories record it as _src_path); rebuilt when any file changes,
    and packed, as a clone of a published template would be.
    """
    dst = CACHE / "template"
    stamp = CACHE / "template.hash"
    current = content_hash(tracked_files())
    if (dst / ".git" / "refs" / "tags" / "0.0.2").exists() and stamp.is_file() and stamp.read_text() == current:
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    for rel in tracked_files():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst / rel, follow_symlinks=False)
    commit_all(dst, "snapshot")
    git("tag", "0.0.1", cwd=dst)
    changed = 0
    per_app = [path for path in (dst / "platform-template").rglob("*")
               if path.is_file() and "{% yield app from cluster.app_files %}" in path.as_posix()]  # files in yielded folders too
    for path in per_app:
        text = path.read_text()
        if RELEASE_LABEL in text:
            path.write_text(text.replace(RELEASE_LABEL, RELEASE_CHANGE))
            changed += 1
    assert changed == 3, f"expected the three per-app templates with labels to carry {RELEASE_LABEL!r}"
    commit_all(dst, "release 0.0.2: one more label on every app object")
    git("tag", "0.0.2", cwd=dst)
    git("checkout", "-q", "0.0.1", cwd=dst)  # copies take the tag explicitly; HEAD stays clean
    git("gc", "-q", "--prune=now", cwd=dst)
    stamp.write_text(current)
    return dst


def one_file_template() -> Path:
    """The smallest Copier template: one question, one .jinja file, an answers file."""
    dst = CACHE / "one-file-template"
    if (dst / ".git" / "refs" / "tags" / "0.0.1").exists():
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    (dst / "copier.yml").write_text('_answers_file: .copier-answers.yml\nname:\n  type: str\n  default: demo\n')
    (dst / "README.md.jinja").write_text("# {{ name }}\n")
    (dst / "{{ _copier_conf.answers_file }}.jinja").write_text("{{ _copier_answers | to_nice_yaml -}}\n")
    commit_all(dst, "one file")
    git("tag", "0.0.1", cwd=dst)
    return dst


def age_identity(cluster: str = "prod"):
    """A benchmark cluster's age key pair (prod's: the platform's SOPS recipient), kept in the cache."""
    from pyrage import x25519

    path = CACHE / ("bench.agekey" if cluster == "prod" else f"bench-{cluster}.agekey")
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text(str(x25519.Identity.generate()) + "\n")
        path.chmod(0o600)
    return x25519.Identity.from_str(path.read_text().strip())


def app_entry(index: int) -> dict:
    """A varied, valid `apps` entry: every 10th with a GitHub receiver, every 4th with secrets."""
    name = f"app-{index:04d}"
    return {
        "name": name, "url": f"ssh://git@github.com/acme/{name}.git", "branch": "main",
        "secrets": index % 4 == 0, "receiver": "github" if index % 10 == 0 else "", "known_hosts": "",
    }


def encrypt_material(repo: Path, entries: list[dict], cluster: str) -> None:
    """Every app's once-only files, generated and encrypted the way onboarding does it."""
    from hooks import apps as appsmod
    from hooks import onboard, sops

    binary = sops.require_sops()

    def one(entry: dict) -> dict[str, str]:
        once = appsmod.once_files(entry, cluster)
        material = onboard.make_material(
            entry, once, f"flux-acme-{cluster}-{entry['name']}",
            lambda rel, clear: sops.encrypt(repo, rel, clear, binary),
        )
        return material.files

    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 2)) as pool:
        for files in pool.map(one, entries):
            for rel, text in files.items():
                (repo / rel).write_text(text)


def cached_platform(name: str, data: dict, placement: dict[str, list[dict]], env: dict[str, str]) -> Path:
    """A committed platform repository at template 0.0.1 rendered from `data` with ONE `copier
    copy`, each cluster's apps' once-only files (`placement`: cluster -> entries) encrypted as
    onboarding does (cached under `name`)."""
    import yaml

    dst = cache_dir() / name
    done = dst.with_name(dst.name + ".done")
    if (dst / ".git").exists() and done.exists():
        return dst
    done.unlink(missing_ok=True)
    shutil.rmtree(dst, ignore_errors=True)
    template = template_snapshot()
    cache_dir().mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob("fixtures-*"):  # fixtures of an older template
        if stale != cache_dir():
            shutil.rmtree(stale, ignore_errors=True)
    data_file = cache_dir() / f"{name}.yml"
    data_file.write_text(yaml.safe_dump({"template": "platform", **data}))
    run([sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--quiet", "--vcs-ref", "0.0.1",
         "--data-file", str(data_file), str(template), str(dst)], env)
    for cluster, entries in placement.items():
        encrypt_material(dst, entries, cluster)
    commit_all(dst, name)
    done.write_text("")
    return dst


def platform_with_apps(count: int, env: dict[str, str]) -> Path:
    """A committed one-cluster platform repository holding `count` apps (cached)."""
    entries = [app_entry(i) for i in range(1, count + 1)]
    data = {"sops_age_recipients": str(age_identity().to_public()), "apps": entries}
    return cached_platform(f"platform-{count}", data, {"prod": entries}, env)


CLUSTERS = ("prod", "staging", "dev")


def platform_with_clusters(count: int, env: dict[str, str]) -> Path:
    """A committed three-cluster platform repository holding `count` apps, the i-th on cluster
    CLUSTERS[i % 3]: as many app files as platform_with_apps(count) (cached)."""
    entries = [{**app_entry(i), "clusters": [CLUSTERS[i % 3]]} for i in range(1, count + 1)]
    extra = [{"cluster_name": name, "cluster_domain": f"{name}.acme.example.com", "flux_version": "2.9.4",
              "flux_allow_remote_bases": False, "gitops_base_tag": "2026.01", "infrastructure": "openstack",
              "platform_services": ["cert-manager", "gateway-api", "gateway", "kyverno"],
              "gateway_name": "platform-gateway", "gateway_namespace": "gateway-system", "gateway_class": "eg",
              "gateway_listener": "https", "gateway_listener_port": 443, "gateway_tls_secret": "wildcard-tls",
              "sops_age_recipients": str(age_identity(name).to_public())} for name in CLUSTERS[1:]]
    data = {"sops_age_recipients": str(age_identity().to_public()), "apps": entries, "clusters": extra}
    placement = {cluster: [entry for entry in entries if entry["clusters"] == [cluster]] for cluster in CLUSTERS}
    return cached_platform(f"clusters-{count}", data, placement, env)


def run(command: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def fresh_copy(src: Path, dst: Path) -> Path:
    """A throwaway copy of a cached repository (with its .git), for one timed run."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=True)
    return dst
