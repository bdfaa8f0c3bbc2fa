"""hooks.cel: the standard language plus Kubernetes' CEL libraries, and what cannot be evaluated."""

from __future__ import annotations

from fractions import Fraction

import pytest

from hooks import cel
from hooks.quantity import parse_quantity
from hooks.crds import bundle_entries


def every_rule(node: object):
    if isinstance(node, dict):
        for rule in node.get("x-kubernetes-validations") or []:
            yield rule
        for value in node.values():
            yield from every_rule(value)
    elif isinstance(node, list):
        for item in node:
            yield from every_rule(item)


def test_every_rule_of_every_shipped_crd_can_be_evaluated():
    """The suite fails as soon as a CRD the check knows carries a rule nothing here can evaluate."""
    rules = [(e["kind"], r) for e in bundle_entries() for r in every_rule(e["schema"])]
    assert len(rules) > 70  # Gateway API alone carries ~70
    for kind, rule in rules:
        for expression in filter(None, (rule.get("rule"), rule.get("messageExpression"))):
            assert cel.unsupported(expression) == [], (kind, expression)


@pytest.mark.parametrize(("expression", "value", "expected"), [
    ("self.split('/')", "a/b/c", ["a", "b", "c"]),
    ("self.split('/', 2)", "a/b/c", ["a", "b/c"]),
    ("self.lowerAscii()", "ABC", "abc"),
    ("self.upperAscii()", "abc", "ABC"),
    ("self.indexOf('b')", "abc", 1),
    ("self.lastIndexOf('a')", "abca", 3),
    ("self.replace('a', 'x')", "aba", "xbx"),
    ("self.replace('a', 'x', 1)", "aba", "xba"),
    ("self.substring(1, 2)", "abc", "b"),
    ("self.trim()", "  a ", "a"),
    ("self.charAt(1)", "abc", "b"),
    ("self.join('.')", ["a", "b"], "a.b"),
    ("self.indexOf(2)", [1, 2], 1),
    ("self.isSorted()", [1, 2, 3], True),
    ("self.sum()", [1, 2, 3], 6),
    ("self.find('[0-9]+')", "ab12c3", "12"),
    ("self.findAll('[0-9]+')", "ab12c3", ["12", "3"]),
    ("isURL(self)", "https://example.com/a", True),
    ("isURL(self)", "not a url", False),
    ("url(self).getHostname()", "https://example.com:8443/a", "example.com"),
    ("url(self).getPort()", "https://example.com:8443/a", "8443"),
    ("url(self).getScheme()", "https://example.com", "https"),
    ("isQuantity(self)", "500m", True),
    ("isQuantity(self)", "500x", False),
    ("quantity(self).isGreaterThan(quantity('1Gi'))", "1025Mi", True),
    ("quantity(self).compareTo(quantity('1000m'))", "1", 0),
    ("quantity(self).asInteger()", "2k", 2000),
    ("'%s is %d'.format([self, 3])", "x", "x is 3"),
    ("self.all(p, p.__namespace__ == 'a')", [{"__namespace__": "a"}], True),
    ("has(self.a) ? self.a : 'none'", {}, "none"),
    # CEL semantics the interpreter alone gets wrong
    ("self.size()", "héllo", 5),  # code points, not bytes
    ("size(self) == 5 && 'size(' != ''", "héllo", True),  # a string literal is not rewritten
    ("self.charAt(3)", "abc", ""),
    ("'abcabc'.indexOf('b', 2)", None, 4),
    ("quantity('1.5').isInteger()", None, False),
    ("'%s|%s|%s|%s|%s'.format([null, [1, 'a', 2.5, true], {'b': 1, 'a': 'x'}, 2.5, 1e6])", None,
     'null|[1, "a", 2.500000, true]|{"a":"x", "b":1}|2.5|1e+06'),
    ("'%x'.format(['hi'])", None, "6869"),
])
def test_kubernetes_libraries(expression, value, expected):
    assert cel.evaluate(expression, {"self": value}) == expected


def test_quantities_are_exact():
    assert parse_quantity("1.5Gi") == Fraction(3 * 2**29)
    assert parse_quantity("100m") == Fraction(1, 10)
    assert parse_quantity("1e3") == 1000
    with pytest.raises(ValueError):
        parse_quantity("1.5GiB")


def test_what_cannot_be_evaluated_is_an_error_never_a_pass():
    with pytest.raises(cel.CelUnsupported, match="calls family, ip, which this evaluator does not provide"):
        cel.evaluate("ip(self).family() == 4", {"self": "10.0.0.1"})
    with pytest.raises(cel.CelUnsupported, match="does not compile"):
        cel.evaluate("self.(", {"self": 1})
    with pytest.raises(cel.CelError, match="no such key: b"):
        cel.evaluate("self.b == 1", {"self": {"a": 1}})
    assert cel.unsupported("self.matches('x') && self.split('/').size() > 0 && self.ipv4()") == ["ipv4"]


def test_reserved_and_special_property_names_are_escaped_like_kubernetes():
    assert cel.escape_property("namespace") == "__namespace__"
    assert cel.escape_property("a.b-c/d") == "a__dot__b__dash__c__slash__d"
    assert cel.escape_property("x__y") == "x__underscores__y"
    assert cel.escape_property("name") == "name"


@pytest.mark.parametrize(("expression", "message"), [
    ("1 / 0 == 0", "division by zero"),
    ("1 % 0 == 0", "modulo by zero"),
    ("9223372036854775807 + 1 > 0", "integer overflow"),
    ("'abc'.charAt(-1) == ''", "index out of range: -1"),
    ("'abc'.charAt(4) == ''", "index out of range: 4"),
    ("'abc'.indexOf('b', 7) == 1", "index out of range: 7"),
    ("[1, 2, 1].indexOf(1, 1) == 2", "found no matching overload for 'indexOf' applied to '(list, dyn, int)'"),
    ("quantity('1.5').asInteger() == 1", "cannot convert value to integer"),
    ("'%s and %s'.format(['a']) == ''", "index 1 out of range"),
    ("'%d'.format(['a']) == ''", "decimal clause can only be used on integers, was given string"),
])
def test_evaluation_errors_are_cel_errors_in_the_api_servers_words(expression, message):
    with pytest.raises(cel.CelError) as error:
        cel.evaluate(expression, {"self": None})
    assert str(error.value) == message and not isinstance(error.value, cel.CelUnsupported)


def test_namespaced_and_undefined_functions_cannot_be_evaluated():
    assert cel.unsupported("sets.contains(self, [1])") == ["sets.contains"]
    assert cel.unsupported("math.greatest(1, self)") == ["math.greatest"]
    assert cel.unsupported("self.all(x, x > limit)") == ["limit"]
    assert cel.unsupported("self.all(x, x > 0) && self.exists(y, y == oldSelf)") == []
    with pytest.raises(cel.CelUnsupported, match="calls sets.contains, which this evaluator does not provide"):
        cel.evaluate("sets.contains(self, [1])", {"self": [1]})
