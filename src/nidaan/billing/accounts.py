"""B2B client accounts: orders put on a monthly client's account (within its credit
limit) and the consolidated invoice that bills them all for a month, numbered like any
other invoice of the branch."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.billing import domain, pricing
from nidaan.billing.configuration import billing_configuration
from nidaan.billing.domain import LineInput
from nidaan.billing.enums import BillingCycle, InvoiceKind, InvoiceStatus
from nidaan.billing.errors import (
    InvalidBillingInput,
    NothingToInvoice,
    OrderAlreadyInvoiced,
    OrderOnClientAccount,
)
from nidaan.billing.models import BillingClient, ClientOrder, Invoice
from nidaan.billing.schemas import ConsolidatedInvoiceCreate
from nidaan.billing.service import Buyer, billing_service
from nidaan.kit.time import IST, utcnow
from nidaan.orders.service import orders_service


class ClientAccounts:
    async def add_client_order(
        self, session: AsyncSession, caller: Principal, client_id: uuid.UUID, order_id: uuid.UUID
    ) -> ClientOrder:
        """Put an order on a monthly client's account (checked against its credit limit)."""
        client = await billing_configuration.get_client(session, caller, client_id)
        if not client.is_active or client.billing_cycle != BillingCycle.MONTHLY:
            raise InvalidBillingInput(
                "Only active monthly clients take orders on account; bill per-order clients "
                "with POST /api/v1/invoices.",
                field="client_id",
            )
        order = await orders_service.get(session, caller, order_id)
        await billing_service.branch_for(session, caller, order.branch_id)
        existing = await session.get(ClientOrder, order.id)
        if existing is not None:
            if existing.client_id == client.id:
                return existing
            raise OrderOnClientAccount(
                "The order is on another client's account.", client_id=str(existing.client_id)
            )
        invoiced = await billing_service.live_invoice_for_order(
            session, caller.organisation_id, order.id
        )
        if invoiced is not None:
            raise OrderAlreadyInvoiced(
                f"Order {order.order_number} already has invoice {invoiced.number}.",
                invoice_id=str(invoiced.id),
            )
        rate_list = await billing_service.rate_list_for(session, caller, order, client, None)
        book = await pricing.price_book(session, caller.organisation_id, rate_list)
        lines = await pricing.order_lines(session, caller, order, book)
        amount = sum((line.unit_price * line.quantity for line in lines), Decimal("0"))
        await billing_service.check_credit(session, client, amount)
        row = ClientOrder(
            organisation_id=caller.organisation_id,
            order_id=order.id,
            client_id=client.id,
            amount=domain.round_paisa(amount),
            added_at=utcnow(),
            added_by_id=caller.id if caller.kind == "user" else None,
        )
        session.add(row)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="billing.order_on_account",
            entity_type="order",
            entity_id=order.id,
            after={"client_id": client.id, "amount": row.amount},
        )
        return row

    async def client_orders(
        self, session: AsyncSession, caller: Principal, client_id: uuid.UUID, *, unbilled: bool
    ) -> list[ClientOrder]:
        client = await billing_configuration.get_client(session, caller, client_id)
        statement = select(ClientOrder).where(ClientOrder.client_id == client.id)
        if unbilled:
            statement = statement.where(ClientOrder.invoice_id.is_(None))
        return list(await session.scalars(statement.order_by(ClientOrder.added_at)))

    async def create_consolidated_invoice(
        self, session: AsyncSession, caller: Principal, data: ConsolidatedInvoiceCreate
    ) -> Invoice:
        """One invoice for every order put on a monthly client's account in ``month`` (IST)."""
        org = caller.organisation_id
        client = await billing_configuration.get_client(session, caller, data.client_id)
        if client.billing_cycle != BillingCycle.MONTHLY:
            raise InvalidBillingInput("This client is billed per order.", field="client_id")
        branch = await billing_service.branch_for(session, caller, data.branch_id)
        year, month = (int(p) for p in data.month.split("-"))
        start = date(year, month, 1)
        end = date(year + month // 12, month % 12 + 1, 1)
        start_utc = datetime.combine(start, datetime.min.time(), IST)
        end_utc = datetime.combine(end, datetime.min.time(), IST)
        # Lock the client's unbilled orders of the month: two runs cannot bill one twice.
        rows = list(
            await session.scalars(
                select(ClientOrder)
                .where(
                    ClientOrder.client_id == client.id,
                    ClientOrder.invoice_id.is_(None),
                    ClientOrder.added_at >= start_utc,
                    ClientOrder.added_at < end_utc,
                )
                .order_by(ClientOrder.added_at)
                .with_for_update()
            )
        )
        if not rows:
            raise NothingToInvoice(f"{client.name} has no orders on account in {data.month}.")
        settings = await billing_configuration.settings_for(session, org)
        seller = await billing_service.seller(session, settings, branch)
        rate_list = (
            await billing_configuration.get_rate_list(session, caller, client.rate_list_id)
            if client.rate_list_id
            else await billing_configuration.default_rate_list(session, org)
        )
        book = await pricing.price_book(session, org, rate_list)
        grouped: dict[tuple[Any, ...], LineInput] = {}
        for row in rows:
            order = await orders_service.get(session, caller, row.order_id)
            for line in await pricing.order_lines(session, caller, order, book):
                key = (line.kind, line.source_id, line.unit_price)
                if key in grouped:
                    known = grouped[key]
                    grouped[key] = LineInput(
                        **{**known.__dict__, "quantity": known.quantity + 1, "order_id": None}
                    )
                else:
                    grouped[key] = LineInput(**{**line.__dict__, "order_id": None})
        buyer = Buyer(
            client.name,
            client.gstin,
            client.address,
            client.pincode,
            billing_configuration.client_state(client),
        )
        bill = billing_service.price_lines(list(grouped.values()), seller, buyer, None, settings)
        invoice = billing_service.new_invoice(
            caller,
            kind=InvoiceKind.CONSOLIDATED,
            branch=branch,
            seller=seller,
            buyer=buyer,
            bill=bill,
            discount=None,
            client=client,
            rate_list_id=rate_list.id if rate_list else None,
            period=(start, end - timedelta(days=1)),
        )
        invoice = await billing_service.save_new(
            session, caller, invoice, bill, settings, pending=False
        )
        for row in rows:
            row.invoice_id = invoice.id
        await session.flush()
        return invoice

    async def client_open_invoices(
        self, session: AsyncSession, client: BillingClient
    ) -> list[Invoice]:
        return list(
            await session.scalars(
                select(Invoice)
                .where(
                    Invoice.organisation_id == client.organisation_id,
                    Invoice.client_id == client.id,
                    Invoice.status == InvoiceStatus.ISSUED,
                    Invoice.balance_due > 0,
                )
                .order_by(Invoice.invoice_date)
            )
        )


client_accounts = ClientAccounts()
