"""Human text hygiene: no control characters in names, notes and other typed text.

A name with a bell, an escape sequence or a carriage return in it breaks labels, PDFs,
HL7 segments (``\\r`` ends a segment) and terminals, and a NUL cannot be stored in
PostgreSQL at all. Request schemas refuse them (422 naming the field) instead of storing
them. Single-line text refuses every control character; multi-line text (notes, comments,
addresses) allows line breaks and tabs. Both refuse the Unicode bidirectional overrides
that make text display differently from what it says; the zero-width joiners that Indian
scripts need are kept.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

#: Invisible characters that reorder how text is displayed ("Trojan Source", CVE-2021-42574).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LINE_BREAKS_AND_TABS = frozenset("\n\r\t")


class ControlCharacterError(ValueError):
    """The text holds a control character; the message names it."""


def forbidden_character(text: str, *, multiline: bool = False) -> str | None:
    """The first character ``text`` may not hold, or None when it is clean."""
    for char in text:
        if char in BIDI_CONTROLS:
            return char
        if unicodedata.category(char) == "Cc" and not (multiline and char in LINE_BREAKS_AND_TABS):
            return char
    return None


def check_text(text: str, *, multiline: bool = False) -> str:
    """Return ``text`` unchanged, or raise ``ControlCharacterError`` naming the character."""
    if text.isprintable() and not BIDI_CONTROLS.intersection(text):
        return text  # the common case, checked in C
    found = forbidden_character(text, multiline=multiline)
    if found is not None:
        allowed = " (line breaks and tabs are)" if multiline else ""
        raise ControlCharacterError(
            f"contains the control character U+{ord(found):04X}; control characters are "
            f"not accepted{allowed}"
        )
    return text


def _single_line(value: Any) -> Any:
    return check_text(value) if isinstance(value, str) else value


def _multi_line(value: Any) -> Any:
    return check_text(value, multiline=True) if isinstance(value, str) else value


class MultilineMarker:
    """Marks a text field that may hold line breaks (shown as ``x-multiline`` in OpenAPI)."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["x-multiline"] = True
        return schema


MULTILINE = MultilineMarker()

#: Names, codes, short labels: no control characters at all.
Text = Annotated[str, AfterValidator(_single_line)]
#: Notes, comments, reasons, addresses: line breaks and tabs allowed.
MultilineText = Annotated[str, AfterValidator(_multi_line), MULTILINE]


def strings_in(value: Any) -> list[str]:
    """Every string inside a JSON-like value (dict keys and values, list items)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found
