"""Typed extraction of what the integration flows need from parsed HL7 messages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final

from nidaan.integration.hl7.errors import HL7ErrorCode, HL7ValidationError
from nidaan.integration.hl7.message import Message, Segment, parse_date, parse_ts

__all__ = [
    "Coded",
    "HL7Order",
    "HL7Patient",
    "HL7Result",
    "PatientIdentifier",
    "extract_orders",
    "extract_patient",
    "extract_query",
    "extract_results",
]

SEX_CODES: Final[dict[str, str]] = {
    "M": "male",
    "F": "female",
    "O": "other",
    "A": "other",
    "U": "unknown",
    "N": "unknown",
}
_CODED_TYPES: Final = frozenset({"CE", "CWE", "CNE", "CF"})


def _clean(value: str) -> str:
    """HL7 explicit null ``""`` reads as empty."""
    return "" if value == '""' else value


@dataclass(frozen=True, slots=True)
class Coded:
    """CE/CWE: identifier^text^coding system (instruments put their test code in .code)."""

    code: str
    text: str = ""
    system: str = ""

    @classmethod
    def from_field(cls, seg: Segment, n: int, repetition: int = 1) -> Coded:
        return cls(
            _clean(seg.get(n, 1, repetition=repetition)),
            _clean(seg.get(n, 2, repetition=repetition)),
            _clean(seg.get(n, 3, repetition=repetition)),
        )


@dataclass(frozen=True, slots=True)
class PatientIdentifier:
    id: str
    assigning_authority: str = ""
    type_code: str = ""


@dataclass(frozen=True, slots=True)
class HL7Patient:
    mrn: str
    assigning_authority: str = ""
    family_name: str = ""
    given_name: str = ""
    dob: date | None = None
    sex: str = "unknown"
    phone: str = ""
    identifiers: tuple[PatientIdentifier, ...] = ()


@dataclass(frozen=True, slots=True)
class HL7Result:
    """One OBX with the context of its OBR (and ORC/SPM)."""

    accession: str
    observation: Coded
    values: tuple[str, ...] = ()
    value_type: str = ""
    set_id: str = ""
    sub_id: str = ""
    units: str = ""
    reference_range: str = ""
    abnormal_flags: tuple[str, ...] = ()
    status: str = ""
    observed_at: datetime | None = None
    producer: str = ""
    placer_order_number: str = ""
    filler_order_number: str = ""
    service: Coded = field(default_factory=lambda: Coded(""))
    specimen_id: str = ""
    #: Every specimen/container id of the result's specimen (SPM-2 both parts, SAC-3).
    specimen_ids: tuple[str, ...] = ()
    #: CE/CWE value with its text (OBX-2 CE/CWE), else None.
    coded_value: Coded | None = None
    #: Result comments and the correction reason (NTE after the OBX); outbound only.
    comments: tuple[str, ...] = ()
    #: Outbound: specimen collection (OBR-7, OBX-14) and verification time (OBX-19, OBR-22).
    collected_at: datetime | None = None
    verified_at: datetime | None = None
    #: SPM-11 specimen role (table 0369): ``P`` patient, ``Q`` control (QC), ``C`` calibrator.
    specimen_role: str = ""

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""


@dataclass(frozen=True, slots=True)
class HL7Order:
    """One ordered test (one OBR, or an ORC without OBR such as a cancel)."""

    accession: str
    service: Coded = field(default_factory=lambda: Coded(""))
    order_control: str = "NW"
    placer_order_number: str = ""
    filler_order_number: str = ""
    priority: str = ""
    specimen_id: str = ""
    specimen_type: Coded = field(default_factory=lambda: Coded(""))
    collected_at: datetime | None = None
    ordering_provider: str = ""
    patient: HL7Patient | None = None


# -- patient -----------------------------------------------------------------------------


def extract_patient(source: Message | Segment) -> HL7Patient | None:
    """Patient from a PID segment (or the first PID of a message); None when absent."""
    if isinstance(source, Message):
        pid = source.segment("PID")
        if pid is None:
            return None
    else:
        pid = source
    identifiers = []
    for i in range(1, len(pid.repetitions(3)) + 1):
        ident = _clean(pid.get(3, 1, repetition=i))
        if ident:
            identifiers.append(
                PatientIdentifier(
                    ident,
                    _clean(pid.get(3, 4, 1, repetition=i)),
                    _clean(pid.get(3, 5, repetition=i)),
                )
            )
    if not identifiers and _clean(pid.get(2, 1)):  # v2.3.1 external patient id
        identifiers.append(PatientIdentifier(_clean(pid.get(2, 1)), _clean(pid.get(2, 4, 1))))
    primary = next((i for i in identifiers if i.type_code == "MR"), None) or (
        identifiers[0] if identifiers else PatientIdentifier("")
    )
    phone = _clean(pid.get(13, 1))
    if not phone:
        parts = [_clean(pid.get(13, n)) for n in (5, 6, 7)]
        if any(parts):
            phone = ("+" + parts[0] if parts[0] else "") + parts[1] + parts[2]
    return HL7Patient(
        mrn=primary.id,
        assigning_authority=primary.assigning_authority,
        family_name=_clean(pid.get(5, 1, 1)),
        given_name=_clean(pid.get(5, 2)),
        dob=parse_date(pid.get(7, 1)),
        sex=SEX_CODES.get(pid.get(8, 1).upper(), "unknown"),
        phone=phone,
        identifiers=tuple(identifiers),
    )


# -- results -----------------------------------------------------------------------------


def _obx_values(obx: Segment, value_type: str) -> tuple[str, ...]:
    values = []
    for i, rep in enumerate(obx.repetitions(5), start=1):
        if value_type == "SN":
            comps = [obx.get(5, n, repetition=i) for n in (1, 2, 3, 4)]
            value = "".join(comps)
        elif value_type in _CODED_TYPES:
            value = obx.get(5, 1, repetition=i) or obx.get(5, 2, repetition=i)
        else:
            value = obx.enc.unescape_text(rep)
        value = _clean(value)
        if value:
            values.append(value)
    return tuple(values)


def _obx_coded(obx: Segment, value_type: str) -> Coded | None:
    """The first CE/CWE value of OBX-5 with its text (the report shows the text)."""
    if value_type not in _CODED_TYPES or not obx.repetitions(5):
        return None
    coded = Coded.from_field(obx, 5)
    return coded if coded.code or coded.text else None


_SPLIT_POWER_OF_TEN: Final = re.compile(r"^[+-]?\d")


def _units(obx: Segment) -> str:
    """OBX-6.1; many analyzers send ``10^9/L`` without escaping the ``^``, which then reads
    as components ``10`` and ``9/L``: such a split power of ten is joined again."""
    first, second = _clean(obx.get(6, 1)), _clean(obx.get(6, 2))
    if first.endswith("10") and _SPLIT_POWER_OF_TEN.match(second):
        return f"{first}^{second}"
    return first


def _specimen_ids(seg: Segment) -> list[str]:
    """SPM-2 (EIP: placer-assigned ^ filler-assigned specimen id) or SAC-3 (container id)."""
    if seg.name == "SAC":
        return [i for i in (_clean(seg.get(3, 1)),) if i]
    return [i for i in (_clean(seg.get(2, 1, 1)), _clean(seg.get(2, 2, 1))) if i]


@dataclass
class _ObservationGroup:
    """One OBR with its ORC, its OBX and the specimens (SPM/SAC) it belongs to."""

    obr: Segment
    orc: Segment | None
    specimen_ids: list[str]
    observations: list[Segment] = field(default_factory=list)
    specimen_role: str = ""


def _observation_groups(msg: Message) -> list[_ObservationGroup]:
    """ORU^R01 puts SPM after the OBX of its OBR; OUL^R22 puts SPM (and SAC) before the OBRs
    it holds and ORC after its OBR. OBX of a specimen (after SPM) are not results."""
    specimen_first = msg.message_code == "OUL"
    groups: list[_ObservationGroup] = []
    group: _ObservationGroup | None = None
    orc: Segment | None = None
    specimen: list[str] = []
    role = ""
    in_specimen = False
    for seg in msg.segment_list:
        name = seg.name
        if name in ("SPM", "SAC"):
            ids = _specimen_ids(seg)
            if specimen_first:
                specimen = ids if name == "SPM" else specimen + ids
                if name == "SPM":
                    role = _clean(seg.get(11, 1)).upper()
                group = None
            elif group is not None:
                group.specimen_ids.extend(i for i in ids if i not in group.specimen_ids)
                if name == "SPM":
                    group.specimen_role = _clean(seg.get(11, 1)).upper()
                in_specimen = True
        elif name == "ORC":
            if specimen_first and group is not None and group.orc is None:
                group.orc = seg
            else:
                orc, group = seg, None
        elif name == "OBR":
            group = _ObservationGroup(
                seg,
                orc,
                list(specimen) if specimen_first else [],
                specimen_role=role if specimen_first else "",
            )
            groups.append(group)
            in_specimen = False
        elif name == "OBX" and group is not None and not in_specimen:
            group.observations.append(seg)
    return groups


def extract_results(msg: Message) -> list[HL7Result]:
    """Every OBX under an OBR of an ORU^R01 / OUL^R22, flattened with its order context.

    The sample identifiers are kept apart (the service decides which one names our sample):
    filler order number OBR-3 (else ORC-3), specimen ids SPM-2 / SAC-3, placer order number
    OBR-2 (else ORC-2). ``accession`` shows the first of them that is present, in that order.
    Observation time = OBX-14, else OBR-7. OBX segments outside an OBR (patient or specimen
    observations) are skipped.
    """
    results: list[HL7Result] = []
    for group in _observation_groups(msg):
        obr, orc = group.obr, group.orc
        placer = _clean(obr.get(2, 1)) or (_clean(orc.get(2, 1)) if orc else "")
        filler = _clean(obr.get(3, 1)) or (_clean(orc.get(3, 1)) if orc else "")
        specimen_ids = tuple(group.specimen_ids)
        accession = filler or (specimen_ids[0] if specimen_ids else "") or placer
        service = Coded.from_field(obr, 4)
        obr_time = parse_ts(obr.get(7, 1))
        for seg in group.observations:
            value_type = _clean(seg.get(2, 1))
            results.append(
                HL7Result(
                    accession=accession,
                    observation=Coded.from_field(seg, 3),
                    values=_obx_values(seg, value_type),
                    value_type=value_type,
                    set_id=_clean(seg.get(1)),
                    sub_id=_clean(seg.get(4)),
                    units=_units(seg),
                    reference_range=_clean(seg.get(7)),
                    abnormal_flags=tuple(_clean(v) for v in seg.values(8) if _clean(v)),
                    status=_clean(seg.get(11)),
                    observed_at=parse_ts(seg.get(14, 1)) or obr_time,
                    producer=_clean(seg.get(18, 1)) or _clean(seg.get(15, 1)),
                    placer_order_number=placer,
                    filler_order_number=filler,
                    service=service,
                    specimen_id=specimen_ids[0] if specimen_ids else "",
                    specimen_ids=specimen_ids,
                    coded_value=_obx_coded(seg, value_type),
                    specimen_role=group.specimen_role,
                )
            )
    return results


# -- orders ------------------------------------------------------------------------------


def _priority(obr: Segment | None, orc: Segment | None, tq1: Segment | None) -> str:
    for value in (
        tq1.get(9, 1) if tq1 else "",
        obr.get(27, 6) if obr else "",
        orc.get(7, 6) if orc else "",
        obr.get(5, 1) if obr else "",
    ):
        if _clean(value):
            return value
    return ""


def extract_orders(msg: Message) -> list[HL7Order]:
    """One ``HL7Order`` per OBR (ORM^O01, OML^O33), or per ORC that has no OBR (cancels)."""
    orders: list[HL7Order] = []
    patient: HL7Patient | None = None
    spm: Segment | None = None
    orc: Segment | None = None
    tq1: Segment | None = None
    orc_used = True

    def emit(obr: Segment | None) -> None:
        placer = _clean(obr.get(2, 1)) if obr else ""
        placer = placer or (_clean(orc.get(2, 1)) if orc else "")
        filler = _clean(obr.get(3, 1)) if obr else ""
        filler = filler or (_clean(orc.get(3, 1)) if orc else "")
        specimen_id = _clean(spm.get(2, 1, 1)) if spm else ""
        if spm is not None:
            specimen_type = Coded.from_field(spm, 4)
            collected = parse_ts(spm.get(17, 1))
        else:
            specimen_type = Coded(_clean(obr.get(15, 1, 1)) if obr else "")
            collected = None
        if obr is not None:
            collected = parse_ts(obr.get(7, 1)) or collected
        provider_seg, provider_field = (orc, 12) if orc and orc.get(12) else (obr, 16)
        provider = ""
        if provider_seg is not None:
            provider = " ".join(
                p
                for p in (
                    _clean(provider_seg.get(provider_field, 1)),
                    _clean(provider_seg.get(provider_field, 3)),
                    _clean(provider_seg.get(provider_field, 2)),
                )
                if p
            )
        orders.append(
            HL7Order(
                accession=placer or filler or specimen_id,
                service=Coded.from_field(obr, 4) if obr else Coded(""),
                order_control=(_clean(orc.get(1)) if orc else "") or "NW",
                placer_order_number=placer,
                filler_order_number=filler,
                priority=_priority(obr, orc, tq1),
                specimen_id=specimen_id,
                specimen_type=specimen_type,
                collected_at=collected,
                ordering_provider=provider,
                patient=patient,
            )
        )

    for seg in msg.segment_list:
        name = seg.name
        if name == "PID" and spm is None and orc is None:
            patient = extract_patient(seg)
        elif name == "SPM":
            if not orc_used:
                emit(None)
            spm, orc, tq1, orc_used = seg, None, None, True
        elif name == "ORC":
            if not orc_used:
                emit(None)
            orc, tq1, orc_used = seg, None, False
        elif name == "TQ1":
            tq1 = seg
        elif name == "OBR":
            emit(seg)
            orc_used = True
    if not orc_used:
        emit(None)
    return orders


def extract_query(msg: Message) -> str:
    """The sample id an analyser asks orders for: QRD-8 (QRY^Q02) or QPD-3 (QBP^Q11)."""
    qrd = msg.segment("QRD")
    if qrd is not None:
        sample = _clean(qrd.get(8, 1))
        if sample:
            return sample
        raise HL7ValidationError(HL7ErrorCode.REQUIRED_FIELD_MISSING, "QRD", 8, "is empty")
    qpd = msg.segment("QPD")
    if qpd is not None:
        sample = _clean(qpd.get(3, 1, 1))
        if sample:
            return sample
        raise HL7ValidationError(HL7ErrorCode.REQUIRED_FIELD_MISSING, "QPD", 3, "is empty")
    raise HL7ValidationError(
        HL7ErrorCode.SEGMENT_SEQUENCE_ERROR, "QRD", None, "query has no QRD or QPD segment"
    )
