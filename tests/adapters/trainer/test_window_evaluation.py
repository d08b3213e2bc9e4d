"""The window evaluation's scorer list: extra scorers (a baseline, a combiner of earlier outputs)
are recorded like the adapters; registry rows only for registered versions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from trainer_helpers import toy_samples

from lsat.adapters.lifecycle.registry import AdapterVersion, open_registry
from lsat.adapters.trainer.helpers import ServingNow
from lsat.adapters.trainer.metrics import TrainerMetrics
from lsat.adapters.trainer.window_evaluation import (
    Scored,
    WindowEvaluator,
    per_sample_losses,
)
from lsat.core.evaluation import auc, logloss
from lsat.data.types import Sample

NOTHING_SERVES = ServingNow(None, None, None)


def history_rate(
    window_id: int, samples: Sequence[Sample], now: ServingNow, earlier: Mapping[str, Scored]
):
    """A non-LLM baseline: the share of liked items in the user's history (smoothed)."""
    rates = [(sum(s.history_labels) + 1) / (len(s.history_labels) + 2) for s in samples]
    return {"history_rate": Scored(np.array(rates))}


class Registered:
    """Stands for an adapter scorer: fixed probabilities under a registered version."""

    def __init__(self, version: AdapterVersion, probs: np.ndarray) -> None:
        self.version, self.probs = version, probs

    def __call__(
        self,
        window_id: int,
        samples: Sequence[Sample],
        now: ServingNow,
        earlier: Mapping[str, Scored],
    ):
        return {"short": Scored(self.probs, self.version)}


class Mean:
    """A combiner placed last: the mean of every earlier output."""

    def __init__(self) -> None:
        self.saw: set[str] = set()

    def __call__(
        self,
        window_id: int,
        samples: Sequence[Sample],
        now: ServingNow,
        earlier: Mapping[str, Scored],
    ):
        self.saw = set(earlier)
        return {"hybrid": Scored(np.mean([s.probs for s in earlier.values()], axis=0))}


def test_every_scorer_is_recorded_and_the_combiner_sees_the_earlier_ones(
    sqlite_url: str,
) -> None:
    samples = toy_samples(40, seed=3)
    labels = np.array([s.label for s in samples])
    probs = np.linspace(0.1, 0.9, len(samples))
    metrics = TrainerMetrics()
    with open_registry(sqlite_url) as registry:
        short = registry.register("short", path="/a/s1", sha256="b" * 64, window_id=1)
        combiner = Mean()
        evaluator = WindowEvaluator(
            registry,
            metrics,
            [Registered(short, probs), history_rate, combiner],
            loss_from=("hybrid", "short"),
        )
        result = evaluator.evaluate(7, samples, NOTHING_SERVES)
        assert combiner.saw == {"short", "history_rate"}
        assert set(result.metrics) == {"short", "history_rate", "hybrid"}
        baseline = history_rate(7, samples, NOTHING_SERVES, {})["history_rate"].probs
        hybrid = (probs + baseline) / 2
        assert np.isclose(result.metrics["hybrid"]["auc"], auc(labels, hybrid))
        assert np.isclose(result.metrics["short"]["logloss"], logloss(labels, probs))
        assert result.losses == per_sample_losses(labels, hybrid)
        rows = registry.evaluations(window_id=7)
        assert [(e.kind, e.version, e.n) for e in rows] == [("short", 1, len(samples))]
    text = metrics.render().decode()
    assert "lsat_window_id 7.0" in text
    for name in ("short", "history_rate", "hybrid"):
        assert f'lsat_adapter_auc{{adapter="{name}"}}' in text


def test_nothing_scored_records_nothing(sqlite_url: str) -> None:
    metrics = TrainerMetrics()
    with open_registry(sqlite_url) as registry:
        evaluator = WindowEvaluator(registry, metrics, [lambda window, samples, now, earlier: {}])
        result = evaluator.evaluate(3, toy_samples(10, seed=1), NOTHING_SERVES)
        assert (result.metrics, result.losses) == ({}, None)
        assert registry.evaluations() == []
    assert "lsat_window_id 0.0" in metrics.render().decode()
