"""Prometheus gauges of the analyzer connections of this process, on the shared registry.

The same truth as ``/readyz`` and the instrument status page, for a monitoring system: a
connection that cannot start (its port is taken, its serial device is missing) is
``nidaan_interface_down 1`` with since when and the next retry, and
``nidaan_interfaces_down`` counts them, so one alert rule (``nidaan_interfaces_down > 0``)
catches every degraded interface. They are served with every other metric of the process
(``nidaan.observability.metrics``: ``GET /metrics`` on the API port or the metrics port of
the worker and of ``nidaan interfaces``).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from nidaan.integration.service import IntegrationService, integration_service
from nidaan.kit.metrics import REGISTRY

LABELS = ["instrument_id", "instrument"]


class InterfaceCollector(Collector):
    """Reads the link states at scrape time (nothing to keep in step)."""

    def __init__(self, service: IntegrationService) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily]:
        links = self.service.link_states()
        down_count = GaugeMetricFamily(
            "nidaan_interfaces_down",
            "Analyzer connections of this process that cannot start",
        )
        down = GaugeMetricFamily(
            "nidaan_interface_down",
            "1 while the analyzer connection cannot start (see /readyz for the error)",
            labels=LABELS,
        )
        since = GaugeMetricFamily(
            "nidaan_interface_down_since_timestamp_seconds",
            "When the connection first failed to start (Unix time)",
            labels=LABELS,
        )
        retry = GaugeMetricFamily(
            "nidaan_interface_next_retry_timestamp_seconds",
            "When the connection will be tried again (Unix time)",
            labels=LABELS,
        )
        connected = GaugeMetricFamily(
            "nidaan_interface_connected",
            "1 while the analyzer is connected to this process",
            labels=LABELS,
        )
        failing = 0
        for instrument_id, link in sorted(links.items(), key=lambda item: str(item[0])):
            labels = [str(instrument_id), link.name or ""]
            connected.add_metric(labels, 1.0 if link.connected else 0.0)
            down.add_metric(labels, 1.0 if link.error else 0.0)
            if link.error:
                failing += 1
                if link.since is not None:
                    since.add_metric(labels, link.since.timestamp())
                if link.next_retry_at is not None:
                    retry.add_metric(labels, link.next_retry_at.timestamp())
        down_count.add_metric([], float(failing))
        yield from (down_count, down, since, retry, connected)


_collector: InterfaceCollector | None = None


def register_interface_metrics() -> None:
    """Add the interface gauges to the process's registry (once)."""
    global _collector
    if _collector is None:
        _collector = InterfaceCollector(integration_service)
        REGISTRY.register(_collector)
