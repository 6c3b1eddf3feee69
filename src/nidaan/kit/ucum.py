"""Units of measure compared by meaning: the UCUM canonical form of a unit as labs write it.

Analyzers and catalogues spell one unit many ways: ``10*3/uL`` (UCUM), ``10^3/µL``,
``x10³/µL``, ``10^9/L``, ``K/uL``, ``thou/cumm``. :func:`canonical` reduces a unit to a
factor and a product of base units (``10^3/uL`` -> 10^12 · m^-3), so :func:`same_unit`
accepts every spelling of the same unit and still refuses a genuinely different one
(``10^6/uL``, ``mmol/L`` for ``mg/dL``). It covers the UCUM grammar labs use (prefixes,
atoms, exponents, ``.``/``/``, parentheses, ``{annotations}``, ``10*n``/``10^n``) plus the
common non-UCUM lab words; a unit it cannot read compares as text.

Matching is case-insensitive on purpose: analyzers send ``MG/DL`` and ``mg/dl``. So ``m`` is
always milli and the mega/giga prefixes, which no lab unit uses, are not read.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from typing import Final

__all__ = ["Canonical", "canonical", "same_unit"]

#: (factor, base exponents) with bases m (metre), g, s, mol, eq, iu, arb (arbitrary units).
Canonical = tuple[Decimal, tuple[tuple[str, int], ...]]

_ONE: Final = Decimal(1)

_PREFIXES: Final[dict[str, Decimal]] = {
    "da": Decimal("1e1"),
    "k": Decimal("1e3"),
    "d": Decimal("1e-1"),
    "c": Decimal("1e-2"),
    "m": Decimal("1e-3"),
    "u": Decimal("1e-6"),
    "n": Decimal("1e-9"),
    "p": Decimal("1e-12"),
    "f": Decimal("1e-15"),
    "a": Decimal("1e-18"),
}

# atom -> (factor, {base: exponent}); lower case (see the module docstring).
_ATOMS: Final[dict[str, tuple[Decimal, dict[str, int]]]] = {
    "m": (_ONE, {"m": 1}),
    "g": (_ONE, {"g": 1}),
    "l": (Decimal("1e-3"), {"m": 3}),
    "s": (_ONE, {"s": 1}),
    "sec": (_ONE, {"s": 1}),
    "min": (Decimal(60), {"s": 1}),
    "h": (Decimal(3600), {"s": 1}),
    "hr": (Decimal(3600), {"s": 1}),
    "d": (Decimal(86400), {"s": 1}),
    "mol": (_ONE, {"mol": 1}),
    "eq": (_ONE, {"eq": 1}),
    "u": (Decimal("1e-6") / 60, {"mol": 1, "s": -1}),  # enzyme unit: umol/min
    "kat": (_ONE, {"mol": 1, "s": -1}),
    "iu": (_ONE, {"iu": 1}),
    "[iu]": (_ONE, {"iu": 1}),
    "[arb'u]": (_ONE, {"arb": 1}),
    "%": (Decimal("1e-2"), {}),
    "mm[hg]": (_ONE, {"mmhg": 1}),
    "mmhg": (_ONE, {"mmhg": 1}),
    # lab words that are not UCUM
    "cumm": (Decimal("1e-9"), {"m": 3}),  # cubic millimetre = microlitre
    "cmm": (Decimal("1e-9"), {"m": 3}),
    "thou": (Decimal("1e3"), {}),
    "k": (Decimal("1e3"), {}),  # "K/uL": thousands per microlitre
    "lakh": (Decimal("1e5"), {}),
    "mill": (Decimal("1e6"), {}),
    "cells": (_ONE, {}),
    "cell": (_ONE, {}),
}

_SUPERSCRIPTS: Final = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SUPERSCRIPT_POWER: Final = re.compile(r"10([⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)")
# "x10^3", "x10³" (also with the multiplication sign), "10e3", "10E3" -> UCUM's "10*3"
_POWER_OF_TEN: Final = re.compile(r"(?:^|(?<=[\s./(]))[x\u00d7]?\s*10\s*(?:\*|\^|e)\s*([+-]?\d+)")
_TOKEN: Final = re.compile(
    r"\s*(?:(?P<ten>10\*(?P<tenexp>[+-]?\d+))|(?P<num>\d+(?:\.\d+)?)"
    r"|(?P<annotation>\{[^}]*\})|(?P<op>[./()])|(?P<unit>[a-z%\[\]']+(?:\[[a-z]+\])?)"
    r"(?P<exp>[+-]?\d+)?)"
)


class _Unreadable(ValueError):
    pass


def _atom(word: str) -> tuple[Decimal, dict[str, int]]:
    if word in _ATOMS:
        return _ATOMS[word]
    for prefix in sorted(_PREFIXES, key=len, reverse=True):
        rest = word[len(prefix) :]
        if word.startswith(prefix) and rest in _ATOMS and rest not in ("k", "thou", "lakh"):
            factor, dims = _ATOMS[rest]
            return _PREFIXES[prefix] * factor, dims
    raise _Unreadable(word)


def _multiply(
    into: tuple[Decimal, dict[str, int]], other: tuple[Decimal, dict[str, int]], power: int
) -> tuple[Decimal, dict[str, int]]:
    factor, dims = into
    other_factor, other_dims = other
    dims = dict(dims)
    for base, exp in other_dims.items():
        dims[base] = dims.get(base, 0) + exp * power
    return factor * other_factor**power, dims


def _parse(text: str) -> tuple[Decimal, dict[str, int]]:
    tokens = list(_TOKEN.finditer(text))
    if "".join(m.group(0) for m in tokens).replace(" ", "") != text.replace(" ", ""):
        raise _Unreadable(text)
    position = 0

    def term() -> tuple[Decimal, dict[str, int]]:
        nonlocal position
        value: tuple[Decimal, dict[str, int]] = (_ONE, {})
        power = 1
        while position < len(tokens):
            token = tokens[position]
            if token.group("op") == ")":
                break
            position += 1
            if token.group("op") == "/":
                power = -1
                continue
            if token.group("op") == ".":
                power = 1
                continue
            if token.group("op") == "(":
                inner = term()
                if position >= len(tokens) or tokens[position].group("op") != ")":
                    raise _Unreadable(text)
                position += 1
                value = _multiply(value, inner, power)
            elif token.group("ten"):
                value = _multiply(value, (Decimal(10) ** int(token.group("tenexp")), {}), power)
            elif token.group("num"):
                value = _multiply(value, (Decimal(token.group("num")), {}), power)
            elif token.group("annotation"):
                pass  # {cells}, {1.73_m2}: annotations carry no meaning in UCUM
            else:
                exp = int(token.group("exp") or 1)
                atom = _atom(token.group("unit"))
                powered = (atom[0] ** exp, {b: e * exp for b, e in atom[1].items()})
                value = _multiply(value, powered, power)
            # A "/" applies to what follows up to the next "." or "/", so lab spellings
            # such as "mL/min/1.73 m2" divide by the body surface area as meant.
        return value

    result = term()
    if position != len(tokens):
        raise _Unreadable(text)
    return result


@lru_cache(maxsize=1024)
def canonical(unit: str) -> Canonical | None:
    """``unit`` as (factor, base exponents); None when it cannot be read."""
    text = _SUPERSCRIPT_POWER.sub(lambda m: "10^" + m.group(1), unit.strip())
    text = text.translate(_SUPERSCRIPTS).replace("\u00b5", "u").replace("\u03bc", "u")
    text = _POWER_OF_TEN.sub(lambda m: f"10*{m.group(1)}", text.lower())
    text = re.sub(r"\s*([./()])\s*", r"\1", text)
    if not text:
        return None
    try:
        factor, dims = _parse(text)
    except (_Unreadable, ArithmeticError):
        return None
    return factor.normalize(), tuple(sorted((b, e) for b, e in dims.items() if e))


def same_unit(a: str, b: str) -> bool:
    """Whether two spellings mean the same unit (exactly: same dimension and factor)."""
    if a.strip().casefold() == b.strip().casefold():
        return True
    left, right = canonical(a), canonical(b)
    return left is not None and left == right
