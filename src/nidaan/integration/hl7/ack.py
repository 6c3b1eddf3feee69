"""Building HL7 acknowledgements (original mode AA/AE/AR and enhanced CA/CE/CR).

``build_ack`` must work for any input, including messages so broken that only the MSH line
(or nothing) can be read: it then falls back to what it can salvage, and when not even MSH-10
is readable it answers ``AR`` with an empty MSA-2.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from nidaan.integration.hl7.errors import (
    ERROR_TEXT,
    HL7Error,
    HL7ErrorCode,
    HL7ParseError,
    HL7ValidationError,
    HL7ValidationFailed,
)
from nidaan.integration.hl7.message import (
    DEFAULT_ENCODING,
    EncodingChars,
    Message,
    Raw,
    Segment,
    build_msh,
    decode_payload,
)

__all__ = ["ACK_CODES", "build_ack", "salvage_msh"]

ACK_CODES: Final = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})
_DEFAULT_VERSION: Final = "2.5.1"

ErrorInput = HL7ValidationError | HL7ValidationFailed | BaseException | str


def salvage_msh(data: str | bytes) -> Segment | None:
    """The MSH segment of possibly broken data, or None when no MSH line can be read."""
    text = decode_payload(bytes(data)) if isinstance(data, bytes | bytearray) else data
    start = text.find("MSH")
    if start == -1 or len(text) < start + 8:
        return None
    line = text[start:]
    for sep in ("\r", "\n"):
        cut = line.find(sep)
        if cut != -1:
            line = line[:cut]
    try:
        return Message.parse(line).msh
    except HL7ParseError:
        return None


def _errors_of(error: ErrorInput | Iterable[HL7ValidationError] | None) -> list[HL7ValidationError]:
    if error is None:
        return []
    if isinstance(error, HL7ValidationError):
        return [error]
    if isinstance(error, HL7ValidationFailed):
        return list(error.errors)
    if isinstance(error, str):
        return [HL7ValidationError(HL7ErrorCode.APPLICATION_INTERNAL_ERROR, None, None, error)]
    if isinstance(error, HL7ParseError):
        return [HL7ValidationError(HL7ErrorCode.SEGMENT_SEQUENCE_ERROR, "MSH", None, str(error))]
    if isinstance(error, BaseException):
        detail = str(error) if isinstance(error, HL7Error) else type(error).__name__
        return [HL7ValidationError(HL7ErrorCode.APPLICATION_INTERNAL_ERROR, None, None, detail)]
    return list(error)


def _error_code(code: int, version: str) -> int:
    """Table 0357 before v2.7 has no 104 (value too long): say 207 there."""
    if code == HL7ErrorCode.VALUE_TOO_LONG and not version.startswith(("2.7", "2.8", "2.9")):
        return int(HL7ErrorCode.APPLICATION_INTERNAL_ERROR)
    return code


def _err_segment(err: HL7ValidationError, version: str, enc: EncodingChars) -> Segment:
    seg = Segment("ERR", ["ERR"], enc)
    code = _error_code(err.code, version)
    code_text = ERROR_TEXT.get(code, "")
    location: tuple[object, ...] = (
        err.segment_id,
        err.segment_sequence if err.segment else None,
        err.field,
        None,
        err.component,
    )
    while location and location[-1] is None:
        location = location[:-1]
    if version.startswith(("2.1", "2.2", "2.3", "2.4")):
        # ERR-1 (ELD): segment^sequence^field^code&text&HL70357
        seg.set(
            1,
            (
                *location[:3],
                *([None] * (3 - len(location[:3]))),
                (str(code), code_text, "HL70357"),
            ),
        )
    else:
        if err.segment:
            seg.set(2, location)
        seg.set(3, (str(code), code_text, "HL70357"))
        seg.set(4, "E")
        if err.message:
            seg.set(8, err.message[:250])
    return seg


def build_ack(
    original: Message | str | bytes | None,
    code: str = "AA",
    text: str | None = None,
    error: ErrorInput | Iterable[HL7ValidationError] | None = None,
    *,
    control_id: str | None = None,
    timestamp: datetime | None = None,
) -> Message:
    """An ACK for ``original``: MSH with sender/receiver swapped and a new control id,
    ``MSA|code|<original MSH-10>[|text]`` and, for AE/AR/CE/CR, one ERR per problem.

    ``error`` may be an ``HL7ValidationError``, ``HL7ValidationFailed``, a list of errors,
    an exception (-> 207 application error) or a string.
    """
    if code not in ACK_CODES:
        raise ValueError(f"acknowledgment code must be one of {sorted(ACK_CODES)}")
    errors = _errors_of(error)

    msh: Segment | None
    if isinstance(original, Message):
        msh = original.msh if original.segment_list else None
    elif original is None:
        msh = None
    else:
        try:
            msh = Message.parse(original).msh
        except HL7ParseError as exc:
            msh = salvage_msh(original)
            if msh is None and not errors:
                errors = _errors_of(exc)

    original_control_id = msh.get(10) if msh is not None else ""
    if not original_control_id:
        code = "AR" if code.startswith("A") else "CR"
        if not errors:
            errors = [
                HL7ValidationError(
                    HL7ErrorCode.REQUIRED_FIELD_MISSING
                    if msh is not None
                    else HL7ErrorCode.SEGMENT_SEQUENCE_ERROR,
                    "MSH",
                    10 if msh is not None else None,
                    "is empty" if msh is not None else "no readable MSH segment",
                )
            ]
    if code in {"AE", "AR", "CE", "CR"} and not errors:
        errors = [
            HL7ValidationError(
                HL7ErrorCode.APPLICATION_INTERNAL_ERROR, None, None, text or "message rejected"
            )
        ]
    if code in {"AA", "CA"}:
        errors = []

    enc = msh.enc if msh is not None else DEFAULT_ENCODING
    version = (msh.get(12, 1) if msh is not None else "") or _DEFAULT_VERSION

    def raw(n: int) -> Raw | None:
        if msh is None:
            return None
        value = msh.fields[n] if n < len(msh.fields) else ""
        return Raw(value) if value else None

    trigger = msh.get(9, 2) if msh is not None else ""
    # v2.4+ MSG has a message structure: "ACK^R01^ACK", or "ACK^^ACK" without a trigger.
    message_type: tuple[str, ...] = ("ACK", trigger, "ACK")
    if version.startswith(("2.1", "2.2", "2.3")):
        message_type = ("ACK", trigger) if trigger else ("ACK",)
    ack_msh = build_msh(
        message_type,
        control_id=control_id,
        sending_application=raw(5),
        sending_facility=raw(6),
        receiving_application=raw(3),
        receiving_facility=raw(4),
        timestamp=timestamp,
        processing_id=(msh.get(11, 1) if msh is not None else "") or "P",
        version=Raw(msh.fields[12]) if msh is not None and msh.get(12) else _DEFAULT_VERSION,
        charset=raw(18),
        enc=enc,
    )
    msa = Segment("MSA", ["MSA"], enc)
    msa.set(1, code)
    msa.set(2, Raw(msh.fields[10]) if original_control_id and msh is not None else None)
    if text:
        msa.set(3, text[:80])
    segments = [ack_msh, msa]
    segments.extend(_err_segment(e, version, enc) for e in errors)
    return Message.build(segments, enc)
