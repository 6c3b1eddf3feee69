"""What notifications react to: a released report, a critical value, a captured payment,
and (to the administrators) lock-outs, breaches and overdue DPDP requests.

Each subscription runs as its own job (``events.deliver``), so a failure here never touches
the report, result or payment; the messages it creates are keyed so a redelivered event
creates nothing new.

Appointment reminders have no event yet: the appointments module (not built yet) calls
``notifications_service.request_appointment_reminder`` when a home collection is booked
or rescheduled (see docs/notifications.md).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.events import LoginLockedOut
from nidaan.billing.events import PaymentCaptured
from nidaan.compliance.events import BreachRecorded, RightsRequestEscalated
from nidaan.events.registry import subscriber
from nidaan.kit.db import get_in_organisation
from nidaan.notifications.service import notifications_service
from nidaan.notifications.staff import alert_admins
from nidaan.reports.events import ReportReleased
from nidaan.results.events import CriticalValueDetected
from nidaan.results.models import CriticalAlert


@subscriber(ReportReleased, name="notifications.report_released")
async def report_released(session: AsyncSession, event: ReportReleased) -> None:
    # ``report.released`` follows ``report.finalized`` at once unless a release hold (an
    # unpaid invoice) keeps the report from the patient; then it follows when that is lifted.
    await notifications_service.on_report_finalized(session, event.organisation_id, event.report_id)


@subscriber(CriticalValueDetected, name="notifications.critical_value")
async def critical_value(session: AsyncSession, event: CriticalValueDetected) -> None:
    # The alert row names the order, whose referring doctor is the one to call.
    alert = await get_in_organisation(session, CriticalAlert, event.alert_id, event.organisation_id)
    doctor = None
    if alert is not None:
        from nidaan.notifications.service import system_caller
        from nidaan.orders.service import orders_service

        order = await orders_service.get(
            session, system_caller(event.organisation_id), alert.order_id
        )
        doctor = order.referring_doctor
    await notifications_service.on_critical_value(
        session,
        event.organisation_id,
        alert_id=event.alert_id,
        patient_id=event.patient_id,
        test_id=event.test_id,
        value=event.value,
        order_referring_doctor=doctor,
    )


@subscriber(PaymentCaptured, name="notifications.payment_captured")
async def payment_captured(session: AsyncSession, event: PaymentCaptured) -> None:
    await notifications_service.on_payment_captured(
        session,
        event.organisation_id,
        payment_id=event.receipt_id,
        order_id=event.order_id,
        reference=event.invoice_number,
        amount=event.amount,
        receipt_file_id=None,
    )


# ---- alerts to the lab's administrators ------------------------------------------------


@subscriber(LoginLockedOut, name="notifications.login_locked_out")
async def login_locked_out(session: AsyncSession, event: LoginLockedOut) -> None:
    who = (
        f"the account {event.user_id}"
        if event.kind == "account"
        else f"the client address {event.client_address}"
    )
    await alert_admins(
        session,
        event.organisation_id,
        key=uuid.uuid5(uuid.NAMESPACE_URL, f"lockout:{who}:{event.locked_until.isoformat()}"),
        subject="Nidaan: sign-ins locked out after repeated failures",
        text=(
            f"Sign-ins from {who} failed {event.failures} times within "
            f"{event.window_minutes} minutes and are locked until "
            f"{event.locked_until.isoformat()} (UTC).\n\nIf this was not one of your staff, "
            "someone may be guessing passwords: check the audit log (auth.login_locked_out) "
            "and consider blocking the address at your firewall."
        ),
    )


@subscriber(BreachRecorded, name="notifications.breach_recorded")
async def breach_recorded(session: AsyncSession, event: BreachRecorded) -> None:
    await alert_admins(
        session,
        event.organisation_id,
        key=event.breach_id,
        subject=f"Nidaan: personal-data breach recorded: {event.title}",
        text=(
            f"A breach was entered in the DPDP register: {event.title}.\n\n"
            f"Report it to CERT-In by {event.cert_in_due.isoformat()} (6 hours) and send the "
            f"detailed report to the Data Protection Board by "
            f"{event.board_report_due.isoformat()} (72 hours). Tell each affected patient "
            "without delay; the register lists them (Privacy > Breaches > Affected)."
        ),
    )


@subscriber(RightsRequestEscalated, name="notifications.request_escalated")
async def request_escalated(session: AsyncSession, event: RightsRequestEscalated) -> None:
    await alert_admins(
        session,
        event.organisation_id,
        key=event.request_id,
        subject=f"Nidaan: a patient's {event.kind} request is due by {event.due_at.date()}",
        text=(
            f"A data principal's {event.kind} request has been open for 60 days; the law "
            f"gives the lab until {event.due_at.isoformat()} to answer (DPDP Rules r.14(3)). "
            "Answer it under Privacy > Requests."
        ),
    )
