"""The hybrid combiner that serves with a window's new short adapter: fit, guard, keep or replace.

In the job of window *W* (after its test-then-train evaluation, before training on it):

1. **Fit** a candidate with :func:`~lsat.adapters.model.hybrid.fit_hybrid` on the out-of-sample
   rows of the ``windows`` most recent windows *before W* (:class:`.oos_rows.EarlierRows`):
   the rate features, plus the long and short adapters' logits when they raise the out-of-fold
   AUC. Window *W*'s samples — which the new short adapter trains on — never enter the fit; the
   combiner it publishes first scores window *W + 1*.
2. **Guard** on window *W*'s rows, which neither the candidate nor the serving combination saw:
   the candidate replaces what serves (the previous combiner, or the α ensemble before the
   first) unless its AUC there is worse by more than ``margin``
   (:func:`decide_combiner`); otherwise the previous combiner keeps serving.
3. The choice travels in the new short version's metrics (``hybrid``, plus ``hybrid_fit``:
   which windows and rows it was fitted on and the guard's AUCs), so the serving set carries it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lsat.adapters.lifecycle.hybrid_features import (
    LLM_FEATURES,
    RATE_FEATURES,
    hybrid_columns,
)
from lsat.adapters.lifecycle.publication import HYBRID_METRIC
from lsat.adapters.model.hybrid import HybridCombiner, HybridError, fit_hybrid
from lsat.adapters.trainer.guard import metric_or_none
from lsat.adapters.trainer.helpers import ServingNow
from lsat.adapters.trainer.oos_rows import EarlierRows, Rows
from lsat.core.evaluation import auc
from lsat.data.types import Sample

__all__ = ["HYBRID_FIT_METRIC", "CombinerChoice", "CombinerFitter", "decide_combiner"]

log = logging.getLogger(__name__)

HYBRID_FIT_METRIC = "hybrid_fit"
"""Version-metrics key: how the serving combiner was fitted and checked."""


def decide_combiner(new_auc: float | None, serving_auc: float | None, margin: float) -> bool:
    """Whether a candidate combiner replaces what serves, from their AUCs on the same window.

    >>> decide_combiner(0.70, 0.72, 0.01), decide_combiner(0.715, 0.72, 0.01)
    (False, True)
    >>> decide_combiner(0.6, None, 0.01), decide_combiner(None, 0.7, 0.01)
    (True, False)
    """
    if new_auc is None:
        return False
    return serving_auc is None or new_auc >= serving_auc - margin


@dataclass(frozen=True)
class CombinerChoice:
    """What serves with the new short adapter (``None``: the α ensemble) and why."""

    combiner: HybridCombiner | None
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)


class CombinerFitter:
    """Fits and guards the hybrid combiner of each window's job (see the module docstring)."""

    def __init__(self, rows: EarlierRows, *, margin: float, min_rows: int = 100) -> None:
        self.rows, self.margin, self.min_rows = rows, margin, min_rows

    def fit_rows(self, window_id: int) -> Rows:
        """The rows a combiner for window ``window_id``'s job is fitted on (windows before it)."""
        return self.rows.scored(window_id)

    def choose(
        self,
        window_id: int,
        samples: Sequence[Sample],
        probs: Mapping[str, np.ndarray],
        now: ServingNow,
        served_auc: float | None,
    ) -> CombinerChoice:
        """Fit a candidate on earlier windows, check it on this window (``samples`` scored
        with ``probs`` by what served, whose served score got ``served_auc``), pick."""
        previous = None if now.serving is None else now.serving.hybrid
        kept = self._kept(previous, now)
        rows = self.fit_rows(window_id)
        check = hybrid_columns(samples, probs)
        base = [f for f in RATE_FEATURES if f in rows.columns and f in check]
        extra = [f for f in LLM_FEATURES if f in rows.columns and f in check]
        if len(rows) < self.min_rows or not (base or extra):
            why = f"{len(rows)} out-of-sample rows before window {window_id} (need {self.min_rows})"
            return self._keep(kept, why)
        try:
            candidate = fit_hybrid(rows.columns, rows.labels, base=base, extra=extra)
        except HybridError as exc:
            return self._keep(kept, f"no combiner fitted: {exc}")
        labels = np.array([s.label for s in samples])
        new_auc = metric_or_none(auc, labels, candidate.predict_proba(check))
        windows = sorted(set(rows.windows), key=lambda w: (len(w), w))
        fit = {
            "windows": windows,
            "rows": len(rows),
            "checked_on": str(window_id),
            "auc": new_auc,
            "serving_auc": served_auc,
            "note": candidate.note,
        }
        fit = {k: v for k, v in fit.items() if v is not None}
        if not decide_combiner(new_auc, served_auc, self.margin):
            why = (
                f"candidate combiner AUC {new_auc} on window {window_id} is worse than the "
                f"served {served_auc} by more than {self.margin}"
            )
            return self._keep(kept, why)
        reason = (
            f"combiner fitted on {len(rows)} rows of windows {windows[0]}..{windows[-1]}; "
            f"window {window_id} AUC {_shown(new_auc)} vs served {_shown(served_auc)} "
            f"({candidate.note})"
        )
        log.info("window %d: %s", window_id, reason)
        metrics = {HYBRID_METRIC: candidate.to_dict(), HYBRID_FIT_METRIC: fit}
        return CombinerChoice(candidate, reason, metrics)

    @staticmethod
    def _kept(previous: HybridCombiner | None, now: ServingNow) -> CombinerChoice | None:
        if previous is None:
            return None
        metrics: dict[str, Any] = {HYBRID_METRIC: previous.to_dict()}
        fit = None if now.short is None else now.short.metrics.get(HYBRID_FIT_METRIC)
        if isinstance(fit, dict):
            metrics[HYBRID_FIT_METRIC] = fit
        return CombinerChoice(previous, "", metrics)

    @staticmethod
    def _keep(kept: CombinerChoice | None, why: str) -> CombinerChoice:
        log.info("hybrid combiner unchanged: %s", why)
        if kept is None:
            return CombinerChoice(None, f"no combiner: {why}")
        return CombinerChoice(kept.combiner, f"previous combiner kept: {why}", kept.metrics)


def _shown(value: float | None) -> str:
    return "None" if value is None else f"{value:.4f}"
