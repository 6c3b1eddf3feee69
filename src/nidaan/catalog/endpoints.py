"""HTTP handlers for the test catalogue: tests, reference ranges and panels."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import ALL_ROLES, Role
from nidaan.auth.principal import Principal
from nidaan.catalog.errors import (
    CatalogCodeTaken,
    CatalogIdConflict,
    FormulaError,
    VersionConflict,
)
from nidaan.catalog.models import CatalogTest, Panel
from nidaan.catalog.schemas import (
    CatalogTestCreate,
    CatalogTestOut,
    CatalogTestUpdate,
    PanelCreate,
    PanelOut,
    PanelTestOut,
    PanelUpdate,
    ReferenceRangeIn,
    ReferenceRangeOut,
)
from nidaan.catalog.service import catalog_service, catalogue_family
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.idempotency.dependencies import Idempotency, idempotency
from nidaan.kit.cache import cached_json, store_json
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource

router = APIRouter(prefix="/catalog", tags=["catalog"])
any_role = require_roles(*ALL_ROLES)
admin_only = require_roles(Role.ADMIN)


async def _tests_out(session: AsyncSession, tests: Sequence[CatalogTest]) -> list[CatalogTestOut]:
    ranges = await catalog_service.ranges_for_tests(session, [t.id for t in tests])
    return [
        CatalogTestOut.model_validate(t).model_copy(
            update={"ranges": [ReferenceRangeOut.model_validate(r) for r in ranges[t.id]]}
        )
        for t in tests
    ]


async def _panels_out(session: AsyncSession, panels: Sequence[Panel]) -> list[PanelOut]:
    members = await catalog_service.panel_tests(session, [p.id for p in panels])
    return [
        PanelOut(
            id=p.id,
            organisation_id=p.organisation_id,
            code=p.code,
            name=p.name,
            price=p.price,
            is_active=p.is_active,
            version=p.version,
            created_at=p.created_at,
            tests=[
                PanelTestOut(test_id=t.id, code=t.code, name=t.name, position=m.position)
                for m, t in members[p.id]
            ],
        )
        for p in panels
    ]


@router.get(
    "/tests",
    response_model=ListResource[CatalogTestOut],
    operation_id="catalog_tests:list",
    responses=AUTH_ERRORS,
)
async def list_tests(
    page: PageParams = Depends(page_params),
    code: str | None = Query(None, description="Exact test code", examples=["K"]),
    loinc: str | None = Query(None, description="Exact LOINC code", examples=["2823-3"]),
    department: str | None = Query(None, examples=["Biochemistry"]),
    q: str | None = Query(None, description="Part of the name, or the code"),
    active: bool | None = Query(None, description="Only active (true) or inactive (false)"),
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[CatalogTestOut]:
    """Tests of your catalogue with their reference ranges."""
    # Every screen that orders reads this list: it comes from the shared cache (Redis with
    # several API processes), which any catalogue change invalidates (kit/cache.py).
    family = catalogue_family(principal.organisation_id)
    key = json.dumps(["tests", page.page, page.limit, code, loinc, department, q, active])
    generation, cached = await cached_json(session, family, key)
    if cached is not None:
        return ListResource[CatalogTestOut].model_validate(cached)
    rows, total = await catalog_service.list_tests(
        session, principal, page, code=code, loinc=loinc, department=department, q=q, active=active
    )
    result = ListResource[CatalogTestOut].build(
        await _tests_out(session, rows), total, page.page, page.limit
    )
    if generation is not None:
        await store_json(family, generation, key, result.model_dump(mode="json"))
    return result


@router.post(
    "/tests",
    status_code=201,
    response_model=CatalogTestOut,
    operation_id="catalog_tests:create",
    responses={
        **AUTH_ERRORS,
        **problem_responses(CatalogCodeTaken, FormulaError),
        200: {"description": "A repeat of the same client id and content: the existing test"},
    },
)
async def create_test(
    body: CatalogTestCreate,
    response: Response,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
    idem: Idempotency = Depends(idempotency),
) -> CatalogTestOut:
    """Add a test (with its reference ranges). Accepts an Idempotency-Key header."""
    if idem.replay is not None:
        return idem.replay  # type: ignore[return-value]
    test, created = await catalog_service.create_test(session, principal, body)
    if not created:
        response.status_code = 200
    return await idem.remember(response.status_code or 201, (await _tests_out(session, [test]))[0])


@router.get(
    "/tests/{test_id}",
    response_model=CatalogTestOut,
    operation_id="catalog_tests:get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_test(
    test_id: uuid.UUID,
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> CatalogTestOut:
    test = await catalog_service.get_test(session, principal, test_id)
    return (await _tests_out(session, [test]))[0]


@router.patch(
    "/tests/{test_id}",
    response_model=CatalogTestOut,
    operation_id="catalog_tests:update",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, VersionConflict, FormulaError)},
)
async def update_test(
    test_id: uuid.UUID,
    body: CatalogTestUpdate,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> CatalogTestOut:
    """Change a test; send the ``version`` you loaded (a stale one is a 409)."""
    test = await catalog_service.update_test(session, principal, test_id, body)
    return (await _tests_out(session, [test]))[0]


@router.post(
    "/tests/{test_id}/ranges",
    status_code=201,
    response_model=ReferenceRangeOut,
    operation_id="catalog_tests:add_range",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, InvalidInput)},
)
async def add_range(
    test_id: uuid.UUID,
    body: ReferenceRangeIn,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ReferenceRangeOut:
    """Add a reference band (conditions: sex, age band, pregnancy)."""
    return ReferenceRangeOut.model_validate(
        await catalog_service.add_range(session, principal, test_id, body)
    )


@router.delete(
    "/tests/{test_id}/ranges/{range_id}",
    status_code=204,
    operation_id="catalog_tests:delete_range",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def delete_range(
    test_id: uuid.UUID,
    range_id: uuid.UUID,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """Remove a reference band (results keep the flag they were given)."""
    await catalog_service.delete_range(session, principal, test_id, range_id)
    return Response(status_code=204)


@router.get(
    "/panels",
    response_model=ListResource[PanelOut],
    operation_id="catalog_panels:list",
    responses=AUTH_ERRORS,
)
async def list_panels(
    page: PageParams = Depends(page_params),
    q: str | None = Query(None, description="Part of the name, or the code"),
    active: bool | None = Query(None),
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[PanelOut]:
    family = catalogue_family(principal.organisation_id)
    key = json.dumps(["panels", page.page, page.limit, q, active])
    generation, cached = await cached_json(session, family, key)
    if cached is not None:
        return ListResource[PanelOut].model_validate(cached)
    rows, total = await catalog_service.list_panels(session, principal, page, q=q, active=active)
    result = ListResource[PanelOut].build(
        await _panels_out(session, rows), total, page.page, page.limit
    )
    if generation is not None:
        await store_json(family, generation, key, result.model_dump(mode="json"))
    return result


@router.post(
    "/panels",
    status_code=201,
    response_model=PanelOut,
    operation_id="catalog_panels:create",
    responses={**AUTH_ERRORS, **problem_responses(CatalogCodeTaken, CatalogIdConflict)},
)
async def create_panel(
    body: PanelCreate,
    response: Response,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
    idem: Idempotency = Depends(idempotency),
) -> PanelOut:
    """Add a panel (profile) of tests in report order. Accepts an Idempotency-Key header."""
    if idem.replay is not None:
        return idem.replay  # type: ignore[return-value]
    panel, created = await catalog_service.create_panel(session, principal, body)
    if not created:
        response.status_code = 200
    return await idem.remember(
        response.status_code or 201, (await _panels_out(session, [panel]))[0]
    )


@router.get(
    "/panels/{panel_id}",
    response_model=PanelOut,
    operation_id="catalog_panels:get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_panel(
    panel_id: uuid.UUID,
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PanelOut:
    panel = await catalog_service.get_panel(session, principal, panel_id)
    return (await _panels_out(session, [panel]))[0]


@router.patch(
    "/panels/{panel_id}",
    response_model=PanelOut,
    operation_id="catalog_panels:update",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, VersionConflict)},
)
async def update_panel(
    panel_id: uuid.UUID,
    body: PanelUpdate,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PanelOut:
    """Rename, re-price, deactivate or replace the tests of a panel (send ``version``)."""
    panel = await catalog_service.update_panel(session, principal, panel_id, body)
    return (await _panels_out(session, [panel]))[0]
