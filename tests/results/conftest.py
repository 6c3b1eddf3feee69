"""Fixtures for results tests (helpers live in tests/fixtures/results.py) and API shortcuts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.catalog.models import CatalogTest
from nidaan.orders.models import OrderTest
from nidaan.patients.models import Patient
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.results import Lab, PlacedOrder, make_lab, place_order

__all__ = ["Lab", "PlacedOrder", "make_lab", "place_order"]


@pytest.fixture
async def lab(session: AsyncSession, organisation: Organisation) -> Lab:
    return await make_lab(session, organisation)


async def numeric_test(session: AsyncSession, lab: Lab, code: str, **overrides: Any) -> CatalogTest:
    return await create_catalog_test(
        session, lab.organisation, code=code, name=overrides.pop("name", code), **overrides
    )


async def adult_woman(session: AsyncSession, lab: Lab, **overrides: Any) -> Patient:
    return await create_patient(
        session, lab.organisation, sex="female", date_of_birth=date(1985, 6, 15), **overrides
    )


async def enter(
    client: httpx.AsyncClient,
    lab: Lab,
    order_test: OrderTest,
    value: str,
    *,
    who: str = "tech",
    unit: str | None = None,
    expect: int | None = 201,
    **extra: Any,
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/results",
        json={"order_test_id": str(order_test.id), "value": value, "unit": unit, **extra},
        headers=lab.headers(who),
    )
    if expect is not None:
        assert response.status_code == expect, response.text
    return response.json()


async def verify(
    client: httpx.AsyncClient, lab: Lab, result_id: str, *, who: str = "path", expect: int = 200
) -> dict[str, Any]:
    response = await client.post(f"/api/v1/results/{result_id}/verify", headers=lab.headers(who))
    assert response.status_code == expect, response.text
    return response.json()


def D(value: str) -> Decimal:  # noqa: N802
    return Decimal(value)
