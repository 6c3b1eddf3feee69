"""Pure rules: how delivery statuses combine, which provider errors are retried or fall back,
and the backoff between attempts."""

from __future__ import annotations

from dataclasses import dataclass

from nidaan.notifications.enums import NotificationStatus

S = NotificationStatus

#: Statuses arrive out of order and more than once; a notification's status is the highest
#: rank it has ever reached. ``failed`` ranks below ``delivered``: on multi-device accounts a
#: failure can follow a delivery, and the message did reach the person.
RANK: dict[NotificationStatus, int] = {
    S.SKIPPED: 0,
    S.PENDING: 1,
    S.SENDING: 2,
    S.UNCERTAIN: 3,
    S.SENT: 4,
    S.FAILED: 5,
    S.DELIVERED: 6,
    S.READ: 7,
}

#: Statuses a provider (webhook or delivery report) can tell us.
PROVIDER_STATUSES = frozenset({S.SENT, S.DELIVERED, S.READ, S.FAILED})


def combined(current: NotificationStatus, incoming: NotificationStatus) -> NotificationStatus:
    """The status after ``incoming`` arrives: never moves backwards (read stays read)."""
    return incoming if RANK[incoming] > RANK[current] else current


#: WhatsApp Cloud API error codes (Meta's error reference; pywa's errors.py maps them).
#: Retried with backoff: the request was not taken (throughput, pair rate, outages).
RETRYABLE_CODES = frozenset(
    {"130429", "131056", "131057", "131000", "131016", "4", "80007", "2", "1"}
)
#: Not delivered on this channel: another channel may still reach the person.
FALLBACK_CODES = frozenset(
    {
        "131047",  # more than 24 h since the person last wrote: free-form not allowed
        "131026",  # undeliverable (not on WhatsApp, old app, blocked)
        "131049",  # per-user marketing cap ("healthy ecosystem")
        "131050",  # the person stopped marketing messages
        "131051",  # unsupported message type
        "131021",  # recipient cannot be sender
    }
)
#: Our templates or account are wrong: fix the configuration (still falls back).
CONFIGURATION_CODES = frozenset(
    {"132000", "132001", "132005", "132007", "132012", "132015", "132016", "132018"}
)
AUTH_CODES = frozenset({"0", "190", "10"})


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with a cap: 4, 16, 64, 256 s ... (BSPs suggest 4^n for 131056)."""

    base: float = 4.0
    factor: float = 4.0
    cap: float = 3600.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        wait = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        return max(wait, retry_after or 0.0)


#: Attempts before a retryable error is given up as failed.
MAX_ATTEMPTS = 6


def is_auth_error(code: str | None) -> bool:
    return code is not None and (code in AUTH_CODES or (code.isdigit() and 200 <= int(code) < 300))
