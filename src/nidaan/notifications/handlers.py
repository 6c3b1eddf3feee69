"""What notifications react to: a released report, a critical value, a captured payment.

Each subscription runs as its own job (``events.deliver``), so a failure here never touches
the report, result or payment; the messages it creates are keyed so a redelivered event
creates nothing new.

Appointment reminders have no event yet: the appointments module (not built yet) calls
``notifications_service.request_appointment_reminder`` when a home collection is booked
or rescheduled (see docs/notifications.md).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.billing.events import PaymentCaptured
from nidaan.events.registry import subscriber
from nidaan.kit.db import get_in_organisation
from nidaan.notifications.service import notifications_service
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
