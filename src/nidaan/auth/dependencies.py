"""Authentication and role checks as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.errors import NotAuthenticated, RoleRequired
from nidaan.auth.principal import Principal
from nidaan.auth.service import auth_service
from nidaan.config import get_settings
from nidaan.deps import get_session
from nidaan.errors import problem_responses
from nidaan.kit.db import set_actor_label
from nidaan.kit.rate_limit import WindowCounter

#: The problems every authenticated endpoint can return.
AUTH_ERRORS = problem_responses(NotAuthenticated, RoleRequired)


def _credential(request: Request) -> str | None:
    api_key = request.headers.get("x-api-key")
    if api_key:
        return api_key.strip()
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def current_principal(
    request: Request, session: AsyncSession = Depends(get_session, scope="function")
) -> Principal:
    credential = _credential(request)
    if credential is None:
        raise NotAuthenticated("Send 'Authorization: Bearer <token>' or an 'X-API-Key' header.")
    principal = await auth_service.authenticate(session, get_settings(), credential)
    request.state.principal = principal
    set_actor_label(session, principal.label)
    return principal


def require_roles(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets the call through only for principals holding one of ``roles``."""
    allowed = frozenset(roles)

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.roles.intersection(allowed):
            raise RoleRequired(
                f"This action needs one of the roles: {', '.join(sorted(allowed))}.",
                required_roles=sorted(allowed),
            )
        return principal

    return dependency


def login_failure_counter(request: Request) -> WindowCounter:
    """Failed logins per client address, kept by the app (memory or Redis, see main.py)."""
    counter: WindowCounter = request.app.state.login_failures
    return counter
