"""Invoices and counter payments.

An invoice is priced once, when it is created (``pricing`` + ``domain.price_bill``), and the
seller's and buyer's identities are copied onto it. It is numbered from a gap-free series per
branch and financial year when it is issued — at once, or when an admin approves a discount
above the creator's limit. Money reaches it only through the ledger (``ledger.apply``), from
counter tenders here and from gateway payments in ``payments``; the database keeps it from
being paid twice over or refunded beyond what was paid.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import AuditActor
from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.billing import domain, ledger, pricing, render
from nidaan.billing.configuration import billing_configuration
from nidaan.billing.domain import Bill, Discount, DiscountKind, LineInput
from nidaan.billing.enums import (
    BillingCycle,
    InvoiceKind,
    InvoiceStatus,
    LedgerKind,
    PaymentStatus,
)
from nidaan.billing.errors import (
    BillingNotConfigured,
    CreditLimitExceeded,
    InvalidBillingInput,
    InvoiceCancelled,
    InvoiceHasPayments,
    InvoiceNotFound,
    InvoiceNotPayable,
    InvoiceNotPending,
    OrderAlreadyInvoiced,
    OrderOnClientAccount,
)
from nidaan.billing.events import InvoiceCancelled as InvoiceCancelledEvent
from nidaan.billing.events import InvoiceIssued, InvoicePaid, PaymentCaptured
from nidaan.billing.models import (
    BillingClient,
    BillingSettings,
    ClientOrder,
    Invoice,
    InvoiceLine,
    Receipt,
)
from nidaan.billing.schemas import (
    DebitNoteIn,
    DiscountIn,
    InvoiceCreate,
)
from nidaan.events.service import publish
from nidaan.kit.db import get_in_organisation
from nidaan.kit.errors import InvalidInput
from nidaan.kit.ids import new_id
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.sequences import next_value, next_value_gapless
from nidaan.kit.time import IST, utcnow
from nidaan.orders.models import Order
from nidaan.orders.service import orders_service
from nidaan.patients.service import patients_service
from nidaan.reports.models import ReportReleaseHold
from nidaan.reports.release import report_release
from nidaan.tenancy.models import Branch
from nidaan.tenancy.service import tenancy_service

#: The name billing's holds carry on a report (``reports.release``).
REPORT_HOLDER = "billing"


@dataclass(frozen=True)
class Seller:
    legal_name: str
    gstin: str | None
    address: str | None
    pincode: str | None
    state: str


@dataclass(frozen=True)
class Buyer:
    name: str
    gstin: str | None
    address: str | None
    pincode: str | None
    state: str | None


@dataclass(frozen=True)
class CounterUpi:
    uri: str
    amount: Decimal
    vpa: str
    payee_name: str
    reference: str


#: Functions adding a GST e-invoice stamp (IRN, signed QR) to a document; registered by the
#: e-invoice module, which billing must not import (edges build on billing, not the reverse).
StampProvider = Callable[[AsyncSession, Invoice], Awaitable[render.EInvoiceStamp | None]]
_stamp_providers: list[StampProvider] = []


def register_stamp_provider(provider: StampProvider) -> None:
    if provider not in _stamp_providers:
        _stamp_providers.append(provider)


def today_in_india() -> date:
    return utcnow().astimezone(IST).date()


def invoice_snapshot(invoice: Invoice) -> dict[str, Any]:
    return {
        "number": invoice.number,
        "kind": invoice.kind,
        "status": invoice.status,
        "order_id": invoice.order_id,
        "client_id": invoice.client_id,
        "buyer_name": invoice.buyer_name,
        "buyer_gstin": invoice.buyer_gstin,
        "place_of_supply": invoice.place_of_supply,
        "grand_total": invoice.grand_total,
        "discount_kind": invoice.discount_kind,
        "discount_value": invoice.discount_value,
        "discount_reason": invoice.discount_reason,
        "cancel_reason": invoice.cancel_reason,
    }


#: Which number series each kind of document is counted in.
SERIES_KINDS = {
    InvoiceKind.CREDIT_NOTE: "credit-note",
    InvoiceKind.DEBIT_NOTE: "debit-note",
}


class BillingService:
    # ================================================================== invoices: create

    async def seller(
        self, session: AsyncSession, settings: BillingSettings, branch: Branch
    ) -> Seller:
        organisation = await tenancy_service.get_organisation_unscoped(
            session, settings.organisation_id
        )
        at_branch = await billing_configuration.branch_settings(
            session, settings.organisation_id, branch.id
        )
        gstin = (at_branch.gstin if at_branch else None) or settings.gstin
        state = (
            (at_branch.state_code if at_branch else None)
            or (gstin[:2] if gstin else None)
            or domain.state_code(branch.state)
            or settings.state_code
        )
        if state is None:
            raise BillingNotConfigured(
                "The lab's GST state is not set: set state_code in the billing settings "
                "(PUT /api/v1/billing/settings) or the branch's state.",
                field="state_code",
            )
        return Seller(
            legal_name=settings.legal_name or organisation.name,
            gstin=gstin,
            address=settings.address or branch.address or organisation.address,
            pincode=settings.pincode,
            state=state,
        )

    async def branch_for(
        self, session: AsyncSession, caller: Principal, branch_id: uuid.UUID
    ) -> Branch:
        branch = await tenancy_service.get_branch(session, caller, branch_id)
        caller.require_reach([branch.id], "branch")  # branch limits (403 branch_not_allowed)
        return branch

    async def live_invoice_for_order(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_id: uuid.UUID
    ) -> Invoice | None:
        return await session.scalar(
            select(Invoice).where(
                Invoice.organisation_id == organisation_id,
                Invoice.order_id == order_id,
                Invoice.kind == InvoiceKind.ORDER,
                Invoice.status != InvoiceStatus.CANCELLED,
            )
        )

    async def create_order_invoice(
        self, session: AsyncSession, caller: Principal, data: InvoiceCreate
    ) -> Invoice:
        """Bill an order to its patient (or to a per-order B2B client)."""
        org = caller.organisation_id
        order = await orders_service.get(session, caller, data.order_id)
        branch = await self.branch_for(session, caller, order.branch_id)
        existing = await self.live_invoice_for_order(session, org, order.id)
        if existing is not None:
            raise OrderAlreadyInvoiced(
                f"Order {order.order_number} already has invoice {existing.number or '(pending)'}.",
                invoice_id=str(existing.id),
            )
        on_account = await session.get(ClientOrder, order.id)
        if on_account is not None:
            raise OrderOnClientAccount(
                "This order is on a client's monthly account; it is invoiced with the month.",
                client_id=str(on_account.client_id),
            )
        settings = await billing_configuration.settings_for(session, org)
        seller = await self.seller(session, settings, branch)
        client = None
        if data.client_id is not None:
            client = await billing_configuration.get_client(session, caller, data.client_id)
            if not client.is_active:
                raise InvalidBillingInput("This client is not active.", field="client_id")
            if client.billing_cycle == BillingCycle.MONTHLY:
                raise InvalidBillingInput(
                    "This client is billed monthly: put the order on its account "
                    f"(POST /api/v1/billing-clients/{client.id}/orders).",
                    field="client_id",
                )
        rate_list = await self.rate_list_for(session, caller, order, client, data.rate_list_id)
        book = await pricing.price_book(session, org, rate_list)
        lines = await pricing.order_lines(session, caller, order, book)
        if not lines:
            raise InvalidBillingInput("The order has no test left to bill.", field="order_id")
        lines += await self._extra_lines(session, org, book, data)
        if data.home_collection:
            charge = settings.home_collection_charge
            tests_total = sum((line.unit_price for line in lines), Decimal("0"))
            free_above = settings.home_collection_free_above
            if charge > 0 and (free_above is None or tests_total < free_above):
                lines.append(pricing.home_collection_line(charge))
        buyer = await self._buyer(session, caller, order, client, data)
        discount = self._discount(data.discount)
        bill = self.price_lines(lines, seller, buyer, discount, settings, data.place_of_supply)
        if client is not None:
            await self.check_credit(session, client, bill.grand_total)
        invoice = self.new_invoice(
            caller,
            kind=InvoiceKind.ORDER,
            branch=branch,
            seller=seller,
            buyer=buyer,
            bill=bill,
            discount=discount,
            order=order,
            client=client,
            rate_list_id=rate_list.id if rate_list else None,
            home_collection=data.home_collection,
        )
        pending = discount is not None and domain.needs_approval(
            bill.discount_percent, caller.roles, settings.discount_limits or {}
        )
        return await self.save_new(session, caller, invoice, bill, settings, pending=pending)

    async def rate_list_for(
        self,
        session: AsyncSession,
        caller: Principal,
        order: Order,
        client: BillingClient | None,
        rate_list_id: uuid.UUID | None,
    ) -> Any:
        if rate_list_id is not None:
            chosen = await billing_configuration.get_rate_list(session, caller, rate_list_id)
            if not chosen.is_active:
                raise InvalidBillingInput("This rate list is not active.", field="rate_list_id")
            return chosen
        if client is not None and client.rate_list_id is not None:
            return await billing_configuration.get_rate_list(session, caller, client.rate_list_id)
        by_referrer = await billing_configuration.referrer_rate_list(
            session, caller.organisation_id, order.referring_doctor
        )
        if by_referrer is not None:
            return by_referrer
        return await billing_configuration.default_rate_list(session, caller.organisation_id)

    async def _extra_lines(
        self, session: AsyncSession, org: uuid.UUID, book: pricing.PriceBook, data: InvoiceCreate
    ) -> list[LineInput]:
        if not data.extra_items:
            return []
        found = await billing_configuration.items_by_code(
            session, org, {i.code for i in data.extra_items}
        )
        missing = sorted({i.code for i in data.extra_items} - set(found))
        if missing:
            raise InvalidBillingInput(
                "Unknown billing items.", field="extra_items", unknown=missing
            )
        return [pricing.item_line(found[i.code], book, i.quantity) for i in data.extra_items]

    async def _buyer(
        self,
        session: AsyncSession,
        caller: Principal,
        order: Order,
        client: BillingClient | None,
        data: InvoiceCreate,
    ) -> Buyer:
        if client is not None:
            buyer = Buyer(
                client.name,
                client.gstin,
                client.address,
                client.pincode,
                billing_configuration.client_state(client),
            )
        else:
            patient = await patients_service.get(session, caller, order.patient_id)
            address = ", ".join(p for p in (patient.address, patient.city) if p) or None
            buyer = Buyer(
                patient.full_name, None, address, patient.pincode, domain.state_code(patient.state)
            )
        if data.buyer is not None:
            given = data.buyer.model_dump(exclude_unset=True)
            gstin = given.get("gstin", buyer.gstin)
            state = given.get("state_code") or (gstin[:2] if gstin else buyer.state)
            if gstin:
                problem = domain.gstin_problem(gstin)
                if problem:
                    raise InvalidBillingInput(problem, field="buyer.gstin")
                state = gstin[:2]
            buyer = Buyer(
                given.get("name") or buyer.name,
                gstin,
                given.get("address", buyer.address),
                given.get("pincode", buyer.pincode),
                state,
            )
        return buyer

    @staticmethod
    def _discount(given: DiscountIn | None) -> Discount | None:
        if given is None or given.value == 0:
            return None
        return Discount(DiscountKind(given.kind), given.value, given.reason.strip())

    @staticmethod
    def price_lines(
        lines: Sequence[LineInput],
        seller: Seller,
        buyer: Buyer,
        discount: Discount | None,
        settings: BillingSettings,
        place_override: str | None = None,
    ) -> Bill:
        if seller.gstin is None and any(
            line.treatment is domain.GstTreatment.TAXABLE for line in lines
        ):
            raise BillingNotConfigured(
                "A taxable item needs the lab's GSTIN in the billing settings; an "
                "unregistered lab cannot charge GST.",
                field="gstin",
            )
        pos = place_override or domain.place_of_supply(
            seller.state, buyer.state, recipient_registered=buyer.gstin is not None
        )
        try:
            return domain.price_bill(
                lines,
                supplier_state=seller.state,
                place_of_supply=pos,
                discount=discount,
                round_to_rupee=settings.round_to_rupee,
            )
        except ValueError as exc:
            raise InvalidBillingInput(str(exc), field="discount") from None

    def new_invoice(
        self,
        caller: Principal,
        *,
        kind: InvoiceKind,
        branch: Branch,
        seller: Seller,
        buyer: Buyer,
        bill: Bill,
        discount: Discount | None,
        order: Order | None = None,
        client: BillingClient | None = None,
        rate_list_id: uuid.UUID | None = None,
        home_collection: bool = False,
        period: tuple[date, date] | None = None,
    ) -> Invoice:
        return Invoice(
            organisation_id=caller.organisation_id,
            branch_id=branch.id,
            kind=str(kind),
            status=InvoiceStatus.ISSUED,
            order_id=order.id if order else None,
            patient_id=order.patient_id if order else None,
            client_id=client.id if client else None,
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
            referrer=order.referring_doctor if order else None,
            rate_list_id=rate_list_id,
            home_collection=home_collection,
            seller_legal_name=seller.legal_name,
            seller_gstin=seller.gstin,
            seller_address=seller.address,
            seller_pincode=seller.pincode,
            seller_state_code=seller.state,
            buyer_name=buyer.name,
            buyer_gstin=buyer.gstin,
            buyer_address=buyer.address,
            buyer_pincode=buyer.pincode,
            buyer_state_code=buyer.state,
            discount_kind=str(discount.kind) if discount else None,
            discount_value=discount.value if discount else None,
            discount_reason=discount.reason if discount else None,
            discount_requested_by_id=caller.id if discount and caller.kind == "user" else None,
            created_by_id=caller.id if caller.kind == "user" else None,
            **self._bill_columns(bill),
        )

    @staticmethod
    def _bill_columns(bill: Bill) -> dict[str, Any]:
        return {
            "document_type": str(bill.document_type),
            "place_of_supply": bill.place_of_supply,
            "supply_type": str(bill.supply_type),
            "state_tax_name": bill.state_tax_name,
            "gross_total": bill.gross_total,
            "discount_total": bill.discount_total,
            "taxable_total": bill.taxable_total,
            "exempt_total": bill.exempt_total,
            "cgst_total": bill.cgst_total,
            "sgst_total": bill.sgst_total,
            "igst_total": bill.igst_total,
            "tax_total": bill.tax_total,
            "round_off": bill.round_off,
            "grand_total": bill.grand_total,
            "discount_percent": bill.discount_percent,
        }

    def _lines(self, invoice: Invoice, bill: Bill) -> list[InvoiceLine]:
        return [
            InvoiceLine(
                organisation_id=invoice.organisation_id,
                invoice_id=invoice.id,
                position=position,
                order_id=line.order_id,
                kind=line.kind,
                source_id=line.source_id,
                code=line.code,
                description=line.description[:300],
                sac=line.sac,
                gst_treatment=str(line.treatment),
                gst_rate=line.gst_rate,
                quantity=line.quantity,
                unit_price=line.unit_price,
                gross_amount=line.gross_amount,
                discount_amount=line.discount_amount,
                taxable_value=line.taxable_value,
                cgst_rate=line.cgst_rate,
                cgst_amount=line.cgst_amount,
                sgst_rate=line.sgst_rate,
                sgst_amount=line.sgst_amount,
                igst_rate=line.igst_rate,
                igst_amount=line.igst_amount,
                line_total=line.line_total,
            )
            for position, line in enumerate(bill.lines, start=1)
        ]

    async def save_new(
        self,
        session: AsyncSession,
        caller: Principal,
        invoice: Invoice,
        bill: Bill,
        settings: BillingSettings,
        *,
        pending: bool,
    ) -> Invoice:
        if pending:
            invoice.status = InvoiceStatus.PENDING_APPROVAL
        else:
            await self._number(session, invoice)
        session.add(invoice)
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError as exc:
            if "uq_invoices_live_order" in str(exc.orig):
                raise OrderAlreadyInvoiced("The order was invoiced meanwhile.") from None
            raise
        session.add_all(self._lines(invoice, bill))
        await session.flush()
        await session.refresh(invoice)
        await audit_service.record(
            session,
            organisation_id=invoice.organisation_id,
            actor=caller.actor,
            action="invoice.created",
            entity_type="invoice",
            entity_id=invoice.id,
            after={
                **invoice_snapshot(invoice),
                "lines": [f"{line.code} {line.line_total}" for line in bill.lines],
            },
        )
        if not pending:
            await self._after_issue(session, invoice, settings, caller.actor)
        return invoice

    async def _number(self, session: AsyncSession, invoice: Invoice) -> None:
        branch = await session.get(Branch, invoice.branch_id)
        assert branch is not None
        now = utcnow()
        day = now.astimezone(IST).date()
        kind = SERIES_KINDS.get(invoice.kind, "invoice")
        number = await next_value_gapless(
            session, invoice.organisation_id, domain.invoice_scope(branch.code, day, kind=kind)
        )
        try:
            invoice.number = domain.invoice_number(branch.code, day, number, kind=kind)
        except domain.NumberSeriesExhausted as exc:
            raise InvalidBillingInput(str(exc)) from None
        invoice.status = InvoiceStatus.ISSUED
        invoice.invoice_date = day
        invoice.financial_year = domain.financial_year(day)
        invoice.issued_at = now
        terms = 0
        if invoice.client_id is not None:
            client = await session.get(BillingClient, invoice.client_id)
            terms = client.payment_terms_days if client else 0
        invoice.due_date = day + timedelta(days=terms)

    async def _after_issue(
        self,
        session: AsyncSession,
        invoice: Invoice,
        settings: BillingSettings,
        actor: AuditActor,
    ) -> None:
        await audit_service.record(
            session,
            organisation_id=invoice.organisation_id,
            actor=actor,
            action="invoice.issued",
            entity_type="invoice",
            entity_id=invoice.id,
            after={"number": invoice.number, "status": invoice.status},
        )
        await publish(
            session,
            InvoiceIssued(
                organisation_id=invoice.organisation_id,
                invoice_id=invoice.id,
                invoice_number=invoice.number or "",
                kind=invoice.kind,
                order_id=invoice.order_id,
                client_id=invoice.client_id,
                grand_total=invoice.grand_total,
            ),
        )
        await self._sync_report_hold(session, invoice, settings, actor)

    async def _sync_report_hold(
        self,
        session: AsyncSession,
        invoice: Invoice,
        settings: BillingSettings | None,
        actor: AuditActor,
    ) -> None:
        """Hold the order's report while its patient invoice is unpaid (lab option)."""
        if invoice.order_id is None or invoice.kind != InvoiceKind.ORDER:
            return
        settings = settings or await billing_configuration.settings_for(
            session, invoice.organisation_id
        )
        if not settings.hold_report_until_paid:
            # Switching the option off released every billing hold (lift_all_report_holds).
            return
        owes = (
            invoice.status == InvoiceStatus.ISSUED
            and invoice.client_id is None
            and invoice.balance_due > 0
        )
        if settings.hold_report_until_paid and owes:
            await report_release.hold(
                session,
                invoice.organisation_id,
                invoice.order_id,
                holder=REPORT_HOLDER,
                reason=f"Invoice {invoice.number} has {invoice.balance_due} due",
                actor=actor,
            )
        else:
            await report_release.lift(
                session,
                invoice.organisation_id,
                invoice.order_id,
                holder=REPORT_HOLDER,
                actor=actor,
            )

    async def check_credit(
        self, session: AsyncSession, client: BillingClient, adding: Decimal
    ) -> None:
        if client.credit_limit is None:
            return
        exposure = await self.client_exposure(session, client)
        if exposure + adding > client.credit_limit:
            raise CreditLimitExceeded(
                f"{client.name} would owe {exposure + adding}, above its credit limit of "
                f"{client.credit_limit}.",
                credit_limit=str(client.credit_limit),
                exposure=str(exposure),
                adding=str(adding),
            )

    async def client_exposure(self, session: AsyncSession, client: BillingClient) -> Decimal:
        """Balance due of the client's issued invoices plus orders on account not invoiced."""
        outstanding = await session.scalar(
            select(func.coalesce(func.sum(Invoice.balance_due), 0)).where(
                Invoice.organisation_id == client.organisation_id,
                Invoice.client_id == client.id,
                Invoice.status == InvoiceStatus.ISSUED,
                Invoice.kind != InvoiceKind.CREDIT_NOTE,
            )
        )
        unbilled = await self.client_unbilled(session, client)
        return Decimal(outstanding or 0) + unbilled

    async def client_unbilled(self, session: AsyncSession, client: BillingClient) -> Decimal:
        unbilled = await session.scalar(
            select(func.coalesce(func.sum(ClientOrder.amount), 0)).where(
                ClientOrder.client_id == client.id, ClientOrder.invoice_id.is_(None)
            )
        )
        return Decimal(unbilled or 0)

    # ================================================================== approval & cancel

    async def decide_discount(
        self,
        session: AsyncSession,
        caller: Principal,
        invoice_id: uuid.UUID,
        *,
        approve: bool,
        note: str | None,
    ) -> Invoice:
        """An admin approves the discount (the invoice is issued with it) or rejects it (the
        invoice is issued at full price)."""
        invoice = await self.get_for_update(session, caller, invoice_id)
        if invoice.status != InvoiceStatus.PENDING_APPROVAL:
            raise InvoiceNotPending("This invoice is not waiting for a discount approval.")
        before = invoice_snapshot(invoice)
        settings = await billing_configuration.settings_for(session, invoice.organisation_id)
        if not approve:
            lines = await self.lines_of(session, invoice)
            bill = domain.price_bill(
                [
                    LineInput(
                        code=line.code,
                        description=line.description,
                        unit_price=line.unit_price,
                        quantity=line.quantity,
                        sac=line.sac,
                        treatment=domain.GstTreatment(line.gst_treatment),
                        gst_rate=line.gst_rate,
                        kind=line.kind,
                        order_id=line.order_id,
                        source_id=line.source_id,
                        discountable=line.kind != "home_collection",
                    )
                    for line in lines
                ],
                supplier_state=invoice.seller_state_code,
                place_of_supply=invoice.place_of_supply,
                round_to_rupee=settings.round_to_rupee,
            )
            for line in lines:
                await session.delete(line)
            await session.flush()
            for key, value in self._bill_columns(bill).items():
                setattr(invoice, key, value)
            invoice.discount_kind = invoice.discount_value = invoice.discount_reason = None
            session.add_all(self._lines(invoice, bill))
        invoice.discount_decided_by_id = caller.id if caller.kind == "user" else None
        invoice.discount_decided_at = utcnow()
        invoice.discount_decision_note = note
        await self._number(session, invoice)
        await session.flush()
        await session.refresh(invoice)
        await audit_service.record(
            session,
            organisation_id=invoice.organisation_id,
            actor=caller.actor,
            action="invoice.discount_approved" if approve else "invoice.discount_rejected",
            entity_type="invoice",
            entity_id=invoice.id,
            before=before,
            after={**invoice_snapshot(invoice), "note": note},
        )
        await self._after_issue(session, invoice, settings, caller.actor)
        return invoice

    async def cancel(
        self, session: AsyncSession, caller: Principal, invoice_id: uuid.UUID, reason: str
    ) -> tuple[Invoice, Invoice | None]:
        """Cancel an invoice; an issued one gets a credit note. Returns (invoice, note)."""
        invoice = await self.get_for_update(session, caller, invoice_id)
        if invoice.kind == InvoiceKind.CREDIT_NOTE:
            raise InvalidBillingInput("A credit note cannot be cancelled.")
        if invoice.status == InvoiceStatus.CANCELLED:
            raise InvoiceCancelled("This invoice is already cancelled.")
        if invoice.amount_paid - invoice.amount_refunded > 0:
            raise InvoiceHasPayments(
                "Money was received on this invoice: refund it before cancelling "
                "(POST /api/v1/payments/{id}/refunds).",
                net_paid=str(invoice.amount_paid - invoice.amount_refunded),
            )
        before = invoice_snapshot(invoice)
        was_issued = invoice.status == InvoiceStatus.ISSUED
        invoice.status = InvoiceStatus.CANCELLED
        invoice.cancelled_at = utcnow()
        invoice.cancel_reason = reason.strip()
        invoice.cancelled_by_id = caller.id if caller.kind == "user" else None
        await session.flush()
        note = None
        if was_issued:
            note = await self._credit_note(session, caller, invoice)
        if invoice.kind == InvoiceKind.CONSOLIDATED:
            rows = await session.scalars(
                select(ClientOrder).where(ClientOrder.invoice_id == invoice.id)
            )
            for row in rows:
                row.invoice_id = None
        await session.flush()
        await session.refresh(invoice)
        await audit_service.record(
            session,
            organisation_id=invoice.organisation_id,
            actor=caller.actor,
            action="invoice.cancelled",
            entity_type="invoice",
            entity_id=invoice.id,
            before=before,
            after={**invoice_snapshot(invoice), "credit_note": note.number if note else None},
        )
        await self._sync_report_hold(session, invoice, None, caller.actor)
        await publish(
            session,
            InvoiceCancelledEvent(
                organisation_id=invoice.organisation_id,
                invoice_id=invoice.id,
                invoice_number=invoice.number,
                credit_note_id=note.id if note else None,
                reason=invoice.cancel_reason or "",
            ),
        )
        return invoice, note

    async def _credit_note(
        self, session: AsyncSession, caller: Principal, invoice: Invoice
    ) -> Invoice:
        lines = await self.lines_of(session, invoice)
        note = Invoice(
            organisation_id=invoice.organisation_id,
            branch_id=invoice.branch_id,
            kind=InvoiceKind.CREDIT_NOTE,
            document_type=domain.DocumentType.CREDIT_NOTE,
            status=InvoiceStatus.ISSUED,
            order_id=invoice.order_id,
            patient_id=invoice.patient_id,
            client_id=invoice.client_id,
            credit_note_for_id=invoice.id,
            referrer=invoice.referrer,
            seller_legal_name=invoice.seller_legal_name,
            seller_gstin=invoice.seller_gstin,
            seller_address=invoice.seller_address,
            seller_pincode=invoice.seller_pincode,
            seller_state_code=invoice.seller_state_code,
            buyer_name=invoice.buyer_name,
            buyer_gstin=invoice.buyer_gstin,
            buyer_address=invoice.buyer_address,
            buyer_pincode=invoice.buyer_pincode,
            buyer_state_code=invoice.buyer_state_code,
            place_of_supply=invoice.place_of_supply,
            supply_type=invoice.supply_type,
            state_tax_name=invoice.state_tax_name,
            discount_percent=invoice.discount_percent,
            cancel_reason=invoice.cancel_reason,
            created_by_id=caller.id if caller.kind == "user" else None,
            **{
                name: -getattr(invoice, name)
                for name in (
                    "gross_total",
                    "discount_total",
                    "taxable_total",
                    "exempt_total",
                    "cgst_total",
                    "sgst_total",
                    "igst_total",
                    "tax_total",
                    "round_off",
                    "grand_total",
                )
            },
        )
        await self._number(session, note)
        note.due_date = None
        session.add(note)
        await session.flush()
        for line in lines:
            session.add(
                InvoiceLine(
                    organisation_id=note.organisation_id,
                    invoice_id=note.id,
                    position=line.position,
                    order_id=line.order_id,
                    kind=line.kind,
                    source_id=line.source_id,
                    code=line.code,
                    description=line.description,
                    sac=line.sac,
                    gst_treatment=line.gst_treatment,
                    gst_rate=line.gst_rate,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    gross_amount=-line.gross_amount,
                    discount_amount=-line.discount_amount,
                    taxable_value=-line.taxable_value,
                    cgst_rate=line.cgst_rate,
                    cgst_amount=-line.cgst_amount,
                    sgst_rate=line.sgst_rate,
                    sgst_amount=-line.sgst_amount,
                    igst_rate=line.igst_rate,
                    igst_amount=-line.igst_amount,
                    line_total=-line.line_total,
                )
            )
        await session.flush()
        await session.refresh(note)
        await audit_service.record(
            session,
            organisation_id=note.organisation_id,
            actor=caller.actor,
            action="invoice.credit_note_issued",
            entity_type="invoice",
            entity_id=note.id,
            after={**invoice_snapshot(note), "for": invoice.number},
        )
        return note

    async def issue_debit_note(
        self, session: AsyncSession, caller: Principal, invoice_id: uuid.UUID, data: DebitNoteIn
    ) -> Invoice:
        """An extra charge found after ``invoice`` was issued (a test added at the bench, a
        missed courier fee): a debit note from the branch's debit-note series, priced and
        taxed like the invoice (same seller, buyer and place of supply), payable on its own."""
        invoice = await self.get_for_update(session, caller, invoice_id)
        if invoice.kind in (InvoiceKind.CREDIT_NOTE, InvoiceKind.DEBIT_NOTE):
            raise InvalidBillingInput(
                "A debit note adds a charge to an invoice, not to a credit or debit note."
            )
        if invoice.status == InvoiceStatus.CANCELLED:
            raise InvoiceCancelled("This invoice is cancelled; bill the charge afresh.")
        if invoice.status != InvoiceStatus.ISSUED:
            raise InvalidBillingInput(
                "This invoice is not issued yet (its discount awaits approval)."
            )
        try:
            lines = [
                LineInput(
                    code=line.code,
                    description=line.description.strip(),
                    unit_price=line.unit_price,
                    quantity=line.quantity,
                    sac=line.sac,
                    treatment=line.gst_treatment,
                    gst_rate=line.gst_rate,
                    kind="service",
                    discountable=False,
                )
                for line in data.lines
            ]
        except ValueError as exc:
            raise InvalidBillingInput(str(exc), field="lines") from None
        if invoice.seller_gstin is None and any(
            line.treatment is domain.GstTreatment.TAXABLE for line in lines
        ):
            raise BillingNotConfigured(
                "The invoice was issued without the lab's GSTIN, so its debit note cannot "
                "charge GST.",
                field="lines",
            )
        settings = await billing_configuration.settings_for(session, invoice.organisation_id)
        bill = domain.price_bill(
            lines,
            supplier_state=invoice.seller_state_code,
            place_of_supply=invoice.place_of_supply,
            round_to_rupee=settings.round_to_rupee,
        )
        note = Invoice(
            organisation_id=invoice.organisation_id,
            branch_id=invoice.branch_id,
            kind=InvoiceKind.DEBIT_NOTE,
            status=InvoiceStatus.ISSUED,
            patient_id=invoice.patient_id,
            client_id=invoice.client_id,
            debit_note_for_id=invoice.id,
            note_reason=data.reason.strip(),
            referrer=invoice.referrer,
            **{
                name: getattr(invoice, name)
                for name in (
                    "seller_legal_name",
                    "seller_gstin",
                    "seller_address",
                    "seller_pincode",
                    "seller_state_code",
                    "buyer_name",
                    "buyer_gstin",
                    "buyer_address",
                    "buyer_pincode",
                    "buyer_state_code",
                )
            },
            created_by_id=caller.id if caller.kind == "user" else None,
            **self._bill_columns(bill),
        )
        note.document_type = domain.DocumentType.DEBIT_NOTE
        await self._number(session, note)
        session.add(note)
        await session.flush()
        session.add_all(self._lines(note, bill))
        await session.flush()
        await session.refresh(note)
        await audit_service.record(
            session,
            organisation_id=note.organisation_id,
            actor=caller.actor,
            action="invoice.debit_note_issued",
            entity_type="invoice",
            entity_id=note.id,
            after={
                **invoice_snapshot(note),
                "for": invoice.number,
                "reason": note.note_reason,
                "lines": [f"{line.code} {line.line_total}" for line in bill.lines],
            },
        )
        await self._after_issue(session, note, settings, caller.actor)
        return note

    # ================================================================== reads

    async def get(self, session: AsyncSession, caller: Principal, invoice_id: uuid.UUID) -> Invoice:
        invoice = await self.get_in(session, caller.organisation_id, invoice_id)
        caller.require_reach([invoice.branch_id], "invoice")  # branch limits (403)
        return invoice

    async def get_in(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        invoice_id: uuid.UUID,
        *,
        fresh: bool = False,
    ) -> Invoice:
        """The invoice; ``fresh`` re-reads it (amounts moved by the ledger trigger)."""
        if fresh:
            invoice = await session.scalar(
                select(Invoice)
                .where(Invoice.id == invoice_id, Invoice.organisation_id == organisation_id)
                .execution_options(populate_existing=True)
            )
        else:
            invoice = await get_in_organisation(session, Invoice, invoice_id, organisation_id)
        if invoice is None:
            raise InvoiceNotFound("No such invoice in your organisation.", entity="invoice")
        return invoice

    async def get_for_update(
        self, session: AsyncSession, caller: Principal, invoice_id: uuid.UUID
    ) -> Invoice:
        invoice = await session.scalar(
            select(Invoice)
            .where(Invoice.id == invoice_id, Invoice.organisation_id == caller.organisation_id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        if invoice is None:
            raise InvoiceNotFound("No such invoice in your organisation.", entity="invoice")
        caller.require_reach([invoice.branch_id], "invoice")
        return invoice

    async def lines_of(self, session: AsyncSession, invoice: Invoice) -> list[InvoiceLine]:
        return list(
            await session.scalars(
                select(InvoiceLine)
                .where(InvoiceLine.invoice_id == invoice.id)
                .order_by(InvoiceLine.position)
            )
        )

    async def list(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        status: InvoiceStatus | None = None,
        payment_status: PaymentStatus | None = None,
        order_id: uuid.UUID | None = None,
        client_id: uuid.UUID | None = None,
        patient_id: uuid.UUID | None = None,
        branch_id: uuid.UUID | None = None,
        kind: InvoiceKind | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        outstanding: bool | None = None,
        sorting: str = "-created_at",
    ) -> tuple[list[Invoice], int]:
        statement = select(Invoice).where(Invoice.organisation_id == caller.organisation_id)
        if caller.branch_ids is not None:
            statement = statement.where(Invoice.branch_id.in_(sorted(caller.branch_ids)))
        filters = {
            Invoice.status: status,
            Invoice.payment_status: payment_status,
            Invoice.order_id: order_id,
            Invoice.client_id: client_id,
            Invoice.patient_id: patient_id,
            Invoice.branch_id: branch_id,
            Invoice.kind: kind,
        }
        for column, value in filters.items():
            if value is not None:
                statement = statement.where(column == value)
        if date_from is not None:
            statement = statement.where(Invoice.invoice_date >= date_from)
        if date_to is not None:
            statement = statement.where(Invoice.invoice_date <= date_to)
        if outstanding is not None:
            statement = statement.where(
                (Invoice.balance_due > 0) if outstanding else (Invoice.balance_due <= 0)
            )
        columns = {
            "created_at": Invoice.created_at,
            "invoice_date": Invoice.invoice_date,
            "grand_total": Invoice.grand_total,
            "balance_due": Invoice.balance_due,
            "number": Invoice.number,
        }
        name = sorting.lstrip("-")
        if name not in columns:
            raise InvalidInput(f"sorting must be one of {sorted(columns)} (- for descending).")
        column = columns[name]
        statement = statement.order_by(
            column.desc() if sorting.startswith("-") else column.asc(), Invoice.id
        )
        return await paginate(session, statement, page)

    # ================================================================== money on invoices

    @staticmethod
    def require_payable(invoice: Invoice) -> None:
        if invoice.kind == InvoiceKind.CREDIT_NOTE:
            raise InvoiceNotPayable("A credit note takes no payments.")
        if invoice.status == InvoiceStatus.CANCELLED:
            raise InvoiceNotPayable("This invoice is cancelled.")
        if invoice.status == InvoiceStatus.PENDING_APPROVAL:
            raise InvoiceNotPayable("This invoice's discount awaits approval; it is not issued.")

    async def new_receipt(
        self,
        session: AsyncSession,
        invoice: Invoice,
        amount: Decimal,
        source: str,
        when: datetime,
        caller: Principal | None,
    ) -> Receipt:
        branch = await session.get(Branch, invoice.branch_id)
        assert branch is not None
        day = when.astimezone(IST).date()
        number = await next_value(
            session,
            invoice.organisation_id,
            f"billing:receipt:{branch.id}:{domain.financial_year(day)}",
        )
        return Receipt(
            id=new_id(),
            organisation_id=invoice.organisation_id,
            invoice_id=invoice.id,
            branch_id=branch.id,
            number=domain.receipt_number(branch.code, day, number),
            amount=amount,
            source=source,
            received_at=when,
            received_by_id=caller.id if caller is not None and caller.kind == "user" else None,
        )

    async def announce_captured(
        self,
        session: AsyncSession,
        invoice: Invoice,
        receipt: Receipt,
        source: str,
        methods: Sequence[str],
    ) -> None:
        await session.flush()
        await publish(
            session,
            PaymentCaptured(
                organisation_id=invoice.organisation_id,
                invoice_id=invoice.id,
                invoice_number=invoice.number or "",
                order_id=invoice.order_id,
                patient_id=invoice.patient_id,
                receipt_id=receipt.id,
                receipt_number=receipt.number,
                amount=receipt.amount,
                currency=invoice.currency,
                source=source,
                methods=tuple(dict.fromkeys(methods)),
                balance_due=invoice.balance_due,
            ),
        )

    async def after_money(self, session: AsyncSession, invoice: Invoice, actor: AuditActor) -> None:
        """Re-read the invoice's amounts after ledger rows moved them; lift the report hold
        and announce the invoice paid when it just became so."""
        was = invoice.payment_status
        await session.refresh(
            invoice, ["amount_paid", "amount_refunded", "balance_due", "payment_status"]
        )
        await self._sync_report_hold(session, invoice, None, actor)
        if invoice.payment_status == PaymentStatus.PAID and was != PaymentStatus.PAID:
            await audit_service.record(
                session,
                organisation_id=invoice.organisation_id,
                actor=actor,
                action="invoice.paid",
                entity_type="invoice",
                entity_id=invoice.id,
                before={"payment_status": was},
                after={
                    "payment_status": invoice.payment_status,
                    "amount_paid": invoice.amount_paid,
                },
            )
            await publish(
                session,
                InvoicePaid(
                    organisation_id=invoice.organisation_id,
                    invoice_id=invoice.id,
                    invoice_number=invoice.number or "",
                    order_id=invoice.order_id,
                ),
            )

    # ------------------------------------------------------------------ for gateways

    async def apply_gateway_payment(
        self,
        session: AsyncSession,
        invoice: Invoice,
        *,
        gateway: str,
        gateway_payment_row_id: uuid.UUID,
        amount: Decimal,
        method: str | None,
        received_at: datetime,
        actor: AuditActor,
    ) -> Receipt | None:
        """Apply a captured gateway payment once; returns its receipt, or None when it was
        already applied. Raises ``Overpayment``/``InvoiceNotPayable`` (the caller holds it)."""
        applied = await ledger.apply(
            session,
            organisation_id=invoice.organisation_id,
            invoice_id=invoice.id,
            kind=LedgerKind.PAYMENT,
            amount=amount,
            effect_key=f"gateway-payment:{gateway_payment_row_id}",
            gateway_payment_id=gateway_payment_row_id,
        )
        if not applied:
            return None
        receipt = await self.new_receipt(session, invoice, amount, gateway, received_at, None)
        session.add(receipt)
        await session.flush()
        await self.after_money(session, invoice, actor)
        await self.announce_captured(session, invoice, receipt, gateway, [method or gateway])
        return receipt

    async def apply_refund(
        self,
        session: AsyncSession,
        invoice: Invoice,
        *,
        refund_id: uuid.UUID,
        amount: Decimal,
        actor: AuditActor,
        reverse: bool = False,
    ) -> bool:
        """Count a refund against the invoice (or give a failed one back), once."""
        applied = await ledger.apply(
            session,
            organisation_id=invoice.organisation_id,
            invoice_id=invoice.id,
            kind=LedgerKind.REFUND_REVERSAL if reverse else LedgerKind.REFUND,
            amount=amount,
            effect_key=f"refund{'-failed' if reverse else ''}:{refund_id}",
            refund_id=refund_id,
        )
        if applied:
            await self.after_money(session, invoice, actor)
        return applied

    # ------------------------------------------------------------------ receipts

    async def receipts_of(self, session: AsyncSession, invoice: Invoice) -> list[Receipt]:
        return list(
            await session.scalars(
                select(Receipt)
                .where(Receipt.invoice_id == invoice.id)
                .order_by(Receipt.received_at)
            )
        )

    # ------------------------------------------------------------------ documents

    async def counter_upi(
        self, session: AsyncSession, caller: Principal, invoice_id: uuid.UUID
    ) -> CounterUpi:
        """The ``upi://pay`` intent for the invoice's balance (payee from the branch)."""
        invoice = await self.get(session, caller, invoice_id)
        self.require_payable(invoice)
        if invoice.balance_due <= 0:
            raise InvoiceNotPayable("Nothing is due on this invoice.")
        upi = await self._upi_uri(session, invoice)
        if upi is None:
            raise BillingNotConfigured(
                "This branch has no UPI address: set upi_vpa and upi_payee_name "
                f"(PUT /api/v1/billing/branches/{invoice.branch_id}).",
                field="upi_vpa",
            )
        return upi

    async def _upi_uri(self, session: AsyncSession, invoice: Invoice) -> CounterUpi | None:
        at_branch = await billing_configuration.branch_settings(
            session, invoice.organisation_id, invoice.branch_id
        )
        if at_branch is None or not at_branch.upi_vpa:
            return None
        payee = at_branch.upi_payee_name or invoice.seller_legal_name
        reference = invoice.number or str(invoice.id)
        uri = domain.upi_payment_uri(
            vpa=at_branch.upi_vpa,
            payee_name=payee,
            amount=invoice.balance_due,
            reference=reference,
            merchant_code=at_branch.upi_merchant_code,
        )
        return CounterUpi(uri, invoice.balance_due, at_branch.upi_vpa, payee, reference)

    async def invoice_document(
        self, session: AsyncSession, caller: Principal, invoice_id: uuid.UUID
    ) -> render.InvoiceDocument:
        invoice = await self.get(session, caller, invoice_id)
        await session.refresh(invoice)
        order_number = None
        if invoice.order_id is not None:
            order_number = (
                await orders_service.get(session, caller, invoice.order_id)
            ).order_number
        original = None
        original_id = invoice.credit_note_for_id or invoice.debit_note_for_id
        if original_id is not None:
            original = (await self.get(session, caller, original_id)).number
        upi = None
        if invoice.status == InvoiceStatus.ISSUED and invoice.balance_due > 0:
            found = await self._upi_uri(session, invoice)
            upi = found.uri if found else None
        return render.InvoiceDocument(
            invoice=invoice,
            lines=await self.lines_of(session, invoice),
            receipts=await self.receipts_of(session, invoice),
            order_number=order_number,
            credit_note_for=original,
            upi_uri=upi,
            einvoice=await self._stamp(session, invoice),
        )

    @staticmethod
    async def _stamp(session: AsyncSession, invoice: Invoice) -> render.EInvoiceStamp | None:
        for provider in _stamp_providers:
            stamp = await provider(session, invoice)
            if stamp is not None:
                return stamp
        return None

    # ------------------------------------------------------------------ holds

    async def lift_all_report_holds(
        self, session: AsyncSession, organisation_id: uuid.UUID, actor: AuditActor
    ) -> int:
        """The lab switched the hold off: release every report billing was holding."""
        order_ids = list(
            await session.scalars(
                select(ReportReleaseHold.order_id).where(
                    ReportReleaseHold.organisation_id == organisation_id,
                    ReportReleaseHold.holder == REPORT_HOLDER,
                )
            )
        )
        for order_id in order_ids:
            await report_release.lift(
                session, organisation_id, order_id, holder=REPORT_HOLDER, actor=actor
            )
        return len(order_ids)


billing_service = BillingService()
