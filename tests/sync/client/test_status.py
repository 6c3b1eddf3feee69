"""Network state: OFFLINE / ONLINE / DEGRADED / AUTH_EXPIRED from heartbeats and syncs."""

from __future__ import annotations

from nidaan.sync.client.status import NetworkMonitor, NetworkState, Outcome


def test_starts_offline_and_a_good_heartbeat_is_a_reconnect() -> None:
    monitor = NetworkMonitor()
    assert monitor.state == NetworkState.OFFLINE
    assert monitor.heartbeat(ok=True, latency_s=0.1) is True
    assert monitor.state == NetworkState.ONLINE
    assert monitor.heartbeat(ok=True, latency_s=0.1) is False  # already online


def test_failures_and_slowness() -> None:
    monitor = NetworkMonitor(slow_heartbeat_s=2.0, slow_sync_s=10.0)
    monitor.sync(Outcome.OK, 1.0)
    assert monitor.state == NetworkState.ONLINE
    monitor.sync(Outcome.OK, 12.0)
    assert monitor.state == NetworkState.DEGRADED
    monitor.heartbeat(ok=True, latency_s=0.1)
    assert monitor.state == NetworkState.DEGRADED  # only a good sync clears an erroring server
    monitor.sync(Outcome.OK, 1.0)
    monitor.heartbeat(ok=True, latency_s=3.0)
    assert monitor.state == NetworkState.DEGRADED
    monitor.sync(Outcome.SERVER)
    assert monitor.state == NetworkState.DEGRADED
    monitor.heartbeat(ok=False)
    assert monitor.state == NetworkState.OFFLINE
    assert monitor.heartbeat(ok=True, latency_s=5.0) is True  # back, if slowly
    assert monitor.state == NetworkState.DEGRADED
    monitor.sync(Outcome.NETWORK)
    assert monitor.state == NetworkState.OFFLINE


def test_auth_expired_sticks_until_a_sync_succeeds() -> None:
    monitor = NetworkMonitor()
    monitor.sync(Outcome.AUTH)
    assert monitor.state == NetworkState.AUTH_EXPIRED
    assert monitor.heartbeat(ok=True, latency_s=0.1) is False
    assert monitor.state == NetworkState.AUTH_EXPIRED
    monitor.sync(Outcome.OK, 0.5)
    assert monitor.state == NetworkState.ONLINE
