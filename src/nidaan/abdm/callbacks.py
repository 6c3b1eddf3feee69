"""What each gateway callback means for us, and the answers it calls for.

``handle`` runs inside the ``abdm.process_callback`` job's transaction: it applies the
callback and returns the replies to send; each reply becomes its own ``abdm.reply`` job in
the same transaction (so a reply is sent, with retries, exactly when the work commits).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm import clients
from nidaan.abdm.consent import consent_service
from nidaan.abdm.enums import RequestKind
from nidaan.abdm.exchanges import answer_request
from nidaan.abdm.linking import linking_service
from nidaan.abdm.models import AbdmFacility, AbdmMessage
from nidaan.abdm.share import share_service

logger = logging.getLogger(__name__)

#: Every callback path ABDM calls on the HIP's bridge (v3).
CALLBACK_PATHS = (
    "/api/v3/hip/token/on-generate-token",
    "/api/v3/link/on_carecontext",
    "/api/v3/links/context/on-notify",
    "/api/v3/patients/sms/on-notify",
    "/api/v3/hip/patient/care-context/discover",
    "/api/v3/hip/link/care-context/init",
    "/api/v3/hip/link/care-context/confirm",
    "/api/v3/consent/request/hip/notify",
    "/api/v3/hip/health-information/request",
    "/api/v3/hip/patient/share",
)


@dataclass
class Reply:
    name: str  # a key of gateway.PATHS
    body: dict[str, Any]
    push_transfer_id: str | None = None  # push this transfer once the reply is accepted


@dataclass
class Outcome:
    replies: list[Reply] = field(default_factory=list)


def _error_text(body: dict[str, Any]) -> str | None:
    error = body.get("error")
    if not error:
        return None
    if isinstance(error, dict):
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    return str(error)


async def handle(session: AsyncSession, facility: AbdmFacility, message: AbdmMessage) -> Outcome:
    body = json.loads(message.body)
    if not isinstance(body, dict):
        raise ValueError("the callback body is not a JSON object")
    path = message.path
    outcome = Outcome()
    respond = {"requestId": message.request_id}

    if path in (
        "/api/v3/hip/token/on-generate-token",
        "/api/v3/link/on_carecontext",
        "/api/v3/links/context/on-notify",
        "/api/v3/patients/sms/on-notify",
    ):
        request_id = (body.get("response") or body.get("resp") or {}).get("requestId")
        error = _error_text(body)
        request = await answer_request(session, request_id, body, error)
        if request is None:
            logger.info("Callback %s for unknown or answered request %s", path, request_id)
            return outcome
        if request.kind == RequestKind.GENERATE_LINK_TOKEN:
            if error:
                await linking_service.on_link_answer(session, request, body, error)
            else:
                await linking_service.on_generate_token(session, request, body)
        elif request.kind == RequestKind.LINK_CARE_CONTEXTS:
            await linking_service.on_link_answer(session, request, body, error)
            if not error and request.patient_id:
                await linking_service.queue_linking(
                    session, request.organisation_id, request.patient_id
                )
        return outcome

    if path == "/api/v3/hip/patient/care-context/discover":
        reply = await linking_service.discover(session, facility, body)
        outcome.replies.append(Reply("on_discover", {**reply, "response": respond}))
    elif path == "/api/v3/hip/link/care-context/init":
        reply, sms = await linking_service.link_init(session, facility, body)
        if sms is not None:
            # Sent before the transaction commits: if it fails, nothing is kept and the job
            # retries with a fresh OTP.
            await clients.otp_sender().send(*sms)
        outcome.replies.append(Reply("on_init", {**reply, "response": respond}))
    elif path == "/api/v3/hip/link/care-context/confirm":
        reply = await linking_service.link_confirm(session, facility, body)
        outcome.replies.append(Reply("on_confirm", {**reply, "response": respond}))
    elif path == "/api/v3/consent/request/hip/notify":
        consent_id, error = await consent_service.on_notify(session, facility, body)
        ack: dict[str, Any] = {
            "acknowledgement": {"status": "FAILURE" if error else "ok", "consentId": consent_id},
            "response": respond,
        }
        if error:
            ack["error"] = {"code": "ABDM-1017", "message": error}
        outcome.replies.append(Reply("consent_on_notify", ack))
    elif path == "/api/v3/hip/health-information/request":
        transfer, answer = await consent_service.on_health_information_request(
            session, facility, body
        )
        outcome.replies.append(
            Reply(
                "hi_on_request",
                {**answer, "response": respond},
                push_transfer_id=str(transfer.id) if transfer is not None else None,
            )
        )
    elif path == "/api/v3/hip/patient/share":
        answer = await share_service.on_share(session, facility, message.request_id or "", body)
        outcome.replies.append(Reply("share_on_share", {**answer, "response": respond}))
    else:
        raise ValueError(f"no handler for {path}")
    return outcome
