"""CEL as the Kubernetes API server evaluates it: the standard language plus Kubernetes' libraries.

The standard language comes from `common-expression-language` (the `cel` module, a compiled
CEL interpreter: about 1,000 times faster than a pure-Python one, which matters for checking
hundreds of apps). Kubernetes adds libraries to CEL (kubernetes.io/docs/reference/using-api/
cel/); those the CRDs and admission policies here can use are registered below as Python
functions: the string and list extensions, regex `find`/`findAll`, `isURL`/`url()`,
`isQuantity`/`quantity()` and `format`. A `url()` or `quantity()` value is a one-key map
(`{"__url__": …}`, `{"__quantity__": …}`) that the accessor functions understand. The
interpreter's `size()` counts a string's bytes; CEL counts code points, so expressions call
`codePointSize` instead (rewritten before compiling).

Known differences from the API server, none of which the rules here depend on: `exists`/`all`
stop at the first element whose predicate fails to evaluate (CEL's `||`/`&&` would absorb the
error when another element decides the result); `find`/`findAll` use Python's `re`, not RE2
(`matches` is the interpreter's own, RE2-like); no `cel.bind`, optional types (`?.`), `ip`/`cidr`,
`sets` or `authorizer` libraries; no cost limits.

`unsupported()` names what an expression calls or reads that neither the interpreter, these
libraries nor its variables provide (a function, or a namespace such as `sets.contains`), so
that a rule nobody can evaluate is reported instead of silently passing.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
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

# The variables of a CRD rule (and of its messageExpression).
CRD_VARIABLES = ("self", "oldSelf")

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


def _in_range(text: str, index: int) -> None:
    """CEL's string functions refuse an index outside the string (its length itself is allowed)."""
    if not 0 <= index <= len(text):
        raise ValueError(f"index out of range: {index}")


def _char_at(text: str, index: int) -> str:
    _in_range(text, index)
    return text[index:index + 1]


def _index_of(target, item, offset: int | None = None) -> int:
    if isinstance(target, str):
        _in_range(target, offset or 0)
        return target.find(item, offset or 0)
    if offset is not None:  # Kubernetes' list indexOf takes no offset: the API server would not compile it
        raise ValueError("found no matching overload for 'indexOf' applied to '(list, dyn, int)'")
    return target.index(item) if item in target else -1


def _last_index_of(target, item, offset: int | None = None) -> int:
    if isinstance(target, str):
        if offset is not None:
            _in_range(target, offset)
        return target.rfind(item, 0, None if offset is None else offset + len(item))
    if offset is not None:
        raise ValueError("found no matching overload for 'lastIndexOf' applied to '(list, dyn, int)'")
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


def _is_int64(number: Fraction) -> bool:
    return number.denominator == 1 and -2**63 <= number < 2**63


def _as_integer(value: dict) -> int:
    number = _q(value)
    if not _is_int64(number):
        raise ValueError("cannot convert value to integer")
    return int(number)


def _go_float(number: float) -> str:
    """A double as CEL's string() writes it: Go's strconv.FormatFloat(x, 'g', -1, 64)."""
    if number != number or number in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(number)]
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(digits) + exponent  # where the decimal point falls in the shortest digits
    if not -4 <= point - 1 < 6:
        result = text[0] + ("." + text[1:] if len(text) > 1 else "") + f"e{point - 1:+03d}"
    elif point <= 0:
        result = "0." + "0" * -point + text
    else:
        result = text[:point] + "0" * (point - len(text)) + ("." + text[point:] if len(text) > point else "")
    return ("-" if sign else "") + result


def _format_s(value, nested: bool = False) -> str:
    """`%s` as cel-go formats it: lists and maps in CEL syntax, strings quoted inside them."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if nested else value
    if isinstance(value, float):
        return f"{value:.6f}" if nested else _go_float(value)
    if isinstance(value, list):
        return "[" + ", ".join(_format_s(item, True) for item in value) + "]"
    if isinstance(value, dict):
        pairs = sorted((_format_s(k, True), _format_s(v, True)) for k, v in value.items())
        return "{" + ", ".join(f"{k}:{v}" for k, v in pairs) + "}"
    return str(value)


def _type_name(value) -> str:
    """The CEL name of a value's type, as errors name it."""
    names = {bool: "bool", int: "int", float: "double", str: "string", bytes: "bytes", list: "list", dict: "map"}
    return names.get(type(value), "null_type" if value is None else type(value).__name__)


def _format(template: str, args: list) -> str:
    """Kubernetes' string format: %s %d %f %e %x %X %o %b (a subset of Go's verbs)."""
    index = 0

    def one(match: re.Match) -> str:
        nonlocal index
        verb = match.group(0)
        if verb == "%%":
            return "%"
        if index >= len(args):
            raise ValueError(f"index {index} out of range")
        value, index = args[index], index + 1
        if verb[-1] == "s":
            return _format_s(value)
        if verb[-1] == "d" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"decimal clause can only be used on integers, was given {_type_name(value)}")
        if verb[-1] == "b":
            return format(value, "b")
        if verb[-1] in "xX" and isinstance(value, str):
            return format(int.from_bytes(value.encode(), "big"), f"0{2 * len(value.encode())}{verb[-1]}")
        return verb % value

    return re.sub(r"%%|%(?:\.\d+)?[sdfeExXob]", one, template)


def _compare(a, b) -> int:
    return (_q(a) > _q(b)) - (_q(a) < _q(b))


KUBERNETES_FUNCTIONS = {
    # strings (and lists, where Kubernetes overloads the name)
    "charAt": _char_at,
    "codePointSize": len,
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
    "isInteger": lambda q: _is_int64(_q(q)),
    "asInteger": _as_integer,
    "asApproximateFloat": lambda q: float(_q(q)),
    "sign": lambda q: (_q(q) > 0) - (_q(q) < 0),
    "add": lambda a, b: _quantity_from(_q(a) + (_q(b) if isinstance(b, dict) else b)),
    "sub": lambda a, b: _quantity_from(_q(a) - (_q(b) if isinstance(b, dict) else b)),
}

SUPPORTED = _STANDARD | frozenset(KUBERNETES_FUNCTIONS)


# Compile and evaluate --------------------------------------------------------------------------


# A string literal (CEL's quoting forms, with raw and bytes prefixes), or the name of a size() call.
_LITERAL_OR_SIZE = re.compile(
    r'(?P<literal>[rRbB]{0,2}(?:"""(?:\\.|[^\\])*?"""|' r"'''(?:\\.|[^\\])*?'''"
    r'|"(?:\\.|[^"\\\n])*"|' r"'(?:\\.|[^'\\\n])*'))"
    r"|\bsize(?=\s*\()", re.S)
# The variable a comprehension macro binds (`self.all(x, …)` binds x).
_COMPREHENSION = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")


@lru_cache(maxsize=None)
def compile_expression(expression: str) -> cel.Program:
    """The compiled program of an expression, once per process; CelError if it does not parse.

    Calls of size() become codePointSize() (outside string literals): the interpreter's size()
    counts a string's bytes, CEL counts its code points."""
    source = _LITERAL_OR_SIZE.sub(lambda m: m.group("literal") or "codePointSize", expression)
    try:
        return cel.compile(source)
    except (ValueError, RuntimeError) as error:
        raise CelUnsupported(f"does not compile: {error}") from None


@lru_cache(maxsize=None)
def _free_names(expression: str) -> frozenset[str]:
    """The identifiers an expression reads that no comprehension of its own binds."""
    return frozenset(compile_expression(expression).variables()) - set(_COMPREHENSION.findall(expression))


def unsupported(expression: str, variables=CRD_VARIABLES) -> list[str]:
    """What the expression calls or reads that nothing here provides (empty: it can be evaluated):
    functions, and names that are none of `variables` (`sets` of `sets.contains(…)`)."""
    names = {_qualified(expression, name) for name in _free_names(expression) - set(variables)}
    # `greatest` of `math.greatest` is named once, with its namespace
    functions = set(compile_expression(expression).functions()) - SUPPORTED - {n.partition(".")[2] for n in names}
    return sorted(functions | names)


def _qualified(expression: str, name: str) -> str:
    """`sets.contains` for the namespace `sets` when the expression calls a function in it."""
    call = re.search(rf"(?<![\w.]){re.escape(name)}\s*\.\s*(\w+)\s*\(", expression)
    return f"{name}.{call.group(1)}" if call else name


def evaluate(expression: str, bindings: dict):
    """The value of an expression over variables (plain JSON-like Python values).

    Raises CelUnsupported when the expression cannot be evaluated here, CelError when it fails on
    these values."""
    program = compile_expression(expression)
    missing = unsupported(expression, bindings)
    if missing:
        raise CelUnsupported(f"calls {', '.join(missing)}, which this evaluator does not provide")
    context = cel.Context()
    # Only what it reads: handing a value to the interpreter converts it whole, and an admission
    # request binds the object, its old version, the request and the namespace to every expression.
    for name in _free_names(expression) & bindings.keys():
        context.add_variable(name, bindings[name])
    for name in _used_functions(expression):
        context.add_function(name, KUBERNETES_FUNCTIONS[name])
    try:
        return program.execute(context)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
        raise CelError(_short(error)) from None
    except ArithmeticError as error:  # 1/0, 1 % 0, int64 overflow: evaluation errors in CEL too
        raise CelError("integer overflow" if isinstance(error, OverflowError)
                       else str(error).replace(" in CEL expression", "")) from None


@lru_cache(maxsize=None)
def _used_functions(expression: str) -> tuple[str, ...]:
    return tuple(sorted(set(compile_expression(expression).functions()) & set(KUBERNETES_FUNCTIONS)))


def _short(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"no such key: {error.args[0]}"
    text = str(error).split(". Check", 1)[0].split(". CEL does not", 1)[0]
    # An error one of the functions above raised, without the interpreter's wrapping.
    return re.sub(r"^Function '\w+' error: Python function call failed: \w+: ", "", text)
