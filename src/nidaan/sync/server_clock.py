"""The server's hybrid logical clock (one per process; its node name is ``server``)."""

from __future__ import annotations

from nidaan.sync.hlc import Clock

server_clock = Clock("server")
