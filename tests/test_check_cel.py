"""The check applies what the API server applies to custom objects: schema defaults, then CEL rules.

For each CRD kind the templates render or tenants create, a valid object passes and each mutation below is refused
with the rule's own message at the field the API server names.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest

from hooks import crds
from hooks.celrules import RuleEvaluator, apply_defaults
from hooks.validate import Problem, Validator

VALID = {
    "HTTPRoute": {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {
            "parentRefs": [{"name": "platform-gateway", "namespace": "gateway-system", "sectionName": "https"}],
            "hostnames": ["shop.prod.acme.example.com"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                       "backendRefs": [{"name": "shop", "port": 80}]}],
        },
    },
    "GRPCRoute": {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute", "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {
            "parentRefs": [{"name": "platform-gateway", "namespace": "gateway-system", "sectionName": "https"}],
            "hostnames": ["grpc.shop.prod.acme.example.com"],
            "rules": [{"matches": [{"method": {"service": "grpc.health.v1.Health", "method": "Check"}}],
                       "backendRefs": [{"name": "shop", "port": 9090}]}],
        },
    },
    "Gateway": {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "gateway-system"},
        "spec": {"gatewayClassName": "envoy", "listeners": [
            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.acme.example.com",
             "tls": {"mode": "Terminate", "certificateRefs": [{"name": "wildcard-tls"}]}},
            {"name": "http", "port": 80, "protocol": "HTTP"},
        ]},
    },
    "GitRepository": {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "shop", "namespace": "flux-system"},
        "spec": {"interval": "5m", "url": "ssh://git@github.com/acme/shop", "ref": {"branch": "main"}},
    },
    "Kustomization": {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "shop", "namespace": "flux-system"},
        "spec": {"interval": "10m", "prune": True, "sourceRef": {"kind": "GitRepository", "name": "shop"}},
    },
    "Receiver": {
        "apiVersion": "notification.toolkit.fluxcd.io/v1", "kind": "Receiver", "metadata": {"name": "shop", "namespace": "flux-system"},
        "spec": {"type": "github", "secretRef": {"name": "token"},
                 "resources": [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "name": "shop"}]},
    },
    "HelmRelease": {
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "x", "namespace": "flux-system"},
        "spec": {"interval": "10m", "chart": {"spec": {"chart": "x", "sourceRef": {"kind": "HelmRepository", "name": "x"}}}},
    },
}


def mutate(kind: str, change) -> dict:
    obj = copy.deepcopy(VALID[kind])
    change(obj["spec"])
    return obj


def rules_of(problems: list[Problem]) -> list[str]:
    return [f"{p.path}: {p.message}" for p in problems]


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator(crds.load_bundle())


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_objects_pass(kind, validator):
    assert validator.problems(VALID[kind]) == []


def _route(spec: dict, **path) -> None:
    spec["rules"][0]["matches"][0]["path"] = path


CORPUS = [
    # HTTPRoute: the two mistakes of the issue, then one per rule family
    ("HTTPRoute", lambda s: _route(s, type="PathPrefix", value="api"),
     "spec.rules[0].matches[0].path: value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"),
    ("HTTPRoute", lambda s: s["parentRefs"].append(dict(s["parentRefs"][0])),
     "spec.parentRefs: sectionName must be unique when parentRefs includes 2 or more references to the same parent"),
    ("HTTPRoute", lambda s: s["parentRefs"].append({"name": "platform-gateway", "namespace": "gateway-system"}),
     "spec.parentRefs: sectionName must be specified when parentRefs includes 2 or more references to the same parent"),
    # the match type defaults to PathPrefix (schema default), so the rule applies without it
    ("HTTPRoute", lambda s: _route(s, value="api"),
     "spec.rules[0].matches[0].path: value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"),
    ("HTTPRoute", lambda s: _route(s, type="Exact", value="/a//b"),
     "spec.rules[0].matches[0].path: must not contain '//' when type one of ['Exact', 'PathPrefix']"),
    ("HTTPRoute", lambda s: _route(s, type="PathPrefix", value="/a/.."),
     "spec.rules[0].matches[0].path: must not end with '/..' when type one of ['Exact', 'PathPrefix']"),
    ("HTTPRoute", lambda s: s["rules"][0]["backendRefs"][0].pop("port"),
     "spec.rules[0].backendRefs[0]: Must have port for Service reference"),
    ("HTTPRoute", lambda s: s["rules"][0].update(filters=[{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}]),
     "spec.rules[0]: RequestRedirect filter must not be used together with backendRefs"),
    ("HTTPRoute", lambda s: s["rules"][0].update(filters=[{"type": "RequestHeaderModifier"}]),
     "spec.rules[0].filters[0]: filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type"),
    ("HTTPRoute", lambda s: s["rules"][0].update(filters=[
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "a", "value": "b"}]}}] * 2),
     "spec.rules[0].filters: RequestHeaderModifier filter cannot be repeated"),
    ("HTTPRoute", lambda s: s["rules"][0].update(timeouts={"request": "10s", "backendRequest": "20s"}),
     "spec.rules[0].timeouts: backendRequest timeout cannot be longer than request timeout"),
    # GRPCRoute
    ("GRPCRoute", lambda s: s["rules"][0]["matches"][0]["method"].update(method="Check!"),
     "spec.rules[0].matches[0].method: method must only contain valid characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)"),
    ("GRPCRoute", lambda s: s["rules"][0]["matches"][0]["method"].update(service="grpc-health"),
     "spec.rules[0].matches[0].method: service must only contain valid characters"
     " (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)"),
    ("GRPCRoute", lambda s: s["rules"][0]["matches"][0].update(method={"type": "Exact"}),
     "spec.rules[0].matches[0].method: One or both of 'service' or 'method' must be specified"),
    ("GRPCRoute", lambda s: s["rules"][0]["backendRefs"][0].pop("port"),
     "spec.rules[0].backendRefs[0]: Must have port for Service reference"),
    ("GRPCRoute", lambda s: s["parentRefs"].append({"name": "platform-gateway", "namespace": "gateway-system"}),
     "spec.parentRefs: sectionName must be specified when parentRefs includes 2 or more references to the same parent"),
    ("GRPCRoute", lambda s: s.update(rules=[{"matches": [{"method": {"service": "a.B"}}] * 9}] * 16),
     "spec.rules: While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules"
     " in a route must be less than 128"),
    ("GRPCRoute", lambda s: s["rules"][0].update(filters=[
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow", "port": 9090}, "percent": 5,
                                                    "fraction": {"numerator": 1}}}]),
     "spec.rules[0].filters[0].requestMirror: Only one of percent or fraction may be specified in HTTPRequestMirrorFilter"),
    # Gateway
    ("Gateway", lambda s: s["listeners"][1].update(tls={"mode": "Terminate", "certificateRefs": [{"name": "x"}]}),
     "spec.listeners: tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"),
    ("Gateway", lambda s: s["listeners"][0]["tls"].update(certificateRefs=[], options={}),
     "spec.listeners[0].tls: certificateRefs or options must be specified when mode is Terminate"),
    # a rule that fails on an absent field refuses the object, in the API server's words
    ("Gateway", lambda s: s["listeners"][0]["tls"].update(certificateRefs=[]),
     "spec.listeners[0].tls: no such key: options evaluating rule: certificateRefs or options must be specified when mode is Terminate"),
    # Flux
    ("GitRepository", lambda s: s.update(serviceAccountName="x"),
     "spec: serviceAccountName can only be set when provider is 'azure' or 'aws'"),
    ("Kustomization", lambda s: s.update(kubeConfig={"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}),
     "spec.kubeConfig: exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef must be specified"),
    ("Receiver", lambda s: s.pop("secretRef"), "spec: secretRef is required when type is not generic-oidc"),
    ("Receiver", lambda s: s.update(type="generic-oidc"), "spec: generic-oidc receivers must define at least one oidcProvider"),
    ("HelmRelease", lambda s: s.update(chartRef={"kind": "OCIRepository", "name": "x"}), "spec: either chart or chartRef must be set"),
    ("HelmRelease", lambda s: s.update(install={"strategy": {"name": "RemediateOnFailure", "retryInterval": "1m"}}),
     "spec.install.strategy: .retryInterval cannot be set when .name is 'RemediateOnFailure'"),
]


@pytest.mark.parametrize(("kind", "change", "message"), CORPUS, ids=[f"{k}:{m.split(': ', 1)[1][:50]}" for k, _, m in CORPUS])
def test_each_rule_is_refused_with_the_api_servers_message(kind, change, message, validator):
    problems = validator.problems(mutate(kind, change))
    assert message in rules_of(problems), problems
    assert {p.rule for p in problems} == {"cel"}


def test_defaults_fill_absent_fields_only():
    schema = crds.load_bundle()[("gateway.networking.k8s.io/v1", "HTTPRoute")].structural
    route = {"spec": {"rules": [{"matches": [{"path": {"value": "/x"}}]}]}}
    defaulted = apply_defaults(schema, route)
    assert defaulted["spec"]["rules"][0]["matches"][0]["path"] == {"type": "PathPrefix", "value": "/x"}
    assert route["spec"]["rules"][0]["matches"][0]["path"] == {"value": "/x"}  # input untouched


def test_grpcroute_parent_refs_get_the_crd_defaults_the_tenant_route_policy_reads():
    schema = crds.load_bundle()[("gateway.networking.k8s.io/v1", "GRPCRoute")].structural
    defaulted = apply_defaults(schema, VALID["GRPCRoute"])
    assert defaulted["spec"]["parentRefs"][0] == {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                                  "name": "platform-gateway", "namespace": "gateway-system", "sectionName": "https"}
    assert defaulted["spec"]["rules"][0]["matches"][0]["method"]["type"] == "Exact"


def _rules(schema: dict) -> Iterator[str]:
    yield from (rule["rule"] for rule in schema.get("x-kubernetes-validations") or [])
    for sub in [*(schema.get("properties") or {}).values(), schema.get("items"), schema.get("additionalProperties")]:
        if isinstance(sub, dict):
            yield from _rules(sub)


def test_a_grpcroute_using_every_rule_evaluates_them_all_and_passes():
    header = {"add": [{"name": "x-a", "value": "b"}]}
    filters = [{"type": "RequestHeaderModifier", "requestHeaderModifier": header},
               {"type": "ResponseHeaderModifier", "responseHeaderModifier": header},
               {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow", "port": 9090},
                                                           "fraction": {"numerator": 1, "denominator": 10}}},
               {"type": "ExtensionRef", "extensionRef": {"group": "example.com", "kind": "Thing", "name": "t"}}]
    route = mutate("GRPCRoute", lambda s: s["rules"][0].update(
        filters=copy.deepcopy(filters), backendRefs=[{"name": "shop", "port": 9090, "filters": copy.deepcopy(filters)}]))
    schema = crds.load_bundle()[("gateway.networking.k8s.io/v1", "GRPCRoute")].structural
    evaluator = RuleEvaluator()
    outcome = evaluator.check(schema, apply_defaults(schema, route))
    assert outcome.failures == [] and outcome.transition_rules_skipped == 0
    assert {key[0] for key in evaluator._memo} == set(_rules(schema))  # each of its rules ran at least once


def test_transition_rules_are_skipped_and_counted_and_unevaluable_rules_reported():
    schema = {"type": "object", "properties": {"spec": {
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": "immutable"},
            {"rule": "ip(self.addr).family() == 4", "message": "IPv4 only"},
            {"rule": "self.addr != ''", "messageExpression": "'addr of ' + self.name + ' is empty'"},
        ],
        "properties": {"addr": {"type": "string"}, "name": {"type": "string"}},
    }}}
    outcome = RuleEvaluator().check(schema, {"spec": {"addr": "", "name": "w"}})
    assert outcome.transition_rules_skipped == 1 and outcome.evaluated == 2
    unevaluable, failed = outcome.failures
    assert unevaluable.unevaluable and "calls family, ip" in unevaluable.message
    assert (failed.path, failed.message, failed.unevaluable) == ("spec", "addr of w is empty", False)


def test_the_memo_gives_each_object_its_own_verdict(validator):
    bad = mutate("HTTPRoute", lambda s: _route(s, type="PathPrefix", value="api"))
    for _ in range(3):
        assert validator.problems(VALID["HTTPRoute"]) == []
        assert len(validator.problems(bad)) == 1


# What the API server accepts because it defaults first, and what it refuses besides the rules ----

ACCEPTED = [
    # verify.provider defaults to cosign: not a missing required property
    ("HelmRelease", lambda s: s["chart"]["spec"].update(verify={})),
    # an address's type defaults to IPAddress, which selects the oneOf branch of IP values
    ("Gateway", lambda s: s.update(addresses=[{"value": "10.0.0.1"}, {"value": "2001:db8::1"}])),
    # a null of a field that is not nullable and has no default is dropped, not refused
    ("HelmRelease", lambda s: s.update(serviceAccountName=None)),
]


@pytest.mark.parametrize(("kind", "change"), ACCEPTED, ids=["verify-defaults", "address-type-defaults", "null-dropped"])
def test_what_the_api_server_defaults_is_not_refused(kind, change, validator):
    assert validator.problems(mutate(kind, change)) == []


def _cors(**cors):
    return lambda s: s["rules"][0].update(filters=[{"type": "CORS", "cors": cors}])


SCHEMA_CORPUS = [
    # x-kubernetes-list-type map: items with the same keys; set: the same items (the API server's words)
    ("HTTPRoute", lambda s: s["rules"][0]["matches"][0].update(
        headers=[{"name": "x-env", "value": "a"}, {"name": "x-env", "value": "b"}]),
     'spec.rules.0.matches.0.headers.1: Duplicate value: {"name":"x-env"}'),
    ("HTTPRoute", lambda s: s["rules"][0].update(filters=[{"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": "x-a", "value": "1"}, {"name": "x-b", "value": "2"}, {"name": "x-a", "value": "3"}]}}]),
     'spec.rules.0.filters.0.requestHeaderModifier.set.2: Duplicate value: {"name":"x-a"}'),
    ("HTTPRoute", lambda s: s["rules"][0].update(filters=[{"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "remove": ["x-a", "x-a"]}}]),
     'spec.rules.0.filters.0.requestHeaderModifier.remove.1: Duplicate value: "x-a"'),
    ("Gateway", lambda s: s["listeners"].append(dict(s["listeners"][0])), 'spec.listeners.2: Duplicate value: {"name":"https"}'),
    # the ipv4/ipv6 formats of an IPAddress value (the type defaulted or given)
    ("Gateway", lambda s: s.update(addresses=[{"type": "IPAddress", "value": "not-an-ip"}]),
     "spec.addresses.0: {'type': 'IPAddress', 'value': 'not-an-ip'} is not valid under any of the given schemas"),
    ("Gateway", lambda s: s.update(addresses=[{"value": "10.0.0.300"}]),
     "spec.addresses.0: {'value': '10.0.0.300', 'type': 'IPAddress'} is not valid under any of the given schemas"),
]


@pytest.mark.parametrize(("kind", "change", "message"), SCHEMA_CORPUS, ids=[m.split(": ", 1)[0] for _, _, m in SCHEMA_CORPUS])
def test_list_uniqueness_and_formats_are_refused_like_the_api_server(kind, change, message, validator):
    problems = validator.problems(mutate(kind, change))
    assert rules_of(problems) == [message]
    assert {p.rule for p in problems} == {"schema"}


def test_a_null_with_a_default_is_defaulted_and_then_validated(validator):
    # path.type: null becomes PathPrefix, so the PathPrefix rule applies to the value
    problems = validator.problems(mutate("HTTPRoute", lambda s: _route(s, type=None, value="api")))
    assert rules_of(problems) == ["spec.rules[0].matches[0].path: value must be an absolute path and start with '/'"
                                  " when type one of ['Exact', 'PathPrefix']"]


def test_the_same_rule_text_keeps_each_of_its_messages(validator):
    """Gateway infrastructure labels and annotations (and CORS allowHeaders and allowMethods) share
    a rule's text with different messages: each node reports its own."""
    key = {"a" * 260 + "/b": "c"}
    gateway = validator.problems(mutate("Gateway", lambda s: s.update(infrastructure={"labels": key, "annotations": key})))
    assert rules_of(gateway) == [
        "spec.infrastructure.labels: If specified, the label key's prefix must be a DNS subdomain not longer than 253 characters in total.",
        "spec.infrastructure.annotations: If specified, the annotation key's prefix must be a DNS subdomain not longer"
        " than 253 characters in total."]
    route = validator.problems(mutate("HTTPRoute", _cors(allowHeaders=["*", "GET"], allowMethods=["*", "GET"])))
    assert rules_of(route) == [
        "spec.rules[0].filters[0].cors.allowHeaders: AllowHeaders cannot contain '*' alongside other methods",
        "spec.rules[0].filters[0].cors.allowMethods: AllowMethods cannot contain '*' alongside other methods"]


def test_status_is_dropped_only_under_a_status_subresource():
    """The API server drops `status` from an object it creates when the CRD has a status
    subresource: neither its schema nor its rules apply; without one, status is validated."""
    entry = {"apiVersion": "example.com/v1", "kind": "Widget", "plural": "widgets", "namespaced": True,
             "schema": {"type": "object", "properties": {"status": {
                 "type": "object", "properties": {"ready": {"type": "boolean"}},
                 "x-kubernetes-validations": [{"rule": "self.ready", "message": "not ready"}]}}}}
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with_subresource = Validator({("example.com/v1", "Widget"): crds.kind_schema({**entry, "statusSubresource": True})})
    without = Validator({("example.com/v1", "Widget"): crds.kind_schema(entry)})
    for status, message in [({"ready": "yes"}, "status.ready: 'yes' is not of type 'boolean'"), ({"ready": False}, "status: not ready")]:
        assert with_subresource.problems({**widget, "status": status}) == []
        assert rules_of(without.problems({**widget, "status": status})) == [message]
    assert with_subresource.rules_evaluated == 0


def test_a_defaulted_object_is_a_new_object_with_nulls_dropped():
    schema = {"type": "object", "properties": {
        "keep": {"type": "string", "nullable": True},
        "drop": {"type": "string"},
        "fill": {"type": "string", "default": "x"},
        "map": {"type": "object", "additionalProperties": {"type": "string"}},
        "list": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer", "default": 1}}}},
    }}
    value = {"keep": None, "drop": None, "fill": None, "map": {"k": None}, "list": [{}]}
    defaulted = apply_defaults(schema, value)
    assert defaulted == {"keep": None, "fill": "x", "map": {"k": None}, "list": [{"n": 1}]}
    assert value["list"] == [{}] and defaulted["list"] is not value["list"]
