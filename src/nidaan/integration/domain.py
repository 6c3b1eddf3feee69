"""What the HL7/ASTM drivers hand to the service, and the pure rules of ingestion.

The codecs (``integration.hl7``, ``integration.astm``) and the vendor drivers turn bytes
into :class:`InstrumentMessage`; the service stores and applies them. Nothing here touches
the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nidaan.integration.enums import ConnectionState, MessageStatus, Transport

#: A link heartbeat older than this (published by the interfaces process every reload,
#: 5 s by default) means the state is unknown, not connected.
HEARTBEAT_STALE = timedelta(seconds=30)
#: A message within this window counts as a live link even without a socket heartbeat.
RECENT = timedelta(minutes=10)
#: Result status codes that carry no value (ASTM R.9 / HL7 OBX-11 "X": cannot be done).
NO_VALUE_STATUSES = frozenset({"X", "D"})


@dataclass(frozen=True)
class SampleIds:
    """How an HL7 result names its sample, most trusted first. The service resolves each to
    one of our samples and lands the result only when those that resolve agree."""

    filler: str = ""  # OBR-3 / ORC-3: the filler order number (our accession)
    specimen: tuple[str, ...] = ()  # SPM-2 (placer- and filler-assigned) and SAC-3
    placer: str = ""  # OBR-2 / ORC-2: only through a known placer mapping

    @property
    def given(self) -> bool:
        return bool(self.filler or self.specimen or self.placer)


@dataclass(frozen=True)
class InstrumentResult:
    """One result as the analyzer sent it, before any mapping."""

    accession: str  # sample id as read from the tube (may carry a vendor prefix such as '@')
    instrument_code: str  # the analyzer's test code (ASTM universal test id, OBX-3 code)
    value: str
    unit: str | None = None
    flags: tuple[str, ...] = ()  # abnormal flags as sent: "H", "LL", "<", "EDIT"...
    status: str | None = None  # F final, C correction, P preliminary, X no value...
    completed_at: datetime | None = None
    raw_segment: str | None = None  # the R record / OBX segment, for the audit trail
    #: HL7: the separate identifiers (``accession`` then only shows one of them).
    sample_ids: SampleIds | None = None
    #: Why the analyzer could not identify the tube (Roche ``@<seq>``: barcode not read),
    #: with its rack and position; such a result is never matched to a sample.
    unidentified: str | None = None
    #: The text of a coded (CE/CWE) value whose code is in ``value``.
    value_text: str | None = None
    #: A quality-control result (the analyzer marked the sample as a control: ASTM H-12 or
    #: O-12 ``Q``, an ARCHITECT control lot, HL7 SPM-11 ``Q``): never matched to a patient.
    control: bool = False
    #: The control lot the analyzer named (ARCHITECT R-3), if any.
    control_lot: str | None = None


@dataclass(frozen=True)
class InstrumentMessage:
    """One transmission (ASTM H..L, HL7 MSH..) with its results."""

    dedupe_key: str | None  # MSH-10 control id, or a hash of the ASTM body; None: never deduped
    message_type: str  # "ORU^R01", "ASTM-R"...
    results: list[InstrumentResult] = field(default_factory=list)
    raw: str = ""


def normalize_accession(text: str) -> str:
    """The accession as our labels print it: trimmed, upper-case. A Roche ``@<seq>`` (the
    barcode was not read) stays as it is and so matches no sample."""
    return text.strip().upper()


def normalize_code(text: str) -> str:
    """Instrument codes compare trimmed and case-insensitively."""
    return text.strip().upper()


def join_flags(flags: tuple[str, ...] | list[str]) -> str | None:
    """Instrument flags as stored on the result ("H~EDIT"), at most 100 characters."""
    cleaned = [f.strip() for f in flags if f and f.strip()]
    return "~".join(cleaned)[:100] or None


def has_value(result: InstrumentResult) -> bool:
    status = (result.status or "").strip().upper()
    return bool(result.value and result.value.strip()) and status not in NO_VALUE_STATUSES


def result_raw(result: InstrumentResult, message_id: Any, instrument_name: str) -> dict[str, Any]:
    """What a result's ``raw`` column keeps of its instrument origin."""
    return {
        "instrument": instrument_name,
        "message_id": str(message_id),
        "instrument_code": result.instrument_code,
        "accession": result.accession,
        "value": result.value,
        "unit": result.unit,
        "flags": list(result.flags),
        "status": result.status,
        "completed_at": result.completed_at.isoformat() if result.completed_at else None,
        "segment": result.raw_segment,
        **({"value_text": result.value_text} if result.value_text else {}),
        **(
            {
                "sample_ids": {
                    "filler": result.sample_ids.filler,
                    "specimen": list(result.sample_ids.specimen),
                    "placer": result.sample_ids.placer,
                }
            }
            if result.sample_ids is not None
            else {}
        ),
    }


def transport_problems(
    transport: str,
    *,
    host: str | None,
    port: int | None,
    device: str | None,
    baudrate: int | None,
) -> list[str]:
    """What is missing or out of place for the chosen transport (empty when valid)."""
    problems = []
    if transport in (Transport.TCP_SERVER, Transport.TCP_CLIENT):
        if transport == Transport.TCP_CLIENT and not host:
            problems.append("host is required for tcp-client")
        if port is None:
            problems.append(f"port is required for {transport}")
        if device or baudrate:
            problems.append(f"device and baudrate are for serial, not {transport}")
    elif transport == Transport.SERIAL:
        if not device:
            problems.append("device is required for serial")
        if baudrate is None:
            problems.append("baudrate is required for serial")
        if host or port:
            problems.append("host and port are for TCP, not serial")
    return problems


def connection_state(
    *,
    enabled: bool,
    connected: bool | None,
    last_message_at: datetime | None,
    last_status: str | None,
    now: datetime,
    link_error: str | None = None,
) -> ConnectionState:
    """connected / idle / error from the link heartbeat (None: unknown in this process), a
    connection that could not start (``link_error``) and the last stored message."""
    if not enabled:
        return ConnectionState.DISABLED
    if link_error:
        return ConnectionState.ERROR
    if last_status == MessageStatus.ERROR:
        return ConnectionState.ERROR
    if connected:
        return ConnectionState.CONNECTED
    if connected is None and last_message_at is not None and now - last_message_at <= RECENT:
        return ConnectionState.CONNECTED
    return ConnectionState.IDLE


#: Instrument ``settings`` key: sample ids the analyzer uses for controls (``QC1``, or a
#: prefix ending in ``*`` such as ``QC*``); such results go to quality control.
CONTROL_IDS_SETTING = "control_ids"
#: Instrument ``settings`` key: instrument codes of serum indices -> ``H``, ``I`` or ``L``.
SERUM_INDEX_SETTING = "serum_index_codes"
#: Serum-index codes understood without configuration (haemolysis, icterus, lipaemia).
DEFAULT_SERUM_INDEX_CODES = {
    "H-INDEX": "H",
    "I-INDEX": "I",
    "L-INDEX": "L",
    "HEMOLYSIS": "H",
    "ICTERUS": "I",
    "LIPEMIA": "L",
    "SI-H": "H",
    "SI-I": "I",
    "SI-L": "L",
}


def is_control(result: InstrumentResult, control_ids: list[str] | tuple[str, ...]) -> bool:
    """Whether a result is quality control: marked so by the analyzer, or its sample id is one
    of the instrument's control ids (``QC*`` matches any id starting with ``QC``)."""
    if result.control:
        return True
    accession = normalize_accession(result.accession)
    if not accession:
        return False
    for pattern in control_ids:
        pattern = normalize_accession(str(pattern))
        if pattern.endswith("*") and pattern[:-1] and accession.startswith(pattern[:-1]):
            return True
        if pattern and accession == pattern:
            return True
    return False


def serum_index_codes(settings: dict[str, Any]) -> dict[str, str]:
    """The instrument's serum-index codes (normalised) -> H / I / L."""
    configured = settings.get(SERUM_INDEX_SETTING)
    codes = configured if isinstance(configured, dict) else DEFAULT_SERUM_INDEX_CODES
    return {
        normalize_code(str(code)): str(kind).upper()
        for code, kind in codes.items()
        if str(kind).upper() in ("H", "I", "L")
    }


def serum_indices(
    results: list[InstrumentResult], codes: dict[str, str]
) -> tuple[list[InstrumentResult], dict[str, dict[str, str]]]:
    """Take serum-index results (haemolysis, icterus, lipaemia) out of a message: the other
    results, and ``{accession: {"H": value, ...}}`` to keep with the results of each sample."""
    kept: list[InstrumentResult] = []
    indices: dict[str, dict[str, str]] = {}
    for result in results:
        kind = codes.get(normalize_code(result.instrument_code))
        if kind is None or not has_value(result):
            kept.append(result)
            continue
        indices.setdefault(normalize_accession(result.accession), {})[kind] = result.value.strip()
    return kept, indices


def control_item(result: InstrumentResult, test_id: Any) -> dict[str, Any]:
    """A control result as ``ControlResultsReceived`` carries it."""
    return {
        "control_id": result.accession.strip(),
        "instrument_code": result.instrument_code,
        "test_id": str(test_id) if test_id is not None else None,
        "value": result.value,
        "unit": result.unit,
        "flags": list(result.flags),
        "status": result.status,
        "completed_at": result.completed_at.isoformat() if result.completed_at else None,
        "lot": result.control_lot,
        "segment": result.raw_segment,
    }
