from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from nidaan.integration.enums import (
    ConnectionState,
    Direction,
    Driver,
    ExceptionKind,
    ExceptionStatus,
    MessageStatus,
    Protocol,
    ResolutionAction,
    Transport,
)
from nidaan.kit.schemas import InputSchema, Schema
from nidaan.kit.text import MultilineText


class MapEntryIn(InputSchema):
    """One analyzer code and the catalogue test it means: give ``test_code`` or ``loinc``."""

    instrument_code: str = Field(min_length=1, max_length=64, examples=["687"])
    test_code: str | None = Field(None, min_length=1, max_length=32, examples=["GLU"])
    loinc: str | None = Field(None, min_length=3, max_length=16, examples=["2345-7"])

    @model_validator(mode="after")
    def _one_reference(self) -> MapEntryIn:
        if (self.test_code is None) == (self.loinc is None):
            raise ValueError("give exactly one of test_code or loinc")
        return self


class MapEntryOut(Schema):
    instrument_code: str
    test_id: uuid.UUID
    test_code: str
    test_name: str
    loinc: str | None


class InstrumentCreate(InputSchema):
    id: uuid.UUID | None = Field(None, description="Client-generated id (UUIDv7) for replays")
    name: str = Field(min_length=1, max_length=100, examples=["cobas c311 #1"])
    driver: Driver
    transport: Transport
    host: str | None = Field(None, max_length=255, examples=["192.168.1.50"])
    port: int | None = Field(None, ge=1, le=65535, examples=[5000])
    device: str | None = Field(None, max_length=255, examples=["/dev/ttyUSB0"])
    baudrate: int | None = Field(None, ge=300, le=921600, examples=[9600])
    branch_id: uuid.UUID = Field(description="The lab where the analyzer stands")
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)
    test_map: list[MapEntryIn] = Field(default_factory=list)


class InstrumentUpdate(InputSchema):
    """Fields to change; ``test_map``, when given, replaces the whole map."""

    version: int = Field(description="The version you edited; a stale one is a 409")
    name: str | None = Field(None, min_length=1, max_length=100)
    driver: Driver | None = None
    transport: Transport | None = None
    host: str | None = Field(None, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    device: str | None = Field(None, max_length=255)
    baudrate: int | None = Field(None, ge=300, le=921600)
    branch_id: uuid.UUID | None = None
    enabled: bool | None = None
    settings: dict[str, Any] | None = None
    test_map: list[MapEntryIn] | None = None


class InstrumentOut(Schema):
    id: uuid.UUID
    organisation_id: uuid.UUID
    name: str
    driver: Driver
    transport: Transport
    host: str | None
    port: int | None
    device: str | None
    baudrate: int | None
    branch_id: uuid.UUID
    enabled: bool
    settings: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    test_map: list[MapEntryOut] = Field(default_factory=list)


class InstrumentStatusOut(Schema):
    instrument_id: uuid.UUID
    state: ConnectionState
    connected: bool | None = Field(
        description="Link heartbeat of this process; null when no link reported here"
    )
    last_message_at: datetime | None
    last_message_status: MessageStatus | None
    last_error: str | None = Field(
        description="Why the connection is down (e.g. the OS error of a listener that cannot "
        "start), else the error of the last message"
    )
    error_since: datetime | None = Field(
        description="Since when the connection could not start (null when it runs)"
    )
    next_retry_at: datetime | None = Field(
        description="When the connection that could not start is tried again"
    )
    messages_received: int
    messages_failed: int
    duplicates: int
    open_exceptions: int


class MessageOut(Schema):
    id: uuid.UUID
    instrument_id: uuid.UUID | None
    direction: Direction
    protocol: Protocol
    dedupe_key: str | None
    message_type: str | None
    raw: str
    received_at: datetime
    status: MessageStatus
    error: str | None
    duplicate_of_id: uuid.UUID | None
    links: dict[str, Any]


class ExceptionOut(Schema):
    id: uuid.UUID
    message_id: uuid.UUID
    instrument_id: uuid.UUID | None
    kind: ExceptionKind
    detail: str | None
    accession: str | None
    instrument_code: str | None
    value: str | None
    unit: str | None
    flags: str | None
    instrument_status: str | None
    completed_at: datetime | None
    sample_id: uuid.UUID | None
    test_id: uuid.UUID | None
    order_test_id: uuid.UUID | None
    status: ExceptionStatus
    resolution_note: str | None
    resolved_by_id: uuid.UUID | None
    resolved_by_label: str | None
    resolved_at: datetime | None
    result_id: uuid.UUID | None
    created_at: datetime


class ExceptionResolve(InputSchema):
    """Enter the value against an ordered test, or discard it; both need a note."""

    action: ResolutionAction
    note: MultilineText = Field(
        min_length=1, max_length=500, examples=["Relabelled tube; value entered"]
    )
    order_test_id: uuid.UUID | None = Field(None, description="Required to enter")
    value: str | None = Field(
        None, min_length=1, max_length=200, description="Defaults to the instrument's value"
    )
    unit: str | None = Field(None, max_length=32, description="Defaults to the instrument's")

    @model_validator(mode="after")
    def _enter_needs_test(self) -> ExceptionResolve:
        if self.action == ResolutionAction.ENTER and self.order_test_id is None:
            raise ValueError("order_test_id is required to enter the value")
        return self
