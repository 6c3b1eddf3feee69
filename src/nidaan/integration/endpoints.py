"""HTTP handlers for analyzers, their message log and the interface exceptions queue."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.integration.enums import Direction, ExceptionKind, ExceptionStatus, MessageStatus
from nidaan.integration.errors import (
    ExceptionClosed,
    IdConflict,
    InstrumentNameTaken,
    InvalidTransport,
    UnknownTests,
    VersionConflict,
)
from nidaan.integration.models import Instrument
from nidaan.integration.schemas import (
    ExceptionOut,
    ExceptionResolve,
    InstrumentCreate,
    InstrumentOut,
    InstrumentStatusOut,
    InstrumentUpdate,
    MapEntryOut,
    MessageOut,
)
from nidaan.integration.service import integration_service
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource

router = APIRouter(tags=["integration"])
admins = require_roles(Role.ADMIN)
readers = require_roles(Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST)
resolvers = require_roles(Role.TECHNICIAN, Role.PATHOLOGIST)


async def _out(session: AsyncSession, instrument: Instrument) -> InstrumentOut:
    mapped = await integration_service.test_map(session, instrument.organisation_id, instrument.id)
    out = InstrumentOut.model_validate(instrument)
    out.test_map = [
        MapEntryOut(
            instrument_code=m.instrument_code,
            test_id=m.test.id,
            test_code=m.test.code,
            test_name=m.test.name,
            loinc=m.test.loinc,
        )
        for m in mapped
    ]
    return out


@router.get(
    "/instruments",
    response_model=ListResource[InstrumentOut],
    operation_id="instruments:list",
    responses=AUTH_ERRORS,
)
async def list_instruments(
    branch_id: uuid.UUID | None = Query(None, description="Only analyzers of this lab"),
    enabled: bool | None = Query(None),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[InstrumentOut]:
    """Analyzers of your organisation, by name."""
    rows, total = await integration_service.list_instruments(
        session, principal, page, branch_id=branch_id, enabled=enabled
    )
    return ListResource[InstrumentOut].build(
        [await _out(session, r) for r in rows], total, page.page, page.limit
    )


@router.post(
    "/instruments",
    status_code=201,
    response_model=InstrumentOut,
    operation_id="instruments:create",
    responses={
        **AUTH_ERRORS,
        **problem_responses(
            InstrumentNameTaken, InvalidTransport, UnknownTests, IdConflict, InvalidInput
        ),
    },
)
async def create_instrument(
    body: InstrumentCreate,
    response: Response,
    principal: Principal = Depends(admins),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> InstrumentOut:
    """Register an analyzer, how to reach it, and its test map (instrument code -> catalogue
    test by code or LOINC). A replay of the same client ``id`` and content answers 200."""
    instrument, created = await integration_service.create_instrument(session, principal, body)
    if not created:
        response.status_code = 200
    return await _out(session, instrument)


@router.get(
    "/instruments/{instrument_id}",
    response_model=InstrumentOut,
    operation_id="instruments:get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_instrument(
    instrument_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> InstrumentOut:
    instrument = await integration_service.get_instrument(session, principal, instrument_id)
    return await _out(session, instrument)


@router.patch(
    "/instruments/{instrument_id}",
    response_model=InstrumentOut,
    operation_id="instruments:update",
    responses={
        **AUTH_ERRORS,
        **problem_responses(
            NotFound, VersionConflict, InstrumentNameTaken, InvalidTransport, UnknownTests
        ),
    },
)
async def update_instrument(
    instrument_id: uuid.UUID,
    body: InstrumentUpdate,
    principal: Principal = Depends(admins),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> InstrumentOut:
    """Change an analyzer; ``test_map``, when given, replaces the whole map."""
    instrument = await integration_service.update_instrument(
        session, principal, instrument_id, body
    )
    return await _out(session, instrument)


@router.get(
    "/instruments/{instrument_id}/status",
    response_model=InstrumentStatusOut,
    operation_id="instruments:status",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def instrument_status(
    instrument_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> InstrumentStatusOut:
    """connected / idle / error / disabled, with message counters."""
    status = await integration_service.status(session, principal, instrument_id)
    return InstrumentStatusOut.model_validate(status)


@router.get(
    "/instruments/{instrument_id}/messages",
    response_model=ListResource[MessageOut],
    operation_id="instruments:messages",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def list_messages(
    instrument_id: uuid.UUID,
    status: MessageStatus | None = Query(None),
    direction: Direction | None = Query(None),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[MessageOut]:
    """The analyzer's raw messages, newest first."""
    rows, total = await integration_service.list_messages(
        session, principal, instrument_id, page, status=status, direction=direction
    )
    return ListResource[MessageOut].build(
        [MessageOut.model_validate(r) for r in rows], total, page.page, page.limit
    )


@router.get(
    "/integration/exceptions",
    response_model=ListResource[ExceptionOut],
    operation_id="integration-exceptions:list",
    responses=AUTH_ERRORS,
)
async def list_exceptions(
    status: ExceptionStatus | None = Query(None),
    kind: ExceptionKind | None = Query(None),
    instrument_id: uuid.UUID | None = Query(None),
    accession: str | None = Query(None, max_length=64),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[ExceptionOut]:
    """Instrument results that could not be landed, oldest first."""
    rows, total = await integration_service.list_exceptions(
        session,
        principal,
        page,
        status=status,
        kind=kind,
        instrument_id=instrument_id,
        accession=accession,
    )
    return ListResource[ExceptionOut].build(
        [ExceptionOut.model_validate(r) for r in rows], total, page.page, page.limit
    )


@router.post(
    "/integration/exceptions/{exception_id}/resolve",
    response_model=ExceptionOut,
    operation_id="integration-exceptions:resolve",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, ExceptionClosed, InvalidInput)},
)
async def resolve_exception(
    exception_id: uuid.UUID,
    body: ExceptionResolve,
    principal: Principal = Depends(resolvers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ExceptionOut:
    """Enter the value against an ordered test (result errors such as 409
    ``sample_not_ready`` pass through), or discard it with a note."""
    row = await integration_service.resolve_exception(
        session,
        principal,
        exception_id,
        body.action,
        body.note,
        order_test_id=body.order_test_id,
        value=body.value,
        unit=body.unit,
    )
    return ExceptionOut.model_validate(row)
