"""How a sync attempt can fail; the scheduler decides what to do from the class alone."""

from __future__ import annotations


class SyncError(Exception):
    """Base class of every error the reference client raises."""


class RetryableError(SyncError):
    """Try again later with backoff: the line, a timeout, a 5xx or a batch the server cut short."""


class NetworkError(RetryableError):
    """The server could not be reached at all (the network state becomes OFFLINE)."""


class ServerError(RetryableError):
    """The server answered, but with a transient failure (5xx, 429, an internal GraphQL error)."""


class AuthExpired(SyncError):
    """The token was refused and neither refresh nor a new login worked: a person must act."""


class PermanentError(SyncError):
    """The server refused the request itself (bad input, forbidden); retrying will not help."""


class UpgradeRequired(SyncError):
    """The server does not accept this client's protocol or schema version any more."""
