"""Non-LLM baselines and the served hybrid, scored on every window before training on it.

:class:`RateBaselines` (after the adapters in the evaluator's list) gives ``history_rate`` (the
like-rate of the sample's own history), ``item_rate`` and ``user_rate`` (when the samples carry
collaborative counts), ``rate_stack`` (a logistic regression over the rate features, fitted on
earlier windows' rows only) and ``baseline``: the rate stack where it could be fitted, else the
history like-rate. :class:`ServedHybrid` (last) applies the serving set's combiner to the
adapters' outputs as ``hybrid`` and names what the scorer serves as the combined score
``served``: the hybrid where the serving set has one, else the α ensemble.

Users see in every window whether the LLM earns its cost: ``served`` vs ``baseline``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from lsat.adapters.lifecycle.hybrid_features import RATE_FEATURES, hybrid_probs, rate_columns
from lsat.adapters.model.hybrid import HybridCombiner, HybridError, fit_combiner
from lsat.adapters.trainer.helpers import ServingNow
from lsat.adapters.trainer.oos_rows import EarlierRows
from lsat.adapters.trainer.window_evaluation import Scored
from lsat.data.types import Sample

__all__ = ["RateBaselines", "ServedHybrid", "fit_rate_stack", "sigmoid"]

log = logging.getLogger(__name__)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^−z), computed stably.

    >>> sigmoid(np.array([0.0])).tolist()
    [0.5]
    """
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def fit_rate_stack(
    columns: Mapping[str, np.ndarray], labels: np.ndarray, min_rows: int
) -> HybridCombiner | None:
    """A logistic stack over the rate features present, or ``None`` (too few rows, one class).

    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=300)
    >>> y = (x + rng.normal(size=300) > 0).astype(int)
    >>> fit_rate_stack({"logit_item_rate": x}, y, min_rows=100).features
    ('logit_item_rate',)
    >>> fit_rate_stack({"logit_item_rate": x[:50]}, y[:50], min_rows=100) is None
    True
    """
    names = [name for name in RATE_FEATURES if name in columns]
    if not names or len(labels) < min_rows:
        return None
    try:
        return fit_combiner(columns, labels, names)
    except HybridError as exc:  # one class only, too few of one class
        log.info("no rate stack: %s", exc)
        return None


class RateBaselines:
    """History / item / user like-rates, the rate stack fitted on earlier windows, ``baseline``.

    The window being scored is never in the stack's fitting rows (they come from windows with
    a smaller id), so its score is out-of-sample like the adapters'.
    """

    def __init__(self, rows: EarlierRows, *, min_rows: int = 100) -> None:
        self.rows, self.min_rows = rows, min_rows
        self.last_stack: HybridCombiner | None = None

    def __call__(
        self,
        window_id: int,
        samples: Sequence[Sample],
        now: ServingNow,
        earlier: Mapping[str, Scored],
    ) -> dict[str, Scored]:
        if not samples:
            return {}
        columns = rate_columns(samples)
        out = {"history_rate": Scored(sigmoid(columns["logit_history_rate"]))}
        for name in ("item_rate", "user_rate"):
            if f"logit_{name}" in columns:
                out[name] = Scored(sigmoid(columns[f"logit_{name}"]))
        fit_rows = self.rows.rates(window_id)
        stack = fit_rate_stack(fit_rows.columns, fit_rows.labels, self.min_rows)
        self.last_stack = stack
        if stack is not None and set(stack.features) <= columns.keys():
            out["rate_stack"] = Scored(stack.predict_proba(columns))
        out["baseline"] = out.get("rate_stack", out["history_rate"])
        return out


class ServedHybrid:
    """The serving set's hybrid combiner on the window (``hybrid``), and ``served``."""

    def __call__(
        self,
        window_id: int,
        samples: Sequence[Sample],
        now: ServingNow,
        earlier: Mapping[str, Scored],
    ) -> dict[str, Scored]:
        out: dict[str, Scored] = {}
        combiner = None if now.serving is None else now.serving.hybrid
        if combiner is not None and samples:
            probs = {k: earlier[k].probs for k in ("long", "short") if k in earlier}
            hybrid = hybrid_probs(combiner, samples, probs)
            if hybrid is not None:
                out["hybrid"] = Scored(hybrid)
        for name in ("hybrid", "combined", "short", "long"):
            source = out.get(name) or earlier.get(name)
            if source is not None:
                out["served"] = Scored(source.probs)
                break
        return out
