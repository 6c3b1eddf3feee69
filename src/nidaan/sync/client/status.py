"""Network state from heartbeats and sync outcomes, and the status snapshot UIs show."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class NetworkState(enum.StrEnum):
    OFFLINE = "OFFLINE"  # the server cannot be reached (or has not been yet)
    ONLINE = "ONLINE"
    DEGRADED = "DEGRADED"  # reachable but slow, or answering with errors
    AUTH_EXPIRED = "AUTH_EXPIRED"  # a person must log in again


class Outcome(enum.StrEnum):
    OK = "ok"
    NETWORK = "network"
    SERVER = "server"
    AUTH = "auth"
    PERMANENT = "permanent"


@dataclass
class NetworkMonitor:
    """A small state machine; ``observe`` returns True when the line came back (a reconnect)."""

    slow_heartbeat_s: float = 2.0
    slow_sync_s: float = 15.0
    state: NetworkState = NetworkState.OFFLINE

    def heartbeat(self, ok: bool, latency_s: float = 0.0) -> bool:
        if not ok:
            return self._move(NetworkState.OFFLINE)
        if self.state == NetworkState.AUTH_EXPIRED:
            return False  # the server is there, but only a new login fixes this
        slow = latency_s > self.slow_heartbeat_s
        if self.state == NetworkState.DEGRADED and not slow:
            # A fast heartbeat does not clear an erroring server; the next good sync does.
            return False
        return self._move(NetworkState.DEGRADED if slow else NetworkState.ONLINE)

    def sync(self, outcome: Outcome, duration_s: float = 0.0) -> bool:
        if outcome == Outcome.OK:
            slow = duration_s > self.slow_sync_s
            return self._move(NetworkState.DEGRADED if slow else NetworkState.ONLINE)
        if outcome == Outcome.NETWORK:
            return self._move(NetworkState.OFFLINE)
        if outcome == Outcome.AUTH:
            return self._move(NetworkState.AUTH_EXPIRED)
        return self._move(NetworkState.DEGRADED)

    def _move(self, new: NetworkState) -> bool:
        reconnected = self.state == NetworkState.OFFLINE and new in (
            NetworkState.ONLINE,
            NetworkState.DEGRADED,
        )
        self.state = new
        return reconnected


@dataclass(frozen=True)
class StatusSnapshot:
    """What a UI or the agent's status line shows."""

    client_id: str
    network: NetworkState
    pending_ops: int
    failed_ops: int
    open_conflicts: int
    last_sync_at: str | None
    last_error: str | None
    next_attempt_in_s: float | None
    upgrade_required: bool
    clock_offset_ms: int

    def line(self) -> str:
        parts = [
            f"network={self.network}",
            f"pending={self.pending_ops}",
            f"failed={self.failed_ops}",
            f"conflicts={self.open_conflicts}",
            f"last_sync={self.last_sync_at or 'never'}",
        ]
        if self.next_attempt_in_s is not None:
            parts.append(f"retry_in={self.next_attempt_in_s:.0f}s")
        if self.upgrade_required:
            parts.append("UPGRADE REQUIRED")
        if self.last_error:
            parts.append(f"error={self.last_error}")
        return " ".join(parts)
