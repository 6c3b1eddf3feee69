"""HTTP handlers for login, tokens, users and API keys. Thin: rules live in the service."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import (
    AUTH_ERRORS,
    current_principal,
    login_failure_counter,
    require_roles,
)
from nidaan.auth.enums import Role
from nidaan.auth.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    TooManyLoginAttempts,
)
from nidaan.auth.principal import Principal
from nidaan.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    PrincipalOut,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserOut,
    UserUpdate,
)
from nidaan.auth.service import auth_service
from nidaan.config import get_settings
from nidaan.deps import get_session, page_params
from nidaan.errors import problem, problem_responses
from nidaan.idempotency.dependencies import Idempotency, idempotency
from nidaan.kit.errors import NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.phone import mask_mobile
from nidaan.kit.rate_limit import WindowCounter
from nidaan.kit.schemas import ListResource

router = APIRouter(tags=["auth"])
admin_only = require_roles(Role.ADMIN)


@router.post(
    "/auth/token",
    response_model=TokenPair,
    operation_id="auth:token",
    responses=problem_responses(InvalidCredentials, TooManyLoginAttempts),
)
async def token(
    request: Request,
    form: OAuth2PasswordRequestForm = Depends(),
    session: AsyncSession = Depends(get_session, scope="function"),
    failures: WindowCounter = Depends(login_failure_counter),
) -> TokenPair:
    """Log in with e-mail and password; returns an access token and a refresh token.

    Too many failures for one account, or from one client address (whatever accounts it
    tries), answer 429 for a while; the lab's admins are told of each lock-out.
    """
    settings = get_settings()
    client_ip = request.client.host if request.client else None
    await auth_service.check_client_throttle(settings, failures, client_ip)
    try:
        return await auth_service.login(session, settings, form.username, form.password)
    except InvalidCredentials:
        await auth_service.record_login_failure_in_own_transaction(
            settings, form.username, client_ip, failures
        )
        raise


@router.post(
    "/auth/refresh",
    response_model=TokenPair,
    operation_id="auth:refresh",
    responses=problem_responses(InvalidRefreshToken),
)
async def refresh(
    request: Request,
    body: RefreshRequest,
    session: AsyncSession = Depends(get_session, scope="function"),
) -> TokenPair | JSONResponse:
    """Exchange a refresh token for a new pair; each refresh token works once."""
    pair = await auth_service.refresh(session, get_settings(), body.refresh_token)
    if pair is None:
        # Answered without raising so the revocation of the token family is committed.
        error = InvalidRefreshToken("The refresh token was already used; log in again.")
        return problem(error.status_code, error.code, error.title, error.detail, request)
    return pair


@router.post("/auth/logout", status_code=204, operation_id="auth:logout")
async def logout(
    body: RefreshRequest, session: AsyncSession = Depends(get_session, scope="function")
) -> Response:
    """Revoke the refresh token (and every token refreshed from the same login)."""
    await auth_service.logout(session, body.refresh_token)
    return Response(status_code=204)


@router.get("/auth/me", response_model=PrincipalOut, operation_id="auth:me", responses=AUTH_ERRORS)
async def me(principal: Principal = Depends(current_principal)) -> PrincipalOut:
    """Who the token or API key belongs to, with its roles and branch limits."""
    return PrincipalOut(
        kind=principal.kind,
        id=principal.id,
        organisation_id=principal.organisation_id,
        roles=sorted(principal.roles),
        label=principal.label,
        branch_ids=sorted(principal.branch_ids) if principal.branch_ids is not None else None,
    )


async def _user_out(session: AsyncSession, users: list) -> list[UserOut]:  # type: ignore[type-arg]
    branches = await auth_service.branch_ids_of(session, users)
    return [
        UserOut(
            id=u.id,
            organisation_id=u.organisation_id,
            email=u.email,
            full_name=u.full_name,
            qualification=u.qualification,
            roles=list(u.roles),
            mobile_masked=mask_mobile(u.mobile) if u.mobile else None,
            branch_ids=sorted(branches.get(u.id, [])),
            is_active=u.is_active,
            last_login_at=u.last_login_at,
            created_at=u.created_at,
        )
        for u in users
    ]


@router.get(
    "/users", response_model=ListResource[UserOut], operation_id="users:list", responses=AUTH_ERRORS
)
async def list_users(
    page: PageParams = Depends(page_params),
    mobile: str | None = Query(None, description="Exact mobile number"),
    role: Role | None = Query(None),
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[UserOut]:
    """Users of your organisation."""
    users, total = await auth_service.list_users(session, principal, page, mobile=mobile, role=role)
    return ListResource[UserOut].build(
        await _user_out(session, users), total, page.page, page.limit
    )


@router.post(
    "/users",
    status_code=201,
    response_model=UserOut,
    operation_id="users:create",
    responses={**AUTH_ERRORS, **problem_responses(EmailTaken)},
)
async def create_user(
    body: UserCreate,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
    idem: Idempotency = Depends(idempotency),
) -> UserOut:
    """Create a staff user in your organisation. Accepts an Idempotency-Key header."""
    if idem.replay is not None:
        return idem.replay  # type: ignore[return-value]
    user = await auth_service.create_user(session, principal, body)
    return await idem.remember(201, (await _user_out(session, [user]))[0])


@router.get(
    "/users/{user_id}",
    response_model=UserOut,
    operation_id="users:get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_user(
    user_id: uuid.UUID,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> UserOut:
    user = await auth_service.get_user(session, principal, user_id)
    return (await _user_out(session, [user]))[0]


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    operation_id="users:update",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> UserOut:
    """Change roles, branches, mobile, password or deactivate a user."""
    user = await auth_service.update_user(session, principal, user_id, body)
    return (await _user_out(session, [user]))[0]


@router.get(
    "/api-keys",
    response_model=ListResource[ApiKeyOut],
    operation_id="api_keys:list",
    responses=AUTH_ERRORS,
)
async def list_api_keys(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[ApiKeyOut]:
    keys, total = await auth_service.list_api_keys(session, principal, page)
    return ListResource[ApiKeyOut].build(
        [ApiKeyOut.model_validate(k) for k in keys], total, page.page, page.limit
    )


@router.post(
    "/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    operation_id="api_keys:create",
    responses=AUTH_ERRORS,
)
async def create_api_key(
    body: ApiKeyCreate,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ApiKeyCreated:
    """Create a key for a machine client (sync agent, integration). The key is shown only once."""
    issued = await auth_service.create_api_key(session, principal, body)
    return ApiKeyCreated(**ApiKeyOut.model_validate(issued.api_key).model_dump(), key=issued.secret)


@router.delete(
    "/api-keys/{key_id}",
    response_model=ApiKeyOut,
    operation_id="api_keys:revoke",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def revoke_api_key(
    key_id: uuid.UUID,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ApiKeyOut:
    """Revoke a key; clients using it get 401 from now on."""
    return ApiKeyOut.model_validate(await auth_service.revoke_api_key(session, principal, key_id))
