"""HL7 v2 (2.3.1-2.5.1) ER7 codec: parse, typed access, escaping, building, serialising.

Why our own codec and not python-hl7 (``hl7``) for parsing
----------------------------------------------------------
python-hl7 is the fast list-based parser the research notes recommend, but for our use it
falls short in ways we would have to patch around anyway:

* it splits segments on CR only (LF/CRLF files and some devices break it), and it builds the
  full Message/Segment/Field/Repetition/Component container tree eagerly for every message,
  which is where its ~1 ms per 25-segment ORU goes;
* it never unescapes on access (``hl7.unescape`` exists but is manual), does not handle
  ``\\X..\\`` hex as bytes in the message's character set, and has no builder that escapes;
* it has no message-structure knowledge or validation, and its ``create_ack`` needs a fully
  parsed message (we must ACK/NAK messages whose body is broken).

So this module keeps the parse to what ``str.split`` does in C: one split into segments and
one split per segment into fields. Repetitions, components and subcomponents are split
lazily only when a field is read, and unescaping happens on read. Building escapes every
text value with the message's own encoding characters. Encoding characters are always read
from MSH-1/MSH-2 of each message (never hard-coded), so non-default sets such as
``MSH|$%*#`` round-trip. ``hl7``/``hl7apy`` are only used as reference points in tests and
benchmarks.

Numbering follows HL7: fields are 1-based, and for MSH, MSH-1 *is* the field separator and
MSH-2 the encoding characters, so ``msg["MSH"][9]`` is the message type as in the standard.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

from nidaan.integration.hl7.errors import HL7ParseError

CR: Final = "\r"
#: MSH-18 for UTF-8 (HL7 table 0211).
UTF8_CHARSET: Final = "UNICODE UTF-8"

__all__ = [
    "DEFAULT_ENCODING",
    "EncodingChars",
    "Field",
    "Message",
    "Raw",
    "Repeated",
    "Segment",
    "decode_payload",
    "format_ts",
    "new_control_id",
    "parse_ts",
]


class EncodingChars:
    """The five HL7 delimiters of one message, with precomputed escape/unescape tables."""

    __slots__ = (
        "_escape_table",
        "_unescape_map",
        "_unescape_re",
        "component",
        "escape",
        "field",
        "repetition",
        "subcomponent",
        "truncation",
    )

    def __init__(
        self,
        field: str = "|",
        component: str = "^",
        repetition: str = "~",
        escape: str = "\\",
        subcomponent: str = "&",
        truncation: str = "",
    ) -> None:
        chars = [c for c in (field, component, repetition, escape, subcomponent, truncation) if c]
        if len(field) != 1 or len(component) != 1 or len(repetition) != 1:
            raise HL7ParseError("field, component and repetition separators must be one character")
        if len(set(chars)) != len(chars):
            raise HL7ParseError(f"encoding characters are not distinct: {''.join(chars)!r}")
        if any(c.isalnum() or c in "\r\n" for c in chars):
            raise HL7ParseError(f"invalid encoding characters: {''.join(chars)!r}")
        self.field = field
        self.component = component
        self.repetition = repetition
        self.escape = escape
        self.subcomponent = subcomponent
        self.truncation = truncation
        table: dict[int, str] = {}
        if escape:
            e = escape
            table[ord(e)] = f"{e}E{e}"
            table[ord(field)] = f"{e}F{e}"
            table[ord(component)] = f"{e}S{e}"
            table[ord(repetition)] = f"{e}R{e}"
            if subcomponent:
                table[ord(subcomponent)] = f"{e}T{e}"
            if truncation:
                table[ord(truncation)] = f"{e}P{e}"
            # Segment terminators and MLLP block characters can never appear raw in a field.
            for ch in "\r\n\x0b\x1c":
                table[ord(ch)] = f"{e}X{ord(ch):02X}{e}"
            q = re.escape(e)
            self._unescape_re: re.Pattern[str] | None = re.compile(f"{q}([^{q}\r]*){q}")
        else:
            self._unescape_re = None
        self._escape_table = table
        self._unescape_map = {
            "F": field,
            "S": component,
            "T": subcomponent,
            "R": repetition,
            "E": escape,
            "P": truncation,
            "H": "",
            "N": "",
            ".br": "\n",
        }

    @classmethod
    def from_msh(cls, field: str, msh2: str) -> EncodingChars:
        """Build from MSH-1 and MSH-2 (2 to 5 characters)."""
        if len(msh2) < 2:
            raise HL7ParseError(f"MSH-2 must hold at least 2 encoding characters, got {msh2!r}")
        return cls(
            field,
            msh2[0],
            msh2[1],
            msh2[2] if len(msh2) > 2 else "",
            msh2[3] if len(msh2) > 3 else "",
            msh2[4] if len(msh2) > 4 else "",
        )

    @property
    def msh2(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EncodingChars) and (self.field + self.msh2) == (
            other.field + other.msh2
        )

    def __hash__(self) -> int:
        return hash(self.field + self.msh2)

    def __repr__(self) -> str:
        return f"EncodingChars({self.field + self.msh2!r})"

    def escape_text(self, text: str) -> str:
        """Escape one text value so it can sit inside any field/component/subcomponent."""
        return text.translate(self._escape_table) if self._escape_table else text

    def unescape_text(self, text: str) -> str:
        """Decode escape sequences (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\ \\.br\\`` ...)."""
        if self._unescape_re is None or self.escape not in text:
            return text
        return self._unescape_re.sub(self._replace, text)

    def _replace(self, m: re.Match[str]) -> str:
        seq = m.group(1)
        if not seq:
            return m.group(0)
        hit = self._unescape_map.get(seq)
        if hit is not None:
            return hit
        head = seq[0]
        if head == "X" and len(seq) > 1 and len(seq) % 2 == 1:
            try:
                data = bytes.fromhex(seq[1:])
            except ValueError:
                return m.group(0)
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return data.decode("latin-1")
        if head == ".":
            if seq.startswith(".sp"):
                n = seq[3:].strip().lstrip("+")
                return "\n" * (int(n) if n.isdigit() else 1)
            if seq[1:3] in {"in", "ti", "sk", "ce", "fi", "nf"}:
                return ""
        # Unknown or unsupported (\C..\ / \M..\ charset switching): keep literally.
        return m.group(0)


DEFAULT_ENCODING: Final = EncodingChars()


class Raw(str):
    """A value that is already ER7-encoded; builders insert it without escaping."""

    __slots__ = ()


class Repeated(tuple):  # type: ignore[type-arg]
    """Field repetitions for builders: ``Repeated(("H",), ("A",))`` -> ``H~A``."""

    __slots__ = ()

    def __new__(cls, *items: Any) -> Repeated:
        return super().__new__(cls, items)


def _encode_scalar(value: Any, enc: EncodingChars) -> str:
    if value is None:
        return ""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str):
        return enc.escape_text(value)
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, datetime | date):
        return format_ts(value)
    if isinstance(value, int | float | Decimal):
        return str(value)
    return enc.escape_text(str(value))


def _encode_component(value: Any, enc: EncodingChars) -> str:
    if isinstance(value, list | tuple) and not isinstance(value, Repeated):
        return enc.subcomponent.join(_encode_scalar(v, enc) for v in value)
    return _encode_scalar(value, enc)


def _encode_repetition(value: Any, enc: EncodingChars) -> str:
    if isinstance(value, list | tuple) and not isinstance(value, Repeated):
        return enc.component.join(_encode_component(v, enc) for v in value)
    return _encode_scalar(value, enc)


def encode_value(value: Any, enc: EncodingChars = DEFAULT_ENCODING) -> str:
    """Encode a builder value to ER7.

    ``str`` -> escaped text; ``list``/``tuple`` -> components (a nested list/tuple ->
    subcomponents); ``Repeated(...)`` -> repetitions; ``Raw`` -> inserted verbatim;
    ``None`` -> empty; numbers as ``str``; ``datetime``/``date`` as HL7 TS/DT.
    """
    if isinstance(value, Repeated):
        return enc.repetition.join(_encode_repetition(v, enc) for v in value)
    return _encode_repetition(value, enc)


class Field:
    """One field of a parsed segment. ``str(field)`` is its ER7 text; reads are unescaped."""

    __slots__ = ("_enc", "raw")

    def __init__(self, raw: str, enc: EncodingChars | None) -> None:
        self.raw = raw
        self._enc = enc  # None: literal (MSH-1, MSH-2)

    def __str__(self) -> str:
        return self.raw

    def __repr__(self) -> str:
        return f"Field({self.raw!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Field):
            return self.raw == other.raw
        if isinstance(other, str):
            return self.raw == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.raw)

    def __bool__(self) -> bool:
        return bool(self.raw)

    @property
    def value(self) -> str:
        """The whole field with escape sequences decoded (delimiters left in place)."""
        return self.raw if self._enc is None else self._enc.unescape_text(self.raw)

    @property
    def repetitions(self) -> list[Field]:
        if self._enc is None or not self.raw:
            return [self]
        return [Field(r, self._enc) for r in self.raw.split(self._enc.repetition)]

    def components(self, repetition: int = 1) -> list[str]:
        """Unescaped components of one repetition (1-based)."""
        if self._enc is None:
            return [self.raw]
        enc = self._enc
        reps = self.raw.split(enc.repetition)
        if repetition > len(reps):
            return []
        return [enc.unescape_text(c) for c in reps[repetition - 1].split(enc.component)]

    def component(self, index: int, repetition: int = 1, subcomponent: int | None = None) -> str:
        if self._enc is None:
            return self.raw if index == 1 else ""
        return _pick(self.raw, self._enc, repetition, index, subcomponent)

    def __getitem__(self, index: int) -> str:
        """Component ``index`` (1-based) of the first repetition, unescaped."""
        return self.component(index)


def _pick(
    raw: str, enc: EncodingChars, repetition: int, component: int | None, sub: int | None
) -> str:
    if not raw:
        return ""
    if enc.repetition in raw or repetition != 1:
        reps = raw.split(enc.repetition)
        if repetition > len(reps) or repetition < 1:
            return ""
        raw = reps[repetition - 1]
    if component is not None:
        comps = raw.split(enc.component)
        if component > len(comps) or component < 1:
            return ""
        raw = comps[component - 1]
        if sub is not None:
            if not enc.subcomponent:
                return enc.unescape_text(raw) if sub == 1 else ""
            subs = raw.split(enc.subcomponent)
            if sub > len(subs) or sub < 1:
                return ""
            raw = subs[sub - 1]
    return enc.unescape_text(raw)


class Segment:
    """One segment. ``fields[n]`` is the raw ER7 of field *n* (``fields[0]`` is the name)."""

    __slots__ = ("enc", "fields", "name")

    def __init__(self, name: str, fields: list[str], enc: EncodingChars = DEFAULT_ENCODING) -> None:
        self.name = name
        self.fields = fields
        self.enc = enc

    @classmethod
    def build(
        cls,
        name: str,
        values: Mapping[int, Any] | Sequence[Any] = (),
        enc: EncodingChars = DEFAULT_ENCODING,
    ) -> Segment:
        """``Segment.build("PID", {3: ("123", "", "", ("HOSP",)), 5: ("Rao", "Asha")})``.

        A sequence gives fields from 1 on. Values are encoded with ``encode_value``.
        Not for MSH: use ``build_msh``.
        """
        if name == "MSH":
            raise ValueError("use build_msh() to build an MSH segment")
        seg = cls(name, [name], enc)
        items = values.items() if isinstance(values, Mapping) else enumerate(values, start=1)
        for n, v in items:
            seg.set(n, v)
        return seg

    def set(self, field: int, value: Any) -> None:
        """Encode ``value`` into field ``field`` (1-based), extending with empty fields."""
        if field < 1 or (self.name == "MSH" and field <= 2):
            raise ValueError(f"{self.name}-{field} cannot be set")
        encoded = encode_value(value, self.enc)
        if field >= len(self.fields):
            if not encoded:
                return
            self.fields.extend([""] * (field - len(self.fields) + 1))
        self.fields[field] = encoded

    __setitem__ = set

    def __getitem__(self, field: int) -> Field:
        raw = self.fields[field] if field < len(self.fields) and field >= 1 else ""
        literal = self.name == "MSH" and field <= 2
        return Field(raw, None if literal else self.enc)

    def __len__(self) -> int:
        """Number of the last field present."""
        return len(self.fields) - 1

    def get(
        self,
        field: int,
        component: int | None = None,
        subcomponent: int | None = None,
        repetition: int = 1,
    ) -> str:
        """Unescaped value at ``field[.component[.subcomponent]]`` of one repetition; ``""``
        when absent. Without ``component`` the whole repetition is returned."""
        fields = self.fields
        if field >= len(fields) or field < 1:
            return ""
        raw = fields[field]
        if self.name == "MSH" and field <= 2:
            return raw
        return _pick(raw, self.enc, repetition, component, subcomponent)

    def repetitions(self, field: int) -> list[str]:
        """Raw ER7 repetitions of a field (``[]`` when empty)."""
        raw = self.fields[field] if 0 < field < len(self.fields) else ""
        return raw.split(self.enc.repetition) if raw else []

    def values(self, field: int, component: int | None = 1) -> list[str]:
        """Unescaped ``component`` of every non-empty repetition of ``field``."""
        out = []
        for rep in self.repetitions(field):
            if component is None:
                val = self.enc.unescape_text(rep)
            else:
                val = _pick(rep, self.enc, 1, component, None)
            if val:
                out.append(val)
        return out

    def to_er7(self) -> str:
        if self.name == "MSH":
            fs = self.enc.field
            return "MSH" + fs + fs.join(self.fields[2:])
        return self.enc.field.join(self.fields)

    def __str__(self) -> str:
        return self.to_er7()

    def __repr__(self) -> str:
        return f"Segment({self.to_er7()!r})"


def build_msh(
    message_type: str | Sequence[str],
    *,
    control_id: str | None = None,
    sending_application: Any = None,
    sending_facility: Any = None,
    receiving_application: Any = None,
    receiving_facility: Any = None,
    timestamp: datetime | None = None,
    processing_id: str = "P",
    version: str = "2.5.1",
    accept_ack_type: str | None = None,
    application_ack_type: str | None = None,
    charset: str | None = None,
    profile: Any = None,
    enc: EncodingChars = DEFAULT_ENCODING,
) -> Segment:
    """An MSH segment. ``message_type`` is ``"ORU^R01^ORU_R01"`` or ``("ORU", "R01", ...)``."""
    seg = Segment("MSH", ["MSH", enc.field, enc.msh2], enc)
    if isinstance(message_type, str):
        mt: Any = Raw(message_type.replace("^", enc.component))
    else:
        mt = tuple(message_type)
    seg.set(3, sending_application)
    seg.set(4, sending_facility)
    seg.set(5, receiving_application)
    seg.set(6, receiving_facility)
    seg.set(7, Raw(format_ts(timestamp or datetime.now(UTC))))
    seg.set(9, mt)
    seg.set(10, control_id or new_control_id())
    seg.set(11, processing_id)
    seg.set(12, version)
    seg.set(15, accept_ack_type)
    seg.set(16, application_ack_type)
    seg.set(18, charset)
    seg.set(21, profile)
    return seg


def new_control_id() -> str:
    """A fresh 20-character message control id (MSH-10 is ST(20) in v2.5)."""
    return uuid.uuid4().hex[:20].upper()


def decode_payload(raw: bytes) -> str:
    """Bytes to text: UTF-8 when valid, else ISO 8859-1 (never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class Message:
    """A parsed or built HL7 v2 message: an ordered list of segments sharing delimiters."""

    __slots__ = ("_by_name", "enc", "segment_list")

    def __init__(self, segments: Iterable[Segment], enc: EncodingChars | None = None) -> None:
        self.segment_list: list[Segment] = list(segments)
        if enc is None:
            enc = self.segment_list[0].enc if self.segment_list else DEFAULT_ENCODING
        self.enc = enc
        self._by_name: dict[str, list[Segment]] | None = None

    # -- parsing -------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str | bytes) -> Message:
        """Parse ER7 text (segments ended by CR, LF or CRLF; MLLP bytes around it tolerated).

        Raises ``HL7ParseError`` when there is no MSH segment with usable delimiters.
        """
        if isinstance(text, bytes | bytearray | memoryview):
            text = decode_payload(bytes(text))
        if "\n" in text:
            text = text.replace("\r\n", CR).replace("\n", CR)
        if not text.startswith("MSH"):
            text = text.strip("\x0b\x1c\r\t \ufeff")
            if not text.startswith("MSH"):
                raise HL7ParseError("message does not start with an MSH segment")
        if len(text) < 8:
            raise HL7ParseError("MSH segment is truncated")
        fs = text[3]
        end = text.find(fs, 4)
        line_end = text.find(CR, 4)
        if end == -1 or (line_end != -1 and line_end < end):
            end = line_end if line_end != -1 else len(text)
        enc = EncodingChars.from_msh(fs, text[4:end])
        segments = []
        append = segments.append
        for line in text.split(CR):
            if not line:
                continue
            parts = line.split(fs)
            name = parts[0]
            if name == "MSH":
                parts.insert(1, fs)
            elif not name.strip():
                continue
            append(Segment(name, parts, enc))
        return cls(segments, enc)

    @classmethod
    def build(cls, segments: Iterable[Segment], enc: EncodingChars | None = None) -> Message:
        """A message to send. Non-ASCII text (a Hindi name) goes out as UTF-8, so MSH-18
        declares ``UNICODE UTF-8`` then (an empty MSH-18 means ASCII)."""
        segs = list(segments)
        if not segs or segs[0].name != "MSH":
            raise ValueError("a message starts with an MSH segment")
        msh = segs[0]
        if msh.get(18) in ("", "ASCII") and not all(
            field.isascii() for seg in segs for field in seg.fields
        ):
            msh.set(18, UTF8_CHARSET)
        return cls(segs, enc or segs[0].enc)

    # -- access --------------------------------------------------------------------------

    def _index(self) -> dict[str, list[Segment]]:
        if self._by_name is None:
            idx: dict[str, list[Segment]] = {}
            for seg in self.segment_list:
                idx.setdefault(seg.name, []).append(seg)
            self._by_name = idx
        return self._by_name

    def segments(self, name: str | None = None) -> list[Segment]:
        """All segments, or those called ``name``, in message order."""
        if name is None:
            return list(self.segment_list)
        return list(self._index().get(name, ()))

    def segment(self, name: str, occurrence: int = 1) -> Segment | None:
        found = self._index().get(name, ())
        return found[occurrence - 1] if 0 < occurrence <= len(found) else None

    def __getitem__(self, key: str | int) -> Segment:
        """``msg["PID"]``: first PID (``KeyError`` if absent); ``msg[0]``: by position."""
        if isinstance(key, int):
            return self.segment_list[key]
        found = self._index().get(key)
        if not found:
            raise KeyError(key)
        return found[0]

    def __contains__(self, name: object) -> bool:
        return name in self._index()

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segment_list)

    def __len__(self) -> int:
        return len(self.segment_list)

    def append(self, segment: Segment) -> None:
        self.segment_list.append(segment)
        self._by_name = None

    @property
    def msh(self) -> Segment:
        return self.segment_list[0]

    @property
    def control_id(self) -> str:
        return self.msh.get(10)

    @property
    def message_code(self) -> str:
        return self.msh.get(9, 1)

    @property
    def trigger_event(self) -> str:
        return self.msh.get(9, 2)

    @property
    def structure(self) -> str:
        return self.msh.get(9, 3)

    @property
    def message_type(self) -> str:
        """``"ORU^R01"`` (code^trigger, always with ``^`` whatever the delimiters)."""
        code, trigger = self.message_code, self.trigger_event
        return f"{code}^{trigger}" if trigger else code

    @property
    def version(self) -> str:
        return self.msh.get(12, 1)

    @property
    def processing_id(self) -> str:
        return self.msh.get(11, 1)

    # -- output --------------------------------------------------------------------------

    def __str__(self) -> str:
        return CR.join(seg.to_er7() for seg in self.segment_list) + CR

    def to_bytes(self, encoding: str = "utf-8") -> bytes:
        return str(self).encode(encoding)

    def __repr__(self) -> str:
        return f"<Message {self.message_type} {self.control_id!r} {len(self)} segments>"


# -- dates ---------------------------------------------------------------------------------

_TS_RE: Final = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$"
)


def parse_ts(value: str) -> datetime | None:
    """HL7 TS/DTM (``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``) -> datetime.

    Naive when no offset is given (the sender's local time); ``None`` when empty or invalid.
    """
    value = value.strip()
    m = _TS_RE.match(value)
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        tzinfo = None
        if tz:
            sign = -1 if tz[0] == "-" else 1
            tzinfo = timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5])))
        return datetime(
            int(y),
            int(mo or 1),
            int(d or 1),
            int(h or 0),
            int(mi or 0),
            int(s or 0),
            int((frac or "0").ljust(6, "0")[:6]),
            tzinfo=tzinfo,
        )
    except ValueError:
        return None


def parse_date(value: str) -> date | None:
    dt = parse_ts(value[:8]) if len(value) >= 8 else None
    return dt.date() if dt else None


def format_ts(value: datetime | date) -> str:
    """datetime -> ``YYYYMMDDHHMMSS[+ZZZZ]``; date -> ``YYYYMMDD``."""
    if not isinstance(value, datetime):
        return value.strftime("%Y%m%d")
    out = value.strftime("%Y%m%d%H%M%S")
    if value.tzinfo is not None:
        out += value.strftime("%z")
    return out
