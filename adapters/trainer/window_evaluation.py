"""Test-then-train: score a window with the serving adapters before any training on it.

Records each serving adapter's AUC and logloss on the window (registry + Prometheus gauges) and
feeds the final combination's per-sample losses to the trainer's loss-drift detector.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from lsat.adapters.lifecycle.publication import ServingSet
from lsat.adapters.lifecycle.registry import AdapterVersion
from lsat.adapters.model.combine import ensemble
from lsat.adapters.trainer.guard import metric_or_none
from lsat.core.evaluation import auc, logloss
from lsat.data.types import Sample

if TYPE_CHECKING:
    from lsat.adapters.trainer.job import Retrainer

__all__ = ["evaluate_serving_on_window"]


def evaluate_serving_on_window(
    retrainer: Retrainer,
    window_id: int,
    samples: list[Sample],
    long: AdapterVersion | None,
    short: AdapterVersion | None,
    serving: ServingSet | None,
) -> dict[str, dict[str, float]]:
    """Score the window with what serves now, before any training on it."""
    labels = np.array([s.label for s in samples])
    served = {v.kind: v for v in (long, short) if v is not None}
    if not served:
        return {}
    names = {kind: retrainer.loaded(v) for kind, v in served.items()}
    probs = retrainer.recommender.score_many(list(names.values()), samples)
    by_kind = {kind: probs[name] for kind, name in names.items()}
    if "long" in by_kind and "short" in by_kind and serving is not None:
        by_kind["combined"] = ensemble(by_kind["long"], by_kind["short"], serving.alpha)
    out: dict[str, dict[str, float]] = {}
    for adapter, p in by_kind.items():
        a, ll = metric_or_none(auc, labels, p), metric_or_none(logloss, labels, p)
        out[adapter] = {k: v for k, v in (("auc", a), ("logloss", ll)) if v is not None}
    # the window id first, then every gauge at once, the registry writes after: a scrape sees
    # at worst the new window with some old values (fixed by the next scrape), never new values
    # under the old window (which the live table would keep for good)
    metrics = retrainer.metrics
    metrics.window_id.set(window_id)
    for adapter, values in out.items():
        if "auc" in values:
            metrics.adapter_auc.labels(adapter=adapter).set(values["auc"])
        if "logloss" in values:
            metrics.adapter_logloss.labels(adapter=adapter).set(values["logloss"])
    for adapter, v in served.items():
        values = out[adapter]
        retrainer.registry.record_evaluation(
            v.kind, v.version, window_id, values.get("auc"), values.get("logloss"), len(samples)
        )
    final = by_kind.get("combined", by_kind.get("short", by_kind.get("long")))
    losses = [
        float(-math.log(p if y == 1 else 1 - p))
        for y, p in zip(labels, np.clip(final, 1e-7, 1 - 1e-7), strict=True)
    ]
    retrainer.drift_in_last_window = retrainer.observe_losses(losses) > 0
    return out
