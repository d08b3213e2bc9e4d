"""Test-then-train: score a window with what serves now, before any training on it.

A :class:`WindowEvaluator` asks each of its *scorers*, in order, for named probability vectors
on the window (the default :class:`ServingAdapters` gives ``long``, ``short`` and ``combined``;
other scorers, e.g. non-LLM baselines or a combiner of the earlier scorers' outputs, add their
own names), records every name's AUC and logloss (Prometheus gauges ``lsat_window_auc{model}``
and ``lsat_adapter_auc{adapter}``; registry rows for names that come from a registered version;
with a ``log``, the window's per-sample out-of-sample rows and every name's metrics) and
returns the per-sample losses of the first name in ``loss_from`` that was scored, for the
loss-drift detector.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore
from lsat.adapters.model.combine import ensemble
from lsat.adapters.trainer.guard import metric_or_none
from lsat.adapters.trainer.helpers import ServingNow
from lsat.adapters.trainer.metrics import TrainerMetrics
from lsat.adapters.trainer.oos_rows import WindowRowsLog
from lsat.adapters.trainer.pool import AdapterPool
from lsat.core.evaluation import auc, logloss
from lsat.data.types import Sample

__all__ = [
    "Scored",
    "ServingAdapters",
    "WindowEvaluation",
    "WindowEvaluator",
    "WindowScorer",
    "per_sample_losses",
]


@dataclass(frozen=True)
class Scored:
    """P(like) for every sample of a window; ``version`` when a registered adapter gave them."""

    probs: np.ndarray
    version: AdapterVersion | None = None


class WindowScorer(Protocol):
    """Scores window ``window_id`` before training on it: ``{name: Scored}`` (empty when it
    cannot).

    ``earlier`` holds what the scorers before it in the evaluator's list produced, so a
    combiner (e.g. a learned stack of the adapters' and baselines' outputs) can come last.
    """

    def __call__(
        self,
        window_id: int,
        samples: Sequence[Sample],
        now: ServingNow,
        earlier: Mapping[str, Scored],
    ) -> Mapping[str, Scored]: ...


@dataclass(frozen=True)
class WindowEvaluation:
    """AUC / logloss per scored name; ``losses`` is ``None`` when nothing was scored;
    ``probs``: every scored name's P(like) per sample."""

    metrics: dict[str, dict[str, float]]
    losses: list[float] | None
    probs: dict[str, np.ndarray] = field(default_factory=dict)


def per_sample_losses(labels: np.ndarray, probs: np.ndarray) -> list[float]:
    """Binary cross-entropy of each sample (probabilities clipped to ``[1e-7, 1 − 1e-7]``).

    >>> [round(x, 4) for x in per_sample_losses(np.array([1, 0]), np.array([0.5, 0.0]))]
    [0.6931, 0.0]
    """
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    return [float(-math.log(p if y == 1 else 1 - p)) for y, p in zip(labels, clipped, strict=True)]


class ServingAdapters:
    """The serving long and short adapters, and their ensemble at the serving α."""

    def __init__(self, pool: AdapterPool) -> None:
        self.pool = pool

    def __call__(
        self,
        window_id: int,
        samples: Sequence[Sample],
        now: ServingNow,
        earlier: Mapping[str, Scored],
    ) -> dict[str, Scored]:
        served = {v.kind: v for v in (now.long, now.short) if v is not None}
        if not served:
            return {}
        names = {kind: self.pool.loaded(v) for kind, v in served.items()}
        probs = self.pool.score_many(list(names.values()), samples)
        out = {kind: Scored(probs[name], served[kind]) for kind, name in names.items()}
        if "long" in out and "short" in out and now.serving is not None:
            combined = ensemble(out["long"].probs, out["short"].probs, now.serving.alpha)
            out["combined"] = Scored(combined)
        return out


class WindowEvaluator:
    """Runs every scorer on a window and records what each scored name achieved."""

    def __init__(
        self,
        registry: RegistryStore,
        metrics: TrainerMetrics,
        scorers: Sequence[WindowScorer],
        loss_from: Sequence[str] = ("served", "combined", "short", "long"),
        log: WindowRowsLog | None = None,
    ) -> None:
        self.registry, self.metrics = registry, metrics
        self.scorers = list(scorers)
        self.loss_from = tuple(loss_from)
        self.log = log
        self._gauged: set[str] = set()

    def evaluate(
        self, window_id: int, samples: Sequence[Sample], now: ServingNow
    ) -> WindowEvaluation:
        """Score the window with every scorer, before any training on it."""
        scored: dict[str, Scored] = {}
        for scorer in self.scorers:
            scored.update(scorer(window_id, samples, now, dict(scored)))
        if not scored:
            return WindowEvaluation({}, None)
        labels = np.array([s.label for s in samples])
        out: dict[str, dict[str, float]] = {}
        for name, result in scored.items():
            a = metric_or_none(auc, labels, result.probs)
            ll = metric_or_none(logloss, labels, result.probs)
            out[name] = {k: v for k, v in (("auc", a), ("logloss", ll)) if v is not None}
        # the window id first, then every gauge at once, the registry writes after: a scrape sees
        # at worst the new window with some old values (fixed by the next scrape), never new values
        # under the old window (which the live table would keep for good)
        self.metrics.window_id.set(window_id)
        self._set_gauges(out)
        for name, result in scored.items():
            v = result.version
            if v is not None:
                values = out[name]
                self.registry.record_evaluation(
                    v.kind,
                    v.version,
                    window_id,
                    values.get("auc"),
                    values.get("logloss"),
                    len(samples),
                )
        probs = {name: result.probs for name, result in scored.items()}
        if self.log is not None:
            self.log.record(window_id, samples, probs, out)
        source = next((name for name in self.loss_from if name in scored), None)
        losses = None if source is None else per_sample_losses(labels, scored[source].probs)
        return WindowEvaluation(out, losses, probs)

    def _set_gauges(self, out: Mapping[str, Mapping[str, float]]) -> None:
        """Every scored name's gauges; ``lsat_window_*`` of names this window did not score
        are removed (no stale hybrid AUC under a new window id)."""
        m = self.metrics
        for name in self._gauged - set(out):
            for gauge in (m.window_auc, m.window_logloss):
                with contextlib.suppress(KeyError):
                    gauge.remove(name)
        self._gauged = set(out)
        for name, values in out.items():
            for key, per_adapter, per_model in (
                ("auc", m.adapter_auc, m.window_auc),
                ("logloss", m.adapter_logloss, m.window_logloss),
            ):
                if key in values:
                    per_adapter.labels(adapter=name).set(values[key])
                    per_model.labels(model=name).set(values[key])
