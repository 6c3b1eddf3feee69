"""Billing set-up: the organisation's settings, per-branch GST/UPI details, service items,
rate lists and B2B clients. Every change is audited."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import AuditActor
from nidaan.audit.service import audit_service
from nidaan.billing.domain import (
    DEFAULT_DISCOUNT_LIMITS,
    GST_RATES,
    VPA_PATTERN,
    GstTreatment,
    gstin_problem,
    state_code,
)
from nidaan.billing.enums import BillingCycle, RateListKind
from nidaan.billing.errors import CodeTaken, InvalidBillingInput
from nidaan.billing.models import (
    BillingClient,
    BillingItem,
    BillingSettings,
    BranchBillingSettings,
    RateList,
    RateListItem,
)
from nidaan.billing.schemas import (
    BillingItemCreate,
    BillingSettingsUpdate,
    BranchBillingUpdate,
    ClientCreate,
    ClientUpdate,
    RateListCreate,
    RateListItemIn,
    RateListUpdate,
)
from nidaan.catalog.service import catalog_service
from nidaan.kit.cache import invalidate
from nidaan.kit.errors import NotFound
from nidaan.kit.pagination import PageParams, paginate
from nidaan.tenancy.service import tenancy_service


def rate_list_family(organisation_id: uuid.UUID) -> str:
    """The cache family of one organisation's rate lists (bumped by any rate list change)."""
    return f"billing:rates:{organisation_id}"


class Caller(Protocol):
    @property
    def organisation_id(self) -> uuid.UUID: ...

    @property
    def actor(self) -> AuditActor: ...


def referrer_key(name: str | None) -> str | None:
    """A referring doctor's name as matched against rate lists (case and spaces ignored)."""
    if not name:
        return None
    key = " ".join(name.lower().replace(".", " ").split())
    for title in ("dr ", "doctor "):
        key = key.removeprefix(title)
    return key or None


def _settings_snapshot(row: BillingSettings) -> dict[str, Any]:
    return {
        "legal_name": row.legal_name,
        "gstin": row.gstin,
        "state_code": row.state_code,
        "address": row.address,
        "pincode": row.pincode,
        "hold_report_until_paid": row.hold_report_until_paid,
        "discount_limits": {k: str(v) for k, v in (row.discount_limits or {}).items()},
        "home_collection_charge": row.home_collection_charge,
        "home_collection_free_above": row.home_collection_free_above,
        "round_to_rupee": row.round_to_rupee,
        "default_gateway": row.default_gateway,
        "enabled_gateways": list(row.enabled_gateways or []),
        "payment_link_expiry_hours": row.payment_link_expiry_hours,
    }


def _check_gstin(gstin: str | None, state: str | None, field: str) -> str | None:
    if gstin is None:
        return state
    problem = gstin_problem(gstin)
    if problem:
        raise InvalidBillingInput(problem, field=field)
    if state is not None and state != gstin[:2]:
        raise InvalidBillingInput(
            f"The GSTIN belongs to state {gstin[:2]}, not {state}.", field="state_code"
        )
    return gstin[:2]


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Decimal | uuid.UUID) else v for k, v in values.items()}


class BillingConfiguration:
    # ------------------------------------------------------------------ settings

    async def settings_for(
        self, session: AsyncSession, organisation_id: uuid.UUID
    ) -> BillingSettings:
        """The organisation's billing settings (a default row is created on first use)."""
        row = await session.get(BillingSettings, organisation_id)
        if row is None:
            row = BillingSettings(
                organisation_id=organisation_id,
                discount_limits={k: str(v) for k, v in DEFAULT_DISCOUNT_LIMITS.items()},
                home_collection_charge=Decimal("0"),
                hold_report_until_paid=False,
                round_to_rupee=True,
                enabled_gateways=[],
                payment_link_expiry_hours=72,
            )
            session.add(row)
            await session.flush()
            await session.refresh(row)
        return row

    async def update_settings(
        self, session: AsyncSession, caller: Caller, data: BillingSettingsUpdate
    ) -> tuple[BillingSettings, bool]:
        """Apply the given fields; returns (settings, hold switched off)."""
        row = await self.settings_for(session, caller.organisation_id)
        before = _settings_snapshot(row)
        changes = data.model_dump(exclude_unset=True)
        gstin = changes.get("gstin", row.gstin)
        state = changes.get("state_code", row.state_code)
        if "gstin" in changes or "state_code" in changes:
            state = _check_gstin(gstin, state, "gstin")
            changes["state_code"] = state
        if "discount_limits" in changes and changes["discount_limits"] is not None:
            limits = changes["discount_limits"]
            if any(not Decimal("0") <= Decimal(v) <= Decimal("100") for v in limits.values()):
                raise InvalidBillingInput("Discount limits are percentages from 0 to 100.")
            changes["discount_limits"] = {k: str(v) for k, v in limits.items()}
        if "enabled_gateways" in changes and changes["enabled_gateways"] is not None:
            changes["enabled_gateways"] = [str(g) for g in changes["enabled_gateways"]]
        if changes.get("default_gateway") is not None:
            changes["default_gateway"] = str(changes["default_gateway"])
        enabled = changes.get("enabled_gateways", row.enabled_gateways) or []
        default = changes.get("default_gateway", row.default_gateway)
        if default is not None and default not in enabled:
            raise InvalidBillingInput(
                "The default gateway must be one of the enabled gateways.", field="default_gateway"
            )
        for key, value in changes.items():
            if value is None and key in {
                "hold_report_until_paid",
                "discount_limits",
                "home_collection_charge",
                "round_to_rupee",
                "enabled_gateways",
                "payment_link_expiry_hours",
            }:
                continue
            setattr(row, key, value)
        was_holding = before["hold_report_until_paid"]
        await session.flush()
        after = _settings_snapshot(row)
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="billing.settings_updated",
            entity_type="billing_settings",
            entity_id=caller.organisation_id,
            before=before,
            after=after,
        )
        return row, bool(was_holding and not row.hold_report_until_paid)

    async def branch_settings(
        self, session: AsyncSession, organisation_id: uuid.UUID, branch_id: uuid.UUID
    ) -> BranchBillingSettings | None:
        row = await session.get(BranchBillingSettings, branch_id)
        return row if row is not None and row.organisation_id == organisation_id else None

    async def update_branch(
        self, session: AsyncSession, caller: Caller, branch_id: uuid.UUID, data: BranchBillingUpdate
    ) -> BranchBillingSettings:
        branch = await tenancy_service.get_branch(session, caller, branch_id)
        row = await self.branch_settings(session, caller.organisation_id, branch.id)
        if row is None:
            row = BranchBillingSettings(branch_id=branch.id, organisation_id=caller.organisation_id)
            session.add(row)
        fields = ("gstin", "state_code", "upi_vpa", "upi_payee_name", "upi_merchant_code")
        before = {f: getattr(row, f, None) for f in fields}
        changes = data.model_dump(exclude_unset=True)
        if "gstin" in changes or "state_code" in changes:
            changes["state_code"] = _check_gstin(
                changes.get("gstin", row.gstin),
                changes.get("state_code", row.state_code),
                "gstin",
            )
        if changes.get("upi_vpa") and not VPA_PATTERN.fullmatch(changes["upi_vpa"]):
            raise InvalidBillingInput("Not a UPI address (name@bank).", field="upi_vpa")
        for key, value in changes.items():
            setattr(row, key, value)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="billing.branch_updated",
            entity_type="branch",
            entity_id=branch.id,
            before=before,
            after={f: getattr(row, f) for f in fields},
        )
        return row

    # ------------------------------------------------------------------ items

    async def create_item(
        self, session: AsyncSession, caller: Caller, data: BillingItemCreate
    ) -> BillingItem:
        org = caller.organisation_id
        if await session.scalar(
            select(BillingItem.id).where(
                BillingItem.organisation_id == org, BillingItem.code == data.code
            )
        ):
            raise CodeTaken(f"A billing item {data.code} already exists.", field="code")
        if data.gst_treatment is GstTreatment.TAXABLE and data.gst_rate not in GST_RATES:
            raise InvalidBillingInput("A taxable item needs a GST rate.", field="gst_rate")
        if data.gst_treatment is not GstTreatment.TAXABLE and data.gst_rate != 0:
            raise InvalidBillingInput("Only taxable items carry a GST rate.", field="gst_rate")
        item = BillingItem(organisation_id=org, **data.model_dump())
        item.gst_treatment = str(data.gst_treatment)
        session.add(item)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=org,
            actor=caller.actor,
            action="billing.item_created",
            entity_type="billing_item",
            entity_id=item.id,
            after=_plain(data.model_dump(mode="json")),
        )
        return item

    async def list_items(self, session: AsyncSession, caller: Caller) -> list[BillingItem]:
        return await self.items_in(session, caller.organisation_id)

    async def items_in(
        self, session: AsyncSession, organisation_id: uuid.UUID
    ) -> list[BillingItem]:
        return list(
            await session.scalars(
                select(BillingItem)
                .where(BillingItem.organisation_id == organisation_id)
                .order_by(BillingItem.code)
            )
        )

    async def items_by_code(
        self, session: AsyncSession, organisation_id: uuid.UUID, codes: set[str]
    ) -> dict[str, BillingItem]:
        if not codes:
            return {}
        rows = await session.scalars(
            select(BillingItem).where(
                BillingItem.organisation_id == organisation_id, BillingItem.code.in_(codes)
            )
        )
        return {r.code: r for r in rows}

    # ------------------------------------------------------------------ rate lists

    async def _resolve_items(
        self, session: AsyncSession, caller: Caller, items: list[RateListItemIn]
    ) -> list[tuple[str, uuid.UUID, Decimal]]:
        org = caller.organisation_id
        codes = [i.code for i in items]
        if len(set(codes)) != len(codes):
            raise InvalidBillingInput("A code appears twice in the rate list.", field="items")
        tests = await catalog_service.tests_by_codes(session, org, set(codes))
        billing_items = await self.items_by_code(session, org, set(codes))
        panels = await catalog_service.panels_by_codes(session, org, set(codes))
        resolved = []
        unknown = []
        for item in items:
            if item.code in panels:
                resolved.append(("panel", panels[item.code].id, item.price))
            elif item.code in tests:
                resolved.append(("test", tests[item.code].id, item.price))
            elif item.code in billing_items:
                resolved.append(("item", billing_items[item.code].id, item.price))
            else:
                unknown.append(item.code)
        if unknown:
            raise InvalidBillingInput(
                "Unknown test, panel or item codes.", field="items", unknown=unknown
            )
        return resolved

    async def create_rate_list(
        self, session: AsyncSession, caller: Caller, data: RateListCreate
    ) -> RateList:
        org = caller.organisation_id
        if await session.scalar(
            select(RateList.id).where(RateList.organisation_id == org, RateList.code == data.code)
        ):
            raise CodeTaken(f"A rate list {data.code} already exists.", field="code")
        key = referrer_key(data.referrer)
        if data.kind is RateListKind.REFERRER and key is None:
            raise InvalidBillingInput(
                "A referrer list needs the referrer's name.", field="referrer"
            )
        if data.kind is not RateListKind.REFERRER and data.referrer:
            raise InvalidBillingInput("Only referrer lists name a referrer.", field="referrer")
        clash = await session.scalar(
            select(RateList.code).where(
                RateList.organisation_id == org,
                RateList.is_active.is_(True),
                RateList.kind == data.kind,
                RateList.referrer_key == key if key else RateList.kind == RateListKind.DEFAULT,
            )
        )
        if clash and data.kind in (RateListKind.DEFAULT, RateListKind.REFERRER):
            raise CodeTaken(f"Rate list {clash} already covers this.", existing=clash)
        items = await self._resolve_items(session, caller, data.items)
        rate_list = RateList(
            organisation_id=org,
            code=data.code,
            name=data.name,
            kind=str(data.kind),
            referrer_key=key,
            percent_off=data.percent_off,
            is_active=True,
        )
        session.add(rate_list)
        await session.flush()
        self._add_items(session, rate_list, items)
        await session.flush()
        await invalidate(session, rate_list_family(org))
        await audit_service.record(
            session,
            organisation_id=org,
            actor=caller.actor,
            action="billing.rate_list_created",
            entity_type="rate_list",
            entity_id=rate_list.id,
            after={
                "code": data.code,
                "kind": str(data.kind),
                "referrer": key,
                "percent_off": str(data.percent_off),
                "items": {i.code: str(i.price) for i in data.items},
            },
        )
        return rate_list

    def _add_items(
        self,
        session: AsyncSession,
        rate_list: RateList,
        items: list[tuple[str, uuid.UUID, Decimal]],
    ) -> None:
        for kind, target_id, price in items:
            session.add(
                RateListItem(
                    organisation_id=rate_list.organisation_id,
                    rate_list_id=rate_list.id,
                    target_kind=kind,
                    target_id=target_id,
                    price=price,
                )
            )

    async def get_rate_list(
        self, session: AsyncSession, caller: Caller, rate_list_id: uuid.UUID
    ) -> RateList:
        row = await session.get(RateList, rate_list_id)
        if row is None or row.organisation_id != caller.organisation_id:
            raise NotFound("No such rate list.", entity="rate_list")
        return row

    async def rate_list_items(
        self, session: AsyncSession, rate_list_id: uuid.UUID
    ) -> list[RateListItem]:
        return list(
            await session.scalars(
                select(RateListItem).where(RateListItem.rate_list_id == rate_list_id)
            )
        )

    async def update_rate_list(
        self, session: AsyncSession, caller: Caller, rate_list_id: uuid.UUID, data: RateListUpdate
    ) -> RateList:
        row = await self.get_rate_list(session, caller, rate_list_id)
        before = {"name": row.name, "percent_off": row.percent_off, "is_active": row.is_active}
        changes = data.model_dump(exclude_unset=True, exclude={"items"})
        for key, value in changes.items():
            if value is not None:
                setattr(row, key, value)
        after: dict[str, Any] = {
            "name": row.name,
            "percent_off": row.percent_off,
            "is_active": row.is_active,
        }
        if data.items is not None:
            items = await self._resolve_items(session, caller, data.items)
            await session.execute(delete(RateListItem).where(RateListItem.rate_list_id == row.id))
            self._add_items(session, row, items)
            after["items"] = {i.code: str(i.price) for i in data.items}
        await session.flush()
        await invalidate(session, rate_list_family(caller.organisation_id))
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="billing.rate_list_updated",
            entity_type="rate_list",
            entity_id=row.id,
            before=before,
            after=after,
        )
        return row

    async def list_rate_lists(
        self, session: AsyncSession, caller: Caller, page: PageParams
    ) -> tuple[list[RateList], int]:
        statement = (
            select(RateList)
            .where(RateList.organisation_id == caller.organisation_id)
            .order_by(RateList.code)
        )
        return await paginate(session, statement, page)

    async def default_rate_list(
        self, session: AsyncSession, organisation_id: uuid.UUID
    ) -> RateList | None:
        return await session.scalar(
            select(RateList).where(
                RateList.organisation_id == organisation_id,
                RateList.kind == RateListKind.DEFAULT,
                RateList.is_active.is_(True),
            )
        )

    async def referrer_rate_list(
        self, session: AsyncSession, organisation_id: uuid.UUID, referrer: str | None
    ) -> RateList | None:
        key = referrer_key(referrer)
        if key is None:
            return None
        return await session.scalar(
            select(RateList).where(
                RateList.organisation_id == organisation_id,
                RateList.kind == RateListKind.REFERRER,
                RateList.referrer_key == key,
                RateList.is_active.is_(True),
            )
        )

    # ------------------------------------------------------------------ clients

    async def create_client(
        self, session: AsyncSession, caller: Caller, data: ClientCreate
    ) -> BillingClient:
        org = caller.organisation_id
        if await session.scalar(
            select(BillingClient.id).where(
                BillingClient.organisation_id == org, BillingClient.code == data.code
            )
        ):
            raise CodeTaken(f"A client {data.code} already exists.", field="code")
        state = _check_gstin(data.gstin, data.state_code, "gstin")
        if data.rate_list_id is not None:
            await self.get_rate_list(session, caller, data.rate_list_id)
        values = data.model_dump()
        values["state_code"] = state
        values["kind"] = str(data.kind)
        values["billing_cycle"] = str(data.billing_cycle)
        client = BillingClient(organisation_id=org, is_active=True, **values)
        session.add(client)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=org,
            actor=caller.actor,
            action="billing.client_created",
            entity_type="billing_client",
            entity_id=client.id,
            after=_plain(data.model_dump(mode="json")),
        )
        return client

    async def get_client(
        self, session: AsyncSession, caller: Caller, client_id: uuid.UUID
    ) -> BillingClient:
        return await self.get_client_in(session, caller.organisation_id, client_id)

    async def get_client_in(
        self, session: AsyncSession, organisation_id: uuid.UUID, client_id: uuid.UUID
    ) -> BillingClient:
        row = await session.get(BillingClient, client_id)
        if row is None or row.organisation_id != organisation_id:
            raise NotFound("No such client.", entity="billing_client")
        return row

    async def update_client(
        self, session: AsyncSession, caller: Caller, client_id: uuid.UUID, data: ClientUpdate
    ) -> BillingClient:
        client = await self.get_client(session, caller, client_id)
        fields = list(ClientUpdate.model_fields)
        before = _plain({f: getattr(client, f) for f in fields})
        changes = data.model_dump(exclude_unset=True)
        if "gstin" in changes or "state_code" in changes:
            changes["state_code"] = _check_gstin(
                changes.get("gstin", client.gstin),
                changes.get("state_code", client.state_code),
                "gstin",
            )
        if changes.get("rate_list_id") is not None:
            await self.get_rate_list(session, caller, changes["rate_list_id"])
        for key, value in changes.items():
            if value is None and key in {
                "name",
                "billing_cycle",
                "payment_terms_days",
                "is_active",
            }:
                continue
            setattr(client, key, str(value) if key == "billing_cycle" else value)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="billing.client_updated",
            entity_type="billing_client",
            entity_id=client.id,
            before=before,
            after=_plain({f: getattr(client, f) for f in fields}),
        )
        return client

    async def list_clients(
        self, session: AsyncSession, caller: Caller, page: PageParams
    ) -> tuple[list[BillingClient], int]:
        statement = (
            select(BillingClient)
            .where(BillingClient.organisation_id == caller.organisation_id)
            .order_by(BillingClient.code)
        )
        return await paginate(session, statement, page)

    @staticmethod
    def is_monthly(client: BillingClient) -> bool:
        return client.billing_cycle == BillingCycle.MONTHLY

    @staticmethod
    def client_state(client: BillingClient) -> str | None:
        return client.state_code or (client.gstin[:2] if client.gstin else None)

    @staticmethod
    def state_of(value: str | None) -> str | None:
        return state_code(value)


billing_configuration = BillingConfiguration()
