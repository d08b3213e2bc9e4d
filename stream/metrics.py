"""Prometheus metrics of the stream worker (own registry, ``lsat_*`` names, base units).

>>> m = StreamMetrics()
>>> m.events.labels(status="ok").inc()
>>> m.consumer_lag.labels(topic="t", partition="0").set(lag_messages(end_offset=10, position=7))
>>> b"lsat_stream_events_total" in m.render()
True
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import MetricsHandler

if TYPE_CHECKING:
    from lsat.stream.pipeline import StepResult

__all__ = [
    "EVENT_STATUSES",
    "ITEM_STATUSES",
    "MetricsServer",
    "MetricsSource",
    "StreamMetrics",
    "lag_messages",
]

EVENT_STATUSES = ("ok", "dlq", "late", "duplicate")
"""Label values of ``lsat_stream_events_total{status=...}``."""
ITEM_STATUSES = ("ok", "dlq", "duplicate")
"""Label values of ``lsat_stream_catalogue_items_total{status=...}``."""


def lag_messages(end_offset: int | None, position: int | None) -> int:
    """Messages not yet consumed: log end offset minus the consumer position (never < 0).

    On tansu, ListOffsets "latest" under-reports the log end (last batch's base offset + 1),
    so the lag it gives is a lower bound; on real Kafka it is exact.

    >>> lag_messages(100, 40), lag_messages(5, 9), lag_messages(None, 3)
    (60, 0, 0)
    """
    if end_offset is None or position is None:
        return 0
    return max(0, end_offset - position)


class StreamMetrics:
    """Every metric the stream worker exports, registered in its own ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "lsat_stream_events",
            "Interaction messages handled, by outcome (ok, dlq, late, duplicate).",
            ["status"],
            registry=r,
        )
        self.dead_letters = Counter(
            "lsat_stream_dead_letters",
            "Messages sent to the dead-letter topic, by reason code.",
            ["reason"],
            registry=r,
        )
        self.samples_stored = Counter(
            "lsat_stream_samples_stored", "TALLRec samples written to the store.", registry=r
        )
        self.items = Counter(
            "lsat_stream_catalogue_items",
            "Catalogue item messages handled, by outcome (ok, dlq, duplicate).",
            ["status"],
            registry=r,
        )
        self.store_failures = Counter(
            "lsat_stream_store_failures",
            "Store failures (database down, locked, unreachable); the batch is retried.",
            registry=r,
        )
        self.partition_assignments = Counter(
            "lsat_stream_partition_assignments",
            "Partition assignments received (1 per rebalance; more than one means the worker "
            "rejoined its group).",
            registry=r,
        )
        self.window_fill = Gauge(
            "lsat_stream_window_fill_ratio",
            "Samples in the open window divided by its maximum size.",
            registry=r,
        )
        self.window_samples = Gauge(
            "lsat_stream_window_samples", "Samples in the open window.", registry=r
        )
        self.window_closures = Counter(
            "lsat_stream_window_closures", "Windows closed, by trigger.", ["trigger"], registry=r
        )
        self.retrain_requests = Counter(
            "lsat_stream_retrain_requests",
            "Retrain requests published, by trigger.",
            ["trigger"],
            registry=r,
        )
        self.drift_statistic = Gauge(
            "lsat_stream_drift_statistic",
            "Current statistic of each drift detector.",
            ["detector"],
            registry=r,
        )
        self.drift_detections = Counter(
            "lsat_stream_drift_detections",
            "Drift detections, by detector.",
            ["detector"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "lsat_stream_consumer_lag_messages",
            "Log end offset minus consumer position (a lower bound on tansu).",
            ["topic", "partition"],
            registry=r,
        )
        self.processing_seconds = Histogram(
            "lsat_stream_processing_seconds",
            "Time from receiving a message to its effects being applied.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.event_loop_lag = Histogram(
            "lsat_stream_event_loop_lag_seconds",
            "How late the worker's event loop woke from a 0.25 s sleep (a stall near the Kafka "
            "session timeout stops heartbeats).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        for status in EVENT_STATUSES:
            self.events.labels(status=status)
        for status in ITEM_STATUSES:
            self.items.labels(status=status)

    def export_steps(self, results: Sequence[StepResult]) -> None:
        """Metrics of a batch's stored events, one update per series (a label lookup per
        event cost more than the rest of the bookkeeping)."""
        late = samples = 0
        last: dict[str, dict[str, float | bool]] = {}
        detections: dict[str, int] = {}
        for result in results:
            late += result.late
            samples += result.sample is not None
            for closed in result.closed:
                self.window_closures.labels(trigger=closed.reason).inc()
            for name, snapshot in result.drift.items():
                last[name] = snapshot
                if snapshot["drift"]:
                    detections[name] = detections.get(name, 0) + 1
        if results:
            self.events.labels(status="ok").inc(len(results) - late)
        if late:
            self.events.labels(status="late").inc(late)
        if samples:
            self.samples_stored.inc(samples)
        for name, snapshot in last.items():
            self.drift_statistic.labels(detector=name).set(float(snapshot["statistic"]))
        for name, count in detections.items():
            self.drift_detections.labels(detector=name).inc(count)

    def render(self) -> bytes:
        """The text exposition of this registry."""
        return generate_latest(self.registry)


class MetricsSource(Protocol):
    """What :class:`MetricsServer` serves: metrics on their own ``registry`` (e.g. the stream's
    or the trainer's), renderable as text."""

    registry: CollectorRegistry

    def render(self) -> bytes: ...


class MetricsServer:
    """``/metrics`` over HTTP in a daemon thread, bound to 127.0.0.1 by default."""

    def __init__(self, metrics: MetricsSource, port: int, host: str = "127.0.0.1") -> None:
        handler = MetricsHandler.factory(metrics.registry)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
