"""What the API server does to a custom object besides checking its structure: schema defaults and CEL rules.

Mirrors the order of the API server: an object is defaulted from its CRD schema (nulls of
non-nullable fields dropped, `default` of every absent property whose parent is present:
apply_defaults), the defaulted object is validated (hooks.validate), then every
`x-kubernetes-validations` rule is evaluated at the node it is attached to, with `self` bound to that node (schema property names
escaped as Kubernetes does in CRD rules: `namespace` -> `__namespace__`). Transition rules (those
using `oldSelf`) only apply to updates, which an offline check cannot see: they are skipped and counted.

Rule results are memoised on (rule, its message, node): the objects of many apps repeat the same nodes, so a
500-app repository evaluates each distinct node once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hooks import cel


@dataclass(frozen=True)
class RuleFailure:
    """One rule an object breaks: where (Kubernetes field path), the message, and whether the rule
    itself could not be evaluated (then `message` says why)."""

    path: str
    message: str
    unevaluable: bool = False


@dataclass
class Outcome:
    failures: list[RuleFailure] = field(default_factory=list)
    evaluated: int = 0
    transition_rules_skipped: int = 0


def apply_defaults(schema: dict, value: object) -> object:
    """The value as the API server holds it before validating: a null of a field that is not
    `nullable` dropped (or defaulted when the field has a default), the schema's defaults filled in
    where a field is absent. A new object throughout; the input is not changed."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
        result = {}
        for name, item in value.items():
            sub = properties.get(name, extra)
            if sub is None:
                result[name] = apply_defaults({}, item)
            elif item is not None or sub.get("nullable"):
                result[name] = apply_defaults(sub, item)
            elif "default" in sub:
                result[name] = apply_defaults(sub, sub["default"])
            elif name not in properties:
                result[name] = None  # a map's null value is kept (and refused by the schema)
        for name, sub in properties.items():
            if name not in result and "default" in sub:
                result[name] = apply_defaults(sub, sub["default"])
        return result
    if isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        default = items.get("default") if not items.get("nullable") else None
        return [apply_defaults(items, default if item is None and default is not None else item) for item in value]
    return value


def as_cel(schema: dict, value: object, escape: bool = True) -> object:
    """The value as CEL sees it: undeclared properties dropped unless the schema preserves unknown
    fields (the API server prunes them), declared property names escaped when `escape`.

    CRD rules (`self`) see escaped names (`namespace` -> `__namespace__`); admission policies do
    not: the API server hands them the object as a plain map, where `object.x.__namespace__` is a
    key that never exists and `object.x.namespace` is the field."""
    if isinstance(value, dict):
        properties = schema.get("properties")
        if properties:
            keep = schema.get("x-kubernetes-preserve-unknown-fields")
            return {
                (cel.escape_property(k) if escape and k in properties else k): as_cel(properties.get(k, {}), v, escape)
                for k, v in value.items()
                if k in properties or keep
            }
        extra = schema.get("additionalProperties")
        return {k: as_cel(extra if isinstance(extra, dict) else {}, v, escape) for k, v in value.items()}
    if isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [as_cel(items, item, escape) for item in value]
    return value


def _is_transition(rule: dict) -> bool:
    return "oldSelf" in rule.get("rule", "") or bool(rule.get("optionalOldSelf"))


class RuleEvaluator:
    """Evaluates CRD rules; one instance per check, sharing the memo across objects."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, str | None, str | None, str], tuple[bool | None, str]] = {}

    def check(self, schema: dict, obj: dict) -> Outcome:
        """Evaluate every rule of the schema over the object (the root), defaulted by apply_defaults."""
        outcome = Outcome()
        self._walk(schema, obj, "", outcome)
        return outcome

    def _walk(self, schema: dict, value: object, path: str, outcome: Outcome) -> None:
        rules = schema.get("x-kubernetes-validations") or []
        if rules and value is not None:
            bound = None
            for rule in rules:
                if _is_transition(rule):
                    outcome.transition_rules_skipped += 1
                    continue
                if bound is None:
                    bound = as_cel(schema, value)
                outcome.evaluated += 1
                failure = self._one(rule, bound, path)
                if failure is not None:
                    outcome.failures.append(failure)
        if isinstance(value, dict):
            properties = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            for name, item in value.items():
                sub = properties.get(name, extra if isinstance(extra, dict) else None)
                if sub is not None:
                    self._walk(sub, item, f"{path}.{name}" if path else name, outcome)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                self._walk(schema["items"], item, f"{path}[{index}]", outcome)

    def _one(self, rule: dict, bound: object, path: str) -> RuleFailure | None:
        # The message is part of the key: CRDs repeat a rule's text with another message.
        key = (rule["rule"], rule.get("message"), rule.get("messageExpression"),
               json.dumps(bound, sort_keys=True, separators=(",", ":")))
        if key not in self._memo:
            self._memo[key] = self._evaluate(rule, bound)
        passed, message = self._memo[key]
        if passed:
            return None
        where = path + (rule.get("fieldPath") or "") if path or rule.get("fieldPath") else "(object)"
        return RuleFailure(where.lstrip("."), message, unevaluable=passed is None)

    @staticmethod
    def _evaluate(rule: dict, bound: object) -> tuple[bool | None, str]:
        """(True, '') when the rule holds; (False, message) when not; (None, why) when it cannot run."""
        try:
            result = cel.evaluate(rule["rule"], {"self": bound})
        except cel.CelUnsupported as error:
            return None, f"rule cannot be evaluated ({error}): {rule['rule']}"
        except cel.CelError as error:
            # The API server's wording for a rule that fails on the object (e.g. an absent field).
            return False, f"{error} evaluating rule: {rule.get('message') or rule['rule']}"
        if result is True:
            return True, ""
        if result is not False:
            return None, f"rule returned {result!r}, not a bool: {rule['rule']}"
        message = rule.get("message") or f"failed rule: {rule['rule']}"
        if rule.get("messageExpression"):
            try:
                message = str(cel.evaluate(rule["messageExpression"], {"self": bound}))
            except cel.CelError:
                pass  # the API server also falls back to `message` when the expression fails
        return False, message
