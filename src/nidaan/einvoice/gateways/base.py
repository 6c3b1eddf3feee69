"""The IRP port: what the e-invoice service needs from an Invoice Registration Portal, as a
narrow ``Protocol`` with frozen DTOs. ``nic.NicIrp`` is the one adapter (NIC's direct API, the
same format GSPs relay); tests and the demo point it at ``nidaan.simulators.irp``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class IrpCredentials:
    """One GSTIN's API user at the IRP (the client id/secret belong to the installation)."""

    gstin: str
    username: str
    password: str


@dataclass(frozen=True)
class IrnRecord:
    """What the IRP returns for a generated (or looked-up) IRN."""

    irn: str
    ack_no: str
    ack_at: datetime  # aware; the IRP writes AckDt in IST
    ack_date_text: str  # AckDt exactly as sent ("yyyy-MM-dd HH:mm:ss")
    signed_invoice: str
    signed_qr_code: str
    status: str  # ACT | CNL
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cancelled:
    irn: str
    cancelled_at: datetime


@dataclass(frozen=True)
class Exchange:
    """One call as it happened (decrypted payloads, never credentials), for the log."""

    operation: str
    request: dict[str, Any] | None
    response: dict[str, Any] | None
    http_status: int | None
    error_codes: list[str]


class IrpError(Exception):
    """Base of what the adapter raises."""

    def __init__(self, message: str, exchanges: list[Exchange] | None = None) -> None:
        super().__init__(message)
        self.exchanges = exchanges or []


class IrpUnavailable(IrpError):
    """Network error, timeout, 5xx or throttling after our retries: try again later (the
    IRP may or may not have acted; the duplicate-IRN answer settles that on the retry)."""


class IrpRejected(IrpError):
    """The IRP refused the call with its error codes (a permanent answer for this payload)."""

    def __init__(
        self,
        message: str,
        codes: list[str],
        info: list[dict[str, Any]] | None = None,
        exchanges: list[Exchange] | None = None,
    ) -> None:
        super().__init__(message, exchanges)
        self.codes = codes
        self.info = info or []


class IrpDuplicate(IrpRejected):
    """Error 2150: an IRN already exists for this document (``existing_irn`` from DUPIRN)."""

    def __init__(self, message: str, existing_irn: str | None, **kwargs: Any) -> None:
        super().__init__(message, ["2150"], **kwargs)
        self.existing_irn = existing_irn


class IrpAuthFailed(IrpRejected):
    """The IRP refused our credentials (client id/secret, username/password or key)."""


class IrpNotConfigured(IrpError):
    """No IRP URL, client credentials or public key for this installation."""


class IrpPort(Protocol):
    async def generate(self, credentials: IrpCredentials, payload: dict[str, Any]) -> IrnRecord:
        """Generate IRN (raises ``IrpDuplicate`` when one exists for the document)."""

    async def get_by_irn(self, credentials: IrpCredentials, irn: str) -> IrnRecord: ...

    async def get_by_document(
        self, credentials: IrpCredentials, doc_type: str, doc_no: str, doc_date: str
    ) -> IrnRecord: ...

    async def cancel(
        self, credentials: IrpCredentials, irn: str, reason: str, remark: str
    ) -> Cancelled: ...

    def verify_signed(self, token: str) -> dict[str, Any]:
        """Check a JWT the IRP signed (RS256) and return its ``data`` claim, parsed."""

    def take_exchanges(self) -> list[Exchange]:
        """The calls made since the last take (for the exchange log)."""
