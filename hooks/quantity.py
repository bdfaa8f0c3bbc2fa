"""Kubernetes resource quantities ('500m', '1Gi', '1e3') as exact numbers."""

from __future__ import annotations

import re
from fractions import Fraction

_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}
PATTERN = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")


def parse_quantity(text: object) -> Fraction:
    """The exact value of a quantity; ValueError naming the text when it is not one. A YAML
    number is read as the API server reads it, from its digits (`cpu: 0.5` is 500m)."""
    if isinstance(text, float):
        text = repr(text)
    match = PATTERN.match(text.strip()) if isinstance(text, str) else None
    if match is None and isinstance(text, int) and not isinstance(text, bool):
        return Fraction(text)
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)")
    number, exponent, suffix = match.groups()
    value = Fraction(number)
    return value * Fraction(10) ** int(exponent[1:]) if exponent else value * _SUFFIXES[suffix or ""]


def is_quantity(text: object) -> bool:
    try:
        parse_quantity(text)
    except ValueError:
        return False
    return True


_DECIMAL = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def format_quantity(value: Fraction, binary: bool = False, exponent: bool = False) -> str:
    """A value as the API server prints a quantity (Quantity.String()): the largest suffix that
    keeps the number whole, binary (Ki, Mi…) when the quantity was written so and is at least 1Ki,
    `e<n>` instead of a decimal suffix when it was written with an exponent."""
    if binary and value.denominator == 1 and abs(value) >= 1024:
        number, power = value.numerator, 0
        while number % 1024 == 0 and power < len(_BINARY) - 1:
            number, power = number // 1024, power + 1
        return f"{number}{_BINARY[power]}"
    power = next((p for p in sorted(_DECIMAL, reverse=True) if (value / Fraction(10) ** p).denominator == 1), -9)
    number = value / Fraction(10) ** power
    whole = -(-number.numerator // number.denominator)  # below a nano the API server rounds up
    if not whole:
        return "0"
    return f"{whole}{(f'e{power}' if power else '') if exponent else _DECIMAL[power]}"


def canonical(text: object) -> str:
    """A quantity as the API server prints it back: '3000m' is '3', '1024Mi' is '1Gi'."""
    value = parse_quantity(text)
    match = PATTERN.match(text.strip()) if isinstance(text, str) else None
    _, exponent, suffix = match.groups() if match else (None, None, None)
    return format_quantity(value, binary=bool(suffix and suffix.endswith("i")), exponent=bool(exponent))
