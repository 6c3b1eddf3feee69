"""Refuse oversized request bodies and NUL characters before any handler parses them.

Bodies are limited per route class: the JSON API (and forms), GraphQL, and uploads each
have their own limit (settings ``max_*_body_bytes``). A declared ``Content-Length`` over the
limit is answered 413 without reading the body; a streamed body is counted as it arrives and
cut off at the limit. Either way the answer is an RFC 9457 problem document.

PostgreSQL cannot store a NUL character in text or JSON, so a NUL anywhere in a request
(path, query string, JSON escape ``\\u0000``, form ``%00``) is refused with 422 instead of
reaching the database as an internal error.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nidaan.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE

# A JSON string escape for U+0000 that is not itself an escaped backslash followed by "u0000".
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_FORM_NUL = re.compile(rb"%00")
_UPLOAD_TYPES = ("multipart/form-data", "application/octet-stream", "application/pdf", "image/")


class RouteClass(enum.StrEnum):
    JSON = "json"
    GRAPHQL = "graphql"
    UPLOAD = "upload"


@dataclass(frozen=True)
class BodyLimits:
    json: int
    graphql: int
    upload: int

    def for_class(self, route_class: RouteClass) -> int:
        return int(getattr(self, route_class.value))


class BodyTooLarge(Exception):
    """The streamed body went past the route class's limit."""


def route_class(path: str, content_type: str) -> RouteClass:
    # Files arrive as multipart on REST and on GraphQL (``uploadFile``) alike.
    if content_type.startswith(_UPLOAD_TYPES):
        return RouteClass.UPLOAD
    if path == "/graphql" or path.startswith("/graphql/"):
        return RouteClass.GRAPHQL
    return RouteClass.JSON


def holds_nul(body: bytes, content_type: str) -> bool:
    """Whether a JSON or form body encodes a NUL character (or carries a raw one)."""
    if not _parsed_as_text(content_type):
        return False
    if b"\x00" in body:
        return True
    if content_type.startswith("application/x-www-form-urlencoded"):
        return bool(_FORM_NUL.search(body))
    return bool(_JSON_NUL.search(body))


def _parsed_as_text(content_type: str) -> bool:
    """Bodies the application parses into strings (JSON, forms, GraphQL; FastAPI reads a
    body without a type as JSON). Other types (a signature image) are bytes for the
    handler to check, where a NUL is no text."""
    media = content_type.split(";", 1)[0].strip()
    return media in _TEXT_BODIES or media.endswith("+json")


_TEXT_BODIES = frozenset(
    {"", "application/json", "application/x-www-form-urlencoded", "application/graphql"}
)


class RequestGuardMiddleware:
    """Body size limits per route class and NUL refusal, in front of every route."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if "\x00" in scope["path"] or _FORM_NUL.search(scope.get("query_string", b"")):
            await _problem(send, scope, 422, "nul_character", "NUL character", NUL_DETAIL)
            return
        content_type = headers.get("content-type", "").lower()
        kind = route_class(scope["path"], content_type)
        limit = self.limits.for_class(kind)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, scope, kind, limit)
            return
        if kind is RouteClass.UPLOAD:
            await self._stream(scope, receive, send, kind, limit)
            return
        body, more = await _read_at_most(receive, limit)
        if more:
            await _too_large(send, scope, kind, limit)
            return
        if holds_nul(body, content_type):
            await _problem(send, scope, 422, "nul_character", "NUL character", NUL_DETAIL)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _stream(
        self, scope: Scope, receive: Receive, send: Send, kind: RouteClass, limit: int
    ) -> None:
        """Pass an upload through as it arrives, stopping it at ``limit`` bytes."""
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:
                raise
            await _too_large(send, scope, kind, limit)


NUL_DETAIL = (
    "The request holds a NUL character (\\u0000 or %00); no field may contain one. "
    "Remove it and send the request again."
)


def _headers(scope: Scope) -> Mapping[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _read_at_most(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole body, or (what was read, True) as soon as it passes ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the client to disconnect

    return replay


async def _too_large(send: Send, scope: Scope, kind: RouteClass, limit: int) -> None:
    await _problem(
        send,
        scope,
        413,
        "payload_too_large",
        "Request body too large",
        f"This {kind.value} request is over the limit of {limit} bytes; send less data "
        "(split a batch, or upload the file through the upload endpoint).",
        limit_bytes=limit,
        route_class=kind.value,
    )


async def _problem(
    send: Send,
    scope: Scope,
    status: int,
    code: str,
    title: str,
    detail: str,
    **extra: object,
) -> None:
    body = json.dumps(
        {
            "type": PROBLEM_TYPE_BASE + code.replace("_", "-"),
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
            "instance": scope["path"].replace("\x00", ""),
            **extra,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                # The rest of an oversized body is not read; the connection cannot be reused.
                *([(b"connection", b"close")] if status == 413 else []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
