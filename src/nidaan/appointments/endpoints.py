"""HTTP handlers of home collection: configuration, booking, runs and the door (staff, with
role checks), and the patient booking link (no login: a mobile one-time code)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.appointments.errors import (
    AlreadyBooked,
    AppointmentNotFound,
    AreaNotServed,
    BookingTokenInvalid,
    CapacityBelowBookings,
    IllegalVisitTransition,
    OneTimeCodeInvalid,
    SlotClosed,
    SlotFull,
    SlotNotFound,
    TooManyCodes,
)
from nidaan.appointments.link import booking_link_service, link_caller
from nidaan.appointments.schemas import (
    PINCODE,
    AppointmentOut,
    AreaOut,
    AreasIn,
    AreasOut,
    AssignedOut,
    AssignIn,
    BlackoutIn,
    BlackoutOut,
    BookingCreate,
    BookingToken,
    Cancel,
    CodeRequest,
    CodeSent,
    CodeVerify,
    CollectedOut,
    CollectIn,
    CountsRow,
    DashboardOut,
    PersonOut,
    PreparationIn,
    PreparationOut,
    PublicAppointment,
    PublicBooking,
    PublicSlot,
    PublicTest,
    Reschedule,
    RunSheetOut,
    SlotOut,
    SlotsGenerate,
    SlotsGenerated,
    SuggestionOut,
    SuggestionsOut,
    TubeCount,
    VisitStatusIn,
)
from nidaan.appointments.service import appointments_service
from nidaan.appointments.views import appointment_views, public_view, slot_out
from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.deps import get_session, page_params
from nidaan.errors import problem, problem_responses
from nidaan.kit.errors import InvalidInput, NotFound, VersionConflict
from nidaan.kit.pagination import PageParams
from nidaan.kit.phone import mask_mobile
from nidaan.kit.schemas import ListResource
from nidaan.kit.time import IST, utcnow

router = APIRouter(tags=["home collection"])
readers = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST, Role.AUDITOR)
admins = require_roles(Role.ADMIN)
desk = require_roles(Role.ADMIN, Role.FRONT_DESK)
road = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST)
dashboard_readers = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.AUDITOR)
BOOKING_ERRORS = problem_responses(
    SlotFull, SlotClosed, SlotNotFound, AlreadyBooked, AreaNotServed, InvalidInput
)
A = "/appointments"
T = TypeVar("T")


def _page(items: list[T], page: PageParams) -> ListResource[T]:
    """A day's rows are few: the whole list is built, the asked page returned."""
    start = (page.page - 1) * page.limit
    return ListResource.build(items[start : start + page.limit], len(items), page.page, page.limit)


def _today() -> date:
    return utcnow().astimezone(IST).date()


# ------------------------------------------------------------------ configuration


@router.get(
    A + "/branches/{branch_id}/areas",
    response_model=ListResource[AreaOut],
    operation_id="appointments:areas",
    responses=AUTH_ERRORS,
)
async def list_areas(
    branch_id: uuid.UUID,
    page: PageParams = Depends(page_params),
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(readers),
) -> ListResource[AreaOut]:
    """The pincodes the branch's phlebotomists go to."""
    await appointments_service.require_branch(session, caller, branch_id)
    items = [
        AreaOut.model_validate(a)
        for a in await appointments_service.areas(session, caller, branch_id)
    ]
    return _page(items, page)


@router.put(
    A + "/branches/{branch_id}/areas",
    response_model=AreasOut,
    operation_id="appointments:set_areas",
    responses=AUTH_ERRORS,
)
async def set_areas(
    branch_id: uuid.UUID,
    body: AreasIn,
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(admins),
) -> AreasOut:
    """Replace the branch's service area (bookings already made are kept)."""
    rows = await appointments_service.set_areas(session, caller, branch_id, body.pincodes)
    return AreasOut(branch_id=branch_id, pincodes=[a.pincode for a in rows])


@router.post(
    A + "/branches/{branch_id}/slots",
    response_model=SlotsGenerated,
    operation_id="appointments:open_slots",
    responses={**AUTH_ERRORS, **problem_responses(CapacityBelowBookings)},
)
async def open_slots(
    branch_id: uuid.UUID,
    body: SlotsGenerate,
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(admins),
) -> SlotsGenerated:
    """Open the day's windows with capacity = phlebotomists x visits each, for a range of
    days (blackout days are skipped). Again on the same days resizes the windows."""
    return await appointments_service.generate_slots(session, caller, branch_id, body)


@router.get(
    A + "/branches/{branch_id}/slots",
    response_model=ListResource[SlotOut],
    operation_id="appointments:slots",
    responses=AUTH_ERRORS,
)
async def list_slots(
    branch_id: uuid.UUID,
    first_day: date | None = Query(None, description="Default: today (IST)"),
    last_day: date | None = Query(None, description="Default: first_day"),
    page: PageParams = Depends(page_params),
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(readers),
) -> ListResource[SlotOut]:
    """Windows with their capacity, bookings and places left."""
    branch = await appointments_service.require_branch(session, caller, branch_id)
    first = first_day or _today()
    last = last_day or first
    if last < first or (last - first).days > 62:
        raise InvalidInput("Ask for at most 63 days, last_day not before first_day.")
    rows = await appointments_service.slots(session, caller.organisation_id, branch.id, first, last)
    return _page([slot_out(s) for s in rows], page)


@router.get(
    A + "/branches/{branch_id}/blackouts",
    response_model=ListResource[BlackoutOut],
    operation_id="appointments:blackouts",
    responses=AUTH_ERRORS,
)
async def list_blackouts(
    branch_id: uuid.UUID,
    page: PageParams = Depends(page_params),
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(readers),
) -> ListResource[BlackoutOut]:
    await appointments_service.require_branch(session, caller, branch_id)
    rows = await appointments_service.blackouts(session, caller, branch_id)
    items = [
        BlackoutOut(id=b.id, branch_id=b.branch_id, day=b.day, reason=b.reason, visits_to_move=0)
        for b in rows
    ]
    return _page(items, page)


@router.post(
    A + "/branches/{branch_id}/blackouts",
    response_model=BlackoutOut,
    operation_id="appointments:add_blackout",
    responses=AUTH_ERRORS,
)
async def add_blackout(
    branch_id: uuid.UUID,
    body: BlackoutIn,
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(admins),
) -> BlackoutOut:
    """Close a day; the answer says how many live visits on it need rescheduling."""
    row, live = await appointments_service.add_blackout(
        session, caller, branch_id, body.day, body.reason
    )
    return BlackoutOut(
        id=row.id, branch_id=row.branch_id, day=row.day, reason=row.reason, visits_to_move=live
    )


@router.get(
    A + "/preparations",
    response_model=ListResource[PreparationOut],
    operation_id="appointments:preparations",
    responses=AUTH_ERRORS,
)
async def list_preparations(
    page: PageParams = Depends(page_params),
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(readers),
) -> ListResource[PreparationOut]:
    rows = await appointments_service.preparations(session, caller.organisation_id)
    return _page([_preparation_out(p, t) for p, t in rows], page)


@router.put(
    A + "/preparations",
    response_model=PreparationOut,
    operation_id="appointments:set_preparation",
    responses=AUTH_ERRORS,
)
async def set_preparation(
    body: PreparationIn,
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(admins),
) -> PreparationOut:
    """Fasting hours and instructions of a test, shown when it is booked."""
    row, test = await appointments_service.set_preparation(
        session, caller, body.test, body.fasting_hours, body.instructions
    )
    return _preparation_out(row, test)


def _preparation_out(row, test) -> PreparationOut:  # type: ignore[no-untyped-def]
    return PreparationOut(
        test_code=test.code,
        test_name=test.name,
        fasting_hours=row.fasting_hours,
        instructions=row.instructions,
    )


# ------------------------------------------------------------------ booking


@router.post(
    A,
    response_model=AppointmentOut,
    status_code=201,
    operation_id="appointments:book",
    responses={**AUTH_ERRORS, **BOOKING_ERRORS},
)
async def book(
    body: BookingCreate,
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(desk),
) -> AppointmentOut:
    """Book a home visit (front desk). Refused with a clear code: ``slot_full``,
    ``slot_closed``, ``already_booked`` (one live visit per patient per day),
    ``pincode_not_served``. Sending the same client ``id`` again is a replay."""
    row, _ = await appointments_service.book(session, caller, body)
    return (await appointment_views(session, [row]))[0]


@router.get(
    A,
    response_model=ListResource[AppointmentOut],
    operation_id="appointments:list",
    responses=AUTH_ERRORS,
)
async def list_appointments(
    day: date | None = Query(None, description="Default: every day from today (IST) on"),
    branch_id: uuid.UUID | None = None,
    status: str | None = Query(None, max_length=16),
    phlebotomist_id: uuid.UUID | None = None,
    page: PageParams = Depends(page_params),
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(readers),
) -> ListResource[AppointmentOut]:
    """The visits of one day, or all upcoming ones (the booking calendar), in day, window
    and run order."""
    rows = await appointments_service.list(
        session,
        caller,
        day=day,
        branch_id=branch_id,
        status=status,
        phlebotomist_id=phlebotomist_id,
    )
    return _page(await appointment_views(session, rows), page)


@router.get(
    A + "/dashboard",
    response_model=DashboardOut,
    operation_id="appointments:dashboard",
    responses=AUTH_ERRORS,
)
async def dashboard(
    first_day: date | None = Query(None, description="Default: 30 days ago"),
    last_day: date | None = Query(None, description="Default: today"),
    branch_id: uuid.UUID | None = None,
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(dashboard_readers),
) -> DashboardOut:
    """No-shows (patient not available) and late arrivals per phlebotomist and pincode."""
    last = last_day or _today()
    first = first_day or last - timedelta(days=30)
    if last < first or (last - first).days > 366:
        raise InvalidInput("Ask for at most a year, last_day not before first_day.")
    people, areas = await appointments_service.dashboard(session, caller, first, last, branch_id)

    def rows(table) -> list[CountsRow]:  # type: ignore[no-untyped-def]
        return [
            CountsRow(
                key=key,
                visits=c["visits"],
                not_available=c["not_available"],
                late_arrivals=c["late_arrivals"],
            )
            for key, c in sorted(table.items())
        ]

    return DashboardOut(
        first_day=first, last_day=last, by_phlebotomist=rows(people), by_pincode=rows(areas)
    )


@router.get(
    A + "/branches/{branch_id}/suggestions",
    response_model=SuggestionsOut,
    operation_id="appointments:suggest_runs",
    responses=AUTH_ERRORS,
)
async def suggest_runs(
    branch_id: uuid.UUID,
    day: date | None = Query(None, description="Default: today (IST)"),
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(desk),
) -> SuggestionsOut:
    """A suggested phlebotomist per visit, by area and window; nothing is saved until a
    person confirms it with ``POST /appointments/assignments``."""
    the_day = day or _today()
    people, plan = await appointments_service.suggest(session, caller, branch_id, the_day)
    return SuggestionsOut(
        day=the_day,
        phlebotomists=[PersonOut(id=p.id, full_name=p.full_name) for p in people],
        suggestions=[
            SuggestionOut(
                appointment_id=a.id, phlebotomist_id=who, pincode=a.pincode, starts_at=s.starts_at
            )
            for a, s, who in plan
        ],
    )


@router.post(
    A + "/assignments",
    response_model=AssignedOut,
    operation_id="appointments:assign",
    responses={**AUTH_ERRORS, **problem_responses(IllegalVisitTransition, AppointmentNotFound)},
)
async def assign(
    body: AssignIn,
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(desk),
) -> AssignedOut:
    """Put visits on phlebotomists' runs in the given order (all or nothing)."""
    rows = await appointments_service.assign(
        session,
        caller,
        [(a.appointment_id, a.phlebotomist_id, a.run_position) for a in body.assignments],
    )
    return AssignedOut(appointments=await appointment_views(session, rows))


@router.get(
    A + "/runs/{phlebotomist_id}",
    response_model=RunSheetOut,
    operation_id="appointments:run_sheet",
    responses=AUTH_ERRORS,
)
async def run_sheet(
    phlebotomist_id: uuid.UUID,
    day: date | None = Query(None, description="Default: today (IST)"),
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(road),
) -> RunSheetOut:
    """One phlebotomist's visits in order, with the tubes each needs and the run's total."""
    person = await appointments_service.phlebotomist_for_run(session, caller, phlebotomist_id)
    the_day = day or _today()
    rows = await appointments_service.list(
        session, caller, day=the_day, phlebotomist_id=phlebotomist_id
    )
    rows = [r for r in rows if r.status != "cancelled"]
    views = await appointment_views(session, rows)
    totals: dict[tuple[str, str], int] = {}
    for view in views:
        if view.status in ("collected", "not_available", "refused"):
            continue
        for tube in view.tubes:
            key = (tube.specimen_type, tube.container)
            totals[key] = totals.get(key, 0) + 1
    return RunSheetOut(
        day=the_day,
        phlebotomist=PersonOut(id=person.id, full_name=person.full_name),
        visits=views,
        tubes_total=[
            TubeCount(specimen_type=s, container=c, count=n) for (s, c), n in totals.items()
        ],
    )


@router.get(
    A + "/{appointment_id}",
    response_model=AppointmentOut,
    operation_id="appointments:get",
    responses={**AUTH_ERRORS, **problem_responses(AppointmentNotFound)},
)
async def get_appointment(
    appointment_id: uuid.UUID,
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(readers),
) -> AppointmentOut:
    row = await appointments_service.get(session, caller, appointment_id)
    return (await appointment_views(session, [row]))[0]


@router.post(
    A + "/{appointment_id}/reschedule",
    response_model=AppointmentOut,
    operation_id="appointments:reschedule",
    responses={**AUTH_ERRORS, **BOOKING_ERRORS, **problem_responses(VersionConflict)},
)
async def reschedule(
    appointment_id: uuid.UUID,
    body: Reschedule,
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(desk),
) -> AppointmentOut:
    """Move a visit to another window (with a reason); reminders follow the new time."""
    row = await appointments_service.reschedule(
        session, caller, appointment_id, body.slot_id, body.reason, body.version
    )
    return (await appointment_views(session, [row]))[0]


@router.post(
    A + "/{appointment_id}/cancel",
    response_model=AppointmentOut,
    operation_id="appointments:cancel",
    responses={**AUTH_ERRORS, **problem_responses(IllegalVisitTransition, VersionConflict)},
)
async def cancel(
    appointment_id: uuid.UUID,
    body: Cancel,
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(desk),
) -> AppointmentOut:
    """Cancel a visit that has not started (with a reason); its place is freed."""
    row = await appointments_service.cancel(
        session, caller, appointment_id, body.reason, body.version
    )
    return (await appointment_views(session, [row]))[0]


@router.post(
    A + "/{appointment_id}/status",
    response_model=AppointmentOut,
    operation_id="appointments:visit_status",
    responses={**AUTH_ERRORS, **problem_responses(IllegalVisitTransition, VersionConflict)},
)
async def visit_status(
    appointment_id: uuid.UUID,
    body: VisitStatusIn,
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(road),
) -> AppointmentOut:
    """On the way (the patient is told, with the phlebotomist's name), arrived, patient
    not available, refused. Offline phones send the same step through sync."""
    row = await appointments_service.advance(
        session,
        caller,
        appointment_id,
        body.to,
        at=body.at,
        reason=body.reason,
        version=body.version,
    )
    return (await appointment_views(session, [row]))[0]


@router.post(
    A + "/{appointment_id}/collect",
    response_model=CollectedOut,
    operation_id="appointments:collect",
    responses={**AUTH_ERRORS, **problem_responses(IllegalVisitTransition, VersionConflict)},
)
async def collect(
    appointment_id: uuid.UUID,
    body: CollectIn,
    session: AsyncSession = Depends(get_session, scope="function"),
    caller: Principal = Depends(road),
) -> CollectedOut:
    """At the door: create the order and its samples (collected now), take the payment."""
    row, accessions = await appointments_service.collect(session, caller, appointment_id, body)
    assert row.order_id is not None
    return CollectedOut(
        appointment=(await appointment_views(session, [row]))[0],
        order_id=row.order_id,
        accessions=accessions,
        payment_id=row.payment_id,
    )


# ------------------------------------------------------------------ the patient link

P = "/public/book/{organisation}/{branch}"


@router.get(
    P + "/slots",
    response_model=ListResource[PublicSlot],
    operation_id="booking:slots",
    responses=problem_responses(NotFound, AreaNotServed),
)
async def public_slots(
    organisation: str,
    branch: str,
    first_day: date | None = None,
    pincode: str | None = Query(None, pattern=PINCODE, description="The patient's pincode"),
    page: PageParams = Depends(page_params),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[PublicSlot]:
    """Windows with places left in the next 7 days (no login). With `pincode`, only if the
    branch's phlebotomists go there (else 422 pincode_not_served), so the patient learns it
    before asking for a code."""
    place = await booking_link_service.link_branch(session, organisation, branch)
    if pincode is not None:
        served = await appointments_service.areas(
            session, link_caller(place.organisation_id), place.id
        )
        if pincode not in {a.pincode for a in served}:
            raise AreaNotServed(f"We do not collect at home in {pincode} from this branch.")
    first = max(first_day or _today(), _today())
    rows = await appointments_service.slots(
        session, place.organisation_id, place.id, first, first + timedelta(days=6)
    )
    now = utcnow()
    items = [
        PublicSlot(
            id=s.id, starts_at=s.starts_at, ends_at=s.ends_at, available=s.capacity - s.booked
        )
        for s in rows
        if not s.closed and s.starts_at > now and s.booked < s.capacity
    ]
    return _page(items, page)


@router.get(
    P + "/tests",
    response_model=ListResource[PublicTest],
    operation_id="booking:tests",
    responses=problem_responses(NotFound),
)
async def public_tests(
    organisation: str,
    branch: str,
    session: AsyncSession = Depends(get_session, scope="function"),
    page: PageParams = Depends(page_params),
) -> ListResource[PublicTest]:
    """Every panel and test the patient may book (panels first, then tests by department),
    each with the fasting and instructions the lab wrote for it, shown before booking."""
    place = await booking_link_service.link_branch(session, organisation, branch)
    rows = await appointments_service.bookable(session, place.organisation_id)
    items = [
        PublicTest(
            kind=b.kind,
            code=b.code,
            name=b.name,
            department=b.department,
            fasting_hours=b.fasting_hours,
            instructions=b.instructions,
        )
        for b in rows
    ]
    return _page(items, page)


@router.post(
    P + "/code",
    response_model=CodeSent,
    operation_id="booking:send_code",
    responses=problem_responses(NotFound, TooManyCodes, InvalidInput),
)
async def send_code(
    organisation: str,
    branch: str,
    body: CodeRequest,
    session: AsyncSession = Depends(get_session, scope="function"),
) -> CodeSent:
    """Send a 6-digit code to the mobile (SMS, else WhatsApp); 3 per 15 minutes."""
    place = await booking_link_service.link_branch(session, organisation, branch)
    row = await booking_link_service.request_code(session, place, body.mobile, body.language)
    return CodeSent(expires_at=row.expires_at, mobile=mask_mobile(body.mobile))


@router.post(
    P + "/verify",
    response_model=BookingToken,
    operation_id="booking:verify_code",
    responses=problem_responses(NotFound, OneTimeCodeInvalid),
)
async def verify_code(
    organisation: str,
    branch: str,
    body: CodeVerify,
    request: Request,
    session: AsyncSession = Depends(get_session, scope="function"),
) -> BookingToken | JSONResponse:
    """Exchange the code for a booking token. Five wrong tries burn the code."""
    place = await booking_link_service.link_branch(session, organisation, branch)
    outcome = await booking_link_service.verify_code(session, place, body.mobile, body.code)
    if outcome is None:
        # Answered, not raised: the counted attempt must commit with this request.
        return problem(
            OneTimeCodeInvalid.status_code,
            OneTimeCodeInvalid.code,
            OneTimeCodeInvalid.title,
            "The code is wrong or expired; ask for a new one.",
            request,
        )
    token, otp = outcome
    patients = await booking_link_service.patients_of_token(session, otp)
    assert otp.token_expires_at is not None
    return BookingToken(
        token=token,
        expires_at=otp.token_expires_at,
        patients=[PersonOut(id=p.id, full_name=p.full_name) for p in patients],
    )


@router.post(
    P + "/appointments",
    response_model=PublicAppointment,
    status_code=201,
    operation_id="booking:book",
    responses={**problem_responses(BookingTokenInvalid), **BOOKING_ERRORS},
)
async def public_book(
    organisation: str,
    branch: str,
    body: PublicBooking,
    token: str | None = Header(None, alias="X-Booking-Token"),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PublicAppointment:
    """Book a home visit after verifying the mobile (for a patient of that number, or a
    new patient registered with it)."""
    place = await booking_link_service.link_branch(session, organisation, branch)
    otp = await booking_link_service.token_session(session, place, token)
    row = await booking_link_service.public_book(session, place, otp, body.mobile, body)
    return await public_view(session, row)


@router.get(
    P + "/appointments",
    response_model=ListResource[PublicAppointment],
    operation_id="booking:mine",
    responses=problem_responses(BookingTokenInvalid),
)
async def public_mine(
    organisation: str,
    branch: str,
    token: str | None = Header(None, alias="X-Booking-Token"),
    page: PageParams = Depends(page_params),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[PublicAppointment]:
    """Upcoming visits of the verified mobile's patients."""
    place = await booking_link_service.link_branch(session, organisation, branch)
    otp = await booking_link_service.token_session(session, place, token)
    caller = link_caller(place.organisation_id)
    views = []
    for patient in await booking_link_service.patients_of_token(session, otp):
        for row in await appointments_service.upcoming_of(session, caller, patient.id):
            views.append(await public_view(session, row))
    return _page(views, page)


@router.post(
    P + "/appointments/{appointment_id}/reschedule",
    response_model=PublicAppointment,
    operation_id="booking:reschedule",
    responses={**problem_responses(BookingTokenInvalid), **BOOKING_ERRORS},
)
async def public_reschedule(
    organisation: str,
    branch: str,
    appointment_id: uuid.UUID,
    body: Reschedule,
    token: str | None = Header(None, alias="X-Booking-Token"),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PublicAppointment:
    """The reschedule link of the reminders: move the visit to another window."""
    place = await booking_link_service.link_branch(session, organisation, branch)
    otp = await booking_link_service.token_session(session, place, token)
    row = await booking_link_service.public_appointment(session, otp, appointment_id)
    row = await appointments_service.reschedule(
        session, link_caller(place.organisation_id), row.id, body.slot_id, body.reason
    )
    return await public_view(session, row)


@router.post(
    P + "/appointments/{appointment_id}/cancel",
    response_model=PublicAppointment,
    operation_id="booking:cancel",
    responses=problem_responses(BookingTokenInvalid, IllegalVisitTransition),
)
async def public_cancel(
    organisation: str,
    branch: str,
    appointment_id: uuid.UUID,
    body: Cancel,
    token: str | None = Header(None, alias="X-Booking-Token"),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PublicAppointment:
    place = await booking_link_service.link_branch(session, organisation, branch)
    otp = await booking_link_service.token_session(session, place, token)
    row = await booking_link_service.public_appointment(session, otp, appointment_id)
    row = await appointments_service.cancel(
        session, link_caller(place.organisation_id), row.id, body.reason
    )
    return await public_view(session, row)
