"""A freshly trained short adapter: score it on the validation tail, pick α, guard, register.

The candidate's combined validation AUC (with the serving long at the α chosen on the tail) is
compared with the serving combination's by :func:`.guard.decide_promotion`; the version is
registered either way (``candidate`` or ``rejected`` with the reason).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lsat.adapters.lifecycle.artifacts import LoadedAdapter
from lsat.adapters.lifecycle.publication import ALPHA_METRIC
from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore
from lsat.adapters.model.combine import choose_alpha, ensemble
from lsat.adapters.trainer.child import ChildResult
from lsat.adapters.trainer.guard import decide_promotion, metric_or_none
from lsat.adapters.trainer.helpers import ServingNow, adapter_name
from lsat.adapters.trainer.pool import AdapterPool
from lsat.core.evaluation import auc
from lsat.data.types import Sample
from lsat.stream.triggers import RetrainRequest

__all__ = ["CandidateJudge", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """The registered version, whether the guard lets it serve, and why."""

    version: AdapterVersion
    promote: bool
    reason: str


class CandidateJudge:
    """Scores a candidate against what serves and registers it with the guard's verdict."""

    def __init__(self, registry: RegistryStore, pool: AdapterPool, *, margin: float) -> None:
        self.registry, self.pool, self.margin = registry, pool, margin

    def register(
        self,
        request: RetrainRequest,
        candidate: LoadedAdapter,
        result: ChildResult,
        validation: list[Sample],
        now: ServingNow,
        extra_metrics: Mapping[str, Any] | None = None,
    ) -> Verdict:
        """Register the candidate (status ``candidate`` or ``rejected``) with ``extra_metrics``
        (e.g. the hybrid combiner that serves with it); a promoted one stays loaded in the pool
        under its version's name."""
        window_id = request.window_id
        long, short = now.long, now.short
        labels = np.array([s.label for s in validation])
        pool = self.pool
        new_name = pool.put(f"new-short-w{window_id}", candidate)
        names = [new_name] + [pool.loaded(v) for v in (long, short) if v is not None]
        probs = pool.score_many(names, validation)
        p_new = probs[new_name]
        metrics: dict[str, Any] = {**dict(extra_metrics or {}), **result.metrics}
        metrics["val_auc_short"] = metric_or_none(auc, labels, p_new)
        alpha = 0.0
        if long is not None:
            p_long = probs[pool.loaded(long)]
            alpha = choose_alpha(labels, p_long, p_new).alpha
            p_combined = ensemble(p_long, p_new, alpha)
        else:
            p_combined = p_new
        metrics[ALPHA_METRIC] = alpha
        metrics["val_auc_combined"] = new_auc = metric_or_none(auc, labels, p_combined)
        old_auc = None
        if short is not None:
            p_old = probs[pool.loaded(short)]
            if long is not None and now.serving is not None:
                p_old = ensemble(probs[pool.loaded(long)], p_old, now.serving.alpha)
            old_auc = metric_or_none(auc, labels, p_old)
        metrics["serving_val_auc_combined"] = old_auc
        decision = decide_promotion(
            new_auc,
            old_auc,
            self.margin,
            window_id=window_id,
            trigger=request.trigger,
            alpha=alpha,
            has_long=long is not None,
        )
        clean = {k: v for k, v in metrics.items() if v is not None}
        version = self.registry.register(
            "short",
            path=result.path,
            sha256=result.sha256,
            window_id=window_id,
            trigger=request.trigger,
            parents=[long.key] if long is not None else [],
            metrics=clean,
            status="candidate" if decision.promote else "rejected",
            status_reason=None if decision.promote else decision.reason,
        )
        pool.drop(new_name)
        if decision.promote:
            pool.put(adapter_name(version), candidate)
        return Verdict(version, decision.promote, decision.reason)
