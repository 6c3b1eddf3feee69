"""Synced entities; importing this package registers every handler."""

from nidaan.sync.entities import (  # noqa: F401
    appointments,
    conflicts,
    orders,
    patients,
    payments,
    results,
    samples,
)
