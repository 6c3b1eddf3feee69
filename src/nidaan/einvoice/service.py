"""GST e-invoicing use cases: settings, generating an IRN for an invoice or credit note,
cancelling it, reading it, and the job that completes e-invoices the IRP did not answer.

One e-invoice row per billing document (unique index), locked ``FOR NO KEY UPDATE`` while the
IRP is asked, so a double click, a client retry and the retry job cannot ask twice at once.
The JSON sent is built and validated first (nothing is written or sent when a rule is
broken), then stored; a retry re-sends that same JSON. When an earlier request reached the IRP
but its answer was lost, the IRP says "duplicate IRN" (2150): the existing IRN is fetched and
checked (buyer GSTIN, total, signature) instead of making a second one.
"""

from __future__ import annotations

import io
import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import jwt
import segno
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import SYSTEM_ACTOR, AuditActor
from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.billing import render
from nidaan.billing.configuration import billing_configuration
from nidaan.billing.models import Invoice, InvoiceLine
from nidaan.billing.service import billing_service, register_stamp_provider, today_in_india
from nidaan.einvoice import domain
from nidaan.einvoice.domain import EInvoiceStatus
from nidaan.einvoice.errors import (
    CancelWindowClosed,
    EInvoiceInvalid,
    EInvoiceNotConfigured,
    EInvoiceNotFound,
    InvalidEInvoiceSettings,
    IrpRefused,
    IrpUnavailableError,
    NotCancellable,
    NotEligible,
)
from nidaan.einvoice.gateways.base import (
    Exchange,
    IrnRecord,
    IrpCredentials,
    IrpDuplicate,
    IrpError,
    IrpNotConfigured,
    IrpPort,
    IrpRejected,
    IrpUnavailable,
)
from nidaan.einvoice.gateways.registry import irp_for
from nidaan.einvoice.models import EInvoice, EInvoiceSettings, IrpExchange
from nidaan.einvoice.schemas import EInvoiceSettingsOut, EInvoiceSettingsUpdate
from nidaan.kit.ids import new_id
from nidaan.kit.time import utcnow

logger = logging.getLogger(__name__)
MAX_RETRY_DELAY = timedelta(hours=1)
DONE = (EInvoiceStatus.GENERATED, EInvoiceStatus.CANCELLED)


@dataclass(frozen=True)
class Seller:
    gstin: str | None
    legal_name: str | None
    trade_name: str | None
    address: str | None
    location: str | None
    pincode: str | None


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4 ... minutes after each failed attempt, at most an hour."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_RETRY_DELAY)


def qr_png(signed_qr: str) -> bytes:
    out = io.BytesIO()
    segno.make(signed_qr, error="l", micro=False).save(out, kind="png", scale=3, border=2)
    return out.getvalue()


def _snapshot(row: EInvoiceSettings) -> dict[str, Any]:
    fields = (
        "enabled",
        "sandbox",
        "gstin",
        "legal_name",
        "trade_name",
        "address",
        "location",
        "pincode",
        "state_code",
        "thirty_day_limit",
        "irp_username",
    )
    values: dict[str, Any] = {f: getattr(row, f) for f in fields}
    values["password_set"] = row.irp_password is not None
    return values


class EInvoiceService:
    # ------------------------------------------------------------------ settings

    async def settings_row(
        self, session: AsyncSession, organisation_id: uuid.UUID, *, lock: bool = False
    ) -> EInvoiceSettings:
        statement = select(EInvoiceSettings).where(
            EInvoiceSettings.organisation_id == organisation_id
        )
        if lock:
            statement = statement.with_for_update(key_share=True)
        row = await session.scalar(statement)
        if row is None:
            row = EInvoiceSettings(
                organisation_id=organisation_id,
                enabled=False,
                sandbox=False,
                thirty_day_limit=False,
            )
            session.add(row)
            await session.flush()
        return row

    async def seller(self, session: AsyncSession, row: EInvoiceSettings) -> Seller:
        """The registration the IRP knows: own settings, else the billing settings."""
        billing = await billing_configuration.settings_for(session, row.organisation_id)
        return Seller(
            gstin=row.gstin or billing.gstin,
            legal_name=row.legal_name or (billing.legal_name or "")[:100] or None,
            trade_name=row.trade_name,
            address=row.address or billing.address,
            location=row.location or domain.location_of(billing.address) or None,
            pincode=row.pincode or billing.pincode,
        )

    async def settings_out(
        self, session: AsyncSession, organisation_id: uuid.UUID
    ) -> EInvoiceSettingsOut:
        row = await self.settings_row(session, organisation_id)
        seller = await self.seller(session, row)
        try:
            irp_for()
            configured = True
        except IrpNotConfigured:
            configured = False
        return EInvoiceSettingsOut(
            enabled=row.enabled,
            sandbox=row.sandbox,
            gstin=seller.gstin,
            legal_name=seller.legal_name,
            trade_name=seller.trade_name,
            address=seller.address,
            location=seller.location,
            pincode=seller.pincode,
            state_code=seller.gstin[:2] if seller.gstin else None,
            thirty_day_limit=row.thirty_day_limit,
            irp_username=row.irp_username,
            password_set=row.irp_password is not None,
            irp_configured=configured,
            version=row.version,
        )

    async def update_settings(
        self, session: AsyncSession, caller: Principal, data: EInvoiceSettingsUpdate
    ) -> EInvoiceSettingsOut:
        row = await self.settings_row(session, caller.organisation_id, lock=True)
        before = _snapshot(row)
        changes = data.model_dump(exclude_unset=True)
        for key, value in changes.items():
            if value is None and key in ("enabled", "sandbox", "thirty_day_limit"):
                continue
            setattr(row, key, value)
        sandbox = bool(row.sandbox)
        seller = await self.seller(session, row)
        if seller.gstin:
            problem = domain.check_gstin(seller.gstin, sandbox=sandbox)
            if problem:
                raise InvalidEInvoiceSettings(problem, field="gstin")
        row.state_code = seller.gstin[:2] if seller.gstin else None
        if row.enabled:
            missing = [
                name
                for name, value in (
                    ("gstin", seller.gstin),
                    ("legal_name", seller.legal_name),
                    ("address", seller.address),
                    ("location", seller.location),
                    ("pincode", seller.pincode),
                    ("irp_username", row.irp_username),
                    ("irp_password", row.irp_password),
                )
                if not value
            ]
            if missing:
                raise InvalidEInvoiceSettings(
                    f"E-invoicing needs {', '.join(missing)} before it can be enabled.",
                    missing=missing,
                )
            zones = domain.PIN_ZONES.get(row.state_code or "")
            if seller.pincode and zones and seller.pincode[0] not in zones:
                raise InvalidEInvoiceSettings(
                    f"PIN {seller.pincode} is not in state {row.state_code}.", field="pincode"
                )
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="einvoice.settings_updated",
            entity_type="einvoice_settings",
            entity_id=caller.organisation_id,
            before=before,
            after=_snapshot(row),
        )
        return await self.settings_out(session, caller.organisation_id)

    # ------------------------------------------------------------------ building

    async def document_for(
        self,
        session: AsyncSession,
        caller: Principal,
        invoice: Invoice,
        settings: EInvoiceSettings,
    ) -> tuple[dict[str, Any], domain.Document]:
        """The schema-1.1 JSON for ``invoice``; refuses with the reason or the broken rules."""
        lines = await billing_service.lines_of(session, invoice)
        original = None
        original_id = invoice.credit_note_for_id or invoice.debit_note_for_id
        if original_id is not None:
            original = await billing_service.get(session, caller, original_id)
        seller = await self.seller(session, settings)
        reason = domain.ineligibility(
            domain.EligibilityFacts(
                enabled=settings.enabled,
                kind=invoice.kind,
                status=invoice.status,
                seller_gstin=invoice.seller_gstin,
                buyer_gstin=invoice.buyer_gstin,
                treatments=tuple(line.gst_treatment for line in lines),
                document_date=invoice.invoice_date,
                today=today_in_india(),
                thirty_day_limit=settings.thirty_day_limit,
            )
        )
        if reason:
            raise NotEligible(reason)
        if not (settings.irp_username and settings.irp_password):
            raise EInvoiceNotConfigured(
                "Set the IRP user name and password (PUT /einvoice/settings)."
            )
        gstin = seller.gstin or ""
        if not settings.sandbox and invoice.seller_gstin != gstin:
            raise NotEligible(
                f"The invoice was issued under GSTIN {invoice.seller_gstin}, but the IRP "
                f"registration is {gstin}."
            )
        document = build_document(invoice, lines, seller, gstin, original)
        payload = domain.build(document)
        violations = domain.validate(payload, sandbox=settings.sandbox)
        if violations:
            raise EInvoiceInvalid(
                f"The e-invoice breaks {len(violations)} schema rule(s); nothing was sent to "
                f"the IRP. First: {violations[0].field} ({violations[0].rule}): "
                f"{violations[0].message}",
                violations=[v.__dict__ for v in violations],
            )
        return payload, document

    # ------------------------------------------------------------------ generate

    async def _row(
        self, session: AsyncSession, organisation_id: uuid.UUID, invoice_id: uuid.UUID
    ) -> EInvoice | None:
        return await session.scalar(
            select(EInvoice)
            .where(EInvoice.organisation_id == organisation_id, EInvoice.invoice_id == invoice_id)
            .with_for_update(key_share=True)
        )

    async def generate(
        self, session: AsyncSession, caller: Principal, invoice_id: uuid.UUID
    ) -> tuple[EInvoice, bool]:
        """Get the invoice an IRN; (row, whether the IRP was asked now). A generated or
        cancelled e-invoice is returned as it is."""
        invoice = await billing_service.get(session, caller, invoice_id)
        row = await self._row(session, caller.organisation_id, invoice.id)
        if row is not None and row.status in DONE:
            return row, False
        settings = await self.settings_row(session, caller.organisation_id)
        port = self._port()
        if row is None or row.status == EInvoiceStatus.REJECTED:
            payload, document = await self.document_for(session, caller, invoice, settings)
        if row is None:
            await session.execute(
                pg_insert(EInvoice)
                .values(
                    id=new_id(),
                    organisation_id=caller.organisation_id,
                    invoice_id=invoice.id,
                    doc_type=document.doc_type,
                    doc_no=document.number,
                    doc_date=document.day,
                    seller_gstin=document.seller.gstin,
                    buyer_gstin=document.buyer.gstin,
                    total=document.grand_total,
                    status=EInvoiceStatus.PENDING,
                    payload_json=domain.to_json(payload),
                    attempts=0,
                    created_by_id=caller.id if caller.kind == "user" else None,
                )
                .on_conflict_do_nothing(index_elements=["invoice_id"])
            )
            row = await self._row(session, caller.organisation_id, invoice.id)
            assert row is not None
            if row.status in DONE:
                return row, False
        elif row.status == EInvoiceStatus.REJECTED:
            row.payload_json = domain.to_json(payload)
            row.total = document.grand_total
        await self.attempt(session, row, settings, caller.actor, port)
        return row, True

    def _port(self) -> IrpPort:
        try:
            return irp_for()
        except IrpNotConfigured as exc:
            raise EInvoiceNotConfigured(str(exc)) from exc

    @staticmethod
    def _credentials(row: EInvoice, settings: EInvoiceSettings) -> IrpCredentials:
        if not (settings.irp_username and settings.irp_password):
            raise EInvoiceNotConfigured(
                "Set the IRP user name and password (PUT /einvoice/settings)."
            )
        return IrpCredentials(row.seller_gstin, settings.irp_username, settings.irp_password)

    async def attempt(
        self,
        session: AsyncSession,
        row: EInvoice,
        settings: EInvoiceSettings,
        actor: AuditActor,
        port: IrpPort,
    ) -> None:
        """Ask the IRP once (with the adapter's own retries) and record what happened."""
        credentials = self._credentials(row, settings)
        before = {"status": row.status, "irn": row.irn}
        row.attempts += 1
        exchanges: list[Exchange] = []
        recovered = False
        try:
            try:
                record = await port.generate(credentials, row.payload)
            except IrpDuplicate as duplicate:
                exchanges += duplicate.exchanges
                recovered = True
                if duplicate.existing_irn:
                    record = await port.get_by_irn(credentials, duplicate.existing_irn)
                else:
                    record = await port.get_by_document(
                        credentials, row.doc_type, row.doc_no, domain.doc_date(row.doc_date)
                    )
        except IrpUnavailable as exc:
            exchanges += exc.exchanges
            row.status = EInvoiceStatus.PENDING
            row.last_error = str(exc)
            row.next_attempt_at = utcnow() + retry_delay(row.attempts)
            action = "einvoice.pending"
        except IrpRejected as exc:
            exchanges += exc.exchanges
            row.status = EInvoiceStatus.REJECTED
            row.last_error = str(exc)
            row.error_codes = exc.codes
            row.next_attempt_at = None
            action = "einvoice.rejected"
        else:
            problem = self._check(port, row, record)
            if problem:
                row.status = EInvoiceStatus.REJECTED
                row.last_error = problem
                row.error_codes = ["verification"]
                action = "einvoice.rejected"
            else:
                self._store(row, record, port, recovered)
                action = "einvoice.generated"
        finally:
            exchanges += port.take_exchanges()
            for exchange in exchanges:
                session.add(
                    IrpExchange(
                        organisation_id=row.organisation_id,
                        einvoice_id=row.id,
                        operation=exchange.operation,
                        http_status=exchange.http_status,
                        error_codes=exchange.error_codes,
                        request=exchange.request,
                        response=exchange.response,
                    )
                )
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=row.organisation_id,
            actor=actor,
            action=action,
            entity_type="einvoice",
            entity_id=row.id,
            before=before,
            after={
                "status": row.status,
                "irn": row.irn,
                "ack_no": row.ack_no,
                "invoice_id": str(row.invoice_id),
                "error": row.last_error if row.status != EInvoiceStatus.GENERATED else None,
            },
        )

    @staticmethod
    def _check(port: IrpPort, row: EInvoice, record: IrnRecord) -> str | None:
        """Why the IRP's answer cannot be accepted for this document (None: it can)."""
        expected = domain.irn_for(row.seller_gstin, row.doc_date, row.doc_type, row.doc_no)
        if record.irn != expected:
            return f"The IRP's IRN {record.irn} is not the IRN of this document ({expected})."
        try:
            qr = port.verify_signed(record.signed_qr_code)
            port.verify_signed(record.signed_invoice)
        except jwt.PyJWTError as exc:
            return f"The IRP's signed QR or invoice does not verify: {exc}."
        mismatches = domain.qr_mismatches(qr, row.payload, expected)
        if mismatches:
            return f"The signed QR disagrees with our invoice on {', '.join(mismatches)}."
        return None

    @staticmethod
    def _store(row: EInvoice, record: IrnRecord, port: IrpPort, recovered: bool) -> None:
        row.irn = record.irn
        row.ack_no = record.ack_no
        row.ack_at = record.ack_at
        row.signed_invoice = record.signed_invoice
        row.signed_qr_code = record.signed_qr_code
        row.qr_data_json = domain.to_json(port.verify_signed(record.signed_qr_code))
        row.recovered_duplicate = recovered
        row.last_error = None
        row.error_codes = None
        row.next_attempt_at = None
        if record.status == "CNL":
            row.status = EInvoiceStatus.CANCELLED
            cancel_date = record.raw.get("CancelDate")
            row.cancelled_at = (
                datetime.strptime(cancel_date, "%Y-%m-%d %H:%M:%S").replace(tzinfo=domain_ist())
                if isinstance(cancel_date, str)
                else utcnow()
            )
        else:
            row.status = EInvoiceStatus.GENERATED

    # ------------------------------------------------------------------ cancel

    async def cancel(
        self,
        session: AsyncSession,
        caller: Principal,
        invoice_id: uuid.UUID,
        reason: str,
        remark: str,
    ) -> EInvoice:
        invoice = await billing_service.get(session, caller, invoice_id)
        row = await self._row(session, caller.organisation_id, invoice.id)
        if row is None:
            raise EInvoiceNotFound("This invoice has no e-invoice.")
        if row.status == EInvoiceStatus.CANCELLED:
            return row
        if row.status != EInvoiceStatus.GENERATED or row.irn is None or row.ack_at is None:
            raise NotCancellable(
                f"Only a generated IRN can be cancelled; this one is {row.status}."
            )
        deadline = domain.cancel_deadline(row.ack_at)
        if utcnow() > deadline:
            raise CancelWindowClosed(_window_message(row.ack_at), deadline=deadline.isoformat())
        settings = await self.settings_row(session, caller.organisation_id)
        port = self._port()
        credentials = self._credentials(row, settings)
        try:
            try:
                result = await port.cancel(credentials, row.irn, reason, remark)
                cancelled_at = result.cancelled_at
            except IrpRejected as exc:
                if "2270" in exc.codes:
                    raise CancelWindowClosed(_window_message(row.ack_at)) from exc
                if "9999" not in exc.codes:
                    raise IrpRefused(str(exc), irp_codes=exc.codes) from exc
                # Not active: our earlier cancel reached the IRP and its answer was lost?
                record = await port.get_by_irn(credentials, row.irn)
                if record.status != "CNL":
                    raise IrpRefused(str(exc), irp_codes=exc.codes) from exc
                text = record.raw.get("CancelDate")
                cancelled_at = (
                    datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=domain_ist())
                    if isinstance(text, str)
                    else utcnow()
                )
        except IrpUnavailable as exc:
            raise IrpUnavailableError(f"{exc} Nothing changed; try again.") from exc
        except IrpError as exc:
            if isinstance(exc, IrpRejected):
                raise IrpRefused(str(exc), irp_codes=exc.codes) from exc
            raise
        finally:
            for exchange in port.take_exchanges():
                session.add(
                    IrpExchange(
                        organisation_id=row.organisation_id,
                        einvoice_id=row.id,
                        operation=exchange.operation,
                        http_status=exchange.http_status,
                        error_codes=exchange.error_codes,
                        request=exchange.request,
                        response=exchange.response,
                    )
                )
        before = {"status": row.status}
        row.status = EInvoiceStatus.CANCELLED
        row.cancelled_at = cancelled_at
        row.cancel_reason = reason
        row.cancel_remark = remark
        row.cancelled_by_id = caller.id if caller.kind == "user" else None
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=row.organisation_id,
            actor=caller.actor,
            action="einvoice.cancelled",
            entity_type="einvoice",
            entity_id=row.id,
            before=before,
            after={
                "status": row.status,
                "irn": row.irn,
                "reason": domain.CANCEL_REASONS[reason],
                "remark": remark,
            },
        )
        return row

    # ------------------------------------------------------------------ reading

    async def get(
        self, session: AsyncSession, caller: Principal, invoice_id: uuid.UUID
    ) -> EInvoice:
        invoice = await billing_service.get(session, caller, invoice_id)
        row = await session.scalar(
            select(EInvoice).where(
                EInvoice.organisation_id == caller.organisation_id,
                EInvoice.invoice_id == invoice.id,
            )
        )
        if row is None:
            raise EInvoiceNotFound("This invoice has no e-invoice yet (POST .../einvoice).")
        return row

    async def exchanges(self, session: AsyncSession, row: EInvoice) -> list[IrpExchange]:
        return list(
            await session.scalars(
                select(IrpExchange)
                .where(IrpExchange.einvoice_id == row.id)
                .order_by(IrpExchange.created_at, IrpExchange.id)
            )
        )

    # ------------------------------------------------------------------ the retry job

    async def retry_pending(self, session: AsyncSession, limit: int = 50) -> dict[str, int]:
        """Ask the IRP again for every pending e-invoice whose time has come (skipping rows
        another worker or a request holds)."""
        rows = list(
            await session.scalars(
                select(EInvoice)
                .where(
                    EInvoice.status == EInvoiceStatus.PENDING,
                    EInvoice.next_attempt_at <= utcnow(),
                )
                .order_by(EInvoice.next_attempt_at)
                .limit(limit)
                .with_for_update(key_share=True, skip_locked=True)
            )
        )
        counts = {"tried": 0, "generated": 0, "pending": 0, "rejected": 0}
        if not rows:
            return counts
        port = self._port()
        for row in rows:
            settings = await self.settings_row(session, row.organisation_id)
            counts["tried"] += 1
            try:
                await self.attempt(session, row, settings, SYSTEM_ACTOR, port)
            except EInvoiceNotConfigured as exc:
                row.last_error = str(exc)
                row.next_attempt_at = utcnow() + MAX_RETRY_DELAY
                continue
            key = row.status if row.status in counts else "generated"
            counts[key] += 1
        return counts

    # ------------------------------------------------------------------ PDF stamp

    async def stamp(self, session: AsyncSession, invoice: Invoice) -> render.EInvoiceStamp | None:
        row = await session.scalar(
            select(EInvoice).where(
                EInvoice.organisation_id == invoice.organisation_id,
                EInvoice.invoice_id == invoice.id,
            )
        )
        if row is None or row.status not in DONE or not row.irn or not row.signed_qr_code:
            return None
        assert row.ack_no is not None
        assert row.ack_at is not None
        return render.EInvoiceStamp(
            irn=row.irn,
            ack_no=row.ack_no,
            ack_at=row.ack_at,
            signed_qr_code=row.signed_qr_code,
            cancelled_at=row.cancelled_at,
        )


def domain_ist() -> Any:
    from nidaan.kit.time import IST

    return IST


def _window_message(ack_at: datetime) -> str:
    from nidaan.billing.render import when

    return (
        f"The IRN was generated at {when(ack_at)}; the IRP allows cancelling it only within "
        "24 hours. Issue a credit note (cancel the invoice in billing) and report it instead."
    )


def build_document(
    invoice: Invoice,
    lines: list[InvoiceLine],
    seller: Seller,
    seller_gstin: str,
    original: Invoice | None,
) -> domain.Document:
    """Our invoice (or credit note, whose amounts are stored negative) as the e-invoice sees
    it: positive amounts, CRN for credit notes and DBN for debit notes, each with the
    original invoice as preceding document."""
    credit = invoice.kind == "credit_note"
    doc_type = {"credit_note": "CRN", "debit_note": "DBN"}.get(invoice.kind, "INV")
    sign = Decimal(-1) if credit else Decimal(1)
    buyer_gstin = invoice.buyer_gstin or ""
    assert invoice.number is not None
    assert invoice.invoice_date is not None
    items = tuple(
        domain.Item(
            description=line.description,
            sac=line.sac,
            quantity=line.quantity,
            unit_price=abs(line.unit_price),
            gross_amount=sign * line.gross_amount,
            discount_amount=sign * line.discount_amount,
            taxable_value=sign * line.taxable_value,
            gst_rate=line.gst_rate,
            cgst_amount=sign * line.cgst_amount,
            sgst_amount=sign * line.sgst_amount,
            igst_amount=sign * line.igst_amount,
            line_total=sign * line.line_total,
        )
        for line in lines
    )
    preceding: tuple[tuple[str, date], ...] = ()
    if original is not None and original.number and original.invoice_date:
        preceding = ((original.number, original.invoice_date),)
    return domain.Document(
        doc_type=doc_type,
        number=invoice.number,
        day=invoice.invoice_date,
        seller=domain.Party(
            gstin=seller_gstin,
            legal_name=seller.legal_name or invoice.seller_legal_name[:100],
            trade_name=seller.trade_name,
            address=seller.address or invoice.seller_address or "",
            location=seller.location or domain.location_of(invoice.seller_address),
            pincode=seller.pincode or invoice.seller_pincode,
            state_code=seller_gstin[:2],
        ),
        buyer=domain.Party(
            gstin=buyer_gstin,
            legal_name=invoice.buyer_name[:100],
            address=invoice.buyer_address or "",
            location=domain.location_of(invoice.buyer_address),
            pincode=invoice.buyer_pincode,
            state_code=buyer_gstin[:2],
        ),
        place_of_supply=invoice.place_of_supply,
        items=items,
        round_off=sign * invoice.round_off,
        grand_total=sign * invoice.grand_total,
        preceding=preceding,
    )


einvoice_service = EInvoiceService()
register_stamp_provider(einvoice_service.stamp)
