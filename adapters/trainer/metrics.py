"""Prometheus metrics of the trainer, on their own registry (serve with lsat.stream.metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lsat.adapters.trainer.dead_letters import DEAD_LETTER_REASONS

__all__ = ["TrainerMetrics"]


class TrainerMetrics:
    """``lsat_adapter_*``, ``lsat_window_*``, ``lsat_ensemble_alpha``, ``lsat_retrain_*``, drift.

    ``lsat_retrain_dead_lettered_total{reason}`` starts at 0 for every reason the trainer knows.

    >>> m = TrainerMetrics()
    >>> m.retrain_total.labels(trigger="full", outcome="promoted").inc()
    >>> b"lsat_retrain_total" in m.render()
    True
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.adapter_auc = Gauge(
            "lsat_adapter_auc",
            "AUC on the last window, scored before training on it",
            ["adapter"],
            registry=r,
        )
        self.adapter_logloss = Gauge(
            "lsat_adapter_logloss",
            "Logloss on the last window, scored before training on it",
            ["adapter"],
            registry=r,
        )
        self.window_auc = Gauge(
            "lsat_window_auc",
            "AUC on the last evaluated window, scored before training on it, per model: the "
            "adapters (long, short), their α ensemble (combined), the hybrid combiner, what the "
            "scorer serves as the combined score (served) and the non-LLM baselines "
            "(history_rate, item_rate, user_rate, rate_stack; baseline = the best of them "
            "available: the rate stack, else the history like-rate)",
            ["model"],
            registry=r,
        )
        self.window_logloss = Gauge(
            "lsat_window_logloss",
            "Logloss on the last evaluated window per model (see lsat_window_auc)",
            ["model"],
            registry=r,
        )
        self.ensemble_alpha = Gauge(
            "lsat_ensemble_alpha", "Weight of the long adapter in the serving ensemble", registry=r
        )
        self.merge_weight = Gauge(
            "lsat_merge_weight", "Long share of the serving merged adapter", registry=r
        )
        self.window_id = Gauge(
            "lsat_window_id",
            "Window last scored before training on it (the window the AUC/logloss gauges describe)",
            registry=r,
        )
        self.retrain_total = Counter(
            "lsat_retrain",
            "Retrain jobs by trigger and outcome (promoted, rejected, skipped, duplicate, ...; "
            "failed = one attempt raised: retried, or dead-lettered after the last attempt)",
            ["trigger", "outcome"],
            registry=r,
        )
        self.retrain_dead_lettered = Counter(
            "lsat_retrain_dead_lettered",
            "Retrain requests sent to adapter.retrain.dlq, by reason (unreadable record, or a job "
            "that failed every attempt); the trainer moved on to the next request",
            ["reason"],
            registry=r,
        )
        for reason in DEAD_LETTER_REASONS:  # at 0 from the start, so increase() sees the first
            self.retrain_dead_lettered.labels(reason=reason)
        self.retrain_duration = Histogram(
            "lsat_retrain_duration_seconds",
            "Wall time of one retrain job",
            registry=r,
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600),
        )
        self.active_version = Gauge(
            "lsat_active_adapter_version",
            "Registry version serving per kind",
            ["kind"],
            registry=r,
        )
        self.loss_drift = Gauge(
            "lsat_trainer_loss_drift_statistic",
            "Page-Hinkley statistic on per-sample losses of the serving combination",
            registry=r,
        )
        self.loss_drift_detections = Counter(
            "lsat_trainer_loss_drift_detections", "Sustained-loss drift detections", registry=r
        )

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)
