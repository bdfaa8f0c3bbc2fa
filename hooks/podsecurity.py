"""Pod Security Admission, offline: what a namespace's `pod-security.kubernetes.io/enforce` label
refuses of its pods.

The Pod Security Standards as Kubernetes v1.32 enforces them (k8s.io/pod-security-admission
v0.32, policy checks up to v1.32; `latest` is v1.32, a newer pinned version is evaluated as
v1.32), with PSA's own messages: `violates PodSecurity "restricted:latest": allowPrivilegeEscalation
!= false (container "c" must set securityContext.allowPrivilegeEscalation=false), ...`. A level is
checked at the version `pod-security.kubernetes.io/enforce-version` pins (each check from the
version that introduced it, sysctls, SELinux types and the Windows exemptions as of that
version); only pinned versions before v1.19 differ from PSA (their annotation-based seccomp
check is not modelled). Not modelled either: the cluster's PSA exemptions (users, runtime
classes, namespaces) and the alpha user-namespace relaxation (off by default in v1.32).

PSA refuses Pods; on a workload (Deployment, Job…) it only warns, and the pods its controller
creates are the ones refused, so the caller reports it against the workload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
LATEST = 32  # minor version of v1.32, the newest the checks know
_VERSION = re.compile(r"v1\.([0-9]|[1-9][0-9]*)")  # fullmatch: `$` passes a final line break

_BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                          "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
# The safe sysctls, by the version that allowed them.
_SYSCTLS = {0: {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"},
            27: {"net.ipv4.ip_local_reserved_ports"},
            29: {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                 "net.ipv4.tcp_keepalive_probes"},
            32: {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}}
_SELINUX_TYPES = {0: {"", "container_t", "container_init_t", "container_kvm_t"}, 31: {"container_engine_t"}}
_RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret"}
# Volume sources PSA names in its message; any other is "unknown".
_NAMED_VOLUMES = {"hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs",
                  "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte",
                  "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos"}

Result = tuple[str, str] | None  # (reason, detail) of a failed check
Check = Callable[[dict, dict, int], Result]


def violation(labels: dict, metadata: dict, spec: dict) -> str | None:
    """PSA's refusal of a pod (its metadata and spec) in a namespace with these labels; None
    when the pod is admitted."""
    level, shown, minor = enforced(labels)
    failed = [result for check in checks(level, minor) if (result := check(metadata, spec, minor))]
    if not failed:
        return None
    details = ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in failed)
    return f'violates PodSecurity "{level}:{shown}": {details}'


def enforced(labels: dict) -> tuple[str, str, int]:
    """(level, version as shown, minor version evaluated) of the enforce labels. No label means
    privileged (the API server's default); an invalid level is restricted (PSA fails closed), an
    invalid version latest."""
    level = labels.get(ENFORCE, "privileged")
    if level not in ("privileged", "baseline", "restricted"):
        level = "restricted"
    match = _VERSION.fullmatch(str(labels.get(ENFORCE_VERSION, "latest")))
    if match is None:
        return level, "latest", LATEST
    return level, labels[ENFORCE_VERSION], min(int(match.group(1)), LATEST)


def checks(level: str, minor: int) -> list[Check]:
    """The checks of a level at a version, in PSA's order: baseline ones by ID, then restricted
    ones by ID, without the baseline checks a restricted one replaces at that version."""
    if level == "privileged":
        return []
    baseline = [(check_id, check) for check_id, since, check in _BASELINE if minor >= since]
    if level == "baseline":
        return [check for _, check in sorted(baseline)]
    restricted = [(check_id, since, check) for check_id, since, check in _RESTRICTED if minor >= since]
    replaced = {_REPLACES[check_id] for check_id, _, _ in restricted if check_id in _REPLACES}
    return [check for check_id, check in sorted(baseline) if check_id not in replaced] + \
        [check for _, _, check in sorted(restricted)]


# Helpers -------------------------------------------------------------------------------------


def _containers(spec: dict) -> Iterator[dict]:
    """Every container PSA visits, in its order: init containers, containers, ephemeral ones."""
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from (c for c in spec.get(field) or [] if isinstance(c, dict))


def _context(holder: dict) -> dict:
    return holder.get("securityContext") or {}


def _quote(items: list[str]) -> str:
    return '"' + '", "'.join(items) + '"'


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _named(singular: str, names: list[str]) -> str:
    """'container "a"', 'containers "a", "b"'."""
    return f"{_plural(singular, singular + 's', len(names))} {_quote(names)}"


def _setters(pod: bool, containers: list[str]) -> str:
    """Who set a forbidden value: 'pod', 'containers "a", "b"' or 'pod and container "a"'."""
    return " and ".join([*(["pod"] if pod else []), *([_named("container", containers)] if containers else [])])


def _windows(spec: dict) -> bool:
    return (spec.get("os") or {}).get("name") == "windows"


# Baseline ------------------------------------------------------------------------------------


def _app_armor(metadata: dict, spec: dict, minor: int) -> Result:
    def bad(holder: dict) -> str | None:
        """The forbidden AppArmor profile type a pod or container sets (only RuntimeDefault, Localhost)."""
        profile = _context(holder).get("appArmorProfile")
        if isinstance(profile, dict) and profile.get("type") not in ("RuntimeDefault", "Localhost"):
            return str(profile.get("type", ""))
        return None

    names = [c.get("name", "") for c in _containers(spec) if bad(c) is not None]
    values = {value for value in [bad(spec), *map(bad, _containers(spec))] if value is not None}
    annotations = sorted(f"{key}={json.dumps(value)}" for key, value in (metadata.get("annotations") or {}).items()
                         if key.startswith("container.apparmor.security.beta.kubernetes.io/")
                         and value and value != "runtime/default" and not str(value).startswith("localhost/"))
    setters = [s for s in (_setters(bad(spec) is not None, names),
                           _plural("annotation", "annotations", len(annotations)) if annotations else "") if s]
    if not setters:
        return None
    listed = [*sorted(values), *annotations]
    return (_plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(listed)),
            f"{' and '.join(setters)} must not set AppArmor profile type to {_quote(listed)}")


def _capabilities_baseline(metadata: dict, spec: dict, minor: int) -> Result:
    added = {c.get("name", ""): [cap for cap in (_context(c).get("capabilities") or {}).get("add") or []
                                 if cap not in _BASELINE_CAPABILITIES] for c in _containers(spec)}
    names = [name for name, caps in added.items() if caps]
    if not names:
        return None
    capabilities = sorted({cap for caps in added.values() for cap in caps})
    return ("non-default capabilities",
            f"{_named('container', names)} must not include {_quote(capabilities)} in securityContext.capabilities.add")


def _host_namespaces(metadata: dict, spec: dict, minor: int) -> Result:
    shared = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field) is True]
    return ("host namespaces", ", ".join(shared)) if shared else None


def _host_path_volumes(metadata: dict, spec: dict, minor: int) -> Result:
    names = [v.get("name", "") for v in spec.get("volumes") or [] if isinstance(v, dict) and "hostPath" in v]
    return ("hostPath volumes", _named("volume", names)) if names else None


def _host_ports(metadata: dict, spec: dict, minor: int) -> Result:
    ports = {c.get("name", ""): [str(p["hostPort"]) for p in c.get("ports") or [] if isinstance(p, dict) and p.get("hostPort")]
             for c in _containers(spec)}
    names = [name for name, used in ports.items() if used]
    if not names:
        return None
    listed = sorted({port for used in ports.values() for port in used})
    return ("hostPort", f"{_named('container', names)} {_plural('uses', 'use', len(names))} "
                        f"{_plural('hostPort', 'hostPorts', len(listed))} {', '.join(listed)}")


def _privileged(metadata: dict, spec: dict, minor: int) -> Result:
    names = [c.get("name", "") for c in _containers(spec) if _context(c).get("privileged") is True]
    return ("privileged", f"{_named('container', names)} must not set securityContext.privileged=true") if names else None


def _proc_mount(metadata: dict, spec: dict, minor: int) -> Result:
    mounts = {c.get("name", ""): _context(c).get("procMount") for c in _containers(spec)}
    names = [name for name, mount in mounts.items() if mount not in (None, "Default")]
    if not names:
        return None
    listed = sorted({str(mounts[name]) for name in names})
    return ("procMount", f"{_named('container', names)} must not set securityContext.procMount to {_quote(listed)}")


def _se_linux(metadata: dict, spec: dict, minor: int) -> Result:
    allowed = set().union(*(types for since, types in _SELINUX_TYPES.items() if minor >= since))

    def options(holder: dict) -> dict | None:
        """A pod's or container's seLinuxOptions when they set a forbidden type, a user or a role."""
        value = _context(holder).get("seLinuxOptions")
        if isinstance(value, dict) and (value.get("type", "") not in allowed or value.get("user") or value.get("role")):
            return value
        return None

    names = [c.get("name", "") for c in _containers(spec) if options(c) is not None]
    bad = [value for value in [options(spec), *map(options, _containers(spec))] if value is not None]
    if not bad:
        return None
    types = sorted({value.get("type", "") for value in bad if value.get("type", "") not in allowed})
    problems = [*([f"{_plural('type', 'types', len(types))} {_quote(types)}"] if types else []),
                *(["user may not be set"] if any(value.get("user") for value in bad) else []),
                *(["role may not be set"] if any(value.get("role") for value in bad) else [])]
    return ("seLinuxOptions", f"{_setters(options(spec) is not None, names)} set forbidden "
                              f"securityContext.seLinuxOptions: {'; '.join(problems)}")


def _seccomp_values(spec: dict) -> tuple[str | None, dict[str, str | None]]:
    """The seccomp profile type of the pod and of each container (None: not set)."""
    def kind(holder: dict) -> str | None:
        profile = _context(holder).get("seccompProfile")
        return str(profile.get("type", "")) if isinstance(profile, dict) else None

    return kind(spec), {c.get("name", ""): kind(c) for c in _containers(spec)}


def _seccomp_forbidden(pod: str | None, containers: dict[str, str | None]) -> Result:
    """Pod or containers setting a type other than RuntimeDefault or Localhost (Unconfined)."""
    def bad(value: str | None) -> bool:
        return value is not None and value not in ("RuntimeDefault", "Localhost")

    names = [name for name, value in containers.items() if bad(value)]
    if not bad(pod) and not names:
        return None
    values = sorted({value for value in [pod, *containers.values()] if bad(value)})
    return ("seccompProfile", f"{_setters(bad(pod), names)} must not set securityContext.seccompProfile.type to {_quote(values)}")


def _seccomp_baseline(metadata: dict, spec: dict, minor: int) -> Result:
    return _seccomp_forbidden(*_seccomp_values(spec))


def _sysctls(metadata: dict, spec: dict, minor: int) -> Result:
    allowed = set().union(*(names for since, names in _SYSCTLS.items() if minor >= since))
    forbidden = [s.get("name", "") for s in _context(spec).get("sysctls") or [] if s.get("name") not in allowed]
    return ("forbidden sysctls", ", ".join(forbidden)) if forbidden else None


def _windows_host_process(metadata: dict, spec: dict, minor: int) -> Result:
    def host(holder: dict) -> bool:
        return (_context(holder).get("windowsOptions") or {}).get("hostProcess") is True

    names = [c.get("name", "") for c in _containers(spec) if host(c)]
    if not host(spec) and not names:
        return None
    return ("hostProcess", f"{_setters(host(spec), names)} must not set securityContext.windowsOptions.hostProcess=true")


# Restricted ----------------------------------------------------------------------------------


def _allow_privilege_escalation(metadata: dict, spec: dict, minor: int) -> Result:
    if minor >= 25 and _windows(spec):
        return None
    names = [c.get("name", "") for c in _containers(spec) if _context(c).get("allowPrivilegeEscalation") is not False]
    if not names:
        return None
    return ("allowPrivilegeEscalation != false",
            f"{_named('container', names)} must set securityContext.allowPrivilegeEscalation=false")


def _capabilities_restricted(metadata: dict, spec: dict, minor: int) -> Result:
    if minor >= 25 and _windows(spec):
        return None
    capabilities = {c.get("name", ""): _context(c).get("capabilities") or {} for c in _containers(spec)}
    missing = [name for name, caps in capabilities.items() if "ALL" not in (caps.get("drop") or [])]
    adding = {name: [cap for cap in caps.get("add") or [] if cap != "NET_BIND_SERVICE"] for name, caps in capabilities.items()}
    added = [name for name, caps in adding.items() if caps]
    problems = [*([f'{_named("container", missing)} must set securityContext.capabilities.drop=["ALL"]'] if missing else []),
                *([f"{_named('container', added)} must not include "
                   f"{_quote(sorted({cap for caps in adding.values() for cap in caps}))} in securityContext.capabilities.add"]
                  if added else [])]
    return ("unrestricted capabilities", "; ".join(problems)) if problems else None


def _restricted_volumes(metadata: dict, spec: dict, minor: int) -> Result:
    kinds: dict[str, str] = {}
    for volume in spec.get("volumes") or []:
        sources = [key for key in volume if key != "name"] if isinstance(volume, dict) else []
        # a volume without a source is defaulted to emptyDir
        if sources and not any(source in _RESTRICTED_VOLUMES for source in sources):
            kinds[volume.get("name", "")] = next((s for s in sources if s in _NAMED_VOLUMES), "unknown")
    if not kinds:
        return None
    names, types = list(kinds), sorted(set(kinds.values()))
    return ("restricted volume types", f"{_named('volume', names)} {_plural('uses', 'use', len(names))} "
                                       f"{_plural('restricted volume type', 'restricted volume types', len(types))} {_quote(types)}")


def _run_as_non_root(metadata: dict, spec: dict, minor: int) -> Result:
    pod = _context(spec).get("runAsNonRoot")
    values = {c.get("name", ""): _context(c).get("runAsNonRoot") for c in _containers(spec)}
    explicit = [name for name, value in values.items() if value is False]
    if pod is False or explicit:
        return ("runAsNonRoot != true", f"{_setters(pod is False, explicit)} must not set securityContext.runAsNonRoot=false")
    implicit = [name for name, value in values.items() if value is None and pod is not True]
    if implicit:
        return ("runAsNonRoot != true", f"pod or {_named('container', implicit)} must set securityContext.runAsNonRoot=true")
    return None


def _run_as_user(metadata: dict, spec: dict, minor: int) -> Result:
    def root(holder: dict) -> bool:
        value = _context(holder).get("runAsUser")
        return value == 0 and value is not False

    names = [c.get("name", "") for c in _containers(spec) if root(c)]
    if not root(spec) and not names:
        return None
    return ("runAsUser=0", f"{_setters(root(spec), names)} must not set runAsUser=0")


def _seccomp_restricted(metadata: dict, spec: dict, minor: int) -> Result:
    if minor >= 25 and _windows(spec):
        return None
    pod, containers = _seccomp_values(spec)
    forbidden = _seccomp_forbidden(pod, containers)
    if forbidden:
        return forbidden
    implicit = [name for name, value in containers.items() if value is None and pod is None]
    if implicit:
        return ("seccompProfile", f'pod or {_named("container", implicit)} must set securityContext.seccompProfile.type '
                                  f'to "RuntimeDefault" or "Localhost"')
    return None


# (ID, first version, check): PSA orders checks by ID.
_BASELINE: list[tuple[str, int, Check]] = [
    ("appArmorProfile", 0, _app_armor), ("capabilities_baseline", 0, _capabilities_baseline),
    ("hostNamespaces", 0, _host_namespaces), ("hostPathVolumes", 0, _host_path_volumes), ("hostPorts", 0, _host_ports),
    ("privileged", 0, _privileged), ("procMount", 0, _proc_mount), ("seLinuxOptions", 0, _se_linux),
    ("seccompProfile_baseline", 19, _seccomp_baseline), ("sysctls", 0, _sysctls),
    ("windowsHostProcess", 0, _windows_host_process),
]
_RESTRICTED: list[tuple[str, int, Check]] = [
    ("allowPrivilegeEscalation", 8, _allow_privilege_escalation), ("capabilities_restricted", 22, _capabilities_restricted),
    ("restrictedVolumes", 0, _restricted_volumes), ("runAsNonRoot", 0, _run_as_non_root), ("runAsUser", 23, _run_as_user),
    ("seccompProfile_restricted", 19, _seccomp_restricted),
]
# The baseline check each restricted one replaces (from the restricted one's first version).
_REPLACES = {"restrictedVolumes": "hostPathVolumes", "capabilities_restricted": "capabilities_baseline",
             "seccompProfile_restricted": "seccompProfile_baseline"}
