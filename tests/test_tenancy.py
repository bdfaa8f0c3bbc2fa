"""Tenants on a cluster set up by the platform repository: admitted, and unable to harm each other.

A platform repository with two apps onboarded (shop, billing) by the real onboarding command and
the two default app repositories, checked with the offline admission model (hooks.admission; no
API server can run here, so RBAC, the ValidatingAdmissionPolicies and the quotas are evaluated by
the model, which tests/test_tenancy_model.py tests on its own).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pyrage import x25519

from conftest import commit_all, release_history
from hooks import admission, clusters, crds, onboard, rules
from hooks.apprender import OVERLAY_TEMPLATE
from hooks.check import check_repo, collect, main, platform_clusters, run_checks
from hooks.errors import HookError
from hooks.kustomize import build_all
from hooks.rbac import Authorizer, service_account
from hooks.validate import Validator
from reliability import copy_template, isolated
from updating import run_git

OVERLAY = "applications/overlays/prod"
DOMAIN = "prod.acme.example.com"
APPS = [{"name": "shop", "url": "ssh://git@github.com/acme/shop"},
        {"name": "billing", "url": "ssh://git@github.com/acme/billing", "hostnames": [f"pay.{DOMAIN}"]}]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, template_snapshot: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tenancy")
    repos = {"platform": root / "platform", "shop": root / "shop", "billing": root / "billing"}
    with isolated(root / "home"):
        copy_template(template_snapshot, repos["platform"], template="platform",
                      sops_age_recipients=str(x25519.Identity.generate().to_public()))
        commit_all(repos["platform"])
        for app in APPS:
            assert onboard.register(repos["platform"], app, out=lambda _line: None) == 0
            commit_all(repos["platform"], f"onboard {app['name']}")
        for app in APPS:
            copy_template(template_snapshot, repos[app["name"]], template="app", app_name=app["name"])
    return repos


def test_the_default_apps_are_fully_admitted(fleet):
    assert check_repo(fleet["platform"], tenants=[("shop", fleet["shop"]), ("billing", fleet["billing"])]) == []
    assert check_repo(fleet["shop"], platform=fleet["platform"]) == []


def test_platform_ci_checks_every_app_it_can_clone_and_notes_the_others(fleet, monkeypatch, tmp_path):
    """`--all-tenants` clones each registered app from its URL and branch. The apps' ssh:// URLs are
    pointed at local repositories with git's own url.<base>.insteadOf (no network here)."""
    mirrors = tmp_path / "mirrors"
    for app in APPS:
        shutil.copytree(fleet[app["name"]], mirrors / app["name"])
        commit_all(mirrors / app["name"])
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{mirrors}/.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "ssh://git@github.com/acme/")
    report = run_checks(fleet["platform"], all_tenants=True)
    assert report.findings == [] and report.notes == []
    shutil.rmtree(mirrors / "billing")
    report = run_checks(fleet["platform"], all_tenants=True)
    assert report.findings == []
    (note,) = report.notes
    assert note.startswith("app billing not checked: cannot clone ssh://git@github.com/acme/billing (")


def test_the_platform_url_is_cloned_at_the_branch_given(fleet, tmp_path, capsys):
    """CI's `--platform URL --platform-branch BRANCH` judges the app by the rules on BRANCH, the one
    the platform's Flux reconciles, not by the default branch's. Here the default branch (main)
    predates shop's onboarding and `production` has it."""
    remote = tmp_path / "platform.git"
    run_git("clone", "-q", "--bare", str(fleet["platform"]), str(remote), cwd=tmp_path)
    before_onboarding = subprocess.run(["git", "rev-list", "--max-parents=0", "main"], cwd=remote, check=True,
                                       capture_output=True, text=True).stdout.strip()
    run_git("branch", "production", "main", cwd=remote)
    run_git("update-ref", "refs/heads/main", before_onboarding, cwd=remote)
    url = remote.as_uri()
    assert main([str(fleet["shop"]), "--platform", url, "--platform-branch", "production"]) == 0, capsys.readouterr()
    (stale,) = check_repo(fleet["shop"], platform=url)
    assert stale.message == "app shop is not registered on the platform (no Flux Kustomization shop in flux-system)"
    report = run_checks(fleet["shop"], platform=url, platform_branch="staging")
    assert report.findings == []
    (note,) = report.notes
    assert note.startswith(f"the platform repository not checked: cannot clone {url} (") and "staging" in note, note


def test_without_a_branch_the_platform_url_is_cloned_at_its_default_branch(fleet, tmp_path):
    """platform_check_branch left empty (its default without platform_repo): CI gives no
    --platform-branch, and the check clones the platform's default branch whatever its name; a
    guessed `main` cannot be cloned from this platform, whose only branch is `trunk`."""
    remote = tmp_path / "platform.git"
    run_git("clone", "-q", "--bare", str(fleet["platform"]), str(remote), cwd=tmp_path)
    run_git("branch", "-m", "main", "trunk", cwd=remote)
    url = remote.as_uri()
    report = run_checks(fleet["shop"], platform=url)
    assert report.findings == [] and report.notes == []
    (note,) = run_checks(fleet["shop"], platform=url, platform_branch="main").notes
    assert note.startswith(f"the platform repository not checked: cannot clone {url} (") and "main" in note, note


def test_tenant_folders_are_checked_as_flux_applies_them(fleet, tmp_path):
    """services/tenants/<app> has no kustomization.yaml (Flux generates one): its objects are still
    validated, in the file they come from."""
    platform = tmp_path / "platform"
    shutil.copytree(fleet["platform"], platform)
    tenant = platform / OVERLAY / "services/tenants/shop/tenant.yaml"
    tenant.write_text(tenant.read_text().replace("  hard:\n", "  hrad:\n", 1))
    (finding,) = check_repo(platform)
    assert (finding.file, finding.object, finding.rule) == (
        f"{OVERLAY}/services/tenants/shop/tenant.yaml", "ResourceQuota/shop/tenant-quota", "schema")


def test_an_app_root_without_kustomization_fails_as_flux_fails_it(fleet, tmp_path):
    """Without kustomization.yaml, Flux lists every YAML file of the repository, .copier-answers.yml
    too, and refuses it (not a manifest): the check says so instead of passing 0 objects."""
    shop = tmp_path / "shop"
    shutil.copytree(fleet["shop"], shop)
    (shop / "kustomization.yaml").unlink()
    report = run_checks(shop)
    assert [(f.file, f.rule) for f in report.findings] == [("./", "kustomize-build")], report.findings
    assert "Flux generates one" in report.findings[0].message and ".copier-answers.yml" in report.findings[0].message
    for findings in (check_repo(shop, platform=fleet["platform"]),
                     check_repo(fleet["platform"], tenants=[("shop", shop)])):
        (denial,) = [f for f in findings if f.rule == "denied"]
        assert denial.message.startswith("the platform applies ./ of this repository (no kustomization file"), denial
        assert ".copier-answers.yml': missing Resource metadata" in denial.message, denial


def test_a_kustomization_flux_never_applies_is_not_admitted(fleet, tmp_path):
    """unused/ is no part of the root's build, which is what Flux applies (path ./): its allow-all
    NetworkPolicy is linted, not judged as the tenant's."""
    shop = tmp_path / "shop"
    shutil.copytree(fleet["shop"], shop)
    (shop / "unused").mkdir()
    (shop / "unused/allow-all.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "allow-all"},
         "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}]}}))
    (shop / "unused/kustomization.yaml").write_text("resources: [allow-all.yaml]\n")
    assert check_repo(shop, platform=fleet["platform"]) == []
    assert check_repo(fleet["platform"], tenants=[("shop", shop)]) == []
    # Listed in the root, Flux applies it, and it is refused.
    kustomization = yaml.safe_load((shop / "kustomization.yaml").read_text())
    kustomization["resources"].append("unused")
    (shop / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    assert {(f.file, f.object) for f in check_repo(shop, platform=fleet["platform"]) if f.rule == "denied"} == {
        ("unused/allow-all.yaml", "NetworkPolicy/allow-all")}


def test_the_platform_renders_the_guardrails(fleet):
    services = fleet["platform"] / OVERLAY / "services"
    docs = {(d["kind"], d["metadata"]["name"]): d for path in ("fluxcd/billing.yaml", "tenants/billing/tenant.yaml")
            for d in yaml.safe_load_all((services / path).read_text())}
    assert docs[("RoleBinding", "tenant-billing")]["roleRef"]["name"] == "opencenter-tenant"
    assert docs[("Kustomization", "billing")]["spec"]["dependsOn"] == [{"name": "sources"}, {"name": "tenant-billing"}]
    assert docs[("Kustomization", "tenant-billing")]["spec"]["dependsOn"] == [{"name": "tenancy"}]
    assert docs[("Kustomization", "tenant-billing")]["spec"]["path"] == f"./{OVERLAY}/services/tenants/billing"
    assert docs[("Namespace", "billing")]["metadata"]["annotations"]["opencenter/hostnames"] == f"pay.{DOMAIN}"
    hard = docs[("ResourceQuota", "tenant-quota")]["spec"]["hard"]
    assert hard["services.loadbalancers"] == "0"
    # 20 Deployments and 10 StatefulSets, each with 10 old revisions, the current one and a rollout's
    assert (hard["count/replicasets.apps"], hard["count/controllerrevisions.apps"]) == ("240", "120")
    gateway = yaml.safe_load((fleet["platform"] / OVERLAY / "services/gateway/gateway.yaml").read_text())
    https = gateway["spec"]["listeners"][1]
    assert https["allowedRoutes"]["namespaces"] == {"from": "Selector", "selector": {"matchLabels": {"opencenter/gateway-access": "true"}}}
    values = {svc: yaml.safe_load((fleet["platform"] / OVERLAY / f"services/{svc}/helm-values/override-values.yaml").read_text())
              for svc in ("cert-manager", "kyverno")}
    assert values == {"cert-manager": {"global": {"rbac": {"aggregateClusterRoles": False}}},
                      "kyverno": {"rbac": {"roles": {"aggregate": {"admin": False}}}}}


# The attack corpus: one object per way out of the tenant's namespace (issue "Why"), each with
# the gate and the reason that stops it.
TENANT_GRANTS = ('user "system:serviceaccount:flux-system:tenant-shop" (groups=["system:serviceaccounts" '
                 '"system:serviceaccounts:flux-system" "system:authenticated"]) is attempting to grant RBAC permissions '
                 'not currently held: ')
ROUTE = {"parentRefs": [{"name": "platform-gateway", "namespace": "gateway-system", "sectionName": "https"}],
         "rules": [{"backendRefs": [{"name": "shop", "port": 80}]}]}
ATTACKS = [
    ("HTTPRoute", "billing-host", {"spec": {**ROUTE, "hostnames": [f"billing.{DOMAIN}"]}},
     "opencenter-tenant-routes: hostnames must be shop.prod.acme.example.com, a subdomain of it"),
    ("HTTPRoute", "billing-path", {"spec": {**ROUTE, "hostnames": [f"billing.{DOMAIN}"],
                                            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                                                       "backendRefs": [{"name": "shop", "port": 80}]}]}},
     "opencenter-tenant-routes: hostnames must be"),
    ("HTTPRoute", "assigned-elsewhere", {"spec": {**ROUTE, "hostnames": [f"pay.{DOMAIN}"]}},
     "opencenter-tenant-routes: hostnames must be"),
    ("HTTPRoute", "catch-all", {"spec": ROUTE}, "opencenter-tenant-routes: a tenant route must list its hostnames"),
    ("HTTPRoute", "wildcard", {"spec": {**ROUTE, "hostnames": [f"*.{DOMAIN}"]}}, "opencenter-tenant-routes: hostnames must be"),
    ("HTTPRoute", "other-listener", {"spec": {**ROUTE, "hostnames": [f"shop.{DOMAIN}"],
                                              "parentRefs": [{"name": "platform-gateway", "namespace": "gateway-system"}]}},
     "opencenter-tenant-routes: tenant routes attach only to Gateway gateway-system/platform-gateway, sectionName https"),
    ("Service", "load-balancer", {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}},
     "opencenter-tenant-services: tenant Services are ClusterIP only"),
    ("Service", "node-port", {"spec": {"type": "NodePort", "ports": [{"port": 80}]}}, "opencenter-tenant-services: tenant Services are ClusterIP only"),
    ("Service", "external-name", {"spec": {"type": "ExternalName", "externalName": "billing.billing.svc.cluster.local"}},
     "opencenter-tenant-services: tenant Services are ClusterIP only"),
    ("Service", "external-ips", {"spec": {"externalIPs": ["10.0.0.10"], "ports": [{"port": 80}]}},
     "opencenter-tenant-services: spec.externalIPs is refused"),
    ("Service", "load-balancer", {}, "ResourceQuota/tenant-quota: exceeded quota: tenant-quota, requested: services.loadbalancers=1"),
    ("RoleBinding", "everyone-admin", {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                                       "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}]},
     "opencenter-tenant-rolebindings: tenant RoleBindings may only name ServiceAccounts of their own namespace"),
    ("RoleBinding", "other-namespace", {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                                        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "billing"}]},
     "opencenter-tenant-rolebindings: tenant RoleBindings may only name ServiceAccounts of their own namespace"),
    # the API server's escalation check: a tenant grants only what opencenter-tenant holds
    ("RoleBinding", "everyone-admin", {}, f'RBAC: rolebindings.rbac.authorization.k8s.io "everyone-admin" is forbidden: {TENANT_GRANTS}'),
    ("RoleBinding", "own-admin", {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                                  "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "shop"}]},
     f'RBAC: rolebindings.rbac.authorization.k8s.io "own-admin" is forbidden: {TENANT_GRANTS}'),
    ("Role", "exec", {"rules": [{"apiGroups": [""], "resources": ["pods", "pods/exec"], "verbs": ["get", "create"]}]},
     f'RBAC: roles.rbac.authorization.k8s.io "exec" is forbidden: {TENANT_GRANTS}'
     '{APIGroups:[""], Resources:["pods"], Verbs:["create"]}; {APIGroups:[""], Resources:["pods/exec"], Verbs:["get" "create"]}'),
    ("HelmRelease", "cluster-admin", {"spec": {"interval": "1m", "chart": {"spec": {"chart": "x", "sourceRef": {"kind": "HelmRepository", "name": "x"}}}}},
     'RBAC: system:serviceaccount:flux-system:tenant-shop cannot create or patch resource "helmreleases.helm.toolkit.fluxcd.io"'),
    ("HelmRelease", "cluster-admin", {}, "opencenter-tenant-platform-kinds: HelmRelease objects belong to the platform repository"),
    ("HelmRelease", "cluster-admin", {}, "opencenter-helmrelease-service-account: a HelmRelease not applied by the platform must set spec.serviceAccountName"),
    ("GitRepository", "ssrf", {"spec": {"interval": "1m", "url": "https://169.254.169.254/latest"}},
     "opencenter-tenant-platform-kinds: GitRepository objects belong to the platform repository"),
    ("Policy", "kyverno-api-call", {"spec": {"rules": []}}, "opencenter-tenant-platform-kinds: Policy objects belong to the platform repository"),
    # any kind of Kyverno's group, not only its policies (an UpdateRequest makes Kyverno generate objects)
    ("UpdateRequest", "generate-elsewhere", {"spec": {"type": "generate", "policy": "x", "resource": {}}},
     "opencenter-tenant-platform-kinds: UpdateRequest objects belong to the platform repository"),
    # a certificate from a cluster issuer for another app's hostname, or an issuer of its own
    ("Certificate", "billing-cert", {"spec": {"secretName": "billing-tls", "dnsNames": [f"billing.{DOMAIN}"],
                                              "issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt"}}},
     'RBAC: system:serviceaccount:flux-system:tenant-shop cannot create or patch resource "certificates.cert-manager.io"'),
    ("Certificate", "billing-cert", {}, "opencenter-tenant-platform-kinds: Certificate objects belong to the platform repository"),
    ("Issuer", "own-ca", {"spec": {"selfSigned": {}}},
     'RBAC: system:serviceaccount:flux-system:tenant-shop cannot create or patch resource "issuers.cert-manager.io"'),
    ("Issuer", "own-ca", {}, "opencenter-tenant-platform-kinds: Issuer objects belong to the platform repository"),
    ("Gateway", "own-gateway", {"spec": {"gatewayClassName": "eg", "listeners": [{"name": "h", "port": 80, "protocol": "HTTP"}]}},
     "opencenter-tenant-platform-kinds: Gateway objects belong to the platform repository"),
    ("NetworkPolicy", "allow-all", {"spec": {"podSelector": {}, "ingress": [{}], "egress": [{}]}},
     "opencenter-tenant-networkpolicies: tenant ingress rules may only admit the namespace's own pods or the Gateway data plane"),
    ("NetworkPolicy", "allow-all", {}, "opencenter-tenant-networkpolicies: tenant egress rules may only reach"),
    ("NetworkPolicy", "metadata-ip", {"spec": {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}]}]}},
     "opencenter-tenant-networkpolicies: tenant egress rules may only reach"),
    # Taking a baseline policy over by applying one of the same name without the platform's label
    # (an UPDATE of the platform's object; Flux's one field manager would drop the label)...
    ("NetworkPolicy", "opencenter-default-deny", {"spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
     "opencenter-tenant-networkpolicies: platform-owned NetworkPolicies (label opencenter/managed-by) are changed in the platform repository only"),
    ("NetworkPolicy", "opencenter-allow-dns", {"spec": {"podSelector": {"matchLabels": {"nothing": "selected"}}, "policyTypes": ["Egress"]}},
     "opencenter-tenant-networkpolicies: platform-owned NetworkPolicies (label opencenter/managed-by) are changed in the platform repository only"),
    # ... or passing one of the team's own off as the platform's.
    ("NetworkPolicy", "looks-official", {"metadata": {"labels": {"opencenter/managed-by": "opencenter"}},
                                         "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
     "opencenter-tenant-networkpolicies: platform-owned NetworkPolicies (label opencenter/managed-by) are changed in the platform repository only"),
    ("PodDisruptionBudget", "no-drain", {"spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"a": "b"}}}},
     "opencenter-tenant-disruption-budgets: tenant PodDisruptionBudgets set maxUnavailable of at least 1"),
    ("PodDisruptionBudget", "min-available", {"spec": {"minAvailable": 2, "selector": {"matchLabels": {"a": "b"}}}},
     "opencenter-tenant-disruption-budgets: tenant PodDisruptionBudgets set maxUnavailable of at least 1"),
    ("PodDisruptionBudget", "unready-pods-block", {"spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"a": "b"}}}},
     "opencenter-tenant-disruption-budgets: tenant PodDisruptionBudgets set unhealthyPodEvictionPolicy: AlwaysAllow"),
    ("PodDisruptionBudget", "unready-pods-block", {},
     "ResourceQuota/tenant-quota: exceeded quota: tenant-quota, requested: count/poddisruptionbudgets.policy=1"),
    # maxUnavailable over a Job's pods: the disruption controller finds no scale for them and
    # allows no eviction at all (kubernetes/kubernetes#129625)
    ("PodDisruptionBudget", "covers-jobs", {"spec": {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow",
                                                     "selector": {"matchLabels": {"app": "manual-selector"}}}},
     "opencenter-tenant-disruption-budgets: tenant PodDisruptionBudgets leave out Job pods (selector.matchExpressions: "
     "key batch.kubernetes.io/job-name, operator DoesNotExist)"),
    # ... and a Job choosing its own selector, whose pods then lack the label budgets leave out
    ("Job", "manual-selector", {"spec": {"manualSelector": True, "selector": {"matchLabels": {"app": "manual-selector"}},
                                         "template": {"metadata": {"labels": {"app": "manual-selector"}}, "spec": {
                                             "restartPolicy": "Never",
                                             "containers": [{"name": "c", "image": "docker.io/library/busybox:1.37"}]}}}},
     "opencenter-tenant-pods: tenant Jobs leave their selector to Kubernetes (no manualSelector: true)"),
    # a token that never expires, for a ServiceAccount the team binds to its role
    ("Secret", "runner-token", {"metadata": {"annotations": {"kubernetes.io/service-account.name": "runner"}},
                                "type": "kubernetes.io/service-account-token"},
     "opencenter-tenant-secrets: tenant Secrets hold no ServiceAccount tokens"),
    ("Deployment", "pinned", {"spec": {"template": {"spec": {"nodeName": "control-plane-1"}}}},
     "opencenter-tenant-pods: tenant pods are placed by the scheduler"),
    ("Deployment", "tolerant", {"spec": {"template": {"spec": {"tolerations": [{"operator": "Exists"}]}}}},
     "opencenter-tenant-pods: tenant pods may only tolerate node.kubernetes.io/not-ready and node.kubernetes.io/unreachable"),
    ("Deployment", "cordon-proof", {"spec": {"template": {"spec": {"tolerations": [
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}]}}}},
     "opencenter-tenant-pods: tenant pods may only tolerate node.kubernetes.io/not-ready and node.kubernetes.io/unreachable"),
    ("Deployment", "never-evicted", {"spec": {"template": {"spec": {"tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]}}}},
     "opencenter-tenant-pods: tenant pods may only tolerate node.kubernetes.io/not-ready and node.kubernetes.io/unreachable, "
     "effect NoExecute, for at most 300 s"),
    ("Deployment", "slow-drain", {"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 315360000, "containers": [
        {"name": "c", "image": "docker.io/library/nginx:1.27",
         "lifecycle": {"preStop": {"exec": {"command": ["sleep", "infinity"]}}}}]}}}},
     "opencenter-tenant-pods: tenant pods stop within 300 s (terminationGracePeriodSeconds)"),
    ("Deployment", "critical", {"spec": {"template": {"spec": {"priorityClassName": "system-cluster-critical"}}}},
     "opencenter-tenant-pods: tenant pods run at the default priority"),
    ("Deployment", "critical", {}, "ResourceQuota/tenant-no-system-priority: exceeded quota: tenant-no-system-priority, requested: pods=1"),
    ("Deployment", "hog", {"spec": {"replicas": 40}}, "ResourceQuota/tenant-quota: exceeded quota: tenant-quota"),
    ("Deployment", "unkillable", {"spec": {"template": {"metadata": {"finalizers": ["example.com/never"]}, "spec": {}}}},
     "opencenter-tenant-pods: tenant pod templates carry no finalizers"),
    ("EnvoyPatchPolicy", "rewrite-gateway", {"spec": {"type": "JSONPatch", "targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "platform-gateway"}}},
     "opencenter-tenant-platform-kinds: EnvoyPatchPolicy objects belong to the platform repository"),
    # Pods as the API server admits them. Deployments are applied in name order (kustomize's), so
    # burst-limits and etl-init meet the quota before hog uses up its CPU; the quota counts what
    # the others refuse too, as if that gate had let it through.
    ("Deployment", "big-pages", {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "docker.io/library/nginx:1.27", "resources": {"limits": {"hugepages-2Mi": "64Mi"}}}]}}}},
     "ResourceQuota/tenant-quota: exceeded quota: tenant-quota, requested: requests.hugepages-2Mi=64Mi, "
     "used: requests.hugepages-2Mi=0, limited: requests.hugepages-2Mi=0"),
    ("Deployment", "burst-limits", {"spec": {"replicas": 2, "template": {"spec": {"containers": [
        {"name": "c", "image": "docker.io/library/nginx:1.27", "resources": {"limits": {"memory": "3Gi"}}}]}}}},
     "ResourceQuota/tenant-quota: exceeded quota: tenant-quota, requested: requests.memory=3Gi, used: requests.memory=3Gi, "
     "limited: requests.memory=4Gi"),
    ("Deployment", "etl-init", {"spec": {"template": {"spec": {"initContainers": [
        {"name": "load", "image": "docker.io/library/busybox:1.37", "resources": {"limits": {"ephemeral-storage": "12Gi"}}}]}}}},
     "ResourceQuota/tenant-quota: exceeded quota: tenant-quota, requested: requests.ephemeral-storage=12Gi, "
     "used: requests.ephemeral-storage=256Mi, limited: requests.ephemeral-storage=10Gi"),
    ("Deployment", "request-over-limit", {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "docker.io/library/nginx:1.27", "resources": {"requests": {"cpu": "1"}}}]}}}},
     'Pod validation: spec.containers[0].resources.requests: Invalid value: "1": must be less than or equal to cpu limit of 500m'),
    ("Deployment", "limit-over-max", {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "docker.io/library/nginx:1.27", "resources": {"limits": {"cpu": "3"}}}]}}}},
     "LimitRange/tenant-defaults: maximum cpu usage per Container is 2, but limit is 3"),
    # (used: 15Gi of its first claim and the 1Gi each of PersistentVolumeClaims someone-elses-data
    # and static-volume: the quota counts what a policy refuses too)
    ("StatefulSet", "database", {"spec": {"serviceName": "database", "volumeClaimTemplates": [
        {"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}
        for name, size in (("data", "15Gi"), ("wal", "10Gi"))]}},
     "ResourceQuota/tenant-quota: exceeded quota: tenant-quota, requested: requests.storage=10Gi, used: requests.storage=17Gi, "
     "limited: requests.storage=20Gi"),
    ("Deployment", "node-access", {"spec": {"template": {"spec": {
        "hostNetwork": True, "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "docker.io/library/nginx:1.27",
                        "securityContext": {"privileged": True, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}}}},
     'PodSecurity: violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true), privileged (container "c" must '
     'not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must set '
     'securityContext.allowPrivilegeEscalation=false), restricted volume types (volume "host" uses restricted volume type "hostPath")'),
    ("PersistentVolumeClaim", "someone-elses-data", {"spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pvc-billing-data",
                                                             "resources": {"requests": {"storage": "1Gi"}}}},
     "opencenter-tenant-volumes: tenant claims are provisioned, not bound by name"),
    ("PersistentVolumeClaim", "static-volume", {"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                                                         "resources": {"requests": {"storage": "1Gi"}}}},
     "opencenter-tenant-volumes: tenant claims name no selector and no empty storageClassName"),
    ("StatefulSet", "steal-volume", {"spec": {"serviceName": "steal-volume", "volumeClaimTemplates": [
        {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pvc-billing-data",
                                                "resources": {"requests": {"storage": "1Gi"}}}}]}},
     "opencenter-tenant-volumes: tenant claims are provisioned, not bound by name"),
    # a generic ephemeral volume's claim, created by the ephemeral volume controller for each pod
    ("Deployment", "scratch-claim", {"spec": {"template": {"spec": {"volumes": [
        {"name": "stolen", "ephemeral": {"volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"], "volumeName": "pvc-billing-data", "resources": {"requests": {"storage": "1Gi"}}}}}},
        {"name": "static", "ephemeral": {"volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "", "resources": {"requests": {"storage": "1Gi"}}}}}}]}}}},
     "opencenter-tenant-volumes: tenant claims are provisioned, not bound by name"),
    ("Deployment", "scratch-claim", {}, "opencenter-tenant-volumes: tenant claims name no selector and no empty storageClassName"),
    # an inline CSI volume: made by the driver from its attributes (a Cinder volume of any size),
    # outside the claims and the storage quota
    ("Deployment", "inline-csi", {"spec": {"template": {"spec": {"volumes": [
        {"name": "disk", "csi": {"driver": "cinder.csi.openstack.org", "volumeAttributes": {"capacity": "500Gi"}}}]}}}},
     "opencenter-tenant-volumes: tenant pods mount no inline CSI volumes"),
    ("Deployment", "fence", {"spec": {"template": {"spec": {"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "kubernetes.io/os", "namespaceSelector": {},
                                                            "labelSelector": {"matchLabels": {"app.kubernetes.io/part-of": "cart"}}}]}}}}}},
     "opencenter-tenant-pods: tenant pod (anti-)affinity stays in its namespace"),
    ("Deployment", "fence", {}, "ResourceQuota/tenant-no-cross-namespace-affinity: exceeded quota: tenant-no-cross-namespace-affinity, requested: pods=1"),
    ("CronJob", "unkillable-job", {"spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {
        "metadata": {"finalizers": ["example.com/never"]},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "docker.io/library/busybox:1.37"}]}}}}}},
     "opencenter-tenant-pods: tenant pod templates carry no finalizers"),
    ("ClusterRole", "escalate", {"rules": []}, 'RBAC: system:serviceaccount:flux-system:tenant-shop cannot create or patch resource "clusterroles.rbac.authorization.k8s.io"'),
    ("Ingress", "bypass", {"spec": {"rules": [{"host": f"billing.{DOMAIN}"}]}},
     'RBAC: system:serviceaccount:flux-system:tenant-shop cannot create or patch resource "ingresses.networking.k8s.io"'),
    # etcd filled one rollout at a time: each template change stores another ReplicaSet or
    # ControllerRevision, kept as history (the quota counts them too)
    ("Deployment", "endless-history", {"spec": {"replicas": 0, "revisionHistoryLimit": 2147483647}},
     "opencenter-tenant-pods: tenant Deployments and StatefulSets keep at most 10 old revisions (spec.revisionHistoryLimit)"),
    ("StatefulSet", "endless-history", {"spec": {"replicas": 0, "serviceName": "endless-history", "revisionHistoryLimit": 11}},
     "opencenter-tenant-pods: tenant Deployments and StatefulSets keep at most 10 old revisions (spec.revisionHistoryLimit)"),
    # dashboards and data sources the platform's Grafana would load for every user
    ("ConfigMap", "fake-dashboard", {"metadata": {"labels": {"grafana_dashboard": "1"}},
                                     "data": {"cluster.json": '{"uid": "k8s-resources-cluster", "panels": []}'}},
     "opencenter-tenant-config-labels: tenant ConfigMaps and Secrets carry no grafana_dashboard, grafana_datasource or grafana_alert label"),
    ("Secret", "fake-datasource", {"metadata": {"labels": {"grafana_datasource": "yes"}},
                                   "stringData": {"datasource.yaml": "apiVersion: 1\ndatasources: []\n"}},
     "opencenter-tenant-config-labels: tenant ConfigMaps and Secrets carry no grafana_dashboard"),
    # one etcd value: the API server refuses a Secret whose data pass 1 MiB, as a ConfigMap's
    ("Secret", "too-big", {"stringData": {"blob": "x" * (1024 * 1024 + 1)}},
     "Secret validation: data: Too long: may not be more than 1048576 bytes"),
]
API_VERSIONS = {"HTTPRoute": "gateway.networking.k8s.io/v1", "Gateway": "gateway.networking.k8s.io/v1", "Service": "v1",
                "RoleBinding": "rbac.authorization.k8s.io/v1", "ClusterRole": "rbac.authorization.k8s.io/v1",
                "Role": "rbac.authorization.k8s.io/v1",
                "HelmRelease": "helm.toolkit.fluxcd.io/v2", "GitRepository": "source.toolkit.fluxcd.io/v1",
                "Policy": "kyverno.io/v1", "UpdateRequest": "kyverno.io/v2", "NetworkPolicy": "networking.k8s.io/v1", "PodDisruptionBudget": "policy/v1",
                "Deployment": "apps/v1", "StatefulSet": "apps/v1", "Ingress": "networking.k8s.io/v1",
                "EnvoyPatchPolicy": "gateway.envoyproxy.io/v1alpha1", "PersistentVolumeClaim": "v1",
                "CronJob": "batch/v1", "Job": "batch/v1", "Secret": "v1", "Certificate": "cert-manager.io/v1",
                "Issuer": "cert-manager.io/v1", "ConfigMap": "v1"}


def attack_objects() -> list[dict]:
    """One object per (kind, name) of ATTACKS (later rows of the same object only add expectations)."""
    objects: dict[tuple[str, str], dict] = {}
    for kind, name, body, _ in ATTACKS:
        if (kind, name) in objects:
            continue
        obj = {"apiVersion": API_VERSIONS[kind], "kind": kind, "metadata": {"name": name, **body.get("metadata", {})},
               **{k: v for k, v in body.items() if k != "metadata"}}
        if kind in ("Deployment", "StatefulSet"):
            spec = body.get("spec", {})
            template = spec.get("template", {})
            pod = {"containers": [{"name": "c", "image": "docker.io/library/nginx:1.27"}], **template.get("spec", {})}
            obj["spec"] = {**spec, "replicas": spec.get("replicas", 1), "selector": {"matchLabels": {"app": name}},
                           "template": {"metadata": {"labels": {"app": name}, **template.get("metadata", {})}, "spec": pod}}
        if kind == "Service":
            obj["spec"] = {"selector": {"app": "x"}, **obj.get("spec", {})}
        objects[(kind, name)] = obj
    return list(objects.values())


def shop_with(fleet, tmp_path_factory, file: str, objects: list[dict]) -> Path:
    """A copy of the shop repository with `objects` added in `file`, listed in its kustomization."""
    repo = tmp_path_factory.mktemp(Path(file).stem) / "shop"
    shutil.copytree(fleet["shop"], repo)
    (repo / file).write_text(yaml.safe_dump_all(objects, sort_keys=False))
    kustomization = yaml.safe_load((repo / "kustomization.yaml").read_text())
    kustomization["resources"].append(file)
    (repo / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return repo


@pytest.fixture(scope="module")
def hostile_shop(fleet, tmp_path_factory) -> Path:
    """The shop repository with every attack object added (attacks.yaml)."""
    return shop_with(fleet, tmp_path_factory, "attacks.yaml", attack_objects())


@pytest.fixture(scope="module")
def hostile_findings(fleet, hostile_shop) -> list:
    return check_repo(hostile_shop, platform=fleet["platform"])


@pytest.mark.parametrize(("kind", "name", "reason"), [(k, n, r) for k, n, _, r in ATTACKS],
                         ids=[f"{k}/{n}:{r.split(':')[0]}" for k, n, _, r in ATTACKS])
def test_every_attack_is_denied_with_its_reason(hostile_findings, kind, name, reason):
    denied = [f.message for f in hostile_findings if f.rule == "denied" and f.object == f"{kind}/{name}"]
    assert any(message.startswith(reason) for message in denied), denied
    assert all(f.file == "attacks.yaml" for f in hostile_findings if f.rule == "denied" and f.object == f"{kind}/{name}")


def test_the_default_objects_stay_admitted_beside_the_attacks(hostile_findings):
    # Only the quota is shared: the attacks' pods use it up, so the app's own Deployment is refused
    # its pods too (as on a cluster where they were applied first); nothing else of the app is denied.
    denied_elsewhere = {(f.file, f.message.split(":")[0]) for f in hostile_findings
                        if f.rule == "denied" and f.file != "attacks.yaml"}
    assert denied_elsewhere == {("deployment.yaml", "ResourceQuota/tenant-quota")}
    # the report is in the documented form: <file>: [denied] <kind>/<name>: <policy>: <message>
    assert any(f.object == "Service/external-ips" and f.message.startswith("opencenter-tenant-services: ") for f in hostile_findings)


@pytest.mark.parametrize("name", ["opencenter-default-deny", "opencenter-allow-dns", "opencenter-allow-from-gateway"])
def test_a_tenant_cannot_delete_a_baseline_network_policy(fleet, name):
    """RBAC lets the team delete its NetworkPolicies (a `kubectl delete` as any ServiceAccount
    bound to opencenter-tenant); the policy keeps the platform's, and only those."""
    (cluster,) = platform_clusters(fleet["platform"], Validator(crds.load_bundle())).values()
    tenant, namespace = cluster.tenant("shop")
    baseline = cluster.existing({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}}, namespace)
    assert cluster.authorizer.allows(tenant, "delete", "networking.k8s.io", "networkpolicies", namespace, name)
    assert [f"{d.source}: {d.message}" for d in cluster.policy_denials(None, tenant, namespace, "DELETE", baseline)] == [
        "opencenter-tenant-networkpolicies: platform-owned NetworkPolicies (label opencenter/managed-by) are changed in the "
        "platform repository only"]
    own = {**baseline, "metadata": {"name": "team-policy", "namespace": namespace}}
    assert cluster.policy_denials(None, tenant, namespace, "DELETE", own) == []


# What Kubernetes and docs/tenancy.md allow a tenant, next to the attacks: each object stays
# admitted (and schema-valid), so that a tightened rule cannot refuse legitimate workloads unnoticed.
NOT_READY = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}
LEGIT_PODS = {
    # scratch space from the tenant's storage class, one claim per pod
    "scratch": {"volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard", "resources": {"requests": {"storage": "1Gi"}}}}}}]},
    # faster failover than the 300 s DefaultTolerationSeconds gives, and the longest grace period
    "fast-failover": {"terminationGracePeriodSeconds": 300,
                      "tolerations": [{**NOT_READY, "tolerationSeconds": 30}, {**UNREACHABLE, "tolerationSeconds": 300}]},
}


GATEWAY_PODS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}}}
LEGIT_OBJECTS = [
    # empty lists and maps, as tools write them: the API server leaves them out before policies see them
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "from-gateway-written-out"},
     "spec": {"podSelector": {"matchLabels": {}}, "policyTypes": ["Ingress"], "ingress": [{"from": [
         {"namespaceSelector": {**GATEWAY_PODS["namespaceSelector"], "matchExpressions": []}}], "ports": []}]}},
    # a budget over the app's pods, Job pods left out
    {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "shop"},
     "spec": {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow", "selector": {
         "matchLabels": {"app.kubernetes.io/name": "shop"},
         "matchExpressions": [{"key": "batch.kubernetes.io/job-name", "operator": "DoesNotExist"}]}}},
    # a dashboard for the team's own Grafana (any label but the platform Grafana's) and a headless Service
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-dashboard", "labels": {"shop.example.com/dashboard": "1"}},
     "data": {"shop.json": "{}"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop-peers"},
     "spec": {"clusterIP": "None", "selector": {"app.kubernetes.io/name": "shop"}, "ports": [{"port": 8080}]}},
    # the Gateway's data plane narrowed to its proxy pods
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "from-gateway-proxies"},
     "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [
         {**GATEWAY_PODS, "podSelector": {"matchLabels": {"app.kubernetes.io/component": "proxy"}}}]}]}},
]


def legit_objects(deployment: dict) -> list[dict]:
    """The app's own Deployment varied as LEGIT_PODS says (one replica each, keeping the most revision
    history a tenant may), and LEGIT_OBJECTS."""
    objects = []
    for name, pod in LEGIT_PODS.items():
        obj = yaml.safe_load(yaml.safe_dump(deployment))
        labels = {"app.kubernetes.io/name": name}
        obj["metadata"] = {"name": name, "labels": labels}
        obj["spec"].update(replicas=1, selector={"matchLabels": labels}, revisionHistoryLimit=10)
        obj["spec"]["template"]["metadata"]["labels"] = labels
        obj["spec"]["template"]["spec"].update(pod)
        objects.append(obj)
    return [*objects, *LEGIT_OBJECTS]


def test_what_kubernetes_and_the_docs_allow_a_tenant_stays_admitted(fleet, tmp_path_factory):
    deployment = yaml.safe_load((fleet["shop"] / "deployment.yaml").read_text())
    repo = shop_with(fleet, tmp_path_factory, "legit.yaml", legit_objects(deployment))
    assert check_repo(repo, platform=fleet["platform"]) == []


def test_what_the_clusters_controllers_do_in_a_tenant_namespace_is_admitted(fleet):
    """Pods a controller creates carry the cluster's globalDefault priority class (the Priority
    plugin sets it first), and the PersistentVolume controller binds claims by name: neither is
    refused, while the tenant naming a volume is."""
    (cluster,) = platform_clusters(fleet["platform"], Validator(crds.load_bundle())).values()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shop-7d4b9-x2x8p"},
           "spec": {"priorityClassName": "cluster-default", "containers": [{"name": "c", "image": "docker.io/library/nginx:1.27"}]}}
    replicasets = service_account("kube-system", "replicaset-controller")
    assert cluster.policy_denials(cluster.defaulted(pod, "shop"), replicasets, "shop") == []
    pinned = {**pod, "spec": {**pod["spec"], "nodeName": "node-1"}}  # the pods policy does judge Pods
    assert [d.source for d in cluster.policy_denials(cluster.defaulted(pinned, "shop"), replicasets, "shop")] == [
        "opencenter-tenant-pods"]
    # The Job controller removes its finalizer from a pod admitted under an earlier release (a
    # toleration and grace period now refused): an UPDATE keeping them passes, one adding a toleration not.
    earlier = cluster.defaulted({**pod, "spec": {**pod["spec"], "terminationGracePeriodSeconds": 3600, "tolerations": [
        {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}]}}, "shop")
    jobs = service_account("kube-system", "job-controller")
    assert [d.source for d in cluster.policy_denials(earlier, jobs, "shop")] == ["opencenter-tenant-pods"] * 2
    assert cluster.policy_denials(earlier, jobs, "shop", "UPDATE", earlier) == []
    added = {**earlier, "spec": {**earlier["spec"], "tolerations": [*earlier["spec"]["tolerations"], {"operator": "Exists"}]}}
    assert [d.message.split(":")[0] for d in cluster.policy_denials(added, jobs, "shop", "UPDATE", earlier)] == [
        "tenant pods may only tolerate node.kubernetes.io/not-ready and node.kubernetes.io/unreachable, effect NoExecute, "
        "for at most 300 s (what Kubernetes gives every pod)"]
    pending = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    bound = {**pending, "spec": {**pending["spec"], "volumeName": "pvc-0a1b2c"}}
    binder = service_account("kube-system", "persistent-volume-binder")
    assert cluster.policy_denials(bound, binder, "shop", "UPDATE", pending) == []
    tenant, _ = cluster.tenant("shop")
    assert [d.source for d in cluster.policy_denials(bound, tenant, "shop", "UPDATE", pending)] == ["opencenter-tenant-volumes"]
    assert cluster.policy_denials(bound, tenant, "shop", "UPDATE", bound) == []  # a bound claim resized


def test_any_other_service_account_of_the_namespace_is_held_to_the_same_rules(fleet, hostile_shop):
    """A pod's ServiceAccount that the team made admin-like by a RoleBinding of its own: RBAC lets
    it, and every policy and quota still denies exactly what it denies the Flux identity."""
    platform = [obj for _, obj in collect(fleet["platform"], "platform").objects]
    runner = service_account("shop", "runner")
    own_binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "runner", "namespace": "shop"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "opencenter-tenant"},
                   "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "shop"}]}
    cluster = admission.Cluster([*platform, own_binding], crds.load_bundle())
    objects = [obj for _, obj in collect(hostile_shop, "app").objects]
    tenant, namespace = cluster.tenant("shop")

    def verdicts(who):
        return {(obj["kind"], obj["metadata"]["name"], d.source, d.message)
                for obj, d in admission.admit(cluster, objects, who, namespace) if d.gate != "rbac"}

    as_flux = verdicts(tenant)
    assert len(as_flux) >= len({(k, n) for k, n, _, r in ATTACKS if not r.startswith("RBAC")})
    assert verdicts(runner) == as_flux


@pytest.mark.parametrize(("role_ref", "admitted"), [
    ({"kind": "ClusterRole", "name": "opencenter-tenant"}, True),  # every rule held: its own role
    ({"kind": "ClusterRole", "name": "view"}, False),  # view reads more (DaemonSets, Ingresses, pods/status…)
    ({"kind": "ClusterRole", "name": "edit"}, False),
    ({"kind": "ClusterRole", "name": "admin"}, False),
    ({"kind": "Role", "name": "reader"}, True),  # the app's own Role, within the tenant's rights
])
def test_what_a_tenant_may_bind_to_its_service_accounts(fleet, role_ref, admitted):
    """No tenant holds `bind`, so a RoleBinding passes the API server's escalation check only when
    the tenant holds every rule of the role: its own opencenter-tenant or a Role of its own within
    its rights (Flux 2.8+ applies the app's Roles first), none of Kubernetes' roles."""
    (cluster,) = platform_clusters(fleet["platform"], Validator(crds.load_bundle())).values()
    tenant, namespace = cluster.tenant("shop")
    reader = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
              "rules": [{"apiGroups": [""], "resources": ["configmaps", "pods", "pods/log"], "verbs": ["get", "list"]}]}
    bound = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "runner"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", **role_ref},
             "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "shop"}]}
    denied = [d.message for _, d in admission.admit(cluster, [reader, bound], tenant, namespace)]
    if admitted:
        assert denied == []
    else:  # refused by the escalation check, nothing else
        assert len(denied) == 1 and denied[0].startswith(
            f'rolebindings.rbac.authorization.k8s.io "runner" is forbidden: {TENANT_GRANTS}'), denied


def test_before_flux_2_8_a_rolebinding_to_a_role_of_the_same_app_fails_the_dry_run(fleet):
    """Without the Role stage the API server meets the binding before the Role exists."""
    unstaged = admission.Cluster([obj for _, obj in collect(fleet["platform"], "platform").objects], crds.load_bundle())
    tenant, namespace = unstaged.tenant("shop")
    reader = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
              "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}
    bound = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "runner"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
             "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "shop"}]}
    assert [(obj["kind"], d.message.split(" (")[0]) for obj, d in admission.admit(unstaged, [reader, bound], tenant, namespace)] == [
        ("RoleBinding", 'roles.rbac.authorization.k8s.io "reader" not found')]
    assert clusters.stages_roles({"flux_version": "2.8.0"}) and not clusters.stages_roles({"flux_version": "2.7.5"})


def test_two_apps_can_never_be_assigned_one_hostname(fleet, tmp_path):
    platform = tmp_path / "platform"
    shutil.copytree(fleet["platform"], platform)
    with pytest.raises(HookError, match=f"apps\\[cart\\].hostnames: pay.{DOMAIN} is also served by app billing"):
        onboard.register(platform, {"name": "cart", "url": "ssh://git@github.com/acme/cart", "hostnames": [f"pay.{DOMAIN}"]},
                         out=lambda _line: None)
    with pytest.raises(HookError, match=f"shop.{DOMAIN} is also served by app shop"):
        onboard.register(platform, {"name": "cart", "url": "ssh://git@github.com/acme/cart", "hostnames": [f"shop.{DOMAIN}"]},
                         out=lambda _line: None)
    answers = yaml.safe_load((platform / ".copier-answers.yml").read_text())
    next(app for app in answers["apps"] if app["name"] == "shop")["hostnames"] = [f"pay.{DOMAIN}"]  # a hand edit
    assert [f.message for f in rules.hostname_findings(answers)] == [
        f"apps[shop].hostnames: pay.{DOMAIN} is also served by app billing (pay.{DOMAIN})"]


def test_no_app_is_assigned_the_login_host_keycloak_serves(fleet):
    """With keycloak selected, auth.<domain> is the platform's login host: a hand edit that gives it
    to an app is a finding of the check (onboarding refuses it: tests/test_reliability_corpus.py)."""
    answers = yaml.safe_load((fleet["platform"] / ".copier-answers.yml").read_text())
    answers["apps"] = [{**app, "hostnames": [f"auth.{DOMAIN}"]} if app["name"] == "shop" else app for app in answers["apps"]]
    assert rules.hostname_findings(answers) == []  # keycloak not selected: the name is free
    answers["platform_services"] = [*answers["platform_services"], "keycloak"]
    assert [f.message for f in rules.hostname_findings(answers)] == [
        f"apps[shop].hostnames: auth.{DOMAIN} is also served by platform service keycloak (auth.{DOMAIN})"]


# Flux RBAC: judged on the built flux-system output, not on the patch's text ------------------------

# A stand-in for the RBAC part of `flux install --export` (fluxcd/flux2 manifests/rbac): the two
# aggregated roles (no flux binary can run here).
FLUX_RBAC = """\
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {edit}
  labels:
    rbac.authorization.k8s.io/aggregate-to-admin: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
rules:
  - apiGroups: [notification.toolkit.fluxcd.io, source.toolkit.fluxcd.io, helm.toolkit.fluxcd.io,
                image.toolkit.fluxcd.io, kustomize.toolkit.fluxcd.io]
    resources: ["*"]
    verbs: [create, delete, deletecollection, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: flux-view-flux-system
  labels:
    rbac.authorization.k8s.io/aggregate-to-admin: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
  - apiGroups: [notification.toolkit.fluxcd.io, source.toolkit.fluxcd.io, helm.toolkit.fluxcd.io,
                image.toolkit.fluxcd.io, kustomize.toolkit.fluxcd.io]
    resources: ["*"]
    verbs: [get, list, watch]
"""


@pytest.mark.parametrize("role_name", ["flux-edit-flux-system", "flux-edit"])
def test_no_flux_write_role_reaches_admin_or_edit_after_the_built_patch(fleet, tmp_path, role_name):
    """The patch matches Flux's write role by its labels, whatever Flux calls it."""
    flux_system = tmp_path / "flux-system"
    shutil.copytree(fleet["platform"] / OVERLAY / "flux-system", flux_system)
    (flux_system / "gotk-components.yaml").write_text(FLUX_RBAC.format(edit=role_name))
    (build,) = build_all([flux_system])
    assert build.error is None, build.error
    admin = service_account("shop", "human")
    bound = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "h", "namespace": "shop"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
             "subjects": [{"kind": "ServiceAccount", "name": "human", "namespace": "shop"}]}
    auth = Authorizer([*build.objects, bound])
    assert not auth.allows(admin, "create", "helm.toolkit.fluxcd.io", "helmreleases", "shop")
    assert auth.allows(admin, "get", "helm.toolkit.fluxcd.io", "helmreleases", "shop")  # reading stays
    assert rules.aggregated_flux_write_findings([("gotk-components.yaml", obj) for obj in build.objects]) == []
    # Without the patch (a hand-edited flux-system), the check names the role.
    unpatched = [("gotk-components.yaml", obj) for obj in yaml.safe_load_all(FLUX_RBAC.format(edit=role_name))]
    assert [f.object for f in rules.aggregated_flux_write_findings(unpatched)] == [f"ClusterRole/{role_name}"]


# Upgrading: registrations of the previous release (bound to admin) move to the tenant role ---------


# The last commit before the tenant role: each app's RoleBinding to `admin` lived in
# services/fluxcd/<app>.yaml, applied by the root flux-system Kustomization.
BEFORE_TENANT_ROLE = "460598bb51c240a5ca4b46b0a63ded5d1558a729"


def test_update_moves_existing_registrations_to_the_tenant_role(template_snapshot, tmp_path):
    import copier

    templates = release_history(BEFORE_TENANT_ROLE, template_snapshot, tmp_path / "templates")
    repo = tmp_path / "platform"
    copier.run_copy(str(templates), repo, data={"template": "platform", "apps": [{**APPS[0], "branch": "main", "secrets": False,
                                                                                 "receiver": "", "known_hosts": ""}],
                                                "sops_age_recipients": str(x25519.Identity.generate().to_public())},
                    defaults=True, unsafe=True, vcs_ref="1.0.0", quiet=True)
    commit_all(repo)

    def bindings() -> dict[str, dict]:
        return {str(path.relative_to(repo)): doc for path in (repo / OVERLAY).rglob("*.yaml")
                for doc in yaml.safe_load_all(path.read_text()) if doc and doc.get("kind") == "RoleBinding"}

    assert [(file, b["roleRef"]["name"]) for file, b in bindings().items()] == [(f"{OVERLAY}/services/fluxcd/shop.yaml", "admin")]
    copier.run_update(repo, defaults=True, overwrite=True, unsafe=True, vcs_ref="2.0.0", quiet=True)
    (file, updated), = bindings().items()
    assert file == f"{OVERLAY}/services/tenants/shop/tenant.yaml"
    assert updated["roleRef"]["name"] == "opencenter-tenant" and updated["metadata"]["name"] == "tenant-shop"
    # roleRef is immutable: Flux deletes and recreates the binding instead of failing the apply
    assert updated["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/force"] == "enabled"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert not any(line[:2] in ("UU", "AA", "DU", "UD") for line in status.splitlines()), status
    assert "<<<<<<<" not in "".join(path.read_text() for path in (repo / OVERLAY).rglob("*.yaml"))
