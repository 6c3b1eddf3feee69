"""Request and response shapes of the orders API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, computed_field

from nidaan.kit.schemas import InputSchema, Schema
from nidaan.kit.text import MultilineText
from nidaan.orders.enums import OrderStatus, OrderTestStatus, Priority
from nidaan.samples.enums import RejectionReason, SampleStatus
from nidaan.samples.schemas import SampleOut

VERSION_DESCRIPTION = "The version you last saw; a stale one is a 409 version_conflict"


class OrderCreate(InputSchema):
    id: uuid.UUID | None = Field(None, description="Client-made UUIDv7 (offline clients)")
    patient_id: uuid.UUID
    branch_id: uuid.UUID = Field(description="Where the order is placed (and samples drawn)")
    items: list[str] = Field(
        min_length=1,
        max_length=100,
        description="Tests and panels to perform, by id or code",
        examples=[["CBC", "GLU-F", "LFT"]],
    )
    priority: Priority = Priority.ROUTINE
    referring_doctor: str | None = Field(
        None, max_length=200, description="Default: the patient's referring doctor"
    )
    clinical_notes: MultilineText | None = Field(None, max_length=2000)


class AddTests(InputSchema):
    items: list[str] = Field(min_length=1, max_length=100, description="Test/panel ids or codes")
    version: int | None = Field(None, description=VERSION_DESCRIPTION + " (of the order)")


class CancelTest(InputSchema):
    reason: MultilineText = Field(min_length=1, max_length=300)
    version: int | None = Field(None, description=VERSION_DESCRIPTION + " (of the order test)")


class RejectSample(InputSchema):
    reason: RejectionReason
    note: MultilineText | None = Field(
        None, max_length=500, description="Required when reason is other"
    )
    version: int | None = Field(None, description=VERSION_DESCRIPTION + " (of the sample)")


class OrderTestOut(Schema):
    id: uuid.UUID
    test_id: uuid.UUID
    code: str = Field(examples=["HB"])
    name: str = Field(examples=["Haemoglobin"])
    department: str
    panel_id: uuid.UUID | None = Field(description="Panel that brought this test in")
    sample_id: uuid.UUID | None
    accession: str | None = Field(description="Accession of the tube it is done on")
    status: OrderTestStatus
    cancelled_at: datetime | None
    cancel_reason: str | None
    version: int


class OrderSampleOut(Schema):
    id: uuid.UUID
    accession: str = Field(examples=["CC1-20250314-0007"])
    specimen_type: str
    container: str
    status: SampleStatus
    recollection_id: uuid.UUID | None
    tests: list[str] = Field(description="Codes of the tests (not cancelled) done on this tube")
    version: int

    @computed_field(description="Barcode label of this sample (PDF)")  # type: ignore[prop-decorator]
    @property
    def label_url(self) -> str:
        return f"/api/v1/samples/{self.accession}/label"


class OrderSummaryOut(Schema):
    id: uuid.UUID
    order_number: str = Field(examples=["ORD-20250314-0042"])
    patient_id: uuid.UUID
    branch_id: uuid.UUID
    priority: Priority
    status: OrderStatus
    referring_doctor: str | None
    created_at: datetime
    completed_at: datetime | None
    version: int


class OrderOut(OrderSummaryOut):
    clinical_notes: str | None
    created_by_id: uuid.UUID | None
    tests: list[OrderTestOut]
    samples: list[OrderSampleOut]

    @computed_field(description="Every label of the order (PDF)")  # type: ignore[prop-decorator]
    @property
    def labels_url(self) -> str:
        return f"/api/v1/orders/{self.id}/labels"


class SampleRejectedOut(Schema):
    rejected: SampleOut
    recollection: SampleOut | None = Field(
        description="New sample ordered for the same tests (none if all were cancelled)"
    )
