"""Validate a rendered platform or app repository: one command for developers and for CI.

    python -m hooks.check PATH [--kube-version 1.34] [--format text|json]
    python -m hooks.check APP_REPO --platform PLATFORM_REPO          (what the cluster would admit)
    python -m hooks.check APP_REPO --platform URL --platform-branch BRANCH
    python -m hooks.check PLATFORM_REPO --tenant APP=APP_REPO ... | --all-tenants
    python -m hooks.check PLATFORM_REPO --gitops-base GITOPS_BASE_CHECKOUT_OR_URL
    opencenter-check PATH ...            (console script of this package)

Builds every kustomization root and validates every built object strictly against its schema;
checks that Secrets are SOPS-encrypted under a .sops.yaml rule; in a platform repository, that
Flux references (sources, dependsOn, paths, secretRefs) resolve; in an app repository, that
everything stays inside the app's namespace. With --platform / --tenant, the offline admission
model (hooks.admission) says what the platform's cluster would refuse of an app's objects:
`[denied]` findings from RBAC, the admission policies, Pod Security, the LimitRange and the
quotas (also for the pods and claims the app's workloads create). With --gitops-base, the
tags and paths a platform repository uses on openCenter-gitops-base are looked up in a checkout
or URL of it (hooks.gitops_base). The rules themselves are in hooks.rules.
Exits 1 on any finding, 2 when the check itself cannot run (e.g. not a rendered repository).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from hooks import appenv, apps, attribution, clusters, crds, gitrepo, onboarding_requests, rules, sops
from hooks.admission import Cluster, admit
from hooks.answers import ANSWERS_FILE, read_answers_file
from hooks.errors import HookError, run_main, shown
from hooks.gitops_base import check_references
from hooks.kustomize import (build_all, find_roots, folder_plugin_configs, kustomization_file, outside_references,
                             outside_symlinks, plugin_configs, plugin_folders, remote_references)
from hooks.manifests import FAST_LOADER, is_object, object_label, read_yaml_files, source_index, source_of, under
from hooks.rules import Finding
from hooks.validate import DEFAULT_KUBE_VERSION, Validator



@dataclass
class Report:
    """The findings of one check and what was looked at (for the summary line)."""

    findings: list[Finding] = field(default_factory=list)
    roots: int = 0
    objects: int = 0
    cel_rules: int = 0  # CRD rule evaluations
    transition_rules_skipped: int = 0  # rules on oldSelf: only an update can be judged by them
    notes: list[str] = field(default_factory=list)  # what was not checked, and why (not findings)


# I/O: gather the repository, run the rules ------------------------------------------------------


def read_answers(repo: Path) -> dict:
    path = repo / ANSWERS_FILE
    if not path.is_file():
        raise HookError(str(repo), f"has no {ANSWERS_FILE}: not a repository rendered from these templates")
    answers = read_answers_file(repo)
    if answers.get("template") not in ("platform", "app"):
        raise HookError(str(path), f"template must be 'platform' or 'app' (got {shown(answers.get('template'))})")
    return answers


def answers_findings(answers: dict) -> list[Finding]:
    """A platform repository's answers that onboarding and every other command would refuse (its
    apps and clusters: clusters.validate_answers): the first problem, as a finding of the answers file."""
    try:
        clusters.validate_answers(answers)
    except HookError as error:
        return [Finding(ANSWERS_FILE, "", "answers", f"{error.field}: {error.rule}")]
    return []


def read_sops_rules(repo: Path) -> tuple[list[dict] | None, list[Finding]]:
    """The creation_rules of .sops.yaml (None when there is no such file), and its finding when it
    is no SOPS configuration (then no rule: sops would encrypt nothing with it)."""
    try:
        return sops.read_creation_rules(repo / sops.CONFIG_FILE), []
    except HookError as error:
        return [], [Finding(sops.CONFIG_FILE, "", "sops-config", error.rule)]


def repo_dirs(repo: Path) -> set[str]:
    """Every directory of the repository, relative ('' is the root), for Flux path checks: symlinks
    to folders too, not what they lead to, nor any `.git`."""
    found = {""}
    for directory, subdirs, _ in os.walk(repo):
        subdirs[:] = [name for name in subdirs if name != ".git"]
        found.update(Path(os.path.relpath(directory, repo), name).as_posix() for name in subdirs)
    return found


def repo_relative(repo: Path, path: Path) -> str:
    """A path as the repository names it (resolved or not), else as given."""
    for base in (repo.resolve(), repo):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return str(path)


@dataclass
class Collected:
    """A repository read and built: its YAML files, roots, the built objects by source file, and
    what went wrong building them. `built`: each built root's objects, by its repository-relative
    folder ('' for the repository itself), for what Flux applies of one folder."""

    files: list
    roots: list[Path]
    objects: list[tuple[str, dict]]
    findings: list[Finding]
    failed_roots: list[str]
    built: dict[str, list[tuple[str, dict]]] = field(default_factory=dict)


def overlay_fences(repo: Path, root: Path) -> dict[Path, str]:
    """For a root in a cluster's overlay of a platform repository, every other cluster's overlay
    (none for other roots): what it must not build from (rules.cluster_input_findings)."""
    overlays = repo / "applications" / "overlays"
    own = rules.overlay_of(root.relative_to(repo).as_posix() + "/")
    if own is None or not overlays.is_dir():
        return {}
    return {folder: f"cluster {folder.name}'s overlay applications/overlays/{folder.name}"
            for folder in sorted(overlays.iterdir()) if folder.is_dir() and folder.name != own}


def collect(repo: Path, template: str, remote_allowed: bool = False, applied: Sequence[str] = ()) -> Collected:
    """Build every kustomization root of a repository and locate each object in its source file.
    Folders Flux applies without a kustomization file are built as Flux generates it: `applied`
    (an app repository's, from its answers), and in a platform repository those its own Flux
    Kustomizations name (services/tenants/<app>)."""
    files = read_yaml_files(repo)
    collected = Collected(files, [], [], rules.parse_findings(files), [])
    located: dict[tuple[str, str], tuple[str, dict]] = {}
    generated = [repo / path for path in applied if (repo / path).is_dir() and kustomization_file(repo / path) is None]
    roots = find_roots(repo)
    configs = plugin_folders(roots)  # built by the kustomization that lists them, into plugin configs
    roots = [root for root in roots if Path(os.path.realpath(root)) not in configs]
    _build_roots(repo, template, remote_allowed, [*roots, *generated], collected, located)
    if template == "platform":
        generated = sorted({path for _, obj in located.values() if obj.get("kind") == "Kustomization"
                            and (path := rules.own_source_path(obj)) is not None
                            and (repo / path).is_dir() and kustomization_file(repo / path) is None})
        _build_roots(repo, template, remote_allowed, [repo / folder for folder in generated], collected, located)
    collected.objects = list(located.values())
    return collected


def _build_roots(repo: Path, template: str, remote_allowed: bool, roots: list[Path], collected: Collected,
                 located: dict[tuple[str, str], tuple[str, dict]]) -> None:
    """Build `roots` into `collected`, locating each object once (`located`: by file and object)."""
    index = source_index(collected.files)

    def rel(path: Path) -> str:
        return path.relative_to(repo).as_posix()

    def root_file(root: Path) -> str:  # a generated kustomization is reported on its folder
        file = kustomization_file(root)
        return rel(file) if file is not None else (rel(root) if root != repo else ".") + "/"

    remote = {root: entries for root in roots if (entries := remote_references(root))}
    # A root that reads outside the repository is never built: kubectl runs with the load
    # restrictor off, and the repository may be an app team's (--all-tenants clones them). Any
    # symlink leading out of the repository refuses every root (a build could reach it).
    symlinks = outside_symlinks(repo)
    reached: dict[Path, set[Path]] = {root: set() for root in roots}
    references = {root: outside_references(root, repo, reached[root], overlay_fences(repo, root)) for root in roots}
    escapes = {root: [escape for escape in found if not escape.into] for root, found in references.items()}
    refused = [root for root in roots if symlinks or escapes[root]]
    # Remote entries are fetched only where Flux would fetch them, so the check is otherwise
    # hermetic: not by a root with one, nor by a root including such a base.
    fetching = {kustomization_file(root).resolve().parent for root in remote}
    to_build = [root for root in roots if root not in refused and (remote_allowed or not reached[root] & fetching)]
    collected.findings += rules.remote_findings({root_file(root): entries for root, entries in remote.items()},
                                                template, remote_allowed)
    collected.findings += rules.outside_findings([(repo_relative(repo, escape.file), escape.message())
                                                  for escape in [*symlinks, *(e for root in roots for e in escapes[root])]])
    collected.findings += rules.cluster_input_findings([(repo_relative(repo, escape.file), escape.message())
                                                        for root in roots for escape in references[root] if escape.into])
    collected.roots += roots
    collected.failed_roots += [rel(root) for root in refused]
    for build in build_all(to_build):
        collected.findings += rules.build_findings(build, root_file(build.root), f"{repo}/",
                                                   generated=kustomization_file(build.root) is None)
        if build.error is not None:
            collected.failed_roots.append(rel(build.root))
            continue
        folder = "" if build.root == repo else rel(build.root)
        objects = collected.built[folder] = []
        for obj in build.objects:
            file = source_of(obj, index, rel(build.root), root_file(build.root))
            objects.append((file, obj))
            located.setdefault((file, object_label(obj)), (file, obj))


def run_checks(
    repo: Path,
    kube_version: str = DEFAULT_KUBE_VERSION,
    platform: Path | str | None = None,
    tenants: Sequence[tuple[str, Path | str]] = (),
    all_tenants: bool = False,
    gitops_base: Path | str | None = None,
    platform_branch: str | None = None,
) -> Report:
    """Check a repository. For an app repository with `platform` (a git URL is cloned at
    `platform_branch` when given), also what that platform's cluster would answer to the app's
    objects; for a platform repository, the same for each (app name, app repository) of
    `tenants`, or with `all_tenants` for every registered app cloned from its URL. A checkout is
    a folder or a git URL; a URL that cannot be read is a note in the report, not a finding (CI
    reads only what its credentials allow). With `gitops_base` (a checkout or git URL of
    openCenter-gitops-base), a platform repository's tags and paths on it are looked up there;
    when it cannot be read, that too is a note."""
    with ExitStack() as cleanup:
        return _run_checks(repo, kube_version, platform, tenants, all_tenants, cleanup, gitops_base, platform_branch)


def _run_checks(repo, kube_version, platform, tenants, all_tenants, cleanup: ExitStack, gitops_base=None,
                platform_branch=None) -> Report:
    repo = repo.resolve()
    answers = read_answers(repo)
    template = answers["template"]
    if platform is not None and template != "app":
        raise HookError("--platform", "is for checking an app repository against its platform")
    if platform_branch is not None:
        check_platform_branch(platform, platform_branch)
    if (tenants or all_tenants) and template != "platform":
        raise HookError("--tenant", "is for checking app repositories from their platform repository")
    if gitops_base is not None and template != "platform":
        raise HookError("--gitops-base", "is for checking a platform repository's references to openCenter-gitops-base")
    validator = Validator(crds.load_bundle(), kube_version)
    remote_allowed = template == "platform" and bool(answers.get("flux_allow_remote_bases"))
    here = collect(repo, template, remote_allowed, appenv.applied_paths(answers) if template == "app" else ())
    objects = here.objects
    report = Report(here.findings, roots=len(here.roots), objects=len(objects))
    report.findings += rules.schema_findings(objects, validator)
    sops_rules, sops_config = read_sops_rules(repo)
    report.findings += sops_config + rules.secret_findings(here.files, sops_rules)
    report.findings += rules.secret_generator_findings(generator_sources(repo, here.roots), app=template == "app")
    report.findings += rules.git_ref_findings(objects)
    report.findings += rules.line_break_findings(answers)
    if template == "platform":
        out_of_band = rules.out_of_band_secrets(str(answers.get("gitops_base_secret") or ""))
        unbuilt = [doc for f in here.files if any(under(f.path, root) for root in here.failed_roots)
                   for doc in f.documents if is_object(doc)]
        # Each cluster's overlay on its own: its Flux references resolve within it (another
        # cluster's objects live in another cluster), its paths stay in it.
        dirs = repo_dirs(repo)
        for name, located in rules.by_cluster(objects).items():
            report.findings += rules.flux_reference_findings(located, dirs, out_of_band, unbuilt)
            report.findings += rules.cluster_path_findings(located, name) if name is not None else []
        report.findings += rules.aggregated_flux_write_findings(objects)
        report.findings += rules.tenant_shard_findings(objects)
        malformed = answers_findings(answers)
        report.findings += malformed
        if not malformed:  # the rules below read the clusters and apps of the answers
            report.findings += rules.cluster_recipient_findings(here.files, {
                c["cluster_name"]: [key.strip() for key in str(c.get("sops_age_recipients", "")).split(",") if key.strip()]
                for c in clusters.cluster_list(answers)})
            report.findings += rules.hostname_findings(answers)
            report.findings += [Finding(file, "", "onboarding-request", message)
                                for file, message in onboarding_requests.request_problems(repo, answers)]
        if gitops_base is not None:
            report.findings += check_references(objects, str(answers.get("gitops_base_url") or ""), gitops_base,
                                                cleanup, report.notes)
        if malformed and (tenants or all_tenants):
            report.notes.append(f"tenants not checked: the clusters and apps of {ANSWERS_FILE} cannot be read (its finding)")
            tenants, all_tenants = [], False
        if all_tenants:
            tenants = [*tenants, *((app["name"], app["url"], app.get("branch")) for app in answers.get("apps") or [])]
        if tenants:
            models = cluster_models(objects, validator, answers)
            for app, where, *branch in tenants:
                path = checkout(where, branch[0] if branch else None, "--tenant", cleanup, report.notes, f"app {app}")
                if path is not None:
                    report.findings += tenant_findings(models, app, path, str(where))
    else:
        app = str(answers.get("app_name"))
        report.findings += rules.tenancy_findings(objects, app, validator)
        report.findings += rules.environment_recipient_findings(here.files, answers)
        if platform is not None:
            path = checkout(platform, platform_branch, "--platform", cleanup, report.notes, "the platform repository")
            if path is not None:
                report.findings += admission_findings(platform_clusters(path, validator), app, here.built, repo)
    report.cel_rules, report.transition_rules_skipped = validator.rules_evaluated, validator.transition_rules_skipped
    report.findings = rules.unique(report.findings)
    return report


def generator_sources(repo: Path, roots: list[Path]) -> list[rules.GeneratorSource]:
    """The inputs of every secretGenerator of the repository's kustomizations, files read: the
    `secretGenerator` entries, and the builtin SecretGenerator configs under `generators` (a file,
    named as where the generator is declared, a folder whose kustomization lists such files, or
    inline in the kustomization). Their file paths are read from the listing kustomization's folder."""
    sources = []
    for root in roots:
        file = kustomization_file(root)
        if file is None:
            continue
        try:
            kustomization = yaml.load(file.read_text(), Loader=FAST_LOADER) or {}
        except yaml.YAMLError:
            continue  # reported by the YAML and build rules
        if not isinstance(kustomization, dict):
            continue
        rel = file.relative_to(repo).as_posix()
        declared = [(rel, generator) for generator in kustomization.get("secretGenerator") or []]
        plugins = kustomization.get("generators")
        for entry in plugins if isinstance(plugins, list) else []:
            config_file, configs = plugin_configs(root, str(entry))
            if config_file is not None and not config_file.is_relative_to(repo.resolve()):
                continue  # outside the repository: the build refuses it (outside_references)
            found = ([(config_file, config) for config in configs] if config_file is None or not config_file.is_dir()
                     else folder_plugin_configs(config_file, repo.resolve()))
            declared += [(rel if where is None else where.relative_to(repo.resolve()).as_posix(), config)
                         for where, config in found
                         if config.get("apiVersion") == "builtin" and config.get("kind") == "SecretGenerator"]
        for where, generator in declared:
            if isinstance(generator, dict):
                sources += secret_generator_inputs(repo, root, where, generator)
    return sources


def secret_generator_inputs(repo: Path, root: Path, where: str, generator: dict) -> list[rules.GeneratorSource]:
    """The inputs of one secretGenerator (or builtin SecretGenerator config, named by `name` or
    `metadata.name`) declared in `where`; its file paths are read from the kustomization folder `root`."""
    metadata = generator.get("metadata")
    name = str(generator.get("name") or (metadata.get("name") if isinstance(metadata, dict) else None) or "?")
    sources = []
    for literal in generator.get("literals") or []:
        key, _, value = str(literal).partition("=")
        sources.append(rules.GeneratorSource(where, name, "literal", key, value))
    # `env: FILE`, the field `envs` replaced, is still built into the Secret (kustomize 5.8).
    env_files = [*(generator.get("envs") or []), *([generator["env"]] if generator.get("env") else [])]
    for kind, entries in (("env", env_files), ("file", generator.get("files") or [])):
        for entry in entries:
            key, _, target = str(entry).rpartition("=")
            path = (root / target).resolve()
            text = path.read_text(errors="replace") if path.is_file() and path.is_relative_to(repo) else None
            ref = path.relative_to(repo).as_posix() if path.is_relative_to(repo) else str(entry)
            sources.append(rules.GeneratorSource(where, name, kind, ref, text, key or path.name))
    return sources


GIT_URL = re.compile(r"^(ssh|https?|git|file)://|^[\w.-]+@[\w.-]+:")


def is_git_url(where: Path | str) -> bool:
    """Whether a checkout option names a git URL to clone (a folder of that name is a folder)."""
    return bool(GIT_URL.match(str(where))) and not Path(where).is_dir()


def check_platform_branch(platform: Path | str | None, branch: str) -> None:
    """Refuse a --platform-branch that cannot take effect or is not a branch name. A folder is a
    checkout already at some branch: cloning another branch of it behind the user's back would
    check against rules the folder does not hold."""
    if platform is None:
        raise HookError("--platform-branch", "names the branch of the --platform git URL to clone: give --platform URL too")
    if not is_git_url(platform):
        raise HookError("--platform-branch", f"is only for a --platform git URL, and {platform} is not one: a folder "
                                             f"is checked at the branch it has checked out (check out {branch} there instead)")
    problem = apps.branch_problem(branch)
    if problem is not None:
        raise HookError("--platform-branch", problem)


def checkout(where: Path | str, branch: str | None, option: str, cleanup: ExitStack, notes: list[str], what: str) -> Path | None:
    """A folder as given, or a shallow clone of a git URL (None, with a note, when it cannot be read)."""
    if is_git_url(where):
        dest = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="opencenter-check-"))) / "checkout"
        problem = gitrepo.shallow_clone(str(where), branch, dest)
        if problem is not None:
            notes.append(f"{what} not checked: cannot clone {where} ({problem})")
            return None
        return dest
    path = Path(where)
    if not path.is_dir():
        raise HookError(option, f"{where} is neither a directory nor a git URL ({what})")
    return path.resolve()


def cluster_models(objects: list[tuple[str, dict]], validator: Validator, answers: dict) -> dict[str, Cluster]:
    """One offline model per cluster overlay of a platform repository: what each cluster's API
    server would hold (RBAC, admission policies, tenants), and how its Flux applies."""
    settings = {c.get("cluster_name"): c for c in clusters.cluster_list(answers)}
    return {name: Cluster([obj for _, obj in located], validator.custom,
                          roles_first=clusters.stages_roles(settings.get(name, {})), kube_version=validator.kube_version)
            for name, located in rules.by_cluster(objects).items() if name is not None}


def platform_clusters(platform: Path, validator: Validator) -> dict[str, Cluster]:
    """The clusters a platform repository sets up (their built objects)."""
    answers = read_answers(platform)
    if answers["template"] != "platform":
        raise HookError("--platform", f"{platform} is not a platform repository (template: {answers['template']})")
    try:
        clusters.validate_answers(answers)
    except HookError as error:
        raise HookError(f"--platform {platform / ANSWERS_FILE}: {error.field}", error.rule) from None
    built = collect(platform, "platform", bool(answers.get("flux_allow_remote_bases")))
    return cluster_models(built.objects, validator, answers)


def tenant_findings(models: dict[str, Cluster], app: str, path: Path, shown: str) -> list[Finding]:
    """The platform's verdict on one app repository (its build findings, then admission)."""
    built = collect(path, "app")
    prefix = shown.rstrip("/") + "/"
    findings = [replace(f, file=prefix + f.file) for f in built.findings]
    return findings + admission_findings(models, app, built.built, path, prefix)


def admission_findings(models: dict[str, Cluster], app: str, built: dict[str, list[tuple[str, dict]]],
                       repo: Path, prefix: str = "") -> list[Finding]:
    """`[denied]` for every object of the app that RBAC, a policy or a quota would refuse, on each
    cluster the app runs on (named when the platform has several): each cluster judges what its
    own Kustomization applies of the app repository at `repo` (hooks.appenv; `built`: the check's
    builds of it by folder), nothing else of it. A denial caused by an overlay's change names that
    overlay beside the object's file (hooks.attribution); `prefix` goes before every file named."""
    tenants = {name: tenant for name, model in models.items() if (tenant := model.tenant(app)) is not None}
    if not tenants:
        return [Finding(prefix, "", "denied", f"app {app} is not registered on the platform (no Flux Kustomization {app} in flux-system)")]
    findings = []
    shaped = attribution.Attribution(repo, built)
    for name, (who, namespace) in tenants.items():
        on = f"cluster {name}: " if len(models) > 1 else ""
        applied, problem = appenv.applied_objects(repo, models[name].flux_kustomizations[app], built)
        if problem is not None:
            findings.append(Finding(prefix, "", "denied", f"{on}{problem}"))
            continue
        objects = [obj for _, obj in applied]
        file_of = {id(obj): file for file, obj in applied}
        root = appenv.flux_path(models[name].flux_kustomizations[app])
        for obj, denial in admit(models[name], objects, who, namespace):
            patched_by = shaped.patched_by(root, obj, file_of[id(obj)],
                                           _still_denied(models[name], objects, (who, namespace), obj, denial))
            findings.append(Finding(attribution.shown(prefix + file_of[id(obj)], [prefix + file for file in patched_by]),
                                    object_label(obj), "denied", f"{on}{denial.source}: {denial.message}"))
    return findings


def _still_denied(model: Cluster, objects: list[dict], tenant, obj: dict, denial) -> Callable[[dict], bool]:
    """Whether `denial` of `obj` stands when another version of it is judged in its place."""
    def still(candidate: dict) -> bool:
        judged = [candidate if other is obj else other for other in objects]
        return any(found == denial for _, found in admit(model, judged, *tenant, only=candidate))
    return still


def check_repo(path: Path, kube_version: str = DEFAULT_KUBE_VERSION, platform: Path | str | None = None,
               tenants: Sequence[tuple[str, Path | str]] = (), all_tenants: bool = False,
               gitops_base: Path | str | None = None) -> list[Finding]:
    """Every finding of the check on a rendered repository (empty: the repository passes)."""
    return run_checks(path, kube_version, platform, tenants, all_tenants, gitops_base).findings


# CLI --------------------------------------------------------------------------------------------


def where(finding: Finding) -> str:
    """The object, and its field when the finding names one: `HTTPRoute/shop spec.parentRefs`."""
    return f"{finding.object} {finding.field}" if finding.field else finding.object


def format_text(report: Report) -> str:
    lines = [
        f"{f.file}: [{f.rule}] {where(f) + ': ' if f.object else ''}{f.message}" for f in report.findings
    ] + [f"note: {note}" for note in report.notes]
    verdict = f"{len(report.findings)} finding(s)" if report.findings else "OK"
    lines.append(f"{verdict}: {report.roots} kustomization root(s), {report.objects} object(s) checked, "
                 f"{report.cel_rules} CRD rule evaluation(s) ({report.transition_rules_skipped} transition rule(s) skipped)")
    return "\n".join(lines)


def format_json(report: Report) -> str:
    return json.dumps(
        {"findings": [asdict(f) for f in report.findings], "roots": report.roots, "objects": report.objects,
         "cel_rules": report.cel_rules, "transition_rules_skipped": report.transition_rules_skipped,
         "notes": report.notes},
        indent=2,
    )


def parse_tenant(item: str) -> tuple[str, str]:
    app, sep, path = item.partition("=")
    if not sep or not app or not path:
        raise HookError("--tenant", f"takes APP=PATH, e.g. shop=../shop (got {shown(item)})")
    return app, path


def main(argv: list[str] | None = None) -> int:
    """The check (the console script `opencenter-check` runs it through cli); returns the exit status, 2 when
    the check cannot run."""
    parser = argparse.ArgumentParser(prog="opencenter-check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="the rendered repository to check")
    parser.add_argument("--kube-version", default=DEFAULT_KUBE_VERSION, help=f"Kubernetes version of the core schemas (default {DEFAULT_KUBE_VERSION})")
    parser.add_argument("--platform", metavar="PLATFORM_REPO",
                        help="app repository: also check what this platform's cluster would admit of it "
                             "(RBAC, admission policies, Pod Security, LimitRange, quotas); a folder or a git URL")
    parser.add_argument("--platform-branch", metavar="BRANCH",
                        help="with a --platform git URL (not a folder: that is checked as checked out): the branch "
                             "to clone, the one the platform's Flux reconciles (default: the repository's default branch)")
    parser.add_argument("--tenant", action="append", default=[], metavar="APP=PATH",
                        help="platform repository: also check the app repository at PATH (a folder or a git URL) "
                             "as tenant APP (repeatable)")
    parser.add_argument("--all-tenants", action="store_true",
                        help="platform repository: also check every registered app, cloned from its URL and branch "
                             "(apps that cannot be cloned are noted, not findings)")
    parser.add_argument("--gitops-base", metavar="CHECKOUT_OR_URL",
                        help="platform repository: also look up, in this clone or git URL of openCenter-gitops-base, "
                             "the tag of every GitRepository on gitops_base_url and every Flux Kustomization path on it "
                             "(what cannot be read is noted, not a finding)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    try:
        tenants = [parse_tenant(item) for item in args.tenant]
        report = run_checks(args.path, args.kube_version, args.platform, tenants, args.all_tenants, args.gitops_base,
                            args.platform_branch)
    except HookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_json(report) if args.format == "json" else format_text(report))
    return 1 if report.findings else 0


def cli() -> None:
    """The console script: as `python -m hooks.check`, a reader that goes away early (`| head`)
    stops it quietly (errors.run_main)."""
    run_main(main)


if __name__ == "__main__":
    cli()
