"""Request and response shapes of the auth API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import EmailStr, Field, field_validator

from nidaan.auth.enums import Role
from nidaan.kit.schemas import InputSchema, Schema


class TokenPair(Schema):
    access_token: str = Field(description="JWT to send as 'Authorization: Bearer <token>'")
    token_type: str = Field(description="Always 'bearer'", examples=["bearer"])
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str = Field(description="Opaque token for POST /auth/refresh; single use")


class RefreshRequest(InputSchema):
    refresh_token: str = Field(
        min_length=10, description="The refresh token from the last login or refresh"
    )


class UserCreate(InputSchema):
    email: EmailStr = Field(description="Login name; unique across the installation")
    full_name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=10, max_length=200, description="At least 10 characters")
    roles: list[Role] = Field(min_length=1, description="One or more roles")
    qualification: str | None = Field(None, max_length=200, examples=["MD (Pathology)"])
    registration_number: str | None = Field(
        None,
        max_length=80,
        description="Medical council registration printed under a signatory's name",
        examples=["KMC 45812"],
    )
    mobile: str | None = Field(
        None, description="Indian mobile, e.g. 98765 43210", examples=["9876543210"]
    )
    branch_ids: list[uuid.UUID] = Field(
        default_factory=list, description="Limit to these branches; empty = all"
    )


class UserUpdate(InputSchema):
    full_name: str | None = Field(None, min_length=1, max_length=200)
    roles: list[Role] | None = Field(None, min_length=1)
    qualification: str | None = None
    registration_number: str | None = Field(None, max_length=80)
    mobile: str | None = None
    is_active: bool | None = None
    branch_ids: list[uuid.UUID] | None = None
    password: str | None = Field(None, min_length=10, max_length=200)


class UserOut(Schema):
    id: uuid.UUID
    organisation_id: uuid.UUID
    email: str
    full_name: str
    qualification: str | None
    registration_number: str | None = Field(description="Medical council registration")
    has_signature: bool = Field(description="A signature image is on file for reports")
    roles: list[str]
    mobile_masked: str | None = Field(description="Mobile with all but the last 4 digits hidden")
    branch_ids: list[uuid.UUID]
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime


class PrincipalOut(Schema):
    kind: str
    id: uuid.UUID
    organisation_id: uuid.UUID
    roles: list[str]
    label: str
    branch_ids: list[uuid.UUID] | None


class ApiKeyCreate(InputSchema):
    name: str = Field(min_length=1, max_length=200, examples=["Sync agent, CC1"])
    roles: list[Role] = Field(min_length=1)
    expires_in_days: int | None = Field(None, ge=1, le=3650)

    @field_validator("roles")
    @classmethod
    def _no_admin(cls, roles: list[Role]) -> list[Role]:
        # A leaked machine key must never be able to create users or more keys.
        if Role.ADMIN in roles:
            raise ValueError("API keys cannot have the admin role")
        return roles


class ApiKeyOut(Schema):
    id: uuid.UUID
    name: str
    prefix: str
    roles: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret key. Shown only now: store it safely.")


class SessionLogin(InputSchema):
    email: str = Field(min_length=3, max_length=254, description="Login e-mail")
    password: str = Field(min_length=1, max_length=200)


class SessionUser(Schema):
    id: uuid.UUID
    organisation_id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]
    branch_ids: list[uuid.UUID] | None = Field(description="Branch limits; null = every branch")


class SessionOut(Schema):
    """A browser session: the access token is kept in memory; the refresh token is a cookie."""

    access_token: str = Field(description="JWT for 'Authorization: Bearer'; keep it in memory")
    token_type: str = Field(examples=["bearer"])
    expires_in: int = Field(description="Seconds until the access token expires")
    idle_minutes: int = Field(description="Lock the screen after this long without input")
    user: SessionUser
