"""What an order costs: its tests and panels priced from the rate list that applies.

Precedence: the rate list asked for, else the client's, else the referrer's, else the
default list; an item missing from a client/referrer list costs the default price less the
list's ``percent_off``; the default price is the default list's, else the catalogue's. A
panel is billed as one line at the panel's price (its tests are not billed one by one).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.principal import Principal
from nidaan.billing.configuration import billing_configuration, rate_list_family
from nidaan.billing.domain import HUNDRED, SAC_DIAGNOSTIC, GstTreatment, LineInput, round_paisa
from nidaan.billing.models import BillingItem, RateList
from nidaan.catalog.service import catalog_service
from nidaan.kit.cache import cached_json, store_json
from nidaan.orders.enums import OrderTestStatus
from nidaan.orders.models import Order
from nidaan.orders.service import orders_service


@dataclass
class PriceBook:
    """Prices of one rate list over the default list and the catalogue."""

    rate_list: RateList | None = None
    specific: dict[tuple[str, uuid.UUID], Decimal] = field(default_factory=dict)
    defaults: dict[tuple[str, uuid.UUID], Decimal] = field(default_factory=dict)

    def price(self, kind: str, target_id: uuid.UUID, catalogue_price: Decimal) -> Decimal:
        key = (kind, target_id)
        if key in self.specific:
            return self.specific[key]
        base = self.defaults.get(key, catalogue_price)
        if self.rate_list is not None and self.rate_list.percent_off:
            return round_paisa(base * (HUNDRED - self.rate_list.percent_off) / HUNDRED)
        return base


async def price_book(
    session: AsyncSession, organisation_id: uuid.UUID, rate_list: RateList | None
) -> PriceBook:
    """The prices of ``rate_list``; the default list's prices come from the shared cache
    (invalidated by every rate list change, see ``kit/cache.py``)."""
    default_id, defaults = await _list_prices(session, organisation_id, None)
    book = PriceBook(
        rate_list=rate_list if rate_list is not None and rate_list.id != default_id else None,
        defaults=defaults,
    )
    if book.rate_list is not None:
        _, book.specific = await _list_prices(session, organisation_id, book.rate_list.id)
    return book


async def _list_prices(
    session: AsyncSession, organisation_id: uuid.UUID, rate_list_id: uuid.UUID | None
) -> tuple[uuid.UUID | None, dict[tuple[str, uuid.UUID], Decimal]]:
    """``(list id, prices)`` of one rate list (None: the organisation's default list)."""
    family = rate_list_family(organisation_id)
    key = str(rate_list_id or "default")
    generation, cached = await cached_json(session, family, key)
    if cached is None:
        if rate_list_id is None:
            default = await billing_configuration.default_rate_list(session, organisation_id)
            list_id = default.id if default is not None else None
        else:
            list_id = rate_list_id
        items = await billing_configuration.rate_list_items(session, list_id) if list_id else []
        cached = {
            "id": str(list_id) if list_id else None,
            "prices": [[i.target_kind, str(i.target_id), str(i.price)] for i in items],
        }
        if generation is not None:
            await store_json(family, generation, key, cached)
    prices = {(kind, uuid.UUID(target)): Decimal(price) for kind, target, price in cached["prices"]}
    return (uuid.UUID(cached["id"]) if cached["id"] else None), prices


async def order_lines(
    session: AsyncSession, caller: Principal, order: Order, book: PriceBook
) -> list[LineInput]:
    """One line per panel and per test ordered on its own; cancelled tests are not billed."""
    tests = [
        t
        for t in await orders_service.tests_of(session, caller, order.id)
        if t.status != OrderTestStatus.CANCELLED
    ]
    catalog = await catalog_service.tests_by_ids(
        session, order.organisation_id, {t.test_id for t in tests}
    )
    panels = await catalog_service.panels_by_ids(
        session, order.organisation_id, {t.panel_id for t in tests if t.panel_id is not None}
    )
    lines: OrderedDict[tuple[str, uuid.UUID], LineInput] = OrderedDict()
    for order_test in tests:
        if order_test.panel_id is not None:
            panel = panels[order_test.panel_id]
            key = ("panel", panel.id)
            if key not in lines:
                lines[key] = LineInput(
                    code=panel.code,
                    description=panel.name,
                    unit_price=book.price("panel", panel.id, panel.price),
                    kind="panel",
                    order_id=order.id,
                    source_id=panel.id,
                )
            continue
        test = catalog[order_test.test_id]
        key = ("test", test.id)
        if key not in lines:
            lines[key] = LineInput(
                code=test.code,
                description=test.name,
                unit_price=book.price("test", test.id, test.price),
                kind="test",
                order_id=order.id,
                source_id=test.id,
            )
    return list(lines.values())


def item_line(item: BillingItem, book: PriceBook, quantity: int = 1) -> LineInput:
    return LineInput(
        code=item.code,
        description=item.name,
        unit_price=book.price("item", item.id, item.price),
        quantity=quantity,
        sac=item.sac,
        treatment=GstTreatment(item.gst_treatment),
        gst_rate=item.gst_rate if item.gst_treatment == GstTreatment.TAXABLE else Decimal("0"),
        kind="service",
        source_id=item.id,
    )


def home_collection_line(charge: Decimal) -> LineInput:
    # Sample collection for a diagnostic test is part of the health-care service (exempt).
    return LineInput(
        code="HOME-COLLECTION",
        description="Home sample collection",
        unit_price=charge,
        sac=SAC_DIAGNOSTIC,
        kind="home_collection",
        discountable=False,
    )
