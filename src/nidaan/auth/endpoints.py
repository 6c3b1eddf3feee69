"""HTTP handlers for login, tokens, users and API keys. Thin: rules live in the service."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth import cookies
from nidaan.auth.dependencies import (
    AUTH_ERRORS,
    current_principal,
    login_failure_counter,
    require_roles,
)
from nidaan.auth.enums import Role
from nidaan.auth.errors import (
    CsrfCheckFailed,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    SignatureImageInvalid,
    TooManyLoginAttempts,
)
from nidaan.auth.principal import Principal
from nidaan.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    PrincipalOut,
    RefreshRequest,
    SessionLogin,
    SessionOut,
    SessionUser,
    TokenPair,
    UserCreate,
    UserOut,
    UserUpdate,
)
from nidaan.auth.service import auth_service
from nidaan.config import Settings, get_settings
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


# ---- browser sessions (the staff web app) ---------------------------------------------


def _check_origin(request: Request) -> None:
    if not cookies.same_origin(
        request.headers.get("origin"),
        request.headers.get("sec-fetch-site"),
        request.headers.get("host"),
    ):
        raise CsrfCheckFailed("This request did not come from a page of this server.")


def _secure(request: Request, settings: Settings) -> bool:
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    return request.url.scheme == "https"


async def _session_response(
    request: Request, session: AsyncSession, settings: Settings, pair: TokenPair
) -> JSONResponse:
    principal = await auth_service.authenticate(session, settings, pair.access_token)
    user = await auth_service.get_user(session, principal, principal.id)
    body = SessionOut(
        access_token=pair.access_token,
        token_type="bearer",
        expires_in=pair.expires_in,
        idle_minutes=settings.web_idle_minutes,
        user=SessionUser(
            id=user.id,
            organisation_id=user.organisation_id,
            email=user.email,
            full_name=user.full_name,
            roles=sorted(user.roles),
            branch_ids=sorted(principal.branch_ids) if principal.branch_ids is not None else None,
        ),
    )
    response = JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": "no-store"})
    secure = _secure(request, settings)
    max_age = settings.web_session_idle_hours * 3600
    response.set_cookie(
        cookies.REFRESH_COOKIE,
        pair.refresh_token,
        max_age=max_age,
        path=cookies.SESSION_PATH,
        httponly=True,
        secure=secure,
        samesite="strict",
    )
    response.set_cookie(
        cookies.CSRF_COOKIE,
        cookies.csrf_token(settings, pair.refresh_token),
        max_age=max_age,
        path="/",
        httponly=False,  # read by the app and echoed in the X-CSRF-Token header
        secure=secure,
        samesite="strict",
    )
    return response


def _cleared(response: Response, request: Request, settings: Settings) -> Response:
    secure = _secure(request, settings)
    response.delete_cookie(
        cookies.REFRESH_COOKIE,
        path=cookies.SESSION_PATH,
        httponly=True,
        secure=secure,
        samesite="strict",
    )
    response.delete_cookie(cookies.CSRF_COOKIE, path="/", secure=secure, samesite="strict")
    return response


def _browser_lifetimes(settings: Settings) -> dict[str, timedelta]:
    return {"refresh_lifetime": timedelta(hours=settings.web_session_idle_hours)}


@router.post(
    "/auth/session",
    response_model=SessionOut,
    operation_id="auth:session_login",
    responses=problem_responses(InvalidCredentials, TooManyLoginAttempts, CsrfCheckFailed),
)
async def session_login(
    request: Request,
    body: SessionLogin,
    session: AsyncSession = Depends(get_session, scope="function"),
) -> JSONResponse:
    """Log in from the web app: the access token comes back in the body (keep it in memory),
    the refresh token as an httpOnly, SameSite=Strict cookie with a CSRF token beside it."""
    _check_origin(request)
    settings = get_settings()
    try:
        pair = await auth_service.login(
            session, settings, body.email, body.password, **_browser_lifetimes(settings)
        )
    except InvalidCredentials:
        client_ip = request.client.host if request.client else None
        await auth_service.record_login_failure_in_own_transaction(settings, body.email, client_ip)
        raise
    return await _session_response(request, session, settings, pair)


@router.post(
    "/auth/session/refresh",
    response_model=SessionOut,
    operation_id="auth:session_refresh",
    responses=problem_responses(InvalidRefreshToken, CsrfCheckFailed),
)
async def session_refresh(
    request: Request, session: AsyncSession = Depends(get_session, scope="function")
) -> Response:
    """A fresh access token for the web app from its session cookie (send X-CSRF-Token)."""
    _check_origin(request)
    settings = get_settings()
    refresh_token = request.cookies.get(cookies.REFRESH_COOKIE)
    if not refresh_token:
        raise InvalidRefreshToken("No session; log in.")
    if not cookies.csrf_matches(settings, refresh_token, request.headers.get(cookies.CSRF_HEADER)):
        raise CsrfCheckFailed("The X-CSRF-Token header is missing or wrong.")
    pair = await auth_service.refresh(
        session,
        settings,
        refresh_token,
        max_session=timedelta(hours=settings.web_session_max_hours),
        **_browser_lifetimes(settings),
    )
    if pair is None:
        # Answered without raising so the revocation of the session commits.
        error = InvalidRefreshToken("This session was used elsewhere and has been ended.")
        answer = problem(error.status_code, error.code, error.title, error.detail, request)
        return _cleared(answer, request, settings)
    return await _session_response(request, session, settings, pair)


@router.post(
    "/auth/session/logout",
    status_code=204,
    operation_id="auth:session_logout",
    responses=problem_responses(CsrfCheckFailed),
)
async def session_logout(
    request: Request, session: AsyncSession = Depends(get_session, scope="function")
) -> Response:
    """End the web app's session: the refresh token's whole family is revoked."""
    _check_origin(request)
    settings = get_settings()
    refresh_token = request.cookies.get(cookies.REFRESH_COOKIE)
    if refresh_token:
        if not cookies.csrf_matches(
            settings, refresh_token, request.headers.get(cookies.CSRF_HEADER)
        ):
            raise CsrfCheckFailed("The X-CSRF-Token header is missing or wrong.")
        await auth_service.logout(session, refresh_token)
    return _cleared(Response(status_code=204), request, settings)


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
            registration_number=u.registration_number,
            has_signature=u.signature_key is not None,
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


@router.put(
    "/users/{user_id}/signature",
    response_model=UserOut,
    operation_id="users:set_signature",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, SignatureImageInvalid)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def set_signature(
    user_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> UserOut:
    """Upload the signature image printed above a signatory's name on reports (the raw
    PNG or JPEG as the request body, at most 512 KiB)."""
    image = await request.body()
    content_type = request.headers.get("content-type", "")
    user = await auth_service.set_signature(session, principal, user_id, image, content_type)
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
