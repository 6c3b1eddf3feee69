"""HL7 errors, carrying the HL7 table 0357 code that goes into ERR-3 of an ACK.

These are integration-protocol errors that end up in ACK messages, not HTTP problem
documents, so they do not extend ``NidaanError`` (whose ``code`` is a snake-case string;
here ``code`` is the numeric HL7 error code).
"""

from __future__ import annotations

from enum import IntEnum


class HL7ErrorCode(IntEnum):
    """HL7 table 0357 (message error condition codes)."""

    ACCEPTED = 0
    SEGMENT_SEQUENCE_ERROR = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE_ERROR = 102
    TABLE_VALUE_NOT_FOUND = 103
    VALUE_TOO_LONG = 104
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT_CODE = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION_ID = 203
    UNKNOWN_KEY_IDENTIFIER = 204
    DUPLICATE_KEY_IDENTIFIER = 205
    APPLICATION_RECORD_LOCKED = 206
    APPLICATION_INTERNAL_ERROR = 207


ERROR_TEXT: dict[int, str] = {
    0: "Message accepted",
    100: "Segment sequence error",
    101: "Required field missing",
    102: "Data type error",
    103: "Table value not found",
    104: "Value too long",
    200: "Unsupported message type",
    201: "Unsupported event code",
    202: "Unsupported processing id",
    203: "Unsupported version id",
    204: "Unknown key identifier",
    205: "Duplicate key identifier",
    206: "Application record locked",
    207: "Application internal error",
}


class HL7Error(Exception):
    """Base of every error raised by the HL7 layer."""


class HL7ParseError(HL7Error):
    """The text is not an HL7 v2 message (no readable MSH segment)."""


class HL7ValidationError(HL7Error):
    """One problem in a message, located by segment (with occurrence) and field.

    ``segment`` is e.g. ``"OBX[2]"`` (second OBX in the message, 1-based) or ``"PID"``;
    ``field`` is the 1-based field number (``None`` for segment-level problems).
    """

    def __init__(
        self,
        code: int,
        segment: str | None = None,
        field: int | None = None,
        detail: str = "",
        *,
        component: int | None = None,
    ) -> None:
        self.code = int(code)
        self.segment = segment
        self.field = field
        self.component = component
        self.detail = detail
        super().__init__(self.message)

    @property
    def location(self) -> str:
        if not self.segment:
            return ""
        loc = self.segment
        if self.field is not None:
            loc += f"-{self.field}"
            if self.component is not None:
                loc += f".{self.component}"
        return loc

    @property
    def segment_id(self) -> str:
        """Segment name without the occurrence index (``"OBX"``)."""
        return (self.segment or "").split("[", 1)[0]

    @property
    def segment_sequence(self) -> int | None:
        """1-based occurrence of the segment, when known."""
        seg = self.segment or ""
        if "[" in seg and seg.endswith("]"):
            return int(seg[seg.index("[") + 1 : -1])
        return 1 if seg else None

    @property
    def message(self) -> str:
        loc = self.location
        return f"{loc} {self.detail}".strip() if loc else self.detail

    def __repr__(self) -> str:
        return (
            f"HL7ValidationError(code={self.code}, segment={self.segment!r}, "
            f"field={self.field!r}, detail={self.detail!r})"
        )


class HL7ValidationFailed(HL7Error):
    """Raised by ``ensure_valid``; ``errors`` lists every problem, ``first`` is the first."""

    def __init__(self, errors: list[HL7ValidationError]) -> None:
        self.errors = errors
        super().__init__("; ".join(e.message for e in errors))

    @property
    def first(self) -> HL7ValidationError:
        return self.errors[0]
