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
    """The exact value of a quantity; ValueError naming the text when it is not one."""
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
