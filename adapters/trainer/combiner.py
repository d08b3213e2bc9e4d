"""The hybrid combiner that serves with a window's new short adapter: fit, guard, keep or replace.

In the job of window *W* (after its test-then-train evaluation, before training on it):

1. **Fit** a candidate with :func:`~lsat.adapters.model.hybrid.fit_hybrid` on the out-of-sample
   rows of the ``windows`` most recent windows *before W* (:class:`.oos_rows.EarlierRows`):
   the rate features, plus the long and short adapters' logits when they raise the out-of-fold
   AUC. Window *W*'s samples — which the new short adapter trains on — never enter the
   candidate's fit, so the guard (2) checks it on unseen rows. With fewer than ``min_rows``
   scored rows (the first windows after the long adapter's bootstrap, never scored) the
   candidate is rates-only (:func:`fit_rates_only`) on :meth:`.oos_rows.EarlierRows.rates`:
   the stored samples' leak-free rate features, LLM columns dropped.
   When the candidate takes the LLM logits, the rates-only fit on every row with rates is a
   second candidate; the one with the higher AUC on window *W* goes on (ties: the rates).
2. **Guard** on window *W*'s rows, which neither the candidate nor the serving combination saw:
   the candidate replaces what serves (the previous combiner — before the first short
   version's, the long version's rates-only one — or the α ensemble) unless its AUC there is
   worse by more than ``margin`` (:func:`decide_combiner`); otherwise the previous one serves.
3. **Refit** an accepted candidate's features on the rows up to and including *W* (scored
   before anything trained on *W*: out of sample as well; rates-only: the very rows the rate
   stack baseline of *W + 1* is fitted on), so the combiner that first scores window *W + 1*
   knows as much as that window's baseline instead of one window less.
4. The choice travels in the new short version's metrics (``hybrid``, plus ``hybrid_fit``:
   the windows and rows of the published fit, those the guarded candidate was fitted on
   (``guarded``) and the guard's AUCs), so the serving set carries it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lsat.adapters.lifecycle.hybrid_features import (
    LLM_FEATURES,
    RATE_FEATURES,
    hybrid_columns,
)
from lsat.adapters.lifecycle.publication import HYBRID_METRIC, serving_hybrid
from lsat.adapters.model.hybrid import HybridCombiner, HybridError, fit_combiner, fit_hybrid
from lsat.adapters.trainer.guard import metric_or_none
from lsat.adapters.trainer.helpers import ServingNow
from lsat.adapters.trainer.oos_rows import EarlierRows, Rows
from lsat.core.evaluation import auc
from lsat.data.types import Sample

__all__ = [
    "HYBRID_FIT_METRIC",
    "CombinerChoice",
    "CombinerFitter",
    "decide_combiner",
    "fit_rates_only",
]

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
        check = hybrid_columns(samples, probs)
        fitted = self._candidate(window_id, check)
        if isinstance(fitted, str):
            return self._keep(kept, fitted)
        labels = np.array([s.label for s in samples])
        candidates = [fitted]
        if not set(fitted[0].features) <= set(RATE_FEATURES):  # also the rates on every row
            rates = self._rates_only(window_id, check, "next to the LLM candidate")
            if not isinstance(rates, str):
                candidates.append(rates)
        aucs = [metric_or_none(auc, labels, c.predict_proba(check)) for c, _ in candidates]
        best = max(range(len(candidates)), key=lambda i: (aucs[i] or -1.0, i))  # ties: rates
        (candidate, rows), new_auc = candidates[best], aucs[best]
        windows = _windows(rows)
        fit = {
            "windows": windows,
            "rows": len(rows),
            "checked_on": str(window_id),
            "auc": new_auc,
            "serving_auc": served_auc,
            "note": candidate.note,
        }
        if len(candidates) > 1:
            fit["candidates"] = {c.note: a for (c, _), a in zip(candidates, aucs, strict=True)}
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
        published, refit_rows = self._refit(window_id, candidate)
        if refit_rows is not None:
            refit_windows = _windows(refit_rows)
            fit = {
                **fit,
                "windows": refit_windows,
                "rows": len(refit_rows),
                "note": published.note,
                "guarded": {"windows": windows, "rows": len(rows)},
            }
            reason += f"; refitted on {len(refit_rows)} rows of windows up to {window_id}"
        log.info("window %d: %s", window_id, reason)
        metrics = {HYBRID_METRIC: published.to_dict(), HYBRID_FIT_METRIC: fit}
        return CombinerChoice(published, reason, metrics)

    def _refit(
        self, window_id: int, candidate: HybridCombiner
    ) -> tuple[HybridCombiner, Rows | None]:
        """The checked candidate's features refitted on the rows up to and including the
        window (scored before anything trained on it: out of sample too), so what serves the
        next window knows as much as that window's rate-stack baseline; rates-only: on the
        baseline's very rows (:meth:`EarlierRows.rates`). ``(candidate, None)`` if it fails."""
        names = list(candidate.features)
        if set(names) <= set(RATE_FEATURES):
            rows = self.rows.rates(window_id + 1)
        else:
            rows = self.rows.scored(window_id, upto=True)
        if rows.features(names) is None or len(rows) < self.min_rows:
            return candidate, None
        try:
            refit = fit_combiner(rows.columns, rows.labels, names)
        except HybridError as exc:
            log.info("window %d: combiner not refitted: %s", window_id, exc)
            return candidate, None
        span = _windows(rows)
        note = f"{candidate.note}; refitted on {len(rows)} rows of windows {span[0]}..{span[-1]}"
        return replace(refit, note=note), rows

    def _candidate(
        self, window_id: int, check: Mapping[str, np.ndarray]
    ) -> tuple[HybridCombiner, Rows] | str:
        """The candidate and its fitting rows, or why there is none: the rates + LLM fit on
        the scored rows before the window. A rates-only fit on :meth:`EarlierRows.rates`
        (scored windows plus the stored samples of windows never scored, e.g. the long
        adapter's bootstrap windows: the rate stack's rows) instead when there are fewer than
        ``min_rows`` scored rows, or when the LLM logits did not raise the out-of-fold AUC
        there (then the rates are better fitted on every row that has them)."""
        rows = self.fit_rows(window_id)
        base = [f for f in RATE_FEATURES if f in rows.columns and f in check]
        extra = [f for f in LLM_FEATURES if f in rows.columns and f in check]
        if len(rows) >= self.min_rows and (base or extra):
            try:
                hybrid = fit_hybrid(rows.columns, rows.labels, base=base, extra=extra)
            except HybridError as exc:
                return f"no combiner fitted: {exc}"
            if not base or not set(hybrid.features) <= set(RATE_FEATURES):
                return hybrid, rows
            why = f"{len(rows)} scored rows, {hybrid.note}"
            more = self._rates_only(window_id, check, why)
            if isinstance(more, str) or len(more[1]) <= len(rows):
                return hybrid, rows
            return more
        why = f"{len(rows)} out-of-sample rows before window {window_id} (need {self.min_rows})"
        return self._rates_only(window_id, check, why)

    def _rates_only(
        self, window_id: int, check: Mapping[str, np.ndarray], why: str
    ) -> tuple[HybridCombiner, Rows] | str:
        rates = self.rows.rates(window_id)
        rates = Rows(  # the rate columns only; the window's samples must have them too
            {f: rates.columns[f] for f in RATE_FEATURES if f in rates.columns and f in check},
            rates.labels,
            rates.event_ids,
            rates.windows,
        )
        combiner = fit_rates_only(rates, self.min_rows)
        if isinstance(combiner, str):
            return f"{why}; {combiner}"
        return replace(combiner, note=f"{combiner.note} ({why})"), rates

    @staticmethod
    def _kept(previous: HybridCombiner | None, now: ServingNow) -> CombinerChoice | None:
        if previous is None:
            return None
        metrics: dict[str, Any] = {HYBRID_METRIC: previous.to_dict()}
        _, source = serving_hybrid(now.short, now.long)
        fit = None if source is None else source.metrics.get(HYBRID_FIT_METRIC)
        if isinstance(fit, dict):
            metrics[HYBRID_FIT_METRIC] = fit
        return CombinerChoice(previous, "", metrics)

    @staticmethod
    def _keep(kept: CombinerChoice | None, why: str) -> CombinerChoice:
        log.info("hybrid combiner unchanged: %s", why)
        if kept is None:
            return CombinerChoice(None, f"no combiner: {why}")
        return CombinerChoice(kept.combiner, f"previous combiner kept: {why}", kept.metrics)


def fit_rates_only(rows: Rows, min_rows: int, where: str = "") -> HybridCombiner | str:
    """A combiner over the :data:`RATE_FEATURES` ``rows`` carry (no LLM column: rows of windows
    no adapter scored have none), or why there is none (too few rows, one class only). Its
    ``note`` says it is rates only and how many rows of what (``where``; default the windows).

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=200)
    >>> y = (x + rng.normal(size=200) > 0).astype(int)
    >>> rows = Rows({"logit_item_rate": x}, y, [str(k) for k in range(200)], ["1"] * 200)
    >>> fit_rates_only(rows, 100).note
    'rates only: 200 rows of windows 1..1'
    >>> fit_rates_only(rows.take(x > 5), 100)
    '0 rows with rate features (need 100)'
    """
    names = [f for f in RATE_FEATURES if f in rows.columns]
    if len(rows) < min_rows or not names:
        return f"{len(rows)} rows with rate features (need {min_rows})"
    try:
        combiner = fit_combiner(rows.columns, rows.labels, names)
    except HybridError as exc:
        return f"no rates-only combiner: {exc}"
    if not where:
        windows = sorted(set(rows.windows), key=lambda w: (len(w), w))
        where = f"windows {windows[0]}..{windows[-1]}"
    return replace(combiner, note=f"rates only: {len(rows)} rows of {where}")


def _windows(rows: Rows) -> list[str]:
    """The window ids of ``rows``, in numeric order."""
    return sorted(set(rows.windows), key=lambda w: (len(w), w))


def _shown(value: float | None) -> str:
    return "None" if value is None else f"{value:.4f}"
