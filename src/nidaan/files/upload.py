"""Streaming upload checks: the real type from the content, the size cap while streaming.

``check_upload`` reads the first ``SNIFF_BYTES`` of the incoming bytes, asks libmagic what
they are (never the file name or the client's Content-Type) and refuses a type outside the
purpose's allow-list before anything is stored; ``CheckedUpload.chunks()`` then passes the
bytes through and stops with ``FileTooLarge`` the moment the cap is crossed. The store
discards whatever it had written when the stream raises, so a refused upload leaves nothing
behind.

``MultipartFileReader`` parses a ``multipart/form-data`` request body as it arrives: the
text fields that come before the file part, then the file's bytes as an async iterator,
so a 50 MB upload never sits in memory (nor in a temporary file).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from email.message import Message

import magic
from python_multipart.multipart import MultipartParser, parse_options_header

from nidaan.files.domain import PurposeRule
from nidaan.files.errors import EmptyFile, FileTooLarge, FileTypeNotAllowed, InvalidUpload

#: libmagic wants a couple of kilobytes to tell formats apart reliably.
SNIFF_BYTES = 8192
MAX_FIELDS = 20
MAX_FIELD_BYTES = 4096

_magic_lock = threading.Lock()
_magic: magic.Magic | None = None


def detect_content_type(head: bytes) -> str:
    """The MIME type libmagic reads in ``head`` (the ``Magic`` object is not thread-safe)."""
    global _magic
    with _magic_lock:
        if _magic is None:
            _magic = magic.Magic(mime=True)
        return str(_magic.from_buffer(head))


class CheckedUpload:
    """An upload whose type is known and allowed; ``chunks()`` streams it under the cap."""

    def __init__(
        self, head: bytes, rest: AsyncIterator[bytes] | None, rule: PurposeRule, content_type: str
    ) -> None:
        self.content_type = content_type
        self.size = 0
        self._head = head
        self._rest = rest
        self._rule = rule

    async def chunks(self) -> AsyncIterator[bytes]:
        self.size = len(self._head)
        yield self._head
        if self._rest is None:
            return
        async for chunk in self._rest:
            self.size += len(chunk)
            _check_size(self.size, self._rule)
            yield chunk


async def check_upload(source: AsyncIterable[bytes], rule: PurposeRule) -> CheckedUpload:
    """Read the first bytes of ``source`` and refuse a type outside ``rule``'s allow-list
    (or an empty or oversized file) before anything is stored."""
    iterator = aiter(source)
    head = bytearray()
    finished = False
    while len(head) < SNIFF_BYTES:
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            finished = True
            break
        head += chunk
        _check_size(len(head), rule)
    if not head:
        raise EmptyFile("The file is empty.")
    detected = detect_content_type(bytes(head[:SNIFF_BYTES]))
    if detected not in rule.content_types:
        raise FileTypeNotAllowed(
            f"This is a {detected} file; allowed here: {', '.join(sorted(rule.content_types))}.",
            detected_type=detected,
            allowed_types=sorted(rule.content_types),
        )
    return CheckedUpload(bytes(head), None if finished else iterator, rule, detected)


def _check_size(size: int, rule: PurposeRule) -> None:
    if size > rule.max_bytes:
        raise FileTooLarge(
            f"The file is larger than the {rule.max_bytes // (1024 * 1024)} MB allowed here.",
            max_bytes=rule.max_bytes,
        )


async def bytes_stream(data: bytes, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    """``data`` as an async stream of chunks (for files made in memory)."""
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


class MultipartFileReader:
    """One ``multipart/form-data`` body with text fields and a single file part named
    ``file_field``; fields must come before the file (as browsers and curl send them when
    the form lists them first)."""

    def __init__(
        self, content_type: str, body: AsyncIterable[bytes], *, file_field: str = "file"
    ) -> None:
        kind, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise InvalidUpload("Send the file as multipart/form-data.")
        self._body = aiter(body)
        self._file_field = file_field
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self._events: list[tuple[str, bytes]] = []
        self._part: _Part | None = None
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._in_file = False
        self._done = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )

    # -- parser callbacks (synchronous; they only record what they saw) -------------------

    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        assert self._part is not None
        name = self._header_field.decode("latin-1").strip().lower()
        self._part.headers[name] = self._header_value.decode("utf-8", "replace").strip()
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        assert self._part is not None
        message = Message()
        message["content-disposition"] = self._part.headers.get("content-disposition", "")
        self._part.name = message.get_param("name", header="content-disposition")  # type: ignore[assignment]
        filename = message.get_filename()
        self._part.filename = filename
        if self._part.name == self._file_field:
            self._in_file = True
            self.filename = filename or ""
            self._events.append(("file_start", b""))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        assert self._part is not None
        if self._in_file:
            self._events.append(("file_data", bytes(data[start:end])))
            return
        self._part.data += data[start:end]
        if len(self._part.data) > MAX_FIELD_BYTES:
            raise InvalidUpload(f"The form field {self._part.name!r} is too long.")

    def _on_part_end(self) -> None:
        assert self._part is not None
        if self._in_file:
            self._in_file = False
            self._events.append(("file_end", b""))
        elif self._part.name:
            if len(self.fields) >= MAX_FIELDS:
                raise InvalidUpload("Too many form fields.")
            self.fields[self._part.name] = self._part.data.decode("utf-8", "replace").strip()
        self._part = None

    def _on_end(self) -> None:
        self._done = True

    # -- reading -----------------------------------------------------------------------------

    async def _feed(self) -> bool:
        """Feed the next body chunk to the parser; False at the end of the body."""
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            return False
        self._parser.write(chunk)
        return True

    async def read_fields(self) -> dict[str, str]:
        """Parse up to the start of the file part; return the fields seen before it."""
        while not any(kind == "file_start" for kind, _ in self._events):
            if self._done or not await self._feed():
                raise InvalidUpload(f"The form has no {self._file_field!r} file part.")
        return self.fields

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The file part's bytes as they arrive (call after ``read_fields``)."""
        while True:
            while self._events:
                kind, data = self._events.pop(0)
                if kind == "file_data" and data:
                    yield data
                elif kind == "file_end":
                    await self._drain()
                    return
            if not await self._feed():
                raise InvalidUpload("The upload ended before the file was complete.")

    async def _drain(self) -> None:
        while not self._done and await self._feed():
            pass
