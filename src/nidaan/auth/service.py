"""Use cases of identity and access: login, token refresh, users and API keys.

Every query is scoped to the caller's organisation; every change writes an audit entry in
the same transaction.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import Select, bindparam, delete, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.auth import tokens
from nidaan.auth.enums import Role
from nidaan.auth.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    NotAuthenticated,
    SignatureImageInvalid,
    TooManyLoginAttempts,
)
from nidaan.auth.events import LoginLockedOut
from nidaan.auth.models import ApiKey, LoginFailure, RefreshToken, User, UserBranch
from nidaan.auth.passwords import (
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password_off_loop,
)
from nidaan.auth.principal import Principal
from nidaan.auth.schemas import ApiKeyCreate, TokenPair, UserCreate, UserUpdate
from nidaan.config import Settings, get_settings
from nidaan.events.service import publish
from nidaan.kit.blind_index import blind_index
from nidaan.kit.db import session_scope
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.ids import new_id
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.phone import InvalidPhoneNumber, normalize_mobile
from nidaan.kit.rate_limit import WindowCounter, client_key
from nidaan.kit.storage import ObjectNotFoundError, get_object_store
from nidaan.kit.time import utcnow
from nidaan.tenancy.models import Organisation
from nidaan.tenancy.service import tenancy_service

_log = structlog.get_logger("nidaan.auth")
MOBILE_CONTEXT = "users.mobile"
#: A scanned signature is a small picture; anything bigger is a mistake (a whole page scan).
SIGNATURE_MAX_BYTES = 512 * 1024
SIGNATURE_MAX_PIXELS = 2400
_SIGNATURE_FORMATS = {"image/png": ("PNG", "png"), "image/jpeg": ("JPEG", "jpg")}
WRONG_CREDENTIALS = "Wrong e-mail or password, or the account is disabled."
# last_used_at is informational; writing it on every request would turn reads into writes.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=5)


@dataclass(frozen=True)
class LockOut:
    kind: str  # "account" or "client_address"
    client_address: str | None
    user_id: uuid.UUID | None
    failures: int


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    secret: str


def username_key(settings: Settings, username: str) -> str:
    """A keyed hash of the login name, so the throttle table holds no e-mail addresses."""
    return hmac.new(
        settings.jwt_secret().encode(), username.strip().lower().encode(), hashlib.sha256
    ).hexdigest()


def user_snapshot(user: User, branch_ids: list[uuid.UUID]) -> dict[str, Any]:
    return {
        "email": user.email,
        "full_name": user.full_name,
        "qualification": user.qualification,
        "registration_number": user.registration_number,
        "signature_key": user.signature_key,
        "roles": sorted(user.roles),
        "is_active": user.is_active,
        "mobile": user.mobile,
        "branch_ids": sorted(str(b) for b in branch_ids),
    }


def check_signature_image(image: bytes, content_type: str) -> str:
    """Accept a PNG or JPEG signature (checked by decoding it); return its file extension."""
    from io import BytesIO

    from PIL import Image, UnidentifiedImageError

    media = content_type.split(";")[0].strip().lower()
    if media not in _SIGNATURE_FORMATS:
        raise SignatureImageInvalid("Upload the signature as image/png or image/jpeg.")
    if not image or len(image) > SIGNATURE_MAX_BYTES:
        raise SignatureImageInvalid(
            f"The signature image must be 1 byte to {SIGNATURE_MAX_BYTES // 1024} KiB."
        )
    expected_format, extension = _SIGNATURE_FORMATS[media]
    try:
        with Image.open(BytesIO(image)) as picture:
            found_format, (width, height) = picture.format, picture.size
            picture.verify()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SignatureImageInvalid("The file is not a readable PNG or JPEG image.") from exc
    if found_format != expected_format:
        raise SignatureImageInvalid(f"The file is {found_format}, not {media}.")
    if max(width, height) > SIGNATURE_MAX_PIXELS:
        raise SignatureImageInvalid(
            f"The signature image is {width} x {height} pixels; at most "
            f"{SIGNATURE_MAX_PIXELS} either way."
        )
    return extension


@functools.cache
def _principal_statement(with_session: bool) -> Select[Any]:
    """The user, their branches, their organisation's state and (``with_session``) whether
    the login ``:session_id`` was ended; built once. Columns, not the User entity: no ORM
    object (with its password hash and signing key) is built on every request."""
    ended = (
        select(RefreshToken.id)
        .where(
            RefreshToken.family_id == bindparam("session_id"),
            RefreshToken.revoked_at.is_not(None),
        )
        .exists()
        if with_session
        else false()
    )
    return (
        select(
            User.id,
            User.organisation_id,
            User.email,
            User.roles,
            User.is_active,
            User.token_version,
            func.array_remove(func.array_agg(UserBranch.branch_id), None),
            Organisation.is_active,
            ended,
        )
        .join(Organisation, Organisation.id == User.organisation_id)
        .outerjoin(UserBranch, UserBranch.user_id == User.id)
        .where(User.id == bindparam("user_id"))
        .group_by(User.id, Organisation.id)
    )


class AuthService:
    # ---- authentication -------------------------------------------------------------

    async def login(
        self,
        session: AsyncSession,
        settings: Settings,
        username: str,
        password: str,
        *,
        refresh_lifetime: timedelta | None = None,
    ) -> TokenPair:
        """Check the password and issue a pair; ``refresh_lifetime`` shortens the refresh
        token (browser sessions expire after a while without use)."""
        key = username_key(settings, username)
        since = utcnow() - timedelta(minutes=settings.login_lockout_minutes)
        # One query for the account's failed attempts (recent ones lock it out), the user
        # and whether their organisation is active: the failure counts always give one row.
        failures = (
            select(
                func.count().filter(LoginFailure.occurred_at >= since).label("recent"),
                func.count().label("total"),
            )
            .where(LoginFailure.username_key == key)
            .subquery()
        )
        recent, total, user, organisation_active = (
            await session.execute(
                select(failures.c.recent, failures.c.total, User, Organisation.is_active)
                .select_from(failures)
                .outerjoin(User, User.email == username.strip().lower())
                .outerjoin(Organisation, Organisation.id == User.organisation_id)
            )
        ).one()
        self._refuse_when_locked(settings, recent)
        if user is None:
            # Same cost whether or not the user exists.
            await verify_password_off_loop(dummy_hash(), password)
            raise InvalidCredentials(WRONG_CREDENTIALS)
        correct = await verify_password_off_loop(user.password_hash, password)
        # One answer for a wrong password, a disabled account and a disabled organisation:
        # saying "disabled" only after a correct password would confirm the password.
        if not correct or not user.is_active or not organisation_active:
            raise InvalidCredentials(WRONG_CREDENTIALS)
        if needs_rehash(user.password_hash):
            user.password_hash = await asyncio.to_thread(hash_password, password)
        if total:
            await session.execute(delete(LoginFailure).where(LoginFailure.username_key == key))
        user.last_login_at = utcnow()
        return await self._issue_pair(
            session, settings, user, family_id=uuid.uuid4(), lifetime=refresh_lifetime
        )

    async def _check_throttle(self, session: AsyncSession, settings: Settings, key: str) -> None:
        since = utcnow() - timedelta(minutes=settings.login_lockout_minutes)
        failures = await session.scalar(
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.username_key == key, LoginFailure.occurred_at >= since)
        )
        self._refuse_when_locked(settings, failures)

    @staticmethod
    def _refuse_when_locked(settings: Settings, failures: int | None) -> None:
        if (failures or 0) >= settings.login_max_failures:
            raise TooManyLoginAttempts(
                f"Too many failed logins. Try again in {settings.login_lockout_minutes} minutes "
                "or ask an administrator to reset the password.",
                retry_after_seconds=settings.login_lockout_minutes * 60,
            )

    async def check_client_throttle(
        self, settings: Settings, counter: WindowCounter, client_ip: str | None
    ) -> None:
        """Refuse every login from a client address with too many recent failures, whatever
        account it tries (password spraying), before any password is checked."""
        failures = await counter.count(client_key(client_ip))
        if failures >= settings.login_client_max_failures:
            raise TooManyLoginAttempts(
                "Too many failed logins from your network address. Try again in "
                f"{settings.login_client_window_minutes} minutes.",
                retry_after_seconds=settings.login_client_window_minutes * 60,
            )

    async def record_login_failure_in_own_transaction(
        self,
        settings: Settings,
        username: str,
        client_ip: str | None,
        counter: WindowCounter | None = None,
    ) -> None:
        """Commit the failed attempt separately: the request's own transaction rolls back.

        Counts it against the client address too; the failure that locks an account or an
        address out is announced to the organisations concerned (audit entry and event).
        """
        key = username_key(settings, username)
        async with session_scope(settings) as own:
            user = await own.scalar(select(User).where(User.email == username.strip().lower()))
            own.add(
                LoginFailure(
                    username_key=key,
                    client_ip=client_ip,
                    user_id=user.id if user is not None else None,
                    occurred_at=utcnow(),
                )
            )
            await own.flush()
            if user is not None:
                since = utcnow() - timedelta(minutes=settings.login_lockout_minutes)
                failures = await own.scalar(
                    select(func.count())
                    .select_from(LoginFailure)
                    .where(LoginFailure.username_key == key, LoginFailure.occurred_at >= since)
                )
                if failures == settings.login_max_failures:
                    await self._announce_lockout(
                        own,
                        user.organisation_id,
                        LockOut("account", client_ip, user.id, failures),
                        settings.login_lockout_minutes,
                    )
        if counter is None:
            return
        failures = await counter.hit(client_key(client_ip))
        if failures != settings.login_client_max_failures:
            return
        async with session_scope(settings) as own:
            since = utcnow() - timedelta(minutes=settings.login_client_window_minutes)
            targeted = await own.scalars(
                select(User.organisation_id)
                .join(LoginFailure, LoginFailure.user_id == User.id)
                .where(LoginFailure.client_ip == client_ip, LoginFailure.occurred_at >= since)
                .distinct()
            )
            for organisation_id in targeted:
                await self._announce_lockout(
                    own,
                    organisation_id,
                    LockOut("client_address", client_ip, None, failures),
                    settings.login_client_window_minutes,
                )
        _log.warning(
            "login_client_locked_out",
            client=client_key(client_ip),
            failures=failures,
            minutes=settings.login_client_window_minutes,
        )

    async def _announce_lockout(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        lockout: LockOut,
        minutes: int,
    ) -> None:
        """Audit entry and event (for the admins' notification) about one lock-out."""
        locked_until = utcnow() + timedelta(minutes=minutes)
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=SYSTEM_ACTOR,
            action="auth.login_locked_out",
            entity_type="user" if lockout.user_id else "client_address",
            entity_id=lockout.user_id or lockout.client_address or "unknown",
            after={
                "kind": lockout.kind,
                "client_address": lockout.client_address,
                "failures": lockout.failures,
                "locked_until": locked_until,
            },
        )
        await publish(
            session,
            LoginLockedOut(
                organisation_id=organisation_id,
                kind=lockout.kind,
                client_address=lockout.client_address,
                user_id=lockout.user_id,
                failures=lockout.failures,
                window_minutes=minutes,
                locked_until=locked_until,
            ),
        )

    async def refresh(
        self,
        session: AsyncSession,
        settings: Settings,
        refresh_token: str,
        *,
        refresh_lifetime: timedelta | None = None,
        max_session: timedelta | None = None,
    ) -> TokenPair | None:
        """Rotate a refresh token; ``None`` when a spent one came back (its family is revoked).

        ``max_session`` bounds a login however often it is refreshed (browser sessions)."""
        row = await session.scalar(
            select(RefreshToken)
            .where(RefreshToken.token_hash == tokens.secret_hash(refresh_token))
            .with_for_update()
        )
        now = utcnow()
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            raise InvalidRefreshToken("The refresh token is invalid or expired; log in again.")
        if row.used_at is not None:
            # A spent token came back: someone copied it. End the whole login session. This
            # is returned, not raised, so that the revocation commits with the request.
            await self._revoke_family(session, row.family_id)
            return None
        if max_session is not None:
            started = await session.scalar(
                select(func.min(RefreshToken.created_at)).where(
                    RefreshToken.family_id == row.family_id
                )
            )
            if started is not None and now - started > max_session:
                raise InvalidRefreshToken("The session has ended; log in again.")
        user = await session.get(User, row.user_id)
        if user is None or not user.is_active:
            raise InvalidRefreshToken("The account is disabled.")
        organisation = await tenancy_service.get_organisation_unscoped(
            session, user.organisation_id
        )
        if not organisation.is_active:
            raise InvalidRefreshToken("The account is disabled.")
        row.used_at = now
        return await self._issue_pair(
            session, settings, user, family_id=row.family_id, lifetime=refresh_lifetime
        )

    async def logout(self, session: AsyncSession, refresh_token: str) -> None:
        row = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == tokens.secret_hash(refresh_token))
        )
        if row is not None:
            await self._revoke_family(session, row.family_id)

    async def _revoke_family(self, session: AsyncSession, family_id: uuid.UUID) -> None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )

    async def _issue_pair(
        self,
        session: AsyncSession,
        settings: Settings,
        user: User,
        family_id: uuid.UUID,
        lifetime: timedelta | None = None,
    ) -> TokenPair:
        refresh = tokens.new_refresh_token()
        now = utcnow()
        lifetime = lifetime or timedelta(days=settings.refresh_token_days)
        session.add(
            RefreshToken(
                organisation_id=user.organisation_id,
                user_id=user.id,
                token_hash=tokens.secret_hash(refresh),
                family_id=family_id,
                created_at=now,
                expires_at=now + lifetime,
            )
        )
        await session.flush()
        return TokenPair(
            access_token=tokens.issue_access_token(settings, user, session_id=family_id),
            token_type="bearer",
            expires_in=settings.access_token_minutes * 60,
            refresh_token=refresh,
        )

    async def authenticate(
        self, session: AsyncSession, settings: Settings, credential: str
    ) -> Principal:
        """Turn a bearer token or API key into a Principal; roles come from the database."""
        if tokens.split_api_key(credential) is not None:
            return await self._authenticate_api_key(session, credential)
        try:
            claims = tokens.decode_access_token(settings, credential)
            user_id = uuid.UUID(claims["sub"])
            session_id = uuid.UUID(claims["sid"]) if "sid" in claims else None
        except (tokens.InvalidToken, ValueError, TypeError) as exc:
            raise NotAuthenticated("The access token is invalid or expired; log in again.") from exc
        # One round trip for the user, their branch limits, their organisation's state and
        # whether this login was ended (logout): it runs on every request, so revocations
        # take effect at once. The statement is built once (values are bound parameters).
        row = (
            await session.execute(
                _principal_statement(session_id is not None),
                {"user_id": user_id, "session_id": session_id},
            )
        ).one_or_none()
        if (
            row is None
            or not row[4]
            or not row[7]
            or row[8]
            or str(row[1]) != claims["org"]
            or claims.get("ver", 0) != row[5]
        ):
            raise NotAuthenticated("The session has ended or the account is disabled; log in.")
        found_id, organisation_id, email, roles, _, _, branch_ids, _, _ = row
        return Principal(
            kind="user",
            id=found_id,
            organisation_id=organisation_id,
            roles=frozenset(roles),
            label=email,
            branch_ids=frozenset(branch_ids) if branch_ids else None,
        )

    async def _authenticate_api_key(self, session: AsyncSession, credential: str) -> Principal:
        prefix = tokens.split_api_key(credential)
        found = (
            await session.execute(
                select(ApiKey, Organisation.is_active)
                .join(Organisation, Organisation.id == ApiKey.organisation_id)
                .where(ApiKey.prefix == prefix)
            )
        ).one_or_none()
        row, organisation_active = found if found is not None else (None, False)
        now = utcnow()
        if (
            row is None
            or not organisation_active
            or not hmac.compare_digest(row.key_hash, tokens.secret_hash(credential))
            or row.revoked_at is not None
            or (row.expires_at is not None and row.expires_at <= now)
        ):
            raise NotAuthenticated("The API key is invalid, expired or revoked.")
        if row.last_used_at is None or now - row.last_used_at > API_KEY_TOUCH_INTERVAL:
            row.last_used_at = now
        return Principal(
            kind="api_key",
            id=row.id,
            organisation_id=row.organisation_id,
            roles=frozenset(row.roles),
            label=f"api-key:{row.name}",
        )

    # ---- users ----------------------------------------------------------------------

    async def _branch_ids(self, session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await session.scalars(
            select(UserBranch.branch_id).where(UserBranch.user_id == user_id)
        )
        return sorted(rows)

    async def branch_ids_of(
        self, session: AsyncSession, users: list[User]
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        if not users:
            return {}
        rows = await session.execute(
            select(UserBranch.user_id, UserBranch.branch_id).where(
                UserBranch.user_id.in_([u.id for u in users])
            )
        )
        result: dict[uuid.UUID, list[uuid.UUID]] = {u.id: [] for u in users}
        for user_id, branch_id in rows:
            result[user_id].append(branch_id)
        return result

    async def list_users(
        self,
        session: AsyncSession,
        principal: Principal,
        page: PageParams,
        *,
        mobile: str | None = None,
        role: Role | None = None,
    ) -> tuple[list[User], int]:
        statement = select(User).where(User.organisation_id == principal.organisation_id)
        if mobile:
            statement = statement.where(User.mobile_index == _mobile_index(mobile))
        if role:
            statement = statement.where(User.roles.any(str(role)))
        return await paginate(session, statement.order_by(User.email), page)

    async def get_user(
        self, session: AsyncSession, principal: Principal, user_id: uuid.UUID
    ) -> User:
        user = await session.scalar(
            select(User).where(
                User.id == user_id, User.organisation_id == principal.organisation_id
            )
        )
        if user is None:
            raise NotFound("No such user in your organisation.", entity="user")
        return user

    async def create_user(
        self, session: AsyncSession, principal: Principal, data: UserCreate
    ) -> User:
        return await self.create_user_in(
            session, principal.organisation_id, data, actor_principal=principal
        )

    async def create_user_in(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        data: UserCreate,
        *,
        actor_principal: Principal | None = None,
    ) -> User:
        """Create a user in ``organisation_id`` (also used by the CLI and the demo seed)."""
        email = data.email.strip().lower()
        if await session.scalar(select(User.id).where(User.email == email)):
            raise EmailTaken(f"A user with e-mail {email} already exists.")
        await tenancy_service.check_branches_belong(session, organisation_id, data.branch_ids)
        user = User(
            organisation_id=organisation_id,
            email=email,
            full_name=data.full_name.strip(),
            qualification=data.qualification,
            registration_number=data.registration_number,
            password_hash=await asyncio.to_thread(hash_password, data.password),
            roles=sorted({str(r) for r in data.roles}),
            is_active=True,
        )
        _set_mobile(user, data.mobile)
        session.add(user)
        await session.flush()
        for branch_id in data.branch_ids:
            session.add(UserBranch(user_id=user.id, branch_id=branch_id))
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=actor_principal.actor if actor_principal else SYSTEM_ACTOR,
            action="user.created",
            entity_type="user",
            entity_id=user.id,
            before=None,
            after=user_snapshot(user, list(data.branch_ids)),
        )
        return user

    async def update_user(
        self, session: AsyncSession, principal: Principal, user_id: uuid.UUID, data: UserUpdate
    ) -> User:
        user = await self.get_user(session, principal, user_id)
        branch_ids = await self._branch_ids(session, user.id)
        before = user_snapshot(user, branch_ids)
        changes = data.model_dump(exclude_unset=True)
        if "full_name" in changes and data.full_name is not None:
            user.full_name = data.full_name.strip()
        if "qualification" in changes:
            user.qualification = data.qualification
        if "registration_number" in changes:
            user.registration_number = data.registration_number
        if data.roles is not None:
            if user.id == principal.id and Role.ADMIN not in data.roles:
                raise InvalidInput("You cannot remove your own admin role; ask another admin.")
            user.roles = sorted({str(r) for r in data.roles})
        if data.is_active is not None:
            if user.id == principal.id and not data.is_active:
                raise InvalidInput("You cannot deactivate your own account.")
            user.is_active = data.is_active
        if "mobile" in changes:
            _set_mobile(user, data.mobile)
        if data.password is not None:
            user.password_hash = await asyncio.to_thread(hash_password, data.password)
        if data.branch_ids is not None:
            await tenancy_service.check_branches_belong(
                session, user.organisation_id, data.branch_ids
            )
            await session.execute(delete(UserBranch).where(UserBranch.user_id == user.id))
            for branch_id in data.branch_ids:
                session.add(UserBranch(user_id=user.id, branch_id=branch_id))
            branch_ids = list(data.branch_ids)
        if data.is_active is False or data.password is not None:
            # Existing sessions must not outlive a deactivation or a password reset: refresh
            # tokens are revoked and access tokens carry the old version.
            await self.end_all_sessions(session, user)
        await session.flush()
        after = user_snapshot(user, branch_ids)
        if data.password is not None:
            before["password"], after["password"] = "old", "new"
        await audit_service.record(
            session,
            organisation_id=user.organisation_id,
            actor=principal.actor,
            action="user.updated",
            entity_type="user",
            entity_id=user.id,
            before=before,
            after=after,
        )
        return user

    async def set_signature(
        self,
        session: AsyncSession,
        principal: Principal,
        user_id: uuid.UUID,
        image: bytes,
        content_type: str,
    ) -> User:
        """Store the signature image printed above the user's name on reports (PNG or JPEG).

        Each upload is a new object (reports already issued keep the one they printed).
        """
        user = await self.get_user(session, principal, user_id)
        extension = check_signature_image(image, content_type)
        before = {"signature_key": user.signature_key}
        key = f"signatures/{user.organisation_id}/{user.id}/{new_id()}.{extension}"
        await get_object_store(get_settings()).put(key, image, content_type)
        user.signature_key = key
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=user.organisation_id,
            actor=principal.actor,
            action="user.signature_set",
            entity_type="user",
            entity_id=user.id,
            before=before,
            after={"signature_key": key},
        )
        return user

    async def signature_image(self, user: User) -> bytes | None:
        """The stored signature image of ``user``, or None (also when the file is gone)."""
        if not user.signature_key:
            return None
        try:
            return await get_object_store(get_settings()).get(user.signature_key)
        except ObjectNotFoundError:
            return None

    async def end_all_sessions(self, session: AsyncSession, user: User) -> None:
        """Revoke every refresh token of ``user`` and invalidate their access tokens."""
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        user.token_version = (user.token_version or 0) + 1

    # ---- API keys -------------------------------------------------------------------

    async def create_api_key(
        self, session: AsyncSession, principal: Principal, data: ApiKeyCreate
    ) -> IssuedApiKey:
        prefix, secret = tokens.new_api_key()
        now = utcnow()
        api_key = ApiKey(
            organisation_id=principal.organisation_id,
            name=data.name.strip(),
            prefix=prefix,
            key_hash=tokens.secret_hash(secret),
            roles=sorted({str(r) for r in data.roles}),
            created_by_id=principal.id if principal.kind == "user" else None,
            expires_at=now + timedelta(days=data.expires_in_days) if data.expires_in_days else None,
        )
        session.add(api_key)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=principal.organisation_id,
            actor=principal.actor,
            action="api_key.created",
            entity_type="api_key",
            entity_id=api_key.id,
            after={"name": api_key.name, "prefix": prefix, "roles": api_key.roles},
        )
        return IssuedApiKey(api_key=api_key, secret=secret)

    async def list_api_keys(
        self, session: AsyncSession, principal: Principal, page: PageParams
    ) -> tuple[list[ApiKey], int]:
        statement = (
            select(ApiKey)
            .where(ApiKey.organisation_id == principal.organisation_id)
            .order_by(ApiKey.created_at.desc())
        )
        return await paginate(session, statement, page)

    async def revoke_api_key(
        self, session: AsyncSession, principal: Principal, key_id: uuid.UUID
    ) -> ApiKey:
        api_key = await session.scalar(
            select(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.organisation_id == principal.organisation_id)
            .with_for_update()
        )
        if api_key is None:
            raise NotFound("No such API key in your organisation.", entity="api_key")
        if api_key.revoked_at is None:
            api_key.revoked_at = utcnow()
            await session.flush()
            await audit_service.record(
                session,
                organisation_id=principal.organisation_id,
                actor=principal.actor,
                action="api_key.revoked",
                entity_type="api_key",
                entity_id=api_key.id,
                before={"revoked": False},
                after={"revoked": True},
            )
        return api_key

    async def purge_expired(self, session: AsyncSession, settings: Settings) -> int:
        """Delete old login failures and long-expired refresh tokens (periodic housekeeping)."""
        now = utcnow()
        failures = await session.execute(
            delete(LoginFailure).where(
                LoginFailure.occurred_at < now - timedelta(minutes=settings.login_lockout_minutes)
            )
        )
        old_tokens = await session.execute(
            delete(RefreshToken).where(RefreshToken.expires_at < now - timedelta(days=1))
        )
        return int(failures.rowcount or 0) + int(old_tokens.rowcount or 0)  # type: ignore[attr-defined]


def _mobile_index(raw: str) -> str:
    try:
        return blind_index(normalize_mobile(raw), MOBILE_CONTEXT)
    except InvalidPhoneNumber as exc:
        raise InvalidInput(str(exc), field="mobile") from exc


def _set_mobile(user: User, raw: str | None) -> None:
    if raw is None or not raw.strip():
        user.mobile, user.mobile_index = None, None
        return
    try:
        normalized = normalize_mobile(raw)
    except InvalidPhoneNumber as exc:
        raise InvalidInput(str(exc), field="mobile") from exc
    user.mobile = normalized
    user.mobile_index = blind_index(normalized, MOBILE_CONTEXT)


auth_service = AuthService()
