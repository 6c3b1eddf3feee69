"""ASTM E1394 / CLSI LIS2-A2 records: parse and build H, P, O, R, C, Q, M, L (pure).

A record is kept generically as ``Record(type, fields)``; each field is a tuple of repeats and
each repeat a tuple of components, all unescaped text. Field numbers follow the standard:
field 1 is the record type, so ``record.field(3)`` is the third field (``O-3`` = specimen id).
The H record's field 2 is the delimiter definition itself and is not stored as a field.

Delimiters are read from every H record (never hard-coded): default ``H|\\^&`` (field ``|``,
repeat ``\\``, component ``^``, escape ``&``); Beckman DxH uses ``H|\\!~``, GeneXpert ``H|@^\\``.

Escaping (LIS2-A2 7.1.2): ``&F&`` field, ``&S&`` component, ``&R&`` repeat, ``&E&`` escape
delimiter, and ``&Xhh..&`` for control characters (and CR/LF), which may not appear in a record.
Text is latin-1, as on the wire.

The typed classes (``Header``, ``Patient``, ``Order``, ``Result``, ``Comment``, ``Query``,
``Manufacturer``, ``Terminator``) cover the fields the analyzer flows use; ``to_record()``
builds a ``Record``, ``from_record()`` reads one, and ``extra`` keeps any other field so that a
typed round trip does not drop vendor data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self

from nidaan.integration.astm.errors import RecordSyntaxError

Components = tuple[str, ...]
Field = tuple[Components, ...]

EMPTY_FIELD: Field = (("",),)
RECORD_TYPES = frozenset("HPOCRQMLS")


# ---------------------------------------------------------------------------- delimiters


@dataclass(frozen=True, slots=True)
class Delimiters:
    field: str = "|"
    repeat: str = "\\"
    component: str = "^"
    escape: str = "&"

    def __post_init__(self) -> None:
        chars = (self.field, self.repeat, self.component, self.escape)
        if any(len(c) != 1 for c in chars) or len(set(chars)) != 4:
            raise RecordSyntaxError("ASTM delimiters must be four distinct single characters")
        for c in chars:
            if c.isalnum() or ord(c) < 0x20 or ord(c) == 0x7F or c == " ":
                raise RecordSyntaxError(f"invalid ASTM delimiter {c!r}")

    @property
    def specials(self) -> frozenset[str]:
        """The characters ``escape`` rewrites: the four delimiters and control characters."""
        return _specials(self)

    @property
    def definition(self) -> str:
        """The H record's first five characters, e.g. ``H|\\^&``."""
        return f"H{self.field}{self.repeat}{self.component}{self.escape}"

    @classmethod
    def from_header(cls, text: str) -> Delimiters:
        if len(text) < 5 or text[0] != "H":
            raise RecordSyntaxError("an H record starts with H and four delimiters")
        return cls(field=text[1], repeat=text[2], component=text[3], escape=text[4])


DEFAULT_DELIMITERS = Delimiters()
_CONTROL = frozenset([*map(chr, range(0x20)), chr(0x7F)])


@functools.lru_cache(maxsize=64)
def _specials(d: Delimiters) -> frozenset[str]:
    return _CONTROL | {d.field, d.repeat, d.component, d.escape}


def _needs_hex(ch: str) -> bool:
    o = ord(ch)
    return o < 0x20 or o == 0x7F


def escape(text: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Escape delimiters and control characters in one component's text."""
    if d.specials.isdisjoint(text):
        return text  # the usual case: nothing to escape
    e = d.escape
    out: list[str] = []
    for ch in text:
        if ch == e:
            out.append(f"{e}E{e}")
        elif ch == d.field:
            out.append(f"{e}F{e}")
        elif ch == d.component:
            out.append(f"{e}S{e}")
        elif ch == d.repeat:
            out.append(f"{e}R{e}")
        elif _needs_hex(ch):
            out.append(f"{e}X{ord(ch):02X}{e}")
        else:
            out.append(ch)
    return "".join(out)


_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")


def unescape(text: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Undo ``escape``. Unknown or unterminated sequences are kept verbatim (devices send them)."""
    e = d.escape
    if e not in text:
        return text
    simple = {"F": d.field, "S": d.component, "R": d.repeat, "E": e}
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != e:
            out.append(ch)
            i += 1
            continue
        end = text.find(e, i + 1)
        if end == -1:
            out.append(text[i:])
            break
        body = text[i + 1 : end]
        if body in simple:
            out.append(simple[body])
        elif body[:1] == "X" and _HEX.fullmatch(body[1:]):
            out.append(bytes.fromhex(body[1:]).decode("latin-1"))
        else:
            # &H&, &N&, &Zcccc& and stray escape characters: keep them as they came.
            out.append(text[i : end + 1])
        i = end + 1
    return "".join(out)


# ---------------------------------------------------------------------------- record


def as_field(value: object) -> Field:
    """Normalise a convenience value into a ``Field``.

    ``None``/"" -> empty; ``str`` -> one component; a tuple/list of ``str`` -> components of one
    repeat; a list of tuples/lists -> repeats of components.
    """
    if value is None:
        return EMPTY_FIELD
    if isinstance(value, str):
        return ((value,),)
    if isinstance(value, tuple | list):
        if not value:
            return EMPTY_FIELD
        if all(isinstance(v, str) for v in value):
            return (tuple(value),)
        return tuple(((r,) if isinstance(r, str) else tuple(r)) for r in value)
    return ((str(value),),)


@dataclass(frozen=True, slots=True)
class Record:
    """One E1394 record. ``fields[0]`` is field 2 (field 3 for H, whose field 2 is delimiters)."""

    type: str
    fields: tuple[Field, ...] = ()

    @property
    def first_field_number(self) -> int:
        return 3 if self.type == "H" else 2

    def field(self, n: int) -> Field:
        i = n - self.first_field_number
        if i < 0 or i >= len(self.fields):
            return EMPTY_FIELD
        return self.fields[i]

    def components(self, n: int) -> Components:
        """The components of the first repeat of field ``n``."""
        return self.field(n)[0]

    def text(self, n: int, component: int = 1) -> str:
        comps = self.components(n)
        return comps[component - 1] if len(comps) >= component else ""

    def encode(self, d: Delimiters = DEFAULT_DELIMITERS) -> str:
        specials = d.specials
        encoded = [
            d.repeat.join(
                d.component.join(c if specials.isdisjoint(c) else escape(c, d) for c in rep)
                for rep in f
            )
            for f in self.fields
        ]
        head = d.definition if self.type == "H" else self.type
        return d.field.join([head, *encoded])

    @classmethod
    def build(
        cls, type_: str, values: dict[int, object], extra: dict[int, Field] | None = None
    ) -> Record:
        """Build from ``{field number: value}`` (see ``as_field``), filling gaps with empties."""
        first = 3 if type_ == "H" else 2
        merged: dict[int, Field] = dict(extra or {})
        for n, v in values.items():
            f = as_field(v)
            if f != EMPTY_FIELD or n not in merged:
                merged[n] = f
        last = max((n for n, f in merged.items() if f != EMPTY_FIELD), default=first - 1)
        fields = tuple(merged.get(n, EMPTY_FIELD) for n in range(first, last + 1))
        return cls(type_, fields)


def parse_record(text: str, d: Delimiters = DEFAULT_DELIMITERS) -> Record:
    """Parse one record (without its CR). An H record sets its own delimiters."""
    text = text.rstrip("\r\n")
    if not text:
        raise RecordSyntaxError("empty record")
    type_ = text[0].upper()
    if type_ == "H":
        d = Delimiters.from_header(text)
        rest = text[5:]
        if rest and rest[0] != d.field:
            raise RecordSyntaxError("H record: field delimiter expected after the delimiters")
        raw_fields = rest.split(d.field)[1:] if rest else []
    else:
        if len(text) > 1 and text[1] != d.field:
            raise RecordSyntaxError(f"record {text[:10]!r}: field delimiter expected")
        raw_fields = text.split(d.field)[1:]
    if d.escape in text:
        fields = tuple(
            tuple(
                tuple(unescape(c, d) for c in rep.split(d.component)) for rep in f.split(d.repeat)
            )
            for f in raw_fields
        )
    else:  # nothing escaped in the record (the usual case): split only
        fields = tuple(
            tuple(tuple(rep.split(d.component)) for rep in f.split(d.repeat)) for f in raw_fields
        )
    return Record(type_, fields)


# ---------------------------------------------------------------------------- typed records


def _rest(record: Record, known: Iterable[int]) -> dict[int, Field]:
    known = set(known)
    first = record.first_field_number
    return {
        first + i: f
        for i, f in enumerate(record.fields)
        if first + i not in known and f != EMPTY_FIELD
    }


def _repeats(f: Field) -> tuple[Components, ...]:
    return tuple(r for r in f if r != ("",))


@dataclass(slots=True)
class Header:
    TYPE: ClassVar[str] = "H"
    FIELDS: ClassVar[tuple[int, ...]] = (3, 4, 5, 10, 11, 12, 13, 14)

    delimiters: Delimiters = DEFAULT_DELIMITERS
    message_control_id: str = ""
    password: str = ""
    sender: Components = ()  # H-5: name^version^serial... (vendors pack more)
    receiver: Components = ()  # H-10
    comment: Components = ()  # H-11: Roche message meaning, e.g. ("RSUPL", "REAL")
    processing_id: str = ""  # H-12: P, T, D, Q
    version: str = ""  # H-13
    timestamp: str = ""  # H-14: YYYYMMDDHHMMSS
    extra: dict[int, Field] = field(default_factory=dict)

    @property
    def sender_name(self) -> str:
        return self.sender[0] if self.sender else ""

    @property
    def sender_version(self) -> str:
        return self.sender[1] if len(self.sender) > 1 else ""

    @property
    def message_type(self) -> str:
        """H-11 first component: Roche RSUPL / TSREQ / TSDWN..."""
        return self.comment[0] if self.comment else ""

    def to_record(self) -> Record:
        values: dict[int, object] = {
            3: self.message_control_id,
            4: self.password,
            5: self.sender,
            10: self.receiver,
            11: self.comment,
            12: self.processing_id,
            13: self.version,
            14: self.timestamp,
        }
        return Record.build("H", values, self.extra)

    @classmethod
    def from_record(cls, r: Record, d: Delimiters = DEFAULT_DELIMITERS) -> Self:
        return cls(
            delimiters=d,
            message_control_id=r.text(3),
            password=r.text(4),
            sender=r.components(5) if r.field(5) != EMPTY_FIELD else (),
            receiver=r.components(10) if r.field(10) != EMPTY_FIELD else (),
            comment=r.components(11) if r.field(11) != EMPTY_FIELD else (),
            processing_id=r.text(12),
            version=r.text(13),
            timestamp=r.text(14),
            extra=_rest(r, cls.FIELDS),
        )


@dataclass(slots=True)
class Patient:
    TYPE: ClassVar[str] = "P"
    FIELDS: ClassVar[tuple[int, ...]] = (2, 3, 4, 5, 6, 8, 9)

    sequence: int = 1
    practice_id: str = ""  # P-3
    lab_id: str = ""  # P-4
    patient_id: str = ""  # P-5 (third id)
    name: Components = ()  # P-6: last^first^middle...
    birth_date: str = ""  # P-8
    sex: str = ""  # P-9: M / F / U
    extra: dict[int, Field] = field(default_factory=dict)

    def to_record(self) -> Record:
        return Record.build(
            "P",
            {
                2: str(self.sequence),
                3: self.practice_id,
                4: self.lab_id,
                5: self.patient_id,
                6: self.name,
                8: self.birth_date,
                9: self.sex,
            },
            self.extra,
        )

    @classmethod
    def from_record(cls, r: Record, d: Delimiters = DEFAULT_DELIMITERS) -> Self:
        return cls(
            sequence=_int(r.text(2)),
            practice_id=r.text(3),
            lab_id=r.text(4),
            patient_id=r.text(5),
            name=r.components(6) if r.field(6) != EMPTY_FIELD else (),
            birth_date=r.text(8),
            sex=r.text(9),
            extra=_rest(r, cls.FIELDS),
        )


@dataclass(slots=True)
class Order:
    TYPE: ClassVar[str] = "O"
    FIELDS: ClassVar[tuple[int, ...]] = (2, 3, 4, 5, 6, 7, 8, 12, 16, 26)

    sequence: int = 1
    specimen_id: str = ""  # O-3: host's id / barcode; Roche "@<seq>" on barcode read error
    instrument_specimen_id: Components = ()  # O-4: e.g. seq^rack^position; echo unchanged
    tests: tuple[Components, ...] = ()  # O-5 repeats: ("", "", "", "685/") ...
    priority: str = ""  # O-6: S A R C P
    ordered_at: str = ""  # O-7
    collected_at: str = ""  # O-8
    action_code: str = ""  # O-12: C A N P L X Q
    specimen_descriptor: str = ""  # O-16
    report_type: str = ""  # O-26: O C P F X I Y Z Q
    extra: dict[int, Field] = field(default_factory=dict)

    @property
    def barcode_read_failed(self) -> bool:
        return self.specimen_id.startswith("@")

    @property
    def test_codes(self) -> tuple[str, ...]:
        """Fourth component of each universal test id (the manufacturer's code)."""
        return tuple(t[3] if len(t) > 3 else "" for t in self.tests)

    def to_record(self) -> Record:
        return Record.build(
            "O",
            {
                2: str(self.sequence),
                3: self.specimen_id,
                4: self.instrument_specimen_id,
                5: [tuple(t) for t in self.tests] if self.tests else None,
                6: self.priority,
                7: self.ordered_at,
                8: self.collected_at,
                12: self.action_code,
                16: self.specimen_descriptor,
                26: self.report_type,
            },
            self.extra,
        )

    @classmethod
    def from_record(cls, r: Record, d: Delimiters = DEFAULT_DELIMITERS) -> Self:
        return cls(
            sequence=_int(r.text(2)),
            specimen_id=r.text(3),
            instrument_specimen_id=r.components(4) if r.field(4) != EMPTY_FIELD else (),
            tests=_repeats(r.field(5)),
            priority=r.text(6),
            ordered_at=r.text(7),
            collected_at=r.text(8),
            action_code=r.text(12),
            specimen_descriptor=r.text(16),
            report_type=r.text(26),
            extra=_rest(r, cls.FIELDS),
        )


@dataclass(slots=True)
class Result:
    TYPE: ClassVar[str] = "R"
    FIELDS: ClassVar[tuple[int, ...]] = (2, 3, 4, 5, 6, 7, 9, 11, 12, 13, 14)

    sequence: int = 1
    test_id: Components = ()
    value: str = ""  # R-4 (may carry "<", "> " prefixes, or "-1^COI" components: see extra)
    units: str = ""
    reference_range: str = ""
    flags: tuple[str, ...] = ()  # components and repeats flattened (Abbott sends several)
    status: str = ""  # F C P X I S M R N Q V W
    operator: Components = ()
    started_at: str = ""
    completed_at: str = ""
    instrument: str = ""
    value_components: Components = ()  # R-4 in full when it has components (e411 qualitative)
    extra: dict[int, Field] = field(default_factory=dict)

    @property
    def test_code(self) -> str:
        return self.test_id[3] if len(self.test_id) > 3 else ""

    def to_record(self) -> Record:
        value: object = self.value_components if self.value_components else self.value
        return Record.build(
            "R",
            {
                2: str(self.sequence),
                3: self.test_id,
                4: value,
                5: self.units,
                6: self.reference_range,
                7: self.flags,
                9: self.status,
                11: self.operator,
                12: self.started_at,
                13: self.completed_at,
                14: self.instrument,
            },
            self.extra,
        )

    @classmethod
    def from_record(cls, r: Record, d: Delimiters = DEFAULT_DELIMITERS) -> Self:
        value = r.components(4)
        flags = tuple(c for rep in r.field(7) for c in rep if c)
        return cls(
            sequence=_int(r.text(2)),
            test_id=r.components(3) if r.field(3) != EMPTY_FIELD else (),
            value=value[0],
            units=r.text(5),
            reference_range=r.text(6),
            flags=flags,
            status=r.text(9),
            operator=r.components(11) if r.field(11) != EMPTY_FIELD else (),
            started_at=r.text(12),
            completed_at=r.text(13),
            instrument=r.text(14),
            value_components=value if len(value) > 1 else (),
            extra=_rest(r, cls.FIELDS),
        )


@dataclass(slots=True)
class Comment:
    TYPE: ClassVar[str] = "C"
    FIELDS: ClassVar[tuple[int, ...]] = (2, 3, 4, 5)

    sequence: int = 1
    source: str = ""  # C-3: I instrument, L LIS, P practice
    text: Components = ()  # C-4, e.g. ("50", "Below measuring range")
    type: str = ""  # C-5: G T P N I
    extra: dict[int, Field] = field(default_factory=dict)

    def to_record(self) -> Record:
        return Record.build(
            "C",
            {2: str(self.sequence), 3: self.source, 4: self.text, 5: self.type},
            self.extra,
        )

    @classmethod
    def from_record(cls, r: Record, d: Delimiters = DEFAULT_DELIMITERS) -> Self:
        return cls(
            sequence=_int(r.text(2)),
            source=r.text(3),
            text=r.components(4) if r.field(4) != EMPTY_FIELD else (),
            type=r.text(5),
            extra=_rest(r, cls.FIELDS),
        )


@dataclass(slots=True)
class Query:
    TYPE: ClassVar[str] = "Q"
    FIELDS: ClassVar[tuple[int, ...]] = (2, 3, 4, 5, 13)

    sequence: int = 1
    starting_range: Components = ()  # patient id^specimen id^... (DxH: "!<sid>")
    ending_range: Components = ()
    test_ids: Components = ()  # Q-5, e.g. ("ALL",) or ("", "", "", "ALL")
    request_status: str = ""  # O, A (cancel), ...
    extra: dict[int, Field] = field(default_factory=dict)

    @property
    def sample_id(self) -> str:
        """The specimen id asked about: Q-3 component 2, or component 1 when alone."""
        comps = self.starting_range
        if len(comps) > 1 and comps[1]:
            return comps[1]
        return comps[0] if comps else ""

    def to_record(self) -> Record:
        return Record.build(
            "Q",
            {
                2: str(self.sequence),
                3: self.starting_range,
                4: self.ending_range,
                5: self.test_ids,
                13: self.request_status,
            },
            self.extra,
        )

    @classmethod
    def from_record(cls, r: Record, d: Delimiters = DEFAULT_DELIMITERS) -> Self:
        return cls(
            sequence=_int(r.text(2)),
            starting_range=r.components(3) if r.field(3) != EMPTY_FIELD else (),
            ending_range=r.components(4) if r.field(4) != EMPTY_FIELD else (),
            test_ids=r.components(5) if r.field(5) != EMPTY_FIELD else (),
            request_status=r.text(13),
            extra=_rest(r, cls.FIELDS),
        )


@dataclass(slots=True)
class Manufacturer:
    """M record: vendor payload; kept as raw fields after the sequence number."""

    TYPE: ClassVar[str] = "M"
    FIELDS: ClassVar[tuple[int, ...]] = (2,)

    sequence: int = 1
    extra: dict[int, Field] = field(default_factory=dict)

    def to_record(self) -> Record:
        return Record.build("M", {2: str(self.sequence)}, self.extra)

    @classmethod
    def from_record(cls, r: Record, d: Delimiters = DEFAULT_DELIMITERS) -> Self:
        return cls(sequence=_int(r.text(2)), extra=_rest(r, cls.FIELDS))


@dataclass(slots=True)
class Terminator:
    """L record. The termination code is field 3 (``L|1|N``): N normal, T sender aborted,
    R receiver abort, E system error, Q query error, I no information, F query processed."""

    TYPE: ClassVar[str] = "L"
    FIELDS: ClassVar[tuple[int, ...]] = (2, 3)

    sequence: int = 1
    code: str = "N"
    extra: dict[int, Field] = field(default_factory=dict)

    def to_record(self) -> Record:
        return Record.build("L", {2: str(self.sequence), 3: self.code}, self.extra)

    @classmethod
    def from_record(cls, r: Record, d: Delimiters = DEFAULT_DELIMITERS) -> Self:
        return cls(sequence=_int(r.text(2)), code=r.text(3), extra=_rest(r, cls.FIELDS))


TypedRecord = Header | Patient | Order | Result | Comment | Query | Manufacturer | Terminator
_TYPED: dict[str, type] = {
    c.TYPE: c for c in (Header, Patient, Order, Result, Comment, Query, Manufacturer, Terminator)
}


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def typed(record: Record, d: Delimiters = DEFAULT_DELIMITERS) -> TypedRecord | Record:
    """The typed view of a record, or the record itself for S and unknown types."""
    cls = _TYPED.get(record.type)
    return cls.from_record(record, d) if cls else record  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- message


@dataclass(slots=True)
class ResultGroup:
    result: Result
    comments: list[Comment] = field(default_factory=list)


@dataclass(slots=True)
class OrderGroup:
    order: Order
    comments: list[Comment] = field(default_factory=list)
    results: list[ResultGroup] = field(default_factory=list)


@dataclass(slots=True)
class PatientGroup:
    patient: Patient | None
    comments: list[Comment] = field(default_factory=list)
    orders: list[OrderGroup] = field(default_factory=list)


@dataclass(slots=True)
class Message:
    """One E1394 message: H ... L. ``records`` are generic; typed views are derived."""

    records: list[Record] = field(default_factory=list)
    delimiters: Delimiters = DEFAULT_DELIMITERS

    @classmethod
    def build(cls, *items: TypedRecord | Record, delimiters: Delimiters | None = None) -> Message:
        """Build from typed or generic records; the delimiters come from the Header if any."""
        d = delimiters
        if d is None:
            head = next((i for i in items if isinstance(i, Header)), None)
            d = head.delimiters if head else DEFAULT_DELIMITERS
        recs = [i if isinstance(i, Record) else i.to_record() for i in items]
        return cls(recs, d)

    def serialise(self) -> list[str]:
        """Record strings (no CR), ready for ``framing.build_frames`` or ``protocol.send``."""
        return [r.encode(self.delimiters) for r in self.records]

    def to_text(self) -> str:
        return "".join(s + "\r" for s in self.serialise())

    def typed(self) -> list[TypedRecord | Record]:
        return [typed(r, self.delimiters) for r in self.records]

    def of_type(self, type_: str) -> list[TypedRecord | Record]:
        return [typed(r, self.delimiters) for r in self.records if r.type == type_]

    @property
    def header(self) -> Header | None:
        h = self.of_type("H")
        return h[0] if h else None  # type: ignore[return-value]

    @property
    def terminator(self) -> Terminator | None:
        t = self.of_type("L")
        return t[-1] if t else None  # type: ignore[return-value]

    @property
    def queries(self) -> list[Query]:
        return self.of_type("Q")  # type: ignore[return-value]

    def patients(self) -> list[PatientGroup]:
        """The P -> O -> R hierarchy with comments attached to their parent.

        Orders or results without a P record are grouped under ``PatientGroup(None)``.
        """
        groups: list[PatientGroup] = []
        pg: PatientGroup | None = None
        og: OrderGroup | None = None
        rg: ResultGroup | None = None
        last: str = "H"
        for item in self.typed():
            if isinstance(item, Patient):
                pg, og, rg = PatientGroup(item), None, None
                groups.append(pg)
            elif isinstance(item, Order):
                if pg is None:
                    pg = PatientGroup(None)
                    groups.append(pg)
                og, rg = OrderGroup(item), None
                pg.orders.append(og)
            elif isinstance(item, Result):
                if og is None:
                    if pg is None:
                        pg = PatientGroup(None)
                        groups.append(pg)
                    og = OrderGroup(Order())
                    pg.orders.append(og)
                rg = ResultGroup(item)
                og.results.append(rg)
            elif isinstance(item, Comment):
                if last == "R" and rg is not None:
                    rg.comments.append(item)
                elif last == "O" and og is not None:
                    og.comments.append(item)
                elif last == "P" and pg is not None:
                    pg.comments.append(item)
                continue  # a comment does not change what the next comment belongs to
            last = getattr(item, "TYPE", "?")
        return groups


def _split_records(text: str) -> list[str]:
    return [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]


def parse_records(lines: Sequence[str]) -> list[Message]:
    """Parse record strings into messages; each H starts a new message with its delimiters."""
    messages: list[Message] = []
    current: Message | None = None
    d = DEFAULT_DELIMITERS
    for line in lines:
        if not line:
            continue
        if line[0] in "Hh":
            d = Delimiters.from_header(line)
            current = Message([], d)
            messages.append(current)
        elif current is None:
            current = Message([], d)
            messages.append(current)
        current.records.append(parse_record(line, d))
        if line[0] in "Ll":
            current = None
    return messages


def parse_messages(text: str) -> list[Message]:
    """Parse CR- (or CRLF/LF-) separated records; a batch (H..L H..L) gives several messages."""
    return parse_records(_split_records(text))


def parse_message(text: str | Sequence[str]) -> Message:
    """Parse exactly one message from text or from a list of record strings."""
    lines = _split_records(text) if isinstance(text, str) else list(text)
    messages = parse_records(lines)
    if len(messages) != 1:
        raise RecordSyntaxError(f"expected one ASTM message, found {len(messages)}")
    return messages[0]
