"""Hospital systems (HIS): patients and orders in, verified results out.

* ADT^A01/A04/A08 register or update the patient through ``patients_service`` (audit,
  encryption, duplicate flags apply). The hospital's identifier (PID-3, the MR one first) is
  kept per connection in ``external_patient_ids``; an unknown patient in an A08 is registered.
* ORM^O01 / OML^O33 place one order per placer order number (ORC-2/OBR-2) through
  ``orders_service``; hospital codes go through the connection's test map and a code that is
  not in it becomes an ``unmapped_order_code`` exception. ``hospital_orders`` remembers the
  placer number: a second message for it only adds the tests it does not have yet.
* When a report of such an order is finalised, an ORU^R01 is queued on the outbound queue
  (``interface_messages``, direction out); the runtime delivers it over MLLP.

A message is stored raw first (a re-sent control id is a duplicate, answered AA and not
applied again); problems in its content are answered AE naming the segment and field.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.catalog.models import CatalogTest
from nidaan.config import Settings
from nidaan.integration import domain
from nidaan.integration.drivers.base import get_driver
from nidaan.integration.drivers.hospital_hl7 import HospitalHL7Driver, message_type
from nidaan.integration.enums import (
    Direction,
    Driver,
    ExceptionKind,
    ExceptionStatus,
    MessageStatus,
    Protocol,
)
from nidaan.integration.hl7.ack import build_ack
from nidaan.integration.hl7.errors import HL7ErrorCode, HL7ValidationError
from nidaan.integration.hl7.extract import (
    Coded,
    HL7Order,
    HL7Patient,
    HL7Result,
    extract_orders,
    extract_patient,
)
from nidaan.integration.hl7.message import Message
from nidaan.integration.models import (
    ExternalPatientId,
    HospitalOrder,
    Instrument,
    InterfaceException,
    InterfaceMessage,
)
from nidaan.integration.service import integration_service
from nidaan.kit.db import session_scope
from nidaan.kit.errors import NidaanError, NotFound
from nidaan.kit.phone import InvalidPhoneNumber, normalize_mobile
from nidaan.kit.time import utcnow
from nidaan.orders.enums import Priority
from nidaan.orders.models import Order
from nidaan.orders.schemas import OrderCreate
from nidaan.orders.service import orders_service
from nidaan.patients.domain import clean_display_name
from nidaan.patients.enums import Sex
from nidaan.patients.models import Patient
from nidaan.patients.schemas import PatientCreate, PatientUpdate
from nidaan.patients.service import patients_service
from nidaan.results.domain import ReportLine
from nidaan.results.service import results_service
from nidaan.samples.models import Sample

log = logging.getLogger(__name__)

__all__ = ["HOSPITAL_HL7", "handle_hospital_message", "hospital_service"]

HOSPITAL_HL7 = Driver.HOSPITAL_HL7

#: What a hospital connection may do: register patients and place orders (never results).
HOSPITAL_ROLES = frozenset({"front_desk"})
_STAT = frozenset({"S", "A"})  # HL7 priority: stat, ASAP
_NEW_ORDER = frozenset({"NW", "SN", ""})  # ORC-1: new order (SN: send number, also new)


def hospital_principal(instrument: Instrument) -> Principal:
    """The caller a hospital's patients and orders are created as (``hospital:<name>``)."""
    return Principal(
        kind="instrument",
        id=instrument.id,
        organisation_id=instrument.organisation_id,
        roles=HOSPITAL_ROLES,
        label=f"hospital:{instrument.name}",
    )


def ack_codes(msg: Message) -> tuple[str, str, str]:
    """(accept, error, reject) codes: commit-level CA/CE/CR when the sender asked for an
    accept ACK only (enhanced mode, MSH-15 valued and MSH-16 NE or empty), else AA/AE/AR."""
    accept, application = msg.msh.get(15), msg.msh.get(16)
    if accept and accept != "NE" and application in ("", "NE"):
        return "CA", "CE", "CR"
    return "AA", "AE", "AR"


def _problem(segment: str, field: int | None, detail: str, code: int | None = None) -> Exception:
    return HL7ValidationError(code or HL7ErrorCode.REQUIRED_FIELD_MISSING, segment, field, detail)


def full_name(patient: HL7Patient) -> str:
    return clean_display_name(" ".join(p for p in (patient.given_name, patient.family_name) if p))


def _mobile(phone: str) -> str | None:
    # Hospitals send landlines and extensions too: a number we cannot use as a mobile is
    # left out rather than rejecting the whole ADT.
    try:
        return normalize_mobile(phone) if phone.strip() else None
    except InvalidPhoneNumber:
        return None


def _split_name(name: str) -> tuple[str, str]:
    """(family, given) for PID-5 from our single full name: the last word is the family."""
    words = name.split()
    if len(words) < 2:
        return name, ""
    return words[-1], " ".join(words[:-1])


@dataclass
class Applied:
    """What one hospital message led to."""

    patients: list[uuid.UUID]
    orders: list[uuid.UUID]
    exceptions: list[uuid.UUID]

    @property
    def note(self) -> str | None:
        if not self.exceptions:
            return None
        return f"{len(self.exceptions)} order code(s) not mapped: sent to the exceptions queue"


class HospitalService:
    # --- inbound ---------------------------------------------------------------------

    async def receive(
        self, session: AsyncSession, instrument: Instrument, msg: Message, raw: str
    ) -> Message:
        """Store ``msg``, apply it and return the ACK. Content problems roll back what the
        message did, keep it as ``error`` and answer AE naming the segment and field."""
        ok, error_code, _ = ack_codes(msg)
        kind = HospitalHL7Driver().kind(msg)
        stored, duplicate = await integration_service.store_inbound(
            session,
            instrument.organisation_id,
            instrument.id,
            Protocol.HL7,
            msg.control_id,
            message_type(msg),
            raw,
        )
        if duplicate:
            return build_ack(msg, ok, text="duplicate: already applied")
        try:
            async with session.begin_nested():
                if kind == "patient":
                    patient = await self.patient_from_pid(session, instrument, msg, update=True)
                    applied = Applied([patient.id], [], [])
                else:
                    applied = await self._apply_orders(session, instrument, msg, stored)
        except (HL7ValidationError, NidaanError, ValidationError) as exc:
            error = exc if isinstance(exc, HL7ValidationError) else self._as_hl7(exc)
            # Not applied: no dedupe key, so the corrected message may be sent again.
            stored.status, stored.dedupe_key = MessageStatus.ERROR, None
            stored.error = f"not applied: {error}"[:2000]
            await session.flush()
            return build_ack(msg, error_code, text=str(error)[:80], error=error)
        stored.links = {
            "patients": [str(p) for p in applied.patients],
            "orders": [str(o) for o in applied.orders],
            "exceptions": [str(e) for e in applied.exceptions],
        }
        await session.flush()
        return build_ack(msg, ok, text=applied.note)

    @staticmethod
    def _as_hl7(exc: Exception) -> HL7ValidationError:
        """Patient or order data our services refused, located in the message."""
        if isinstance(exc, ValidationError):
            fields = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
            where = {"full_name": 5, "date_of_birth": 7, "sex": 8, "mobile": 13}
            field = next((where[f] for f in fields if f in where), None)
            detail = "; ".join(e["msg"] for e in exc.errors())
            return HL7ValidationError(HL7ErrorCode.DATA_TYPE_ERROR, "PID", field, detail)
        detail = getattr(exc, "detail", str(exc))
        return HL7ValidationError(HL7ErrorCode.APPLICATION_INTERNAL_ERROR, None, None, detail)

    async def patient_from_pid(
        self, session: AsyncSession, instrument: Instrument, msg: Message, *, update: bool
    ) -> Patient:
        """The patient PID names for this hospital: found by its identifier (and updated
        when ``update``), else registered and linked."""
        pid = extract_patient(msg)
        if pid is None:
            raise _problem(
                "PID", None, "a PID segment is required", HL7ErrorCode.SEGMENT_SEQUENCE_ERROR
            )
        external_id = pid.mrn.strip()[:64]
        if not external_id:
            raise _problem("PID", 3, "the hospital's patient identifier is empty")
        caller = hospital_principal(instrument)
        link = await session.scalar(
            select(ExternalPatientId).where(
                ExternalPatientId.organisation_id == instrument.organisation_id,
                ExternalPatientId.instrument_id == instrument.id,
                ExternalPatientId.external_id == external_id,
            )
        )
        if link is not None:
            patient = await self._surviving(session, instrument.organisation_id, link.patient_id)
            if update:
                patient = await self._update(session, caller, patient, pid)
            return patient
        name = full_name(pid)
        if not name:
            raise _problem("PID", 5, "the patient name is empty")
        if pid.dob is None:
            raise _problem("PID", 7, "the date of birth is needed to register the patient")
        registered = await patients_service.register(
            session,
            caller,
            PatientCreate(
                full_name=name,
                sex=Sex(pid.sex),
                date_of_birth=pid.dob,
                mobile=_mobile(pid.phone),
                registered_at_branch_id=instrument.branch_id,
            ),
        )
        session.add(
            ExternalPatientId(
                organisation_id=instrument.organisation_id,
                instrument_id=instrument.id,
                external_id=external_id,
                assigning_authority=pid.assigning_authority[:64] or None,
                patient_id=registered.patient.id,
            )
        )
        await session.flush()
        return registered.patient

    async def _surviving(
        self, session: AsyncSession, organisation_id: uuid.UUID, patient_id: uuid.UUID
    ) -> Patient:
        # A merged record points at the one that survived; follow it.
        patient = await patients_service.get_in(session, organisation_id, patient_id)
        seen = {patient.id}
        while patient.merged_into_id is not None and patient.merged_into_id not in seen:
            patient = await patients_service.get_in(
                session, organisation_id, patient.merged_into_id
            )
            seen.add(patient.id)
        return patient

    async def _update(
        self, session: AsyncSession, caller: Principal, patient: Patient, pid: HL7Patient
    ) -> Patient:
        """Apply what PID says differently (empty fields change nothing)."""
        changes: dict[str, Any] = {}
        name = full_name(pid)
        if name and name != patient.full_name:
            changes["full_name"] = name
        if pid.sex != "unknown" and pid.sex != patient.sex:
            changes["sex"] = pid.sex
        if pid.dob is not None and (pid.dob != patient.date_of_birth or patient.dob_estimated):
            changes["date_of_birth"] = pid.dob
        mobile = _mobile(pid.phone)
        if mobile is not None and mobile != patient.mobile:
            changes["mobile"] = mobile
        if not changes:
            return patient
        return await patients_service.update(
            session, caller, patient.id, PatientUpdate(version=patient.version, **changes)
        )

    async def _apply_orders(
        self, session: AsyncSession, instrument: Instrument, msg: Message, stored: InterfaceMessage
    ) -> Applied:
        hl7_orders = extract_orders(msg)
        by_placer: dict[str, list[HL7Order]] = defaultdict(list)
        for n, item in enumerate(hl7_orders, start=1):
            control = item.order_control.strip().upper()
            if control not in _NEW_ORDER:
                raise HL7ValidationError(
                    HL7ErrorCode.TABLE_VALUE_NOT_FOUND,
                    f"ORC[{n}]",
                    1,
                    f"order control {control!r} is not supported (send NW for new orders)",
                )
            placer = item.placer_order_number.strip()
            if not placer:
                raise _problem(f"OBR[{n}]", 2, "the placer order number (ORC-2/OBR-2) is empty")
            if len(placer) > 64:
                raise _problem(f"OBR[{n}]", 2, "the placer order number is longer than 64", 102)
            by_placer[placer].append(item)
        if not by_placer:
            raise _problem("OBR", None, "no ordered test", HL7ErrorCode.SEGMENT_SEQUENCE_ERROR)
        patient = await self.patient_from_pid(session, instrument, msg, update=False)
        codes = {
            m.instrument_code: m.test
            for m in await integration_service.test_map(
                session, instrument.organisation_id, instrument.id
            )
        }
        applied = Applied([patient.id], [], [])
        his = [msg.msh.get(3), msg.msh.get(4)]
        for placer, items in by_placer.items():
            mapped: dict[uuid.UUID, tuple[CatalogTest, str]] = {}
            for item in items:
                code = domain.normalize_code(item.service.code)
                test = codes.get(code)
                if test is None:
                    row = await self._unmapped(session, instrument, stored, placer, item)
                    applied.exceptions.append(row.id)
                else:
                    mapped.setdefault(test.id, (test, item.service.code.strip()))
            if mapped:
                order = await self._place(
                    session, instrument, patient, placer, items, mapped, stored, his
                )
                applied.orders.append(order.id)
        return applied

    async def _place(
        self,
        session: AsyncSession,
        instrument: Instrument,
        patient: Patient,
        placer: str,
        items: list[HL7Order],
        mapped: dict[uuid.UUID, tuple[CatalogTest, str]],
        stored: InterfaceMessage,
        his: list[str],
    ) -> Order:
        """A new order for ``placer``, or the tests it lacks added to the one placed before."""
        caller = hospital_principal(instrument)
        known = await session.scalar(
            select(HospitalOrder)
            .where(
                HospitalOrder.organisation_id == instrument.organisation_id,
                HospitalOrder.instrument_id == instrument.id,
                HospitalOrder.placer_number == placer,
            )
            .with_for_update()
        )
        ids = [str(test_id) for test_id in mapped]
        codes = {str(test_id): code for test_id, (_, code) in mapped.items()}
        if known is not None:
            await orders_service.add_tests(session, caller, known.order_id, ids)
            known.details = {**known.details, "codes": {**known.details.get("codes", {}), **codes}}
            await session.flush()
            return await orders_service.get(session, caller, known.order_id)
        provider = next((i.ordering_provider for i in items if i.ordering_provider), "")
        order = await orders_service.create(
            session,
            caller,
            OrderCreate(
                patient_id=patient.id,
                branch_id=instrument.branch_id,
                items=ids,
                priority=Priority.STAT
                if any(i.priority in _STAT for i in items)
                else Priority.ROUTINE,
                referring_doctor=provider[:200] or None,
                clinical_notes=f"Hospital order {placer} ({instrument.name})",
            ),
        )
        session.add(
            HospitalOrder(
                organisation_id=instrument.organisation_id,
                instrument_id=instrument.id,
                placer_number=placer,
                order_id=order.id,
                message_id=stored.id,
                details={"codes": codes, "his": his},
            )
        )
        await session.flush()
        return order

    async def _unmapped(
        self,
        session: AsyncSession,
        instrument: Instrument,
        stored: InterfaceMessage,
        placer: str,
        item: HL7Order,
    ) -> InterfaceException:
        code = item.service.code.strip()
        row = InterfaceException(
            organisation_id=instrument.organisation_id,
            message_id=stored.id,
            instrument_id=instrument.id,
            kind=ExceptionKind.UNMAPPED_ORDER_CODE,
            detail=(
                f"Hospital order {placer} asks for {code!r} ({item.service.text or 'no name'}), "
                "which is not in this connection's test map; add the test to the order by hand "
                "(and the code to the map), then discard this exception."
            )[:500],
            accession=placer[:64],
            instrument_code=code[:64] or None,
            status=ExceptionStatus.OPEN,
        )
        session.add(row)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=instrument.organisation_id,
            actor=hospital_principal(instrument).actor,
            action="interface_exception.created",
            entity_type="interface_exception",
            entity_id=row.id,
            after={"kind": row.kind, "accession": row.accession, "instrument_code": code},
        )
        return row

    # --- outbound: results back to the hospital ---------------------------------------

    async def queue_results(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        order_id: uuid.UUID,
        report_id: uuid.UUID,
        *,
        amended: bool,
    ) -> list[InterfaceMessage]:
        """Queue one ORU^R01 per hospital order of ``order_id`` for this report version.
        Idempotent per (connection, report): a redelivered event queues nothing."""
        links = list(
            await session.scalars(
                select(HospitalOrder).where(
                    HospitalOrder.organisation_id == organisation_id,
                    HospitalOrder.order_id == order_id,
                )
            )
        )
        queued = []
        for link in links:
            message = await self._queue_oru(session, link, report_id, amended=amended)
            if message is not None:
                queued.append(message)
        return queued

    async def _queue_oru(
        self, session: AsyncSession, link: HospitalOrder, report_id: uuid.UUID, *, amended: bool
    ) -> InterfaceMessage | None:
        key = f"oru:{report_id}"
        earlier = list(
            await session.scalars(
                select(InterfaceMessage).where(
                    InterfaceMessage.organisation_id == link.organisation_id,
                    InterfaceMessage.instrument_id == link.instrument_id,
                    InterfaceMessage.direction == Direction.OUT,
                    InterfaceMessage.links.contains({"hospital_order": str(link.id)}),
                )
            )
        )
        if any(m.dedupe_key == key for m in earlier):
            return None
        # A test sent before with another result than now is a correction (OBX-11 C).
        sent_tests = {t for m in earlier for t in (m.links or {}).get("tests", [])}
        sent_results = {r for m in earlier for r in (m.links or {}).get("results", [])}
        instrument = await session.get(Instrument, link.instrument_id)
        order = await session.get(Order, link.order_id)
        if instrument is None or order is None:
            return None
        lines = await results_service.report_lines(session, link.organisation_id, link.order_id)
        if not lines:
            return None
        patient = await patients_service.get_in(session, link.organisation_id, order.patient_id)
        hl7_patient = await self._hl7_patient(
            session, link, patient, (instrument.settings or {}).get("sending_facility")
        )
        reverse = await self._codes_for(session, instrument, link)
        collected = {
            row.id: row.collected_at
            for row in await session.scalars(
                select(Sample).where(
                    Sample.organisation_id == link.organisation_id,
                    Sample.id.in_({line.sample_id for line in lines if line.sample_id}),
                )
            )
        }
        results = [
            self._hl7_result(
                line,
                link.placer_number,
                # One filler order number per OBR: our order number and the line's place.
                f"{order.order_number}-{n}",
                reverse,
                corrected=str(line.test_id) in sent_tests
                and str(line.result_id) not in sent_results,
                collected_at=collected.get(line.sample_id) if line.sample_id else None,
            )
            for n, line in enumerate(lines, start=1)
        ]
        driver = get_driver(instrument.driver)
        assert isinstance(driver, HospitalHL7Driver)
        settings = instrument.settings or {}
        his = link.details.get("his") or [None, None]
        built = driver.results_message(
            hl7_patient,
            results,
            sender=(
                settings.get("sending_application") or "NIDAAN",
                settings.get("sending_facility"),
            ),
            receiver=(
                settings.get("receiving_application") or his[0] or None,
                settings.get("receiving_facility") or his[1] or None,
            ),
        )
        message = InterfaceMessage(
            organisation_id=link.organisation_id,
            instrument_id=link.instrument_id,
            direction=Direction.OUT,
            protocol=Protocol.HL7,
            dedupe_key=key,
            message_type="ORU^R01",
            raw=str(built),
            received_at=utcnow(),
            status=MessageStatus.PENDING,
            links={
                "hospital_order": str(link.id),
                "placer": link.placer_number,
                "orders": [str(link.order_id)],
                "reports": [str(report_id)],
                "results": [str(line.result_id) for line in lines],
                "tests": sorted({str(line.test_id) for line in lines} | sent_tests),
                "amended": amended,
                "attempts": 0,
            },
        )
        session.add(message)
        await session.flush()
        return message

    async def _hl7_patient(
        self,
        session: AsyncSession,
        link: HospitalOrder,
        patient: Patient,
        facility: str | None = None,
    ) -> HL7Patient:
        """PID for the hospital: its own identifier for the patient, else our MRN with us
        (the sending facility, default ``NIDAAN``) as the assigning authority."""
        ident = await session.scalar(
            select(ExternalPatientId)
            .where(
                ExternalPatientId.instrument_id == link.instrument_id,
                ExternalPatientId.patient_id == patient.id,
            )
            .order_by(ExternalPatientId.created_at)
            .limit(1)
        )
        family, given = _split_name(patient.full_name)
        return HL7Patient(
            mrn=ident.external_id if ident is not None else patient.mrn,
            assigning_authority=(ident.assigning_authority or "")
            if ident is not None
            else (facility or "NIDAAN"),
            family_name=family,
            given_name=given,
            dob=patient.date_of_birth,
            sex=patient.sex,
        )

    async def _codes_for(
        self, session: AsyncSession, instrument: Instrument, link: HospitalOrder
    ) -> dict[str, str]:
        """test id -> the hospital's code: as ordered, else the first code mapped to it."""
        codes: dict[str, str] = {}
        for mapped in await integration_service.test_map(
            session, instrument.organisation_id, instrument.id
        ):
            codes.setdefault(str(mapped.test.id), mapped.instrument_code)
        return codes | dict(link.details.get("codes") or {})

    @staticmethod
    def _hl7_result(
        line: ReportLine,
        placer: str,
        filler: str,
        codes: dict[str, str],
        *,
        corrected: bool,
        collected_at: datetime | None = None,
    ) -> HL7Result:
        code = codes.get(str(line.test_id), line.test_code)
        value = line.value.strip()
        # A numeric value with a comparator ("<0.01") is a structured numeric (SN).
        numeric = "SN" if value.startswith(("<", ">", "=")) else "NM"
        value_type = "ST" if line.value_numeric is None else numeric
        return HL7Result(
            accession=placer,
            observation=Coded(code, line.test_name, "L"),
            values=(value,) if value else (),
            value_type=value_type,
            units=line.unit or "",
            reference_range=(line.reference_text or "").replace("\n", " ")[:60],
            abnormal_flags=(line.flag,) if line.flag else (),
            status="C" if corrected else "F",
            observed_at=collected_at,
            collected_at=collected_at,
            verified_at=line.verified_at,
            placer_order_number=placer,
            filler_order_number=filler,
            service=Coded(code, line.test_name, "L"),
            comments=tuple(
                text
                for text in (
                    line.comment,
                    f"Corrected: {line.correction_reason}"
                    if corrected and line.correction_reason
                    else None,
                )
                if text
            ),
        )


hospital_service = HospitalService()


async def handle_hospital_message(
    settings: Settings, organisation_id: uuid.UUID, instrument_id: uuid.UUID, msg: Message, raw: str
) -> Message:
    """One hospital message in its own committed transaction (what the runtime calls)."""
    async with session_scope(settings) as session:
        instrument = await session.get(Instrument, instrument_id)
        if instrument is None or instrument.organisation_id != organisation_id:
            raise NotFound("The hospital connection was deleted.", entity="instrument")
        reply = await hospital_service.receive(session, instrument, msg, raw)
    log.info(
        "hospital %s: %s %s -> %s",
        instrument_id,
        message_type(msg),
        msg.control_id,
        reply.segment("MSA"),
    )
    return reply
