"""The ``Idempotency-Key`` header as a FastAPI dependency for POST endpoints.

Usage in an endpoint::

    idem: Idempotency = Depends(idempotency)
    if idem.replay is not None:
        return idem.replay
    ...
    return await idem.remember(201, UserOut.model_validate(user))
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import current_principal
from nidaan.auth.principal import Principal
from nidaan.config import get_settings
from nidaan.deps import get_session
from nidaan.idempotency.service import idempotency_service

T = TypeVar("T")
HEADER = "Idempotency-Key"


@dataclass
class Idempotency:
    session: AsyncSession | None = None
    record_id: uuid.UUID | None = None
    replay: JSONResponse | None = None
    _done: bool = field(default=False)

    async def remember(self, status_code: int, body: T) -> T:
        """Store the response for replays (no-op when the request carried no key)."""
        if self.session is not None and self.record_id is not None and not self._done:
            await idempotency_service.remember(
                self.session, self.record_id, status_code, jsonable_encoder(body)
            )
            self._done = True
        return body


async def idempotency(
    request: Request,
    principal: Principal = Depends(current_principal),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Idempotency:
    key = request.headers.get(HEADER)
    if key is None:
        return Idempotency()
    settings = get_settings()
    claim = await idempotency_service.claim(
        session,
        organisation_id=principal.organisation_id,
        principal_key=principal.key,
        key=key,
        method=request.method,
        path=request.url.path,
        body=await request.body(),
        ttl=timedelta(hours=settings.idempotency_hours),
    )
    if claim.replay is not None:
        response: Any = JSONResponse(
            status_code=claim.replay.status_code,
            content=claim.replay.body,
            headers={"Idempotent-Replayed": "true"},
        )
        return Idempotency(replay=response)
    return Idempotency(session=session, record_id=claim.record_id)
