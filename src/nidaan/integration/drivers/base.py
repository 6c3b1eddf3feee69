"""Analyzer drivers: vendor dialects of ASTM and HL7 turned into ``InstrumentMessage``.

A driver is pure (no I/O, no database). The runtime gives it what the transport received
(record strings for ASTM, the message text for HL7); the driver parses it, says what kind of
message it is, lists the results (accession, the instrument's own test code with vendor
decoration removed, value, unit, flags, status, time) and builds the replies the host sends:
the answer to a host query and an order download.

Drivers are found by the instrument's ``driver`` column (:class:`nidaan.integration.enums.Driver`)
through :func:`get_driver`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from nidaan.integration.domain import InstrumentMessage


@dataclass(frozen=True)
class OrderLine:
    """One ordered test as the analyzer knows it (its code from the instrument's test map)."""

    instrument_code: str
    name: str = ""
    priority: str = "R"  # ASTM O-6 / HL7 priority: R routine, S stat


class Driver(Protocol):
    """What the runtime needs from a vendor adapter."""

    name: str
    protocol: Literal["hl7", "astm"]
    #: Whether the LIS may push orders to it unasked (batch mode); hospitals never.
    accepts_order_downloads: bool

    def parse(self, raw: str | Sequence[str]) -> Any:
        """Parse what the transport received; raises on garbage."""
        ...

    def to_instrument_message(self, parsed: Any, raw: str) -> InstrumentMessage:
        """The results of a parsed message (empty for queries)."""
        ...

    def queries(self, parsed: Any) -> list[str]:
        """The sample ids a host query asks about (empty for result uploads)."""
        ...

    def answer_query(
        self, sample_id: str, orders: Sequence[OrderLine] | None, parsed: Any = None
    ) -> Any:
        """The host-query reply: the orders for ``sample_id``; ``None`` = unknown sample,
        empty = nothing to do for this analyzer ("no order")."""
        ...

    def order_download(self, sample_id: str, orders: Sequence[OrderLine]) -> Any:
        """An unsolicited order download (host -> analyzer)."""
        ...


def content_hash(lines: Sequence[str]) -> str:
    """Dedupe key of a message without a control id: a hash of its records."""
    digest = hashlib.sha256("\r".join(line.rstrip("\r\n") for line in lines).encode("utf-8"))
    return "sha256:" + digest.hexdigest()[:48]


def parse_astm_ts(text: str) -> datetime | None:
    """ASTM date/time ``YYYYMMDD[HHMM[SS]]`` (naive; the analyzer's local clock)."""
    text = (text or "").strip()
    for fmt, size in (("%Y%m%d%H%M%S", 14), ("%Y%m%d%H%M", 12), ("%Y%m%d", 8)):
        if len(text) >= size and text[:size].isdigit():
            try:
                return datetime.strptime(text[:size], fmt)
            except ValueError:
                return None
    return None


_REGISTRY: dict[str, Driver] = {}


def register(driver: Driver) -> Driver:
    _REGISTRY[driver.name] = driver
    return driver


def get_driver(name: str) -> Driver:
    """The driver for an instrument's ``driver`` value (``generic-astm``, ``roche-cobas``...)."""
    from nidaan.integration.drivers import load_all

    load_all()
    try:
        return _REGISTRY[str(name)]
    except KeyError:
        raise LookupError(f"no driver named {name!r}; known: {sorted(_REGISTRY)}") from None


def driver_names() -> list[str]:
    from nidaan.integration.drivers import load_all

    load_all()
    return sorted(_REGISTRY)
