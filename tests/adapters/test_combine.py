"""LSAT-EN output ensemble and the α / merge-weight search on validation data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lsat.adapters.model.combine import (
    DEFAULT_ALPHA,
    DEFAULT_ALPHA_GRID,
    AlphaChoice,
    choose_alpha,
    choose_merge_weight,
    ensemble,
)
from lsat.adapters.model.errors import AdapterError, CombineError
from lsat.core.evaluation import auc, logloss


def informative(labels: np.ndarray, rng: np.random.Generator, strength: float = 2.0) -> np.ndarray:
    """Probabilities that rank positives above negatives most of the time."""
    logits = strength * (2 * labels - 1) + rng.normal(size=labels.size)
    return 1.0 / (1.0 + np.exp(-logits))


def noise(size: int, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.01, 0.99, size=size)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


@pytest.fixture
def labels(rng: np.random.Generator) -> np.ndarray:
    # 2,000 samples: with 600, AUC picked α = 0.1 over 0 for pure noise in 6 of 40 seeds (a
    # little noise can break near-ties by chance); with 2,000 in none of 40.
    return rng.integers(0, 2, size=2000)


# --- ensemble -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [(0.0, [0.5, 0.6]), (1.0, [0.9, 0.2]), (0.5, [0.7, 0.4]), (0.25, [0.6, 0.5])],
)
def test_ensemble_is_alpha_weighted_mean(alpha, expected):
    np.testing.assert_allclose(ensemble([0.9, 0.2], [0.5, 0.6], alpha), expected)


@pytest.mark.parametrize(
    ("p_long", "p_short", "alpha", "message"),
    [
        ([0.5], [0.5], 1.5, r"alpha must be in \[0, 1\], got 1.5"),
        ([0.5], [0.5], -0.1, r"alpha must be in \[0, 1\], got -0.1"),
        ([0.5], [0.5], math.nan, "alpha must be in"),
        ([0.5], [0.5], "0.5", "alpha must be a number"),
        ([0.5, 1.2], [0.5, 0.5], 0.5, r"p_long\[1\] = 1.2 is not a probability"),
        ([0.5, 0.5], [math.nan, 0.5], 0.5, r"p_short\[0\] = nan is not a probability"),
        ([0.5], [0.5, 0.5], 0.5, "p_long has 1 values but p_short has 2"),
        ([[0.5]], [[0.5]], 0.5, "p_long must be one-dimensional"),
    ],
)
def test_ensemble_refuses_bad_input(p_long, p_short, alpha, message):
    with pytest.raises(CombineError, match=message):
        ensemble(p_long, p_short, alpha)


# --- choose_alpha ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["auc", "logloss"])
def test_pure_noise_long_term_gives_alpha_zero(labels, rng, metric):
    choice = choose_alpha(labels, noise(labels.size, rng), informative(labels, rng), metric=metric)
    assert choice.alpha == 0.0


@pytest.mark.parametrize("metric", ["auc", "logloss"])
def test_pure_noise_short_term_gives_alpha_one(labels, rng, metric):
    choice = choose_alpha(labels, informative(labels, rng), noise(labels.size, rng), metric=metric)
    assert choice.alpha == 1.0


def test_complementary_experts_get_a_mixed_alpha(labels, rng):
    # Long-term knows the first half of the samples, short-term the second half.
    half = labels.size // 2
    p_long = np.concatenate([informative(labels[:half], rng), noise(half, rng)])
    p_short = np.concatenate([noise(half, rng), informative(labels[half:], rng)])
    choice = choose_alpha(labels, p_long, p_short)
    assert 0.0 < choice.alpha < 1.0
    assert choice.score > max(choice.scores_by_alpha[0.0], choice.scores_by_alpha[1.0]) + 0.05


def test_scores_are_the_metric_of_each_candidate_ensemble(labels, rng):
    p_long, p_short = informative(labels, rng, 1.0), informative(labels, rng, 0.5)
    for metric, fn in (("auc", auc), ("logloss", logloss)):
        choice = choose_alpha(labels, p_long, p_short, metric=metric)
        assert list(choice.scores_by_alpha) == list(DEFAULT_ALPHA_GRID)
        for alpha, score in choice.scores_by_alpha.items():
            assert score == pytest.approx(fn(labels, ensemble(p_long, p_short, alpha)))
        best = max if metric == "auc" else min
        assert choice.score == best(choice.scores_by_alpha.values())
        assert choice.scores_by_alpha[choice.alpha] == choice.score


@pytest.mark.parametrize(
    ("grid", "expected"),
    [
        (DEFAULT_ALPHA_GRID, 0.5),
        ((0.0, 0.4, 0.6, 1.0), 0.4),  # equally close to 0.5: the lower one
        ((0.0, 0.3, 1.0), 0.3),
        ((1.0,), 1.0),
    ],
)
def test_ties_prefer_alpha_closest_to_half(labels, rng, grid, expected):
    same = informative(labels, rng)
    choice = choose_alpha(labels, same, same.copy(), grid=grid)
    assert choice.alpha == expected


def test_auc_ties_between_rank_equivalent_candidates_prefer_half():
    # Long and short rank the samples identically, so every α has the same (perfect) AUC.
    labels = [0, 0, 1, 1]
    choice = choose_alpha(labels, [0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8])
    assert set(choice.scores_by_alpha.values()) == {1.0}
    assert choice.alpha == 0.5


def test_single_class_validation_returns_documented_default():
    choice = choose_alpha([1, 1, 1], [0.9, 0.8, 0.7], [0.1, 0.2, 0.3], metric="auc")
    assert choice.alpha == DEFAULT_ALPHA
    assert math.isnan(choice.score)
    assert all(math.isnan(score) for score in choice.scores_by_alpha.values())


def test_single_class_still_decides_with_logloss():
    choice = choose_alpha([1, 1, 1], [0.9, 0.8, 0.7], [0.1, 0.2, 0.3], metric="logloss")
    assert choice.alpha == 1.0
    assert math.isfinite(choice.score)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": [0, 2]}, "labels must be 0 or 1, got 2"),
        ({"labels": []}, "labels must be a non-empty 1-D array"),
        ({"labels": [0, 1, 1]}, "differ in length: 3, 2, 2"),
        ({"metric": "accuracy"}, "metric must be one of .* got 'accuracy'"),
        ({"grid": ()}, "grid is empty"),
        ({"grid": (0.0, 0.5, 0.5)}, "grid has duplicates"),
        ({"grid": (0.0, 2.0)}, r"grid value must be in \[0, 1\], got 2.0"),
        ({"p_short": [0.5, -0.5]}, r"p_short\[1\] = -0.5 is not a probability"),
    ],
)
def test_choose_alpha_refuses_bad_input(kwargs, message):
    arguments = {"labels": [0, 1], "p_long": [0.2, 0.8], "p_short": [0.4, 0.6], **kwargs}
    with pytest.raises(CombineError, match=message):
        choose_alpha(**arguments)


# --- choose_merge_weight --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score_weight", "higher_is_better", "expected"),
    [
        (lambda w: -((w - 0.7) ** 2), True, 0.7),
        (lambda w: (w - 0.2) ** 2, False, 0.2),
        (lambda w: w, True, 1.0),
        (lambda w: w, False, 0.0),
        (lambda w: 0.6, True, 0.5),  # flat: the even mix
        (lambda w: math.nan if w > 0.25 else w, True, 0.2),  # undefined scores skipped
        (lambda w: math.nan, True, DEFAULT_ALPHA),
        (lambda w: -math.inf if w < 0.9 else 0.1, True, 0.9),
    ],
)
def test_choose_merge_weight(score_weight, higher_is_better, expected):
    choice = choose_merge_weight(score_weight, higher_is_better=higher_is_better)
    assert isinstance(choice, AlphaChoice)
    assert choice.alpha == expected


def test_choose_merge_weight_scores_each_candidate_once_in_order():
    seen: list[float] = []

    def score(weight: float) -> float:
        seen.append(weight)
        return weight * (1 - weight)

    choice = choose_merge_weight(score, grid=(0.0, 0.25, 0.6, 1.0))
    assert seen == [0.0, 0.25, 0.6, 1.0]
    assert choice.alpha == 0.6
    assert choice.scores_by_alpha == {0.0: 0.0, 0.25: 0.1875, 0.6: pytest.approx(0.24), 1.0: 0.0}


@pytest.mark.parametrize("bad", ["0.5", None, True])
def test_choose_merge_weight_refuses_non_numeric_scores(bad):
    with pytest.raises(CombineError, match=r"score_weight\(0.0\) returned"):
        choose_merge_weight(lambda w: bad)


def test_combine_error_is_an_adapter_error():
    assert issubclass(CombineError, AdapterError)
