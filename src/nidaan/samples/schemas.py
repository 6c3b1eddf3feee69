"""Request and response shapes of the samples, manifests and worklists API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, computed_field, field_validator

from nidaan.kit.schemas import InputSchema, Schema
from nidaan.kit.text import MultilineText
from nidaan.samples import stability
from nidaan.samples.enums import ManifestStatus, RejectionReason, SampleCondition, SampleStatus

VERSION_DESCRIPTION = "The version you last saw; a stale one is a 409 version_conflict"


class _ColdChain(Schema):
    """Cold-chain time and the stability window of a tube: on every sample answer and on a
    manifest's samples, so the lab sees at hand-over and receipt which tubes are too old."""

    container: str = Field(examples=["edta_purple"])
    collected_at: datetime | None
    received_at: datetime | None
    test_stability_hours: int | None = Field(
        None, description="Strictest catalogue window of the tests in this tube, if any"
    )

    @computed_field(description="Cold-chain time: minutes from collection to receipt")
    def transit_minutes(self) -> int | None:
        spent = stability.transit(self.collected_at, self.received_at)
        return None if spent is None else int(spent.total_seconds() // 60)

    @computed_field(
        description="Hours this tube stays fit before testing: the container's default or "
        "a stricter window of one of its tests"
    )
    def stability_hours(self) -> int:
        return stability.stability_hours(self.container, self.test_stability_hours)

    @computed_field(
        description="Arrived after its stability window: flag for rejection (delayed_in_transit)"
    )
    def past_stability(self) -> bool:
        return stability.past_stability(
            self.container, self.collected_at, self.received_at, self.test_stability_hours
        )


class SampleOut(_ColdChain):
    id: uuid.UUID
    accession: str = Field(examples=["CC1-20250314-0007"])
    order_id: uuid.UUID
    branch_id: uuid.UUID = Field(description="Branch where the order was placed")
    specimen_type: str = Field(examples=["whole_blood"])
    container: str = Field(examples=["edta_purple"])
    status: SampleStatus
    collected_at: datetime | None
    collected_by_id: uuid.UUID | None
    collected_at_branch_id: uuid.UUID | None
    manifest_id: uuid.UUID | None
    received_at: datetime | None
    received_by_id: uuid.UUID | None
    received_at_branch_id: uuid.UUID | None = Field(description="The lab that received it")
    receipt_condition: list[SampleCondition] = Field(
        description="Condition noted at receipt (printed on the report)"
    )
    receipt_remarks: str | None
    completed_at: datetime | None
    rejected_at: datetime | None
    rejection_reason: RejectionReason | None
    rejection_note: str | None
    recollection_id: uuid.UUID | None = Field(description="Sample ordered to replace this one")
    label_alias: str | None = Field(None, description="Pre-printed barcode label bound to it")
    version: int
    created_at: datetime

    @field_validator("receipt_condition", mode="before")
    @classmethod
    def _no_condition_is_empty(cls, value: object) -> object:
        return [] if value is None else value

    @computed_field(description="Barcode label of this sample (PDF)")  # type: ignore[prop-decorator]
    @property
    def label_url(self) -> str:
        return f"/api/v1/samples/{self.accession}/label"


class CollectRequest(InputSchema):
    branch_id: uuid.UUID | None = Field(
        None, description="Where it was collected; default: the order's branch"
    )
    collected_at: datetime | None = Field(None, description="Default: now")
    version: int | None = Field(None, description=VERSION_DESCRIPTION)


class ReceiveRequest(InputSchema):
    branch_id: uuid.UUID | None = Field(
        None,
        description="Receiving central lab; default: the manifest's destination, or the lab "
        "where it was collected",
    )
    condition: list[SampleCondition] = Field(
        default_factory=list,
        description="What the sample looked like on arrival, if not normal; printed on the report",
        examples=[["haemolysed"]],
    )
    remarks: str | None = Field(
        None, max_length=500, description="Remarks at receipt, printed on the report"
    )
    version: int | None = Field(None, description=VERSION_DESCRIPTION)


class RejectRequest(InputSchema):
    reason: RejectionReason
    note: MultilineText | None = Field(
        None, max_length=500, description="Required when reason is other"
    )
    version: int | None = Field(None, description=VERSION_DESCRIPTION)


class ManifestCreate(InputSchema):
    id: uuid.UUID | None = Field(None, description="Client-made UUIDv7 (offline clients)")
    from_branch_id: uuid.UUID = Field(description="Collection centre sending the samples")
    to_branch_id: uuid.UUID = Field(description="Central lab receiving them")
    courier: str | None = Field(None, max_length=200)
    accessions: list[str] = Field(
        min_length=1, max_length=500, description="Accessions of collected samples"
    )


class DispatchRequest(InputSchema):
    courier: str | None = Field(None, max_length=200)
    version: int | None = Field(None, description=VERSION_DESCRIPTION)


class ManifestSampleOut(_ColdChain):
    id: uuid.UUID
    accession: str
    specimen_type: str
    status: SampleStatus


class ManifestOut(Schema):
    id: uuid.UUID
    manifest_number: str = Field(examples=["MF-CC1-20250314-01"])
    from_branch_id: uuid.UUID
    to_branch_id: uuid.UUID
    status: ManifestStatus
    courier: str | None
    dispatched_at: datetime | None
    dispatched_by_id: uuid.UUID | None
    received_at: datetime | None
    version: int
    created_at: datetime
    samples: list[ManifestSampleOut]
