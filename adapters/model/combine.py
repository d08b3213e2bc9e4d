"""LSAT-EN: combine long- and short-term predictions; choose α (or a merge weight) on validation.

``ensemble(p_long, p_short, α) = α · P_long + (1 − α) · P_short``; :func:`choose_alpha` scores
every α of a grid (default 0, 0.1, …, 1) with AUC or logloss on validation data and keeps the
best. :func:`choose_merge_weight` does the same for any callable that scores a candidate weight
(e.g. "merge with weight w, score the merged adapter on validation").

Rules shared by both choosers:

* **ties** (scores within ``1e-12``) go to the candidate closest to 0.5, then to the lower one:
  with no evidence either way, an even mix is the safest bet;
* **undefined scores** (NaN, e.g. AUC on a validation set with a single class) are skipped; if
  every candidate is NaN the choice is :data:`DEFAULT_ALPHA` (0.5) with score NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from lsat.adapters.model.errors import CombineError
from lsat.core.evaluation import auc, logloss

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_ALPHA_GRID",
    "AlphaChoice",
    "choose_alpha",
    "choose_merge_weight",
    "ensemble",
]

DEFAULT_ALPHA_GRID: tuple[float, ...] = tuple(round(step / 10, 1) for step in range(11))
DEFAULT_ALPHA = 0.5
"""The choice when no candidate can be scored (e.g. validation with a single class)."""

TIE_TOLERANCE = 1e-12
Metric = Literal["auc", "logloss"]
_HIGHER_IS_BETTER: dict[str, bool] = {"auc": True, "logloss": False}


@dataclass(frozen=True)
class AlphaChoice:
    """The chosen weight of the long-term side, its score, and every candidate's score."""

    alpha: float
    score: float
    scores_by_alpha: dict[float, float]


def _probabilities(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise CombineError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = ~np.isfinite(array) | (array < 0.0) | (array > 1.0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise CombineError(
            f"{name}[{index}] = {float(array[index])!r} is not a probability in [0, 1]"
        )
    return array


def _weight(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise CombineError(f"{name} must be a number in [0, 1], got {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise CombineError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def _checked_grid(grid: Sequence[float]) -> list[float]:
    values = [_weight(value, "grid value") for value in grid]
    if not values:
        raise CombineError("the candidate grid is empty")
    if len(set(values)) != len(values):
        raise CombineError(f"the candidate grid has duplicates: {list(grid)!r}")
    return values


def ensemble(p_long: ArrayLike, p_short: ArrayLike, alpha: float) -> np.ndarray:
    """``α · P_long + (1 − α) · P_short`` for probability arrays of equal length.

    >>> ensemble([0.9, 0.2], [0.5, 0.6], 0.25)
    array([0.6, 0.5])
    >>> ensemble([0.9], [0.5, 0.6], 0.5)
    Traceback (most recent call last):
    ...
    lsat.adapters.model.errors.CombineError: p_long has 1 values but p_short has 2
    """
    weight = _weight(alpha, "alpha")
    long_probs = _probabilities(p_long, "p_long")
    short_probs = _probabilities(p_short, "p_short")
    if long_probs.shape != short_probs.shape:
        raise CombineError(
            f"p_long has {long_probs.size} values but p_short has {short_probs.size}"
        )
    return weight * long_probs + (1.0 - weight) * short_probs


def _best(scores: Mapping[float, float], higher_is_better: bool) -> tuple[float, float]:
    """The best candidate by score; ties → closest to 0.5, then lower; all NaN → default."""
    finite = {value: score for value, score in scores.items() if not math.isnan(score)}
    if not finite:
        return DEFAULT_ALPHA, math.nan
    best_score = max(finite.values()) if higher_is_better else min(finite.values())
    tied = [
        value
        for value, score in finite.items()
        if score == best_score or abs(score - best_score) <= TIE_TOLERANCE
    ]
    chosen = min(tied, key=lambda value: (abs(value - 0.5), value))
    return chosen, finite[chosen]


def choose_alpha(
    labels: ArrayLike,
    p_long: ArrayLike,
    p_short: ArrayLike,
    grid: Sequence[float] = DEFAULT_ALPHA_GRID,
    metric: Metric = "auc",
) -> AlphaChoice:
    """Pick the ensemble weight α on validation data (higher AUC or lower logloss wins).

    >>> labels = [0, 0, 1, 1]
    >>> right, wrong = [0.1, 0.2, 0.8, 0.9], [0.9, 0.8, 0.2, 0.1]
    >>> choose_alpha(labels, right, wrong, metric="logloss").alpha
    1.0
    >>> choose_alpha(labels, wrong, right, metric="logloss").alpha
    0.0
    >>> choose_alpha(labels, right, wrong).alpha  # AUC is 1 for every α > 0.5: tie → nearest 0.5
    0.6
    >>> choice = choose_alpha([1, 1], [0.7, 0.8], [0.6, 0.9])  # one class: AUC undefined
    >>> choice.alpha, math.isnan(choice.score)
    (0.5, True)
    """
    if metric not in _HIGHER_IS_BETTER:
        raise CombineError(f"metric must be one of {sorted(_HIGHER_IS_BETTER)}, got {metric!r}")
    label_array = np.asarray(labels)
    if label_array.ndim != 1 or label_array.size == 0:
        raise CombineError(f"labels must be a non-empty 1-D array, got shape {label_array.shape}")
    if not np.isin(label_array, (0, 1)).all():
        bad = label_array[~np.isin(label_array, (0, 1))][0]
        raise CombineError(f"labels must be 0 or 1, got {bad.item()!r}")
    long_probs = _probabilities(p_long, "p_long")
    short_probs = _probabilities(p_short, "p_short")
    if not (label_array.size == long_probs.size == short_probs.size):
        raise CombineError(
            f"labels, p_long and p_short differ in length: "
            f"{label_array.size}, {long_probs.size}, {short_probs.size}"
        )
    score_fn = auc if metric == "auc" else logloss
    scores = {
        alpha: float(score_fn(label_array, ensemble(long_probs, short_probs, alpha)))
        for alpha in _checked_grid(grid)
    }
    alpha, score = _best(scores, _HIGHER_IS_BETTER[metric])
    return AlphaChoice(alpha=alpha, score=score, scores_by_alpha=scores)


def choose_merge_weight(
    score_weight: Callable[[float], float],
    grid: Sequence[float] = DEFAULT_ALPHA_GRID,
    higher_is_better: bool = True,
) -> AlphaChoice:
    """Pick the long-term adapter's merge weight ``w`` (short gets ``1 − w``) by a scoring callable.

    ``score_weight(w)`` builds and scores one candidate (e.g. the validation AUC of the adapter
    merged with weights ``(w, 1 − w)``); it may return NaN when the score is undefined.

    >>> choose_merge_weight(lambda w: -(w - 0.3) ** 2).alpha
    0.3
    >>> choose_merge_weight(lambda w: (w - 0.3) ** 2, higher_is_better=False).alpha
    0.3
    """
    scores: dict[float, float] = {}
    for weight in _checked_grid(grid):
        score = score_weight(weight)
        if isinstance(score, bool) or not isinstance(score, int | float | np.floating | np.integer):
            raise CombineError(f"score_weight({weight}) returned {score!r}; expected a number")
        scores[weight] = float(score)
    alpha, score = _best(scores, higher_is_better)
    return AlphaChoice(alpha=alpha, score=score, scores_by_alpha=scores)
