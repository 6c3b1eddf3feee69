"""Walk the OpenAPI document: operations, request bodies and their string fields."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nidaan.auth.enums import Role

ALL_ROLES = sorted(str(r) for r in Role)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class StringField:
    """A free-text string in a request body: where it sits, and a body that reaches it."""

    location: tuple[str | int, ...]
    multiline_allowed: bool

    def body_with(self, value: str) -> Any:
        """A JSON body holding ``value`` at this field (other fields left out)."""
        body: Any = value
        for key in reversed(self.location):
            body = [body] if isinstance(key, int) else {key: body}
        return body


def operations(document: dict[str, Any]) -> Iterator[Operation]:
    for path, item in document["paths"].items():
        for method, spec in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield Operation(method.upper(), path, spec)


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def json_body_schema(document: dict[str, Any], operation: Operation) -> dict[str, Any] | None:
    content = operation.spec.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    return _resolve(document, content["application/json"]["schema"])


def is_free_text(schema: dict[str, Any]) -> bool:
    """A string a person types: not a UUID, date, e-mail, enum, or patterned code."""
    return (
        schema.get("type") == "string"
        and "format" not in schema
        and "enum" not in schema
        and "pattern" not in schema
        and "const" not in schema
    )


def string_fields(
    document: dict[str, Any], schema: dict[str, Any], location: tuple[str | int, ...] = ()
) -> Iterator[StringField]:
    """Every free-text string field reachable in ``schema`` (nested objects and arrays)."""
    schema = _resolve(document, schema)
    alternatives = [
        _resolve(document, a) for a in schema.get("anyOf") or schema.get("oneOf") or [schema]
    ]
    if any(a.get("type") in {"number", "integer"} for a in alternatives):
        return  # a decimal number, sent as a string to keep its scale: not text
    for alternative in alternatives:
        alternative = _resolve(document, alternative)
        if is_free_text(alternative):
            yield StringField(location, bool(alternative.get("x-multiline")))
        elif alternative.get("type") == "array" and "items" in alternative:
            yield from string_fields(document, alternative["items"], (*location, 0))
        elif alternative.get("type") == "object":
            for name, prop in alternative.get("properties", {}).items():
                if len(location) < 4:
                    yield from string_fields(document, prop, (*location, name))
