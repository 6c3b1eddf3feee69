"""The reference sync client: a local SQLite copy, an outbox, and push/pull against /graphql.

Follows docs/sync.md. Typical use::

    store = LocalStore("cc1.sqlite")
    transport = Transport("https://lab.example.com", email=..., password=...)
    client = SyncClient(store, transport, branch_id=...)
    client.update("patient", patient_id, {"mobile": "98..."})
    report = await client.sync()
"""

from nidaan.sync.client.backoff import Backoff
from nidaan.sync.client.engine import SyncClient, SyncReport
from nidaan.sync.client.errors import (
    AuthExpired,
    NetworkError,
    PermanentError,
    RetryableError,
    ServerError,
    SyncError,
    UpgradeRequired,
)
from nidaan.sync.client.model import LocalOp, Operation, OpResult, OpStatus, OutboxOp, Row
from nidaan.sync.client.scheduler import SyncScheduler
from nidaan.sync.client.status import NetworkMonitor, NetworkState, StatusSnapshot
from nidaan.sync.client.store import LocalStore
from nidaan.sync.client.transport import Transport

__all__ = [
    "AuthExpired",
    "Backoff",
    "LocalOp",
    "LocalStore",
    "NetworkError",
    "NetworkMonitor",
    "NetworkState",
    "OpResult",
    "OpStatus",
    "Operation",
    "OutboxOp",
    "PermanentError",
    "RetryableError",
    "Row",
    "ServerError",
    "StatusSnapshot",
    "SyncClient",
    "SyncError",
    "SyncReport",
    "SyncScheduler",
    "Transport",
    "UpgradeRequired",
]
