"""The rules of the repository check, as pure functions over what hooks.check gathered.

Each rule returns Findings; none reads files or runs tools. `objects` are the objects of the
kustomize builds, each paired with the repository file it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from hooks import apps as appsmod
from hooks import clusters, rbac
from hooks.answers import ANSWERS_FILE, has_line_break
from hooks.errors import shown
from hooks.kustomize import Build
from hooks.manifests import YamlFile, is_object, object_label
from hooks.validate import Validator, is_sops_encrypted

# Created on the cluster by hand or by `flux bootstrap`, never committed (platform README):
# the bootstrap deploy key and the SOPS age key, both in flux-system. The gitops-base
# credentials Secret (answer gitops_base_secret) is added by `out_of_band_secrets`.
OUT_OF_BAND_SECRETS = ("flux-system", "sops-age")
FLUX_NAMESPACE = "flux-system"
# The GitRepository `flux bootstrap` creates for the platform repository itself.
OWN_SOURCE = ("GitRepository", FLUX_NAMESPACE, "flux-system")
# The identity of every platform Kustomization; any other is a tenant's (services/fluxcd/<app>.yaml).
PLATFORM_IDENTITY = "kustomize-controller"
# The label that hands a Kustomization to the tenants' kustomize-controller shard
# (flux-system/kustomize-controller-tenants), which the platform's controller ignores.
SHARD_KEY, TENANT_SHARD = "sharding.fluxcd.io/key", "tenants"


@dataclass(frozen=True)
class Finding:
    """One rule broken: where (file relative to the repository, object, the object's field in
    Kubernetes' path form when the rule names one), which rule, and why."""

    file: str
    object: str
    rule: str
    message: str
    field: str = ""


Located = tuple[str, dict]  # (file, object)


def _meta(obj: dict) -> dict:
    return obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}


def _spec(obj: dict) -> dict:
    return obj["spec"] if isinstance(obj.get("spec"), dict) else {}


def _group(obj: dict) -> str:
    return str(obj.get("apiVersion", "")).rpartition("/")[0]


def _ref(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


# Builds, parsing, schemas ----------------------------------------------------------------------


def parse_findings(files: list[YamlFile]) -> list[Finding]:
    return [Finding(f.path, "", "yaml", f.error) for f in files if f.error]


def build_findings(build: Build, root_file: str, repo_prefix: str, generated: bool = False) -> list[Finding]:
    """A root kustomize cannot build, with kustomize's own error (absolute paths made relative);
    `generated`: a folder Flux applies without a kustomization file (hooks.kustomize.build)."""
    if build.error is None:
        return []
    message = build.error.replace(repo_prefix, "").removeprefix("Error: ")
    if generated:
        message = f"no kustomization file: Flux generates one listing every YAML file below, which does not build: {message}"
    return [Finding(root_file, "", "kustomize-build", message)]


def schema_findings(objects: list[Located], validator: Validator) -> list[Finding]:
    """Every object that its strict schema refuses, or whose kind has no schema at all."""
    return [
        Finding(file, object_label(obj), problem.rule, problem.message, problem.path)
        for file, obj in objects
        for problem in validator.problems(obj)
    ]


def outside_findings(escapes: list[tuple[str, str]]) -> list[Finding]:
    """(repository-relative file, message) of every path that leaves the repository
    (hooks.kustomize.outside_references / outside_symlinks): the roots reaching one are not built."""
    return [Finding(file, "", "kustomize-outside", message) for file, message in escapes]


def remote_findings(remote: dict[str, list[str]], template: str, remote_bases_allowed: bool) -> list[Finding]:
    """Remote kustomize entries: never in an app repository (the tenants' shard runs with
    --no-remote-bases=true whatever the platform answers); in a platform repository only when its
    kustomize-controller runs without --no-remote-bases (answer flux_allow_remote_bases)."""
    if template == "platform" and remote_bases_allowed:
        return []
    rule, why = (
        ("tenancy-remote-resource", "an app repository may only hold its own files (kustomize-controller-tenants "
                                    "runs with --no-remote-bases=true whatever flux_allow_remote_bases says)")
        if template == "app"
        else ("remote-base", "kustomize-controller runs with --no-remote-bases=true (answer flux_allow_remote_bases)")
    )
    return [
        Finding(root_file, "", rule, f"remote entry '{entry}' (not built): {why}")
        for root_file, entries in remote.items()
        for entry in entries
    ]


# Flux references (platform repository) ---------------------------------------------------------


def _secret_refs(node: object, path: str = "spec"):
    """(field path, name) of every secretRef / *SecretRef under a Flux object's spec."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if (key == "secretRef" or key.endswith("SecretRef")) and isinstance(value, dict) and "name" in value:
                yield here, str(value["name"])
            else:
                yield from _secret_refs(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _secret_refs(item, f"{path}.{index}")


def out_of_band_secrets(gitops_base_secret: str) -> set[str]:
    return {*OUT_OF_BAND_SECRETS, *([gitops_base_secret] if gitops_base_secret else [])}


def _source_refs(obj: dict):
    """(field path, referenced kind, namespace, name) of a Flux Kustomization's or HelmRelease's sources."""
    spec, namespace = _spec(obj), str(_meta(obj).get("namespace", ""))
    chart = spec.get("chart") if isinstance(spec.get("chart"), dict) else {}
    chart_spec = chart.get("spec") if isinstance(chart.get("spec"), dict) else {}
    for field, ref in (("spec.sourceRef", spec.get("sourceRef")), ("spec.chartRef", spec.get("chartRef")),
                       ("spec.chart.spec.sourceRef", chart_spec.get("sourceRef"))):
        if isinstance(ref, dict):
            yield field, str(ref.get("kind")), str(ref.get("namespace") or namespace), str(ref.get("name"))


def _depends_on(obj: dict):
    """(field path, kind, namespace, name) of dependsOn entries: same kind as the object."""
    namespace = str(_meta(obj).get("namespace", ""))
    for index, dep in enumerate(_spec(obj).get("dependsOn") or []):
        if isinstance(dep, dict):
            yield f"spec.dependsOn.{index}", str(obj["kind"]), str(dep.get("namespace") or namespace), str(dep.get("name"))


def own_source_path(obj: dict) -> str | None:
    """The repository-relative spec.path of a Kustomization on the platform repository's own source."""
    spec, namespace = _spec(obj), _meta(obj).get("namespace", "")
    ref = spec.get("sourceRef") if isinstance(spec.get("sourceRef"), dict) else {}
    if (ref.get("kind"), ref.get("namespace") or namespace, ref.get("name")) != OWN_SOURCE:
        return None
    return str(spec.get("path") or "./").removeprefix("./").strip("/")


def flux_reference_findings(
    objects: list[Located], repo_dirs: set[str], out_of_band: set[str], unbuilt: list[dict] = ()
) -> list[Finding]:
    """sourceRef, dependsOn, paths on the repository's own source, and secretRefs all resolve.

    `unbuilt` are the objects declared in files of roots kustomize could not build: they count
    as present in any namespace, so one broken root is reported once (by its build finding),
    not again by every reference into it.
    """
    present = {
        _ref(str(obj["kind"]), str(_meta(obj).get("namespace", "")), str(_meta(obj).get("name"))): obj
        for _, obj in objects
    }
    unbuilt_names = {(str(obj["kind"]), str(_meta(obj).get("name"))) for obj in unbuilt}
    findings = []
    for file, obj in objects:
        group, namespace = _group(obj), str(_meta(obj).get("namespace", ""))

        def finding(rule: str, message: str) -> None:
            findings.append(Finding(file, object_label(obj), rule, message))

        if group in ("kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io"):
            for rule, refs in (("flux-source-ref", _source_refs(obj)), ("flux-depends-on", _depends_on(obj))):
                for field, kind, ref_namespace, name in refs:
                    if _ref(kind, ref_namespace, name) not in present and (kind, name) not in unbuilt_names:
                        finding(rule, f"{field} {_ref(kind, ref_namespace, name)} does not exist in the repository")
        # Paths on other sources (openCenter-gitops-base, app repositories) live elsewhere.
        if group == "kustomize.toolkit.fluxcd.io" and (path := own_source_path(obj)) is not None and path not in repo_dirs:
            finding("flux-path", f"spec.path ./{path} is not a directory of this repository")
        if not group.endswith(".toolkit.fluxcd.io"):
            continue
        for field, name in _secret_refs(_spec(obj)):
            secret = present.get(_ref("Secret", namespace, name))
            if (secret is not None and is_sops_encrypted(secret)) or ("Secret", name) in unbuilt_names:
                continue
            if secret is not None:
                finding("flux-secret-ref", f"{field} Secret {namespace}/{name} is in the repository but not SOPS-encrypted")
            elif namespace != FLUX_NAMESPACE or name not in out_of_band:
                finding("flux-secret-ref", f"{field} Secret {namespace}/{name} is neither a SOPS-encrypted Secret in the "
                        f"repository nor an out-of-band Secret ({', '.join(sorted(out_of_band))} in {FLUX_NAMESPACE})")
    return findings


# Flux GitRepository refs: exactly one of branch, tag, semver, name, commit ---------------------

GIT_REF_KEYS = ("branch", "tag", "semver", "name", "commit")


def git_ref_findings(objects: list[Located]) -> list[Finding]:
    """A GitRepository ref that sets several of branch/tag/semver/name/commit (openCenter rc03 set
    branch and tag together): Flux silently takes one by precedence, so the other is a lie."""
    findings = []
    for file, obj in objects:
        if _group(obj) != "source.toolkit.fluxcd.io" or obj.get("kind") != "GitRepository":
            continue
        ref = _spec(obj).get("ref")
        chosen = [key for key in GIT_REF_KEYS if isinstance(ref, dict) and ref.get(key) not in (None, "")]
        if len(chosen) > 1:
            findings.append(Finding(file, object_label(obj), "flux-git-ref",
                                    f"spec.ref sets {' and '.join(chosen)} together; set exactly one "
                                    "(Flux would silently use one of them by precedence)"))
    return findings


# Secrets ----------------------------------------------------------------------------------------


def _plaintext_values(doc: dict) -> list[str]:
    return [
        f"{key}.{name}"
        for key in ("data", "stringData")
        for name, value in (doc.get(key) or {}).items()
        if not str(value).startswith("ENC[")
    ]


def secret_findings(files: list[YamlFile], sops_rules: list[dict] | None) -> list[Finding]:
    """Every Secret manifest is SOPS-encrypted, and .sops.yaml has a creation rule for every file
    that holds a Secret or SOPS data (sops_rules None: there is no .sops.yaml)."""
    findings = []
    for yaml_file in files:
        secrets = [doc for doc in yaml_file.documents if is_object(doc) and doc["kind"] == "Secret"]
        for doc in secrets:
            if not is_sops_encrypted(doc):
                findings.append(Finding(yaml_file.path, object_label(doc), "secret-unencrypted",
                                        f"Secret is not SOPS-encrypted: run `sops --encrypt --in-place {yaml_file.path}`"))
            elif plain := _plaintext_values(doc):
                findings.append(Finding(yaml_file.path, object_label(doc), "secret-unencrypted",
                                        f"{', '.join(plain)} not encrypted although the file has a sops block"))
        if secrets or any(is_sops_encrypted(doc) for doc in yaml_file.documents):
            if sops_rules is None:
                findings.append(Finding(yaml_file.path, "", "sops-rule", "there is no .sops.yaml to encrypt this file with"))
            elif not any(re.search(str(rule.get("path_regex", "")), yaml_file.path) for rule in sops_rules if isinstance(rule, dict)):
                findings.append(Finding(yaml_file.path, "", "sops-rule", ".sops.yaml has no creation_rules entry whose path_regex matches this file"))
    return findings


def overlay_of(path: str) -> str | None:
    """The cluster whose overlay holds a repository path (applications/overlays/<cluster>/…)."""
    parts = path.split("/")
    return parts[2] if len(parts) > 3 and parts[:2] == ["applications", "overlays"] else None


def by_cluster(objects: list[Located]) -> dict[str | None, list[Located]]:
    """Objects grouped by the cluster overlay their file is in (None: outside every overlay)."""
    groups: dict[str | None, list[Located]] = {}
    for file, obj in objects:
        groups.setdefault(overlay_of(file), []).append((file, obj))
    return groups


def cluster_path_findings(objects: list[Located], cluster: str) -> list[Finding]:
    """A Flux Kustomization of a cluster's overlay applies a folder of that overlay only: a path
    into another cluster's overlay would apply its objects (and its Secrets' names) here."""
    own = f"applications/overlays/{cluster}"
    return [Finding(file, object_label(obj), "cluster-path",
                    f"spec.path ./{path} is outside this cluster's overlay ./{own}")
            for file, obj in objects
            if _group(obj) == "kustomize.toolkit.fluxcd.io" and (path := own_source_path(obj)) is not None
            and path != own and not path.startswith(own + "/")]


def cluster_input_findings(crossings: list[tuple[str, str]]) -> list[Finding]:
    """(repository-relative file, message) of every build input of a root in a cluster's overlay
    that reaches into another cluster's overlay (hooks.kustomize.outside_references with fences):
    this cluster would build and apply the other's objects, and its Secrets encrypted for the
    other cluster's key. The root is still built (the path stays in the repository)."""
    return [Finding(file, "", "cluster-input", f"{message}: a cluster builds from its own overlay only")
            for file, message in crossings]


def age_recipients(doc: object) -> set[str] | None:
    """The age recipients of a SOPS-encrypted document (None when it is not one)."""
    metadata = doc.get("sops") if isinstance(doc, dict) else None
    if not isinstance(metadata, dict):
        return None
    return {str(entry.get("recipient", "")) for entry in metadata.get("age") or [] if isinstance(entry, dict)}


def sops_recipient_sets(yaml_file: YamlFile) -> list[set[str]]:
    """The age recipients of each SOPS-encrypted document of a file (an empty set counts)."""
    return [used for used in map(age_recipients, yaml_file.documents) if used is not None]


def reencrypt_steps(path: str, removed: bool) -> str:
    """What to run on a SOPS file encrypted for other recipients than the answers name. updatekeys
    wraps the same data key for the answers' recipients; a key it removes still opens that data
    key with the file's sops block from git history, so it needs a new data key too (rotate)."""
    if not removed:
        return f"run `sops updatekeys -y {path}` from the repository root"
    return (f"run `sops updatekeys -y {path}`, then `sops rotate -i {path}` from the repository root: "
            "updatekeys keeps the data key, which the removed key still opens with the file's old sops block "
            "from git history")


def cluster_recipient_findings(files: list[YamlFile], recipients: dict[str, list[str]]) -> list[Finding]:
    """Every SOPS file of a cluster's overlay is encrypted for that cluster's age recipients only:
    another cluster's key must not open it (nor may a key the answers do not name)."""
    findings = []
    for yaml_file in files:
        cluster = overlay_of(yaml_file.path)
        if cluster not in recipients:
            continue
        for used in sops_recipient_sets(yaml_file):
            if stray := sorted(used - set(recipients[cluster])):
                findings.append(Finding(yaml_file.path, "", "cluster-recipients",
                                        f"encrypted for {', '.join(stray)}, not a recipient of cluster {cluster} "
                                        f"({reencrypt_steps(yaml_file.path, removed=True)})"))
                break
    return findings


def environment_recipient_findings(files: list[YamlFile], answers: dict) -> list[Finding]:
    """App repository with environments: every SOPS file of deploy/overlays/<environment>/ is
    encrypted for that environment's cluster's app key (flux_age_recipient's <environment>=age1…)
    and the team's keys (secrets_age_recipients), and for nothing else: another cluster's app key
    must not open it, and the cluster's own must, or its Flux cannot decrypt it."""
    names = [name.strip() for name in str(answers.get("environments") or "").split(",") if name.strip()]
    if len(names) < 2:  # one environment: the root, encrypted for the one key (secret-* rules)
        return []
    team = {key.strip() for key in str(answers.get("secrets_age_recipients") or "").split(",") if key.strip()}
    flux_keys = {name.strip(): key.strip() for name, sep, key in
                 (item.partition("=") for item in str(answers.get("flux_age_recipient") or "").split(","))
                 if sep and key.strip().startswith("age1")}  # placeholders: the key is not known yet
    findings = []
    for yaml_file in files:
        parts = yaml_file.path.split("/")
        env = parts[2] if len(parts) > 3 and parts[:2] == ["deploy", "overlays"] else None
        if env not in names:
            continue
        for used in sops_recipient_sets(yaml_file):
            own = {flux_keys[env]} if env in flux_keys else set()
            stray, missing = sorted(used - own - team), sorted(own - used)
            if stray or missing:
                why = (f"encrypted for {', '.join(stray)}, neither environment {env}'s app key nor a team key"
                       if stray else f"not encrypted for environment {env}'s app key {missing[0]}: Flux on {env} cannot decrypt it")
                findings.append(Finding(yaml_file.path, "", "environment-recipients",
                                        f"{why} ({reencrypt_steps(yaml_file.path, removed=bool(stray))})"))
                break
    return findings


# A key whose value is a credential, in env files and structured (YAML/JSON) files.
CREDENTIAL_KEY = re.compile(r"(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential|auth|"
                            r"access[_-]?key|client[_-]?secret|dsn|connection[_-]?string)", re.IGNORECASE)
PRIVATE_KEY_BLOCK = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# A key that names an existing Secret (charts' `existingSecret`, `secretName`) holds a reference:
# the way to keep credentials out of values files (velero's placeholder Secret), not a credential.
# Matched whole (fullmatch): with `$`, 'existingSecret\n' would pass for a reference.
SECRET_REFERENCE_KEY = re.compile(r"existing[_-]?secret([_-]?name)?|secret[_-]?name", re.IGNORECASE)


@dataclass(frozen=True)
class GeneratorSource:
    """One input of a kustomize secretGenerator: a literal, or a referenced file and its text."""

    kustomization: str  # repository-relative path of the kustomization file
    generator: str  # the generated Secret's name
    kind: str  # literal | env | file
    ref: str  # the literal's key, or the file's repository-relative path
    text: str | None  # the literal's value or the file's content (None: unreadable)
    key: str = ""  # files: the Secret key the file's content becomes (`key=path`, else the file name)


def _sops_encrypted_text(text: str) -> bool:
    """SOPS metadata in any of the formats sops writes: YAML/JSON `sops` key, dotenv `sops_*=`, INI [sops]."""
    if re.search(r"^sops_(version|mac|lastmodified)=", text, re.MULTILINE) or re.search(r"^\[sops\]$", text, re.MULTILINE):
        return True
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return is_sops_encrypted(doc)


def _credentials_in(node: object, path: str = "") -> list[str]:
    """Paths of credential-like keys with a non-empty scalar value in parsed YAML/JSON."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if (isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value)
                    and CREDENTIAL_KEY.search(str(key)) and not SECRET_REFERENCE_KEY.fullmatch(str(key))):
                found.append(here)
            else:
                found += _credentials_in(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _credentials_in(item, f"{path}[{index}]")
    return found


def _env_values(text: str) -> list[tuple[str, str]]:
    """(key, value) of every line of an env file that sets a non-empty value (kustomize's format:
    KEY=value lines; comments and blank lines aside)."""
    return [(key.strip(), value.strip()) for line in text.splitlines()
            if "=" in line and not line.lstrip().startswith("#")
            for key, _, value in [line.partition("=")] if value.strip()]


def secret_generator_findings(sources: list[GeneratorSource], app: bool) -> list[Finding]:
    """What a kustomize secretGenerator would put into a Secret from clear text in Git: every
    literal, every value of an env file that is not SOPS-encrypted (in a SOPS env file, a clear
    line added after encryption), and a file unless it is SOPS-encrypted (Flux decrypts it before
    kustomize reads it). In an app repository (`app`) every such file: the team's Secret data is
    encrypted, whatever its key is called. In a platform repository only credentials in a file (a
    credential-like Secret key such as `db-password=db-password.txt`, credential-like keys inside
    it, private key blocks): its generators carry the Helm values overrides of the platform's
    services, settings in clear by design until they hold credentials."""
    findings = []
    for source in sources:
        where = f"secretGenerator {source.generator}"
        if source.kind == "literal":
            findings.append(Finding(source.kustomization, "", "secret-unencrypted",
                                    f"{where}: literal {source.ref} is a Secret value in clear text; put it in a "
                                    "SOPS-encrypted env file (envs:) instead"))
            continue
        if source.text is None:
            continue
        encrypted = _sops_encrypted_text(source.text)
        if source.kind == "env" and encrypted:
            # sops writes every value as ENC[…] and its metadata as sops_* keys: a clear value was
            # added after encryption (or left clear by an unencrypted_* rule), a Secret value in Git
            # either way; `sops encrypt` refuses a file already encrypted, so the fix is `sops edit`.
            clear = [key for key, value in _env_values(source.text)
                     if not value.startswith("ENC[") and not key.startswith("sops_")]
            if clear:
                findings.append(Finding(source.ref, "", "secret-unencrypted",
                                        f"{where} ({source.kustomization}) reads {', '.join(clear)} from this SOPS-encrypted "
                                        f"file in clear text: delete those lines and add the values with `sops edit "
                                        f"{source.ref}` from the repository root"))
            continue
        if encrypted:
            continue
        if source.kind == "env":
            clear = [key for key, _ in _env_values(source.text)]
        else:
            clear = ["a private key"] if PRIVATE_KEY_BLOCK.search(source.text) else []
            if source.text.strip() and (app or CREDENTIAL_KEY.search(source.key) and not SECRET_REFERENCE_KEY.fullmatch(source.key)):
                clear.append(f"Secret key {source.key}")
            try:
                clear += _credentials_in(yaml.safe_load(source.text))
            except yaml.YAMLError:
                pass
        if clear:
            findings.append(Finding(source.ref, "", "secret-unencrypted",
                                    f"{where} ({source.kustomization}) reads {', '.join(clear)} from this file in "
                                    f"clear text: run `sops --encrypt --in-place {source.ref}` from the repository root"))
    return findings


# Tenancy (app repository) -----------------------------------------------------------------------


def tenancy_findings(objects: list[Located], namespace: str, validator: Validator) -> list[Finding]:
    """An app repository holds namespaced objects of its own namespace only."""
    findings = []
    for file, obj in objects:
        if validator.cluster_scoped(obj):
            findings.append(Finding(file, object_label(obj), "tenancy-cluster-scoped",
                                    f"{obj['kind']} is cluster-scoped; an app repository only holds objects of namespace {namespace}"))
        elif (other := _meta(obj).get("namespace")) not in (None, namespace):
            findings.append(Finding(file, object_label(obj), "tenancy-namespace",
                                    f"metadata.namespace is {other}; an app repository only holds objects of namespace {namespace}"))
    return findings


FLUX_GROUP_SUFFIX = ".toolkit.fluxcd.io"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}


def aggregated_flux_write_findings(objects: list[Located]) -> list[Finding]:
    """A ClusterRole that aggregates write rights on Flux kinds into `admin` or `edit`: every
    namespace admin could then create a HelmRelease, which helm-controller installs as
    cluster-admin. Judged on the built objects (the flux-system patch's effect, whatever the role's
    name), not on the patch's text."""
    selectors = [
        selector
        for role in rbac.builtin_roles() if role["metadata"]["name"] in ("admin", "edit")
        for selector in role["aggregationRule"]["clusterRoleSelectors"]
    ]
    findings = []
    for file, obj in objects:
        if obj.get("kind") != "ClusterRole" or not any(rbac.selector_matches(s, _meta(obj).get("labels")) for s in selectors):
            continue
        for rule in obj.get("rules") or []:
            groups = rule.get("apiGroups") or []
            if set(rule.get("verbs") or []) & WRITE_VERBS and any(g == "*" or g.endswith(FLUX_GROUP_SUFFIX) for g in groups):
                findings.append(Finding(file, object_label(obj), "tenancy-flux-rbac",
                                        "aggregates write on Flux kinds into admin/edit: a namespace admin could create a "
                                        "HelmRelease, which helm-controller installs as cluster-admin"))
                break
    return findings


def tenant_shard_findings(objects: list[Located]) -> list[Finding]:
    """A Kustomization applying as a tenant (any serviceAccountName but the platform's) that is not
    labelled for the tenants' shard: the platform's kustomize-controller would build the tenant's
    repository, where a kustomize bomb exhausts it (every Kustomization of the cluster stops) and
    remote bases are allowed when flux_allow_remote_bases is."""
    return [
        Finding(file, object_label(obj), "tenancy-shard",
                f"applies as ServiceAccount {_spec(obj).get('serviceAccountName')} without the label "
                f"{SHARD_KEY}: {TENANT_SHARD}, so the platform's kustomize-controller builds it, not the tenants' shard")
        for file, obj in objects
        if obj.get("kind") == "Kustomization" and _group(obj) == "kustomize.toolkit.fluxcd.io"
        and _spec(obj).get("serviceAccountName", PLATFORM_IDENTITY) != PLATFORM_IDENTITY
        and not (isinstance(labels := _meta(obj).get("labels"), dict) and labels.get(SHARD_KEY) == TENANT_SHARD)
    ]


def hostname_findings(answers: dict) -> list[Finding]:
    """A registered app that would serve another's hostname (assigned names or their zones) or a
    host a platform service publishes on its cluster (keycloak's login host)."""
    registered = [app for app in answers.get("apps") or [] if isinstance(app, dict) and isinstance(app.get("name"), str)]
    return [Finding(ANSWERS_FILE, "", "tenancy-hostname", problem)
            for problem in appsmod.hostname_conflicts(registered, clusters.domains(answers), clusters.published_hosts(answers))]


# Answers that are lines by design: the Git server's known_hosts (app template, apps[].known_hosts).
MULTILINE_ANSWERS = ("app_repo_known_hosts", "known_hosts")


def line_break_findings(answers: dict) -> list[Finding]:
    """Every text answer recorded with a line break, at the top level or in an entry of apps or
    clusters (their lists of names included): validators before this version matched with `$`,
    which also matches before a final line break, so 'main\\n' passed and went into one-line YAML
    and commands. Such an entry also stops every onboarding until it is corrected."""
    texts: list[tuple[str, object]] = []
    for key, value in answers.items():
        if str(key).startswith("_") or key in MULTILINE_ANSWERS:
            continue
        if key not in ("apps", "clusters") or not isinstance(value, list):
            texts.append((str(key), value))
            continue
        for index, entry in enumerate(value):
            if not isinstance(entry, dict):
                continue  # the shape is the apps and clusters rules' to report
            where = appsmod.entry_label(entry.get("name")) if key == "apps" else f"clusters[{index}]"
            texts += [(f"{where}.{field}", text) for field, item in entry.items() if field not in MULTILINE_ANSWERS
                      for text in (item if isinstance(item, list) else [item])]
    return [Finding(ANSWERS_FILE, "", "answers-line-break",
                    f"{answer} holds a line break ({shown(text)}): every such answer is one line; correct it in "
                    f"{ANSWERS_FILE}, commit, and render again (copier update --trust --defaults --vcs-ref=:current:)")
            for answer, text in texts if isinstance(text, str) and has_line_break(text)]


def unique(findings: list[Finding]) -> list[Finding]:
    """Drop repeats: a root included by another root is built, and its objects seen, twice."""
    return list(dict.fromkeys(findings))
