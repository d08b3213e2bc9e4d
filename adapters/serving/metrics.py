"""Prometheus metrics of the scorer (own registry, ``lsat_*`` names, base units).

>>> m = ServingMetrics()
>>> m.requests.labels(endpoint="/score", status="200").inc()
>>> m.active_version.labels(kind="short").set(3)
>>> b'lsat_scoring_requests_total{endpoint="/score",status="200"} 1.0' in m.render()
True
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServingMetrics"]

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SWAP_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class ServingMetrics:
    """Every metric the scorer exports, registered in its own ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "lsat_scoring_latency_seconds",
            "Time to answer a scoring request, by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.requests = Counter(
            "lsat_scoring_requests",
            "HTTP requests answered, by endpoint and status code.",
            ["endpoint", "status"],
            registry=r,
        )
        self.swap_latency = Histogram(
            "lsat_hot_swap_latency_seconds",
            "From a serving set's publication (published_s) to it serving requests.",
            buckets=_SWAP_BUCKETS_S,
            registry=r,
        )
        self.swaps = Counter(
            "lsat_hot_swaps",
            "Serving-set swaps, by outcome (ok, refused, same).",
            ["outcome"],
            registry=r,
        )
        self.active_version = Gauge(
            "lsat_active_adapter_version",
            "Registry version of the adapter serving now, by kind (0 = none).",
            ["kind"],
            registry=r,
        )
        self.alpha = Gauge(
            "lsat_ensemble_alpha", "Weight of the long adapter in the served ensemble.", registry=r
        )
        self.rejected = Counter(
            "lsat_scoring_rejected",
            "Scoring requests refused with 503 before reaching the model, by reason: the "
            "server's admission limit (admission_full, admission_timeout) or the model's "
            "batching queue (queue_full, queue_timeout, closed).",
            ["reason"],
            registry=r,
        )
        self.in_flight = Gauge(
            "lsat_scoring_in_flight",
            "Scoring requests admitted and not yet answered (running or queued).",
            registry=r,
        )
        self.deferred_frees = Counter(
            "lsat_hot_swap_deferred_frees",
            "Retired adapters kept after a swap because a request was still using them.",
            registry=r,
        )
        self.pending_frees = Gauge(
            "lsat_hot_swap_pending_frees",
            "Retired adapters waiting for their last request before they are freed.",
            registry=r,
        )
        self.consumer_up = Gauge(
            "lsat_versions_consumer_up",
            "1 while the adapter.versions consumer thread runs "
            "(0: stopped, dead or not consuming).",
            registry=r,
        )

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
