"""AUC and logloss against scikit-learn, ties, one-class input, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from lsat.core.evaluation import EvaluationError, auc, logloss


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_distinct", [3, 50, None])
def test_auc_matches_sklearn(seed: int, n_distinct: int | None) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 500)
    scores = rng.random(500) + 0.3 * labels
    if n_distinct:  # many ties
        scores = np.round(scores * n_distinct) / n_distinct
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize(
    ("labels", "scores", "expected"),
    [
        ([0, 1], [0.1, 0.9], 1.0),
        ([0, 1], [0.9, 0.1], 0.0),
        ([0, 1, 1], [0.5, 0.5, 0.9], 0.75),
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
    ],
)
def test_auc_table(labels, scores, expected) -> None:
    assert auc(labels, scores) == expected


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0], []])
def test_auc_nan_with_one_class(labels: list[int]) -> None:
    assert math.isnan(auc(labels, [0.5] * len(labels)))


@pytest.mark.parametrize("seed", range(3))
def test_logloss_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    probs = np.clip(rng.random(300), 0.01, 0.99)
    assert logloss(labels, probs) == pytest.approx(log_loss(labels, probs), rel=1e-12)


def test_logloss_clips_certain_mistakes() -> None:
    assert logloss([1, 0], [0.0, 1.0], eps=1e-3) == pytest.approx(-math.log(1e-3))
    assert math.isnan(logloss([], []))


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: auc([0, 1], [0.5]), "equal length"),
        (lambda: auc([0, 2], [0.5, 0.1]), "got 2 at index 1"),
        (lambda: auc([0, 1], [0.5, float("nan")]), "got nan at index 1"),
        (lambda: logloss([0, 1], [0.5, 1.5]), "got 1.5 at index 1"),
        (lambda: logloss([[0, 1]], [[0.5, 0.5]]), "1-D"),
    ],
)
def test_bad_input_names_the_value(call, needle: str) -> None:
    with pytest.raises(EvaluationError, match=needle):
        call()
