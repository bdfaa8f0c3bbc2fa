"""CRD schema -> strict JSON Schema, the shipped CRD bundle, and the check command line."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from conftest import ROOT
from hooks import crds
from hooks.errors import HookError
from hooks.validate import kube_schema_version


def crd(properties: dict, scope: str = "Namespaced") -> dict:
    """A bundle entry (scripts/regenerate_data.py's shape) of kind Widget."""
    return {
        "apiVersion": "example.com/v1", "kind": "Widget", "plural": "widgets", "namespaced": scope == "Namespaced",
        "schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": properties}}},
    }


def errors(schema: dict, spec: dict) -> list[str]:
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]


def test_a_bundle_entry_becomes_a_schema_with_the_crd_scope():
    found = crds.kind_schema(crd({}, scope="Cluster"))
    assert (found.api_version, found.kind, found.namespaced) == ("example.com/v1", "Widget", False)


def test_unknown_fields_are_refused_except_under_preserve_unknown_fields():
    found = crds.kind_schema(crd({"known": {"type": "string"}, "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}}}))
    assert errors(found.schema, {"known": "x", "free": {"anything": 1}}) == []
    assert errors(found.schema, {"knwon": "x"}) == ["Additional properties are not allowed ('knwon' was unexpected)"]


def test_int_or_string_accepts_both_and_nothing_else():
    found = crds.kind_schema(crd({"port": {"x-kubernetes-int-or-string": True}}))
    assert errors(found.schema, {"port": 80}) == errors(found.schema, {"port": "http"}) == []
    assert errors(found.schema, {"port": [80]})


def test_nullable_accepts_null_also_in_enums():
    found = crds.kind_schema(crd({"mode": {"type": "string", "enum": ["a", "b"], "nullable": True}}))
    assert errors(found.schema, {"mode": None}) == errors(found.schema, {"mode": "a"}) == []
    assert errors(found.schema, {"mode": "c"})


def test_metadata_is_checked_as_object_meta():
    found = crds.kind_schema(crd({}))
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namspace": "x"}}
    assert [e.message for e in jsonschema.Draft7Validator(found.schema).iter_errors(doc)] == [
        "Additional properties are not allowed ('namspace' was unexpected)"
    ]


def test_the_shipped_bundle_holds_every_kind_the_templates_render():
    schemas = crds.load_bundle()
    assert ("kustomize.toolkit.fluxcd.io/v1", "Kustomization") in schemas
    assert ("gateway.networking.k8s.io/v1", "HTTPRoute") in schemas
    assert ("gateway.networking.k8s.io/v1", "GRPCRoute") in schemas  # tenants may create them (tenant role)
    assert ("notification.toolkit.fluxcd.io/v1", "Receiver") in schemas
    assert schemas[("kyverno.io/v1", "ClusterPolicy")].namespaced is False
    # The CEL rules the API server evaluates travel with the schema.
    assert "x-kubernetes-validations" in json.dumps(schemas[("gateway.networking.k8s.io/v1", "HTTPRoute")].structural)


def test_kubernetes_versions_outside_the_bundled_schemas_are_refused():
    assert kube_schema_version("1.34") == kube_schema_version("v1.34.2") == "1.34.0"
    with pytest.raises(HookError, match="--kube-version"):
        kube_schema_version("1.4")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hooks.check", *args], cwd=ROOT, capture_output=True, text=True)


def test_cli_reports_ok_and_exits_zero_on_a_fresh_platform_repo(rendered):
    result = run_cli(str(rendered(template="platform")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: 10 kustomization root(s)")


def test_cli_json_lists_findings_and_exits_one(rendered):
    repo = rendered(template="platform")
    (repo / "applications/overlays/prod/services/gateway/namespace.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: gateway-system\n  lables: {}\n"
    )
    result = run_cli(str(repo), "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["findings"] == [{
        "file": "applications/overlays/prod/services/gateway/namespace.yaml",
        "object": "Namespace/gateway-system",
        "rule": "schema",
        "message": "Additional properties are not allowed ('lables' was unexpected)",
        "field": "metadata",
    }]
    text = run_cli(str(repo)).stdout  # the text form: <file>: [<rule>] <kind>/<name> <field>: <message>
    assert ("applications/overlays/prod/services/gateway/namespace.yaml: [schema] Namespace/gateway-system metadata: "
            "Additional properties are not allowed ('lables' was unexpected)\n") in text


def test_cli_exits_two_with_one_line_when_the_check_cannot_run(tmp_path):
    result = run_cli(str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path}: has no .copier-answers.yml: not a repository rendered from these templates"
