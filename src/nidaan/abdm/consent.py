"""Consent artefacts from the consent manager, and health-information transfers under them.

A GRANTED notification stores the artefact (purpose, HI types, date range, erase-at,
frequency, care contexts); REVOKED / EXPIRED / DENIED change its status (the payload may lack
the detail). A data request is honoured only under a GRANTED, unexpired consent, for the
consent's care contexts, inside its date range and frequency.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm import fidelius
from nidaan.abdm.domain import (
    ConsentRefused,
    ConsentTerms,
    check_data_request,
    consent_transition_allowed,
    frequency_window,
    parse_wire_time,
    wire_timestamp,
)
from nidaan.abdm.enums import ConsentStatus, FrequencyUnit, TransferStatus
from nidaan.abdm.models import AbdmCareContext, AbdmConsent, AbdmFacility, AbdmTransfer
from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.kit.time import utcnow

logger = logging.getLogger(__name__)

#: Records pushed per page (NHA's wrapper sends 7 entries per page).
ENTRIES_PER_PAGE = 5
_TIMESTAMPS = {
    ConsentStatus.GRANTED: "granted_at",
    ConsentStatus.REVOKED: "revoked_at",
    ConsentStatus.EXPIRED: "expired_at",
}


def _status(value: Any) -> ConsentStatus | None:
    try:
        return ConsentStatus(str(value).upper())
    except ValueError:
        return None


def _terms(consent: AbdmConsent) -> ConsentTerms:
    unit = consent.frequency_unit
    return ConsentTerms(
        status=ConsentStatus(consent.status),
        hi_types=tuple(consent.hi_types or ()),
        date_from=consent.date_from or datetime.min.replace(tzinfo=UTC),
        date_to=consent.date_to or datetime.max.replace(tzinfo=UTC),
        data_erase_at=consent.data_erase_at,
        frequency_unit=FrequencyUnit(unit) if unit in FrequencyUnit.__members__ else None,
        frequency_value=consent.frequency_value,
        frequency_repeats=consent.frequency_repeats,
    )


class ConsentService:
    async def on_notify(
        self, session: AsyncSession, facility: AbdmFacility, body: dict[str, Any]
    ) -> tuple[str, str | None]:
        """Apply a consent notification; returns (consent id, error or None) for the ack."""
        notification = body.get("notification") or {}
        status = _status(notification.get("status"))
        detail = notification.get("consentDetail") or {}
        consent_id = str(notification.get("consentId") or detail.get("consentId") or "")
        if not consent_id or status is None:
            return consent_id, "notification without a consent id or a known status"
        consent = await session.scalar(
            select(AbdmConsent)
            .where(
                AbdmConsent.organisation_id == facility.organisation_id,
                AbdmConsent.consent_id == consent_id,
            )
            .with_for_update()
        )
        current = _status(consent.status) if consent is not None else None
        if not consent_transition_allowed(current, status):
            logger.info("Consent %s: %s -> %s ignored", consent_id, current, status)
            return consent_id, None
        if consent is None:
            consent = AbdmConsent(
                organisation_id=facility.organisation_id,
                consent_id=consent_id,
                hip_id=facility.hip_id,
                status=status.value,
            )
            session.add(consent)
        before = {"status": current.value if current else None}
        if detail:
            self._apply_detail(consent, detail, notification.get("signature"))
        consent.status = status.value
        stamp = _TIMESTAMPS.get(status)
        if stamp and getattr(consent, stamp) is None:
            setattr(consent, stamp, utcnow())
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=facility.organisation_id,
            actor=SYSTEM_ACTOR,
            action=f"abdm_consent.{status.value.lower()}",
            entity_type="abdm_consent",
            entity_id=consent.id,
            before=before,
            after={
                "status": consent.status,
                "consent_id": consent_id,
                "purpose": consent.purpose_code,
                "hi_types": list(consent.hi_types or []),
                "care_contexts": len(consent.care_contexts or []),
                "data_erase_at": consent.data_erase_at,
            },
        )
        return consent_id, None

    @staticmethod
    def _apply_detail(consent: AbdmConsent, detail: dict[str, Any], signature: Any) -> None:
        permission = detail.get("permission") or {}
        date_range = permission.get("dateRange") or {}
        frequency = permission.get("frequency") or {}
        purpose = detail.get("purpose") or {}
        consent.patient_abha_address = (
            str((detail.get("patient") or {}).get("id") or "").lower() or None
        )
        consent.purpose_code = str(purpose.get("code") or "")[:16] or None
        consent.purpose_text = str(purpose.get("text") or "")[:200] or None
        consent.hi_types = [str(t) for t in detail.get("hiTypes") or []]
        consent.care_contexts = [
            {
                "patientReference": c.get("patientReference"),
                "careContextReference": c.get("careContextReference"),
            }
            for c in detail.get("careContexts") or []
            if isinstance(c, dict)
        ]
        consent.access_mode = str(permission.get("accessMode") or "")[:16] or None
        consent.date_from = parse_wire_time(date_range.get("from"))
        consent.date_to = parse_wire_time(date_range.get("to"))
        consent.data_erase_at = parse_wire_time(permission.get("dataEraseAt"))
        consent.frequency_unit = str(frequency.get("unit") or "").upper()[:8] or None
        consent.frequency_value = (
            int(frequency["value"]) if str(frequency.get("value", "")).isdigit() else None
        )
        consent.frequency_repeats = (
            int(frequency["repeats"]) if str(frequency.get("repeats", "")).isdigit() else None
        )
        consent.consent_manager_id = (
            str((detail.get("consentManager") or {}).get("id") or "")[:50] or None
        )
        consent.signature = str(signature) if signature else None
        consent.artefact = detail

    async def expire_due(self, session: AsyncSession) -> int:
        """Granted consents whose erase-at has passed become EXPIRED (honoured by requests
        anyway; this keeps the list truthful)."""
        rows = list(
            await session.scalars(
                select(AbdmConsent)
                .where(
                    AbdmConsent.status == ConsentStatus.GRANTED.value,
                    AbdmConsent.data_erase_at < utcnow(),
                )
                .with_for_update(skip_locked=True)
            )
        )
        for consent in rows:
            consent.status, consent.expired_at = ConsentStatus.EXPIRED.value, utcnow()
            await audit_service.record(
                session,
                organisation_id=consent.organisation_id,
                actor=SYSTEM_ACTOR,
                action="abdm_consent.expired",
                entity_type="abdm_consent",
                entity_id=consent.id,
                before={"status": ConsentStatus.GRANTED.value},
                after={"status": consent.status},
            )
        return len(rows)

    # ---- health-information requests ------------------------------------------------------

    async def on_health_information_request(
        self, session: AsyncSession, facility: AbdmFacility, body: dict[str, Any]
    ) -> tuple[AbdmTransfer | None, dict[str, Any]]:
        """Check the request against its consent; returns the transfer to push (if allowed)
        and the on-request answer (without ``response``)."""
        transaction_id = str(body.get("transactionId") or "")
        request = body.get("hiRequest") or {}
        consent_id = str((request.get("consent") or {}).get("id") or "")
        date_range = request.get("dateRange") or {}
        key_material = request.get("keyMaterial") or {}
        answer: dict[str, Any] = {"hiRequest": {"transactionId": transaction_id}}
        existing = await session.scalar(
            select(AbdmTransfer).where(AbdmTransfer.transaction_id == transaction_id)
        )
        if existing is not None:  # a repeat of the same transaction: answer as before
            if existing.status == TransferStatus.REFUSED:
                answer["error"] = {"code": "ABDM-1016", "message": existing.refusal}
            else:
                answer["hiRequest"]["sessionStatus"] = "ACKNOWLEDGED"
            return None, answer
        transfer = AbdmTransfer(
            organisation_id=facility.organisation_id,
            transaction_id=transaction_id,
            consent_id=consent_id,
            hip_id=facility.hip_id,
            status=TransferStatus.REQUESTED.value,
            data_push_url=str(request.get("dataPushUrl") or "")[:500],
            key_material=key_material,
        )
        session.add(transfer)
        await session.flush()
        try:
            start, end = await self._check(session, facility, transfer, date_range, key_material)
        except ConsentRefused as refused:
            transfer.status, transfer.refusal = TransferStatus.REFUSED.value, str(refused)
            answer["error"] = {"code": refused.code, "message": str(refused)}
            await self._audit_transfer(session, transfer, TransferStatus.REQUESTED.value)
            return None, answer
        transfer.date_from, transfer.date_to = start, end
        transfer.status = TransferStatus.ACKNOWLEDGED.value
        answer["hiRequest"]["sessionStatus"] = "ACKNOWLEDGED"
        await self._audit_transfer(session, transfer, TransferStatus.REQUESTED.value)
        return transfer, answer

    async def _check(
        self,
        session: AsyncSession,
        facility: AbdmFacility,
        transfer: AbdmTransfer,
        date_range: dict[str, Any],
        key_material: dict[str, Any],
    ) -> tuple[datetime, datetime]:
        consent = await session.scalar(
            select(AbdmConsent).where(
                AbdmConsent.organisation_id == facility.organisation_id,
                AbdmConsent.consent_id == transfer.consent_id,
            )
        )
        if consent is None:
            raise ConsentRefused("No consent with this id was notified to this HIP.", "ABDM-1015")
        if not transfer.data_push_url.startswith(("https://", "http://")):
            raise ConsentRefused("The request has no data push URL.", "ABDM-1019")
        try:
            fidelius.decode_public_key(
                str((key_material.get("dhPublicKey") or {}).get("keyValue", ""))
            )
        except fidelius.FideliusError as exc:
            raise ConsentRefused(f"The key material is unusable: {exc}", "ABDM-1020") from None
        expiry = parse_wire_time((key_material.get("dhPublicKey") or {}).get("expiry"))
        if expiry is not None and expiry < utcnow():
            raise ConsentRefused("The requester's key has expired.", "ABDM-1020")
        requested_from = parse_wire_time(date_range.get("from"))
        requested_to = parse_wire_time(date_range.get("to"))
        if requested_from is None or requested_to is None:
            raise ConsentRefused("The request has no valid date range.", "ABDM-1016")
        terms = _terms(consent)
        earlier = 0
        window = frequency_window(terms)
        if window is not None:
            earlier = int(
                await session.scalar(
                    select(func.count())
                    .select_from(AbdmTransfer)
                    .where(
                        AbdmTransfer.organisation_id == facility.organisation_id,
                        AbdmTransfer.consent_id == transfer.consent_id,
                        AbdmTransfer.id != transfer.id,
                        AbdmTransfer.status != TransferStatus.REFUSED.value,
                        AbdmTransfer.created_at > utcnow() - window,
                    )
                )
                or 0
            )
        return check_data_request(
            terms,
            requested_from=requested_from,
            requested_to=requested_to,
            now=utcnow(),
            earlier_requests_in_window=earlier,
        )

    async def transfer_contexts(
        self, session: AsyncSession, transfer: AbdmTransfer
    ) -> tuple[AbdmConsent | None, list[AbdmCareContext]]:
        """The consent and the care contexts to send: the consent's, reported in range."""
        consent = await session.scalar(
            select(AbdmConsent).where(
                AbdmConsent.organisation_id == transfer.organisation_id,
                AbdmConsent.consent_id == transfer.consent_id,
            )
        )
        if consent is None:
            return None, []
        references = [c.get("careContextReference") for c in consent.care_contexts or []]
        statement = select(AbdmCareContext).where(
            AbdmCareContext.organisation_id == transfer.organisation_id,
            AbdmCareContext.reference.in_([r for r in references if r]),
        )
        contexts = list(await session.scalars(statement.order_by(AbdmCareContext.record_date)))
        in_range = [
            c
            for c in contexts
            if (transfer.date_from is None or c.record_date >= transfer.date_from)
            and (transfer.date_to is None or c.record_date <= transfer.date_to)
        ]
        return consent, in_range

    async def _audit_transfer(
        self, session: AsyncSession, transfer: AbdmTransfer, before: str
    ) -> None:
        await audit_service.record(
            session,
            organisation_id=transfer.organisation_id,
            actor=SYSTEM_ACTOR,
            action=f"abdm_transfer.{transfer.status}",
            entity_type="abdm_transfer",
            entity_id=transfer.id,
            before={"status": before},
            after={
                "status": transfer.status,
                "consent_id": transfer.consent_id,
                "transaction_id": transfer.transaction_id,
                "refusal": transfer.refusal,
                "entries": transfer.entries,
                "attempts": transfer.attempts,
            },
        )


def encrypt_entries(
    bundles: list[tuple[str, dict[str, Any]]], key_material: dict[str, Any]
) -> tuple[fidelius.KeyMaterial, list[dict[str, Any]]]:
    """Encrypt each care context's bundle for the requester with one fresh key pair."""
    ours = fidelius.KeyMaterial.generate()
    peer_key = str((key_material.get("dhPublicKey") or {}).get("keyValue", ""))
    peer_nonce = str(key_material.get("nonce", ""))
    entries = []
    for reference, bundle in bundles:
        plaintext = json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))
        entries.append(
            {
                "content": fidelius.encrypt(ours, peer_key, peer_nonce, plaintext),
                "media": "application/fhir+json",
                # The checksum algorithm is unpublished; MD5 of the plaintext, hex.
                "checksum": hashlib.md5(plaintext.encode("utf-8")).hexdigest(),  # noqa: S324
                "careContextReference": reference,
            }
        )
    return ours, entries


def push_pages(
    transfer: AbdmTransfer, ours: fidelius.KeyMaterial, entries: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    pages = [
        entries[i : i + ENTRIES_PER_PAGE] for i in range(0, len(entries), ENTRIES_PER_PAGE)
    ] or [[]]
    key = {
        "cryptoAlg": fidelius.CRYPTO_ALGORITHM,
        "curve": fidelius.CURVE,
        "dhPublicKey": {
            "expiry": wire_timestamp(utcnow().replace(microsecond=0) + _KEY_LIFETIME),
            "parameters": fidelius.KEY_PARAMETERS,
            "keyValue": ours.public_key_x509,
        },
        "nonce": ours.nonce_b64,
    }
    return [
        {
            "pageNumber": number,
            "pageCount": len(pages),
            "transactionId": transfer.transaction_id,
            "entries": page,
            "keyMaterial": key,
        }
        for number, page in enumerate(pages, start=1)
    ]


_KEY_LIFETIME = timedelta(hours=1)


def new_transaction_id() -> str:
    return str(uuid.uuid4())


consent_service = ConsentService()
