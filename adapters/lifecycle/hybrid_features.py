"""The inputs of a published hybrid combiner, computed the same way by the trainer and the scorer.

A :class:`~lsat.adapters.model.hybrid.HybridCombiner` names its features; they come from two
places. **Rates** from the samples: the smoothed user, item and own-history like-rates (as
logits) and the item's log count, read from ``Sample.collaborative`` — counts as of just before
the event, stored with each sample by the stream and looked up live by the scorer — by
:func:`lsat.data.collaborative.feature_columns`. Samples without counts get only the history
rate (its prior then pulls toward 0.5 instead of the global rate). **LLM logits** from the
adapters' probabilities: ``logit_long``, ``logit_short``.

>>> from lsat.data.types import Sample
>>> s = Sample("e", "u", "i", 0, 1, ("a", "b"), (1, 1))
>>> cols = hybrid_columns([s], {"long": np.array([0.5])})
>>> sorted(cols), round(float(cols["logit_history_rate"][0]), 3)
(['logit_history_rate', 'logit_long'], 1.099)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lsat.adapters.model.hybrid import HybridCombiner, logit
from lsat.data.collaborative import feature_columns
from lsat.data.types import Sample

__all__ = [
    "LLM_FEATURES",
    "RATE_FEATURES",
    "hybrid_columns",
    "hybrid_probs",
    "llm_columns",
    "rate_columns",
]

RATE_FEATURES: tuple[str, ...] = (
    "logit_user_rate",
    "logit_item_rate",
    "logit_history_rate",
    "log_item_count",
)
"""Collaborative features a combiner may use (the co-like score is not stored with samples)."""

LLM_FEATURES: dict[str, str] = {"logit_long": "long", "logit_short": "short"}
"""LLM feature name → the adapter kind whose probability it is the logit of."""


def rate_columns(samples: Sequence[Sample]) -> dict[str, np.ndarray]:
    """The rate features of ``samples``: all of :data:`RATE_FEATURES` when every sample carries
    collaborative counts, else only ``logit_history_rate`` (history prior toward 0.5).

    >>> s = Sample("e", "u", "i", 0, 1, ("a", "b", "c"), (1, 0, 0))
    >>> rate_columns([s])["logit_history_rate"].round(3).tolist()
    [-0.405]
    """
    if samples and all(s.collaborative is not None for s in samples):
        columns = feature_columns(samples)
        return {name: columns[name] for name in RATE_FEATURES}
    rates = [(sum(s.history_labels) + 1.0) / (len(s.history_labels) + 2.0) for s in samples]
    return {"logit_history_rate": logit(rates, eps=1e-4)}


def llm_columns(probs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``logit_<kind>`` for each adapter kind in ``probs`` that a combiner can use.

    >>> llm_columns({"short": np.array([0.5]), "merged": np.array([0.9])})
    {'logit_short': array([0.])}
    """
    return {feature: logit(probs[kind]) for feature, kind in LLM_FEATURES.items() if kind in probs}


def hybrid_columns(
    samples: Sequence[Sample], probs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Every feature a combiner may name, for ``samples`` scored with ``probs`` by kind."""
    return {**rate_columns(samples), **llm_columns(probs)}


def hybrid_probs(
    combiner: HybridCombiner, samples: Sequence[Sample], probs: Mapping[str, np.ndarray]
) -> np.ndarray | None:
    """The combiner's P(like) per sample, or ``None`` when a feature it needs is missing (an
    adapter kind not serving, samples without collaborative counts)."""
    columns = hybrid_columns(samples, probs)
    if not set(combiner.features) <= columns.keys():
        return None
    return combiner.predict_proba(columns)
