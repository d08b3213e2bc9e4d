"""The promotion guard: may a new short adapter replace the serving one? Pure logic.

A candidate is promoted unless the serving combination has a finite validation AUC and the
candidate's combined AUC is undefined or worse than it by more than ``margin``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["PromotionDecision", "decide_promotion", "is_finite", "metric_or_none"]


def metric_or_none(fn: Callable, labels: np.ndarray, probs: np.ndarray) -> float | None:
    """``fn(labels, probs)`` as a float, or None when it is undefined (one class, bad input).

    >>> from lsat.core.evaluation import auc
    >>> metric_or_none(auc, np.array([0, 1]), np.array([0.2, 0.9]))
    1.0
    >>> metric_or_none(auc, np.array([1, 1]), np.array([0.2, 0.9])) is None
    True
    """
    try:
        value = float(fn(labels, probs))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def is_finite(value: float | None) -> bool:
    """True for a real, finite number (None and NaN are not)."""
    return value is not None and math.isfinite(value)


@dataclass(frozen=True)
class PromotionDecision:
    """Whether to promote, and the reason recorded in the registry either way."""

    promote: bool
    reason: str


def decide_promotion(
    new_auc: float | None,
    serving_auc: float | None,
    margin: float,
    *,
    window_id: int,
    trigger: str,
    alpha: float,
    has_long: bool,
) -> PromotionDecision:
    """Compare the candidate's combined validation AUC with the serving combination's.

    >>> decide_promotion(0.60, 0.70, 0.05, window_id=3, trigger="count", alpha=0.5, has_long=True)
    PromotionDecision(promote=False, reason='combined validation AUC 0.6000 is worse than the serving 0.7000 by more than the margin 0.05')
    >>> decide_promotion(0.68, 0.70, 0.05, window_id=3, trigger="count", alpha=0.5,
    ...                  has_long=True).promote
    True
    >>> decide_promotion(None, None, 0.0, window_id=1, trigger="drift", alpha=0.0,
    ...                  has_long=False).reason
    'window 1 (drift): combined validation AUC None vs serving None, α=0.0; no long adapter yet: short alone (α=0)'
    """  # noqa: E501
    if serving_auc is not None and math.isfinite(serving_auc):
        if new_auc is None or not math.isfinite(new_auc):
            return PromotionDecision(
                False, f"combined validation AUC undefined, serving has {serving_auc:.4f}"
            )
        if new_auc < serving_auc - margin:
            return PromotionDecision(
                False,
                f"combined validation AUC {new_auc:.4f} is worse than the serving "
                f"{serving_auc:.4f} by more than the margin {margin}",
            )
    shown_new = new_auc if new_auc is None else round(new_auc, 4)
    shown_old = serving_auc if serving_auc is None else round(serving_auc, 4)
    reason = (
        f"window {window_id} ({trigger}): combined validation AUC {shown_new} vs serving "
        f"{shown_old}, α={alpha}"
    )
    if not has_long:
        reason += "; no long adapter yet: short alone (α=0)"
    return PromotionDecision(True, reason)
