"""Ranking and calibration metrics for binary like/dislike predictions.

::

    EvaluationError     bad metric input (lengths differ, labels not 0/1, non-finite scores)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["EvaluationError", "auc", "auc_standard_error", "logloss"]


class EvaluationError(ValueError):
    """Metric input that cannot be scored; the message names the bad value."""


def _arrays(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray):
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise EvaluationError(
            f"labels and scores must be 1-D of equal length, got {y.shape} and {s.shape}"
        )
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise EvaluationError(
            f"labels must be 0 or 1, got {y[bad][0].item()!r} at index {int(np.argmax(bad))}"
        )
    if not np.isfinite(s).all():
        index = int(np.argmax(~np.isfinite(s)))
        raise EvaluationError(f"scores must be finite, got {s[index].item()!r} at index {index}")
    return y.astype(np.int64), s


def auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve from ranks; ties count one half; NaN with one class only.

    >>> auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])
    0.5
    >>> auc([1, 1], [0.2, 0.3])
    nan
    """
    y, s = _arrays(labels, scores)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    sorted_scores = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average rank (1-based) over each block of tied scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(s)]
    block_rank = (starts + 1 + ends) / 2.0
    ranks[order] = np.repeat(block_rank, ends - starts)
    rank_sum = ranks[y == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_standard_error(value: float, n_pos: int, n_neg: int) -> float:
    """Hanley–McNeil (1982) standard error of an AUC from ``n_pos`` positives, ``n_neg`` negatives.

    Use it to judge whether two AUCs on the same test set differ by more than noise.

    >>> round(auc_standard_error(0.5, 200, 200), 4)
    0.0289
    >>> round(auc_standard_error(0.7, 200, 200), 4)
    0.026
    >>> auc_standard_error(0.7, 0, 10)
    nan
    """
    if n_pos < 1 or n_neg < 1 or not 0.0 <= value <= 1.0:
        return math.nan
    q1 = value / (2.0 - value)
    q2 = 2.0 * value * value / (1.0 + value)
    variance = (
        value * (1.0 - value)
        + (n_pos - 1) * (q1 - value * value)
        + (n_neg - 1) * (q2 - value * value)
    ) / (n_pos * n_neg)
    return math.sqrt(max(variance, 0.0))


def logloss(
    labels: Sequence[int] | np.ndarray, probs: Sequence[float] | np.ndarray, eps: float = 1e-7
) -> float:
    """Mean binary cross-entropy, probabilities clipped to ``[eps, 1 - eps]``.

    >>> round(logloss([1, 0], [0.8, 0.2]), 6)
    0.223144
    >>> logloss([1], [0.0]) == -math.log(1e-7)
    True
    """
    y, p = _arrays(labels, probs)
    if len(y) == 0:
        return math.nan
    if ((p < 0) | (p > 1)).any():
        index = int(np.argmax((p < 0) | (p > 1)))
        value = p[index].item()
        raise EvaluationError(f"probabilities must be in [0, 1], got {value!r} at index {index}")
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
