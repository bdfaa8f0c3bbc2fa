"""CEL as the Kubernetes API server evaluates it: the standard language plus Kubernetes' libraries.

The standard language comes from `common-expression-language` (the `cel` module, a compiled
CEL interpreter: about 1,000 times faster than a pure-Python one, which matters for checking
hundreds of apps). Kubernetes adds libraries to CEL (kubernetes.io/docs/reference/using-api/
cel/); those the CRDs and admission policies here can use are registered below as Python
functions: the string and list extensions, regex `find`/`findAll`, `isURL`/`url()`,
`isQuantity`/`quantity()` and `format`. A `url()` or `quantity()` value is a one-key map
(`{"__url__": …}`, `{"__quantity__": …}`) that the accessor functions understand.

Known differences from the API server, none of which the rules here depend on: `size()` of a
string counts bytes, not code points; no `cel.bind`, optional types (`?.`), `ip`/`cidr` or
`authorizer` libraries; no cost limits.

`unsupported()` names what an expression calls that neither the interpreter nor these libraries
provide, so that a rule nobody can evaluate is reported instead of silently passing.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache
from urllib.parse import urlsplit

import cel

from hooks.quantity import is_quantity, parse_quantity

# Functions and operators the interpreter implements itself (CEL spec, standard definitions).
_STANDARD = frozenset({
    "@in", "@not_strictly_false", "_!=_", "_%_", "_&&_", "_*_", "_+_", "_-_", "_/_", "_<=_", "_<_",
    "_==_", "_>=_", "_>_", "_?_:_", "_[_]", "_||_", "!_", "-_", "bool", "bytes", "contains", "double",
    "duration", "dyn", "endsWith", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
    "getFullYear", "getHours", "getMilliseconds", "getMinutes", "getMonth", "getSeconds", "int",
    "matches", "size", "startsWith", "string", "timestamp", "type", "uint",
})

# Identifiers Kubernetes escapes when a schema property has that name (`namespace` -> `__namespace__`).
RESERVED = frozenset({
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function",
    "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
})


class CelError(Exception):
    """An expression failed while evaluating (`no such key`, a bad argument): the API server then
    refuses the object too, saying `<error> evaluating rule: <rule>`."""


class CelUnsupported(CelError):
    """An expression that does not compile here or calls a function nothing here provides."""


def escape_property(name: str) -> str:
    """A schema property name as CEL sees it (Kubernetes' escaping rules)."""
    if name in RESERVED:
        return f"__{name}__"
    return (name.replace("__", "__underscores__").replace(".", "__dot__")
            .replace("-", "__dash__").replace("/", "__slash__"))


# Kubernetes libraries ----------------------------------------------------------------------------


def _index_of(target, item, offset: int = 0) -> int:
    if isinstance(target, str):
        return target.find(item, offset)
    return target.index(item) if item in target else -1


def _last_index_of(target, item, offset: int | None = None) -> int:
    if isinstance(target, str):
        return target.rfind(item, 0, None if offset is None else offset + len(item))
    return len(target) - 1 - target[::-1].index(item) if item in target else -1


def _split(text: str, separator: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    return text.split(separator, limit - 1) if limit > 0 else text.split(separator)


def _replace(text: str, old: str, new: str, limit: int = -1) -> str:
    return text.replace(old, new, limit)


def _substring(text: str, start: int, end: int | None = None) -> str:
    if start < 0 or start > len(text) or (end is not None and (end < start or end > len(text))):
        raise ValueError(f"substring({start}, {end}) out of range for a string of length {len(text)}")
    return text[start:end]


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    found = [m.group(0) for m in re.finditer(pattern, text)]
    return found if limit < 0 else found[:limit]


def _find(text: str, pattern: str) -> str:
    match = re.search(pattern, text)
    return match.group(0) if match else ""


def _is_url(text: str) -> bool:
    # Go's url.ParseRequestURI: an absolute URL or an absolute path.
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return bool(parts.scheme and (parts.netloc or parts.path)) or text.startswith("/")


def _url(text: str) -> dict:
    if not _is_url(text):
        raise ValueError(f"URL parse error during conversion from string: {text!r}")
    return {"__url__": text}


def _url_part(value: dict, part: str):
    parts = urlsplit(value["__url__"])
    return {
        "scheme": parts.scheme, "host": parts.netloc.rpartition("@")[2], "hostname": parts.hostname or "",
        "port": str(parts.port or ""), "path": parts.path, "query": {k: [v] for k, _, v in
                                                                     (q.partition("=") for q in parts.query.split("&") if q)},
    }[part]


def _quantity(text: str) -> dict:
    parse_quantity(text)  # refuses an invalid quantity, as the API server does
    return {"__quantity__": text}


def _q(value) -> Fraction:
    return parse_quantity(value["__quantity__"])


def _quantity_from(number: Fraction) -> dict:
    return {"__quantity__": str(number.numerator) if number.denominator == 1 else f"{float(number)!r}"}


def _format(template: str, args: list) -> str:
    """Kubernetes' string format: %s %d %f %e %x %X %o %b (a subset of Go's verbs)."""
    values = iter(args)

    def one(match: re.Match) -> str:
        verb = match.group(0)
        if verb == "%%":
            return "%"
        value = next(values)
        if verb[-1] == "b":
            return format(value, "b")
        if verb[-1] == "s":
            return str(value).lower() if isinstance(value, bool) else str(value)
        return verb % value

    return re.sub(r"%%|%(?:\.\d+)?[sdfeExXob]", one, template)


def _compare(a, b) -> int:
    return (_q(a) > _q(b)) - (_q(a) < _q(b))


KUBERNETES_FUNCTIONS = {
    # strings (and lists, where Kubernetes overloads the name)
    "charAt": lambda s, i: s[i] if i < len(s) else "",
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "lowerAscii": lambda s: s.lower() if s.isascii() else "".join(c.lower() if c.isascii() else c for c in s),
    "upperAscii": lambda s: s.upper() if s.isascii() else "".join(c.upper() if c.isascii() else c for c in s),
    "replace": _replace,
    "split": _split,
    "substring": _substring,
    "trim": lambda s: s.strip(),
    "join": lambda items, separator="": separator.join(items),
    "reverse": lambda value: value[::-1],
    "format": _format,
    # lists
    "isSorted": lambda items: list(items) == sorted(items),
    "sum": lambda items: sum(items),
    "min": lambda items: min(items),
    "max": lambda items: max(items),
    # regex
    "find": _find,
    "findAll": _find_all,
    # URLs
    "isURL": _is_url,
    "url": _url,
    "getScheme": lambda u: _url_part(u, "scheme"),
    "getHost": lambda u: _url_part(u, "host"),
    "getHostname": lambda u: _url_part(u, "hostname"),
    "getPort": lambda u: _url_part(u, "port"),
    "getEscapedPath": lambda u: _url_part(u, "path"),
    "getQuery": lambda u: _url_part(u, "query"),
    # quantities
    "isQuantity": is_quantity,
    "quantity": _quantity,
    "compareTo": _compare,
    "isGreaterThan": lambda a, b: _compare(a, b) > 0,
    "isLessThan": lambda a, b: _compare(a, b) < 0,
    "isInteger": lambda q: _q(q).denominator == 1,
    "asInteger": lambda q: int(_q(q)),
    "asApproximateFloat": lambda q: float(_q(q)),
    "sign": lambda q: (_q(q) > 0) - (_q(q) < 0),
    "add": lambda a, b: _quantity_from(_q(a) + (_q(b) if isinstance(b, dict) else b)),
    "sub": lambda a, b: _quantity_from(_q(a) - (_q(b) if isinstance(b, dict) else b)),
}

SUPPORTED = _STANDARD | frozenset(KUBERNETES_FUNCTIONS)


# Compile and evaluate --------------------------------------------------------------------------


@lru_cache(maxsize=None)
def compile_expression(expression: str) -> cel.Program:
    """The compiled program of an expression, once per process; CelError if it does not parse."""
    try:
        return cel.compile(expression)
    except (ValueError, RuntimeError) as error:
        raise CelUnsupported(f"does not compile: {error}") from None


def unsupported(expression: str) -> list[str]:
    """Functions the expression calls that nothing here implements (empty: it can be evaluated)."""
    return sorted(set(compile_expression(expression).functions()) - SUPPORTED)


def evaluate(expression: str, bindings: dict):
    """The value of an expression over variables (plain JSON-like Python values).

    Raises CelUnsupported when the expression cannot be evaluated here, CelError when it fails on
    these values."""
    program = compile_expression(expression)
    missing = unsupported(expression)
    if missing:
        raise CelUnsupported(f"calls {', '.join(missing)}, which this evaluator does not provide")
    context = cel.Context()
    for name, value in bindings.items():
        context.add_variable(name, value)
    for name in _used_functions(expression):
        context.add_function(name, KUBERNETES_FUNCTIONS[name])
    try:
        return program.execute(context)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
        raise CelError(_short(error)) from None


@lru_cache(maxsize=None)
def _used_functions(expression: str) -> tuple[str, ...]:
    return tuple(sorted(set(compile_expression(expression).functions()) & set(KUBERNETES_FUNCTIONS)))


def _short(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"no such key: {error.args[0]}"
    return str(error).split(". Check", 1)[0].split(". CEL does not", 1)[0]
