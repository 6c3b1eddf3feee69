"""Who may connect to an analyzer listener, how many at once, and for how long idle.

An instrument's ``settings`` carry its policy (checked when the instrument is saved and
applied by every TCP listener, ASTM and HL7 alike):

- ``allowed_peers``: the analyzer's address(es), e.g. ``["192.168.1.50"]`` or a small network
  ``["10.0.5.0/29"]`` (a terminal server pool). Anyone else is disconnected at once. Empty
  or absent: any address may connect (a warning is logged at start).
- ``max_connections``: connections open at once (default 2: the analyzer and its reconnect
  while a half-open old connection times out); one more is refused.
- ``idle_timeout_s``: seconds without a byte from the peer before the connection is closed
  (default 900; ``0`` keeps idle connections open forever). Analyzers reconnect by
  themselves; a forgotten or hostile connection does not hold a slot for ever.

Listening on ports below 1024 (privileged) is refused: Nidaan never runs as root to bind
them, and a typo such as port 80 should not collide with a web server.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ALLOWED_PEERS_SETTING = "allowed_peers"
MAX_CONNECTIONS_SETTING = "max_connections"
IDLE_TIMEOUT_SETTING = "idle_timeout_s"
DEFAULT_MAX_CONNECTIONS = 2
DEFAULT_IDLE_TIMEOUT_S = 900.0
#: Largest connection limit an instrument may set (a listener is for one analyzer).
MAX_CONNECTIONS_LIMIT = 16
#: Lowest port a listener may bind (below it ports are privileged).
LOWEST_LISTEN_PORT = 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(value: Any) -> tuple[tuple[Network, ...], list[str]]:
    if value is None:
        return (), []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return (), [f"{ALLOWED_PEERS_SETTING} must be a list of IP addresses or networks"]
    networks: list[Network] = []
    problems = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            problems.append(f"{ALLOWED_PEERS_SETTING}: {item!r} is not an IP address or network")
    return tuple(networks), problems


def settings_problems(settings: Mapping[str, Any]) -> list[str]:
    """What is wrong with the listener keys of an instrument's ``settings`` (empty: valid)."""
    _, problems = _networks(settings.get(ALLOWED_PEERS_SETTING))
    limit = settings.get(MAX_CONNECTIONS_SETTING)
    if limit is not None and (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 1 <= limit <= MAX_CONNECTIONS_LIMIT
    ):
        problems.append(
            f"{MAX_CONNECTIONS_SETTING} must be a whole number 1-{MAX_CONNECTIONS_LIMIT}"
        )
    idle = settings.get(IDLE_TIMEOUT_SETTING)
    if idle is not None and (
        isinstance(idle, bool) or not isinstance(idle, int | float) or not 0 <= idle <= 86400
    ):
        problems.append(f"{IDLE_TIMEOUT_SETTING} must be seconds, 0-86400 (0: never)")
    return problems


def port_problem(port: int | None) -> str | None:
    """Why a listener may not bind ``port`` (None: it may; 0 picks a free port)."""
    if port is not None and 0 < port < LOWEST_LISTEN_PORT:
        return f"port {port} is privileged; analyzer listeners use ports {LOWEST_LISTEN_PORT}-65535"
    return None


@dataclass(frozen=True)
class ListenerPolicy:
    allowed_peers: tuple[Network, ...] = ()
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> ListenerPolicy:
        """The policy of an instrument's settings (invalid keys fall back to the defaults;
        the API refuses to store them)."""
        networks, _ = _networks(settings.get(ALLOWED_PEERS_SETTING))
        limit = settings.get(MAX_CONNECTIONS_SETTING)
        idle = settings.get(IDLE_TIMEOUT_SETTING)
        return cls(
            allowed_peers=networks,
            max_connections=limit
            if isinstance(limit, int) and 1 <= limit <= MAX_CONNECTIONS_LIMIT
            else DEFAULT_MAX_CONNECTIONS,
            idle_timeout_s=(float(idle) or None)
            if isinstance(idle, int | float) and not isinstance(idle, bool) and idle >= 0
            else DEFAULT_IDLE_TIMEOUT_S,
        )

    def allows(self, host: str | None) -> bool:
        """Whether ``host`` (a peer address) is one of the allowed peers."""
        if not self.allowed_peers:
            return True
        try:
            address = ipaddress.ip_address((host or "").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allowed_peers)

    def refusal(self, peer: Any, open_now: int) -> str | None:
        """Why a new connection from ``peer`` (a ``peername``) is refused, or None."""
        host = peer[0] if isinstance(peer, tuple) and peer else None
        if not self.allows(host):
            return f"{host} is not an allowed peer of this instrument"
        if open_now >= self.max_connections:
            return f"already {open_now} connection(s) open (limit {self.max_connections})"
        return None


class IdleTimeoutReader:
    """A stream reader whose reads end the connection after ``idle_timeout_s`` of silence
    (as a lost connection, which the ASTM link already handles)."""

    def __init__(self, reader: asyncio.StreamReader, idle_timeout_s: float) -> None:
        self._reader = reader
        self._idle = idle_timeout_s

    async def read(self, n: int = -1) -> bytes:
        try:
            async with asyncio.timeout(self._idle):
                return await self._reader.read(n)
        except TimeoutError:
            raise ConnectionResetError(f"idle for {self._idle:g} s") from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)
