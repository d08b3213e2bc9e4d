"""The hybrid combiner: exact logistic fit, the rates-only safeguard, JSON round trip, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from lsat.adapters.model.hybrid import (
    HybridCombiner,
    HybridError,
    auc_gain_standard_error,
    fit_combiner,
    fit_hybrid,
    fit_logistic,
)
from lsat.core.evaluation import auc


def synthetic(n: int, llm_strength: float, seed: int = 0):
    """A rate feature that predicts the label, and an "LLM" logit with ``llm_strength``."""
    rng = np.random.default_rng(seed)
    rate, hidden = rng.normal(size=n), rng.normal(size=n)
    y = (rate + llm_strength * hidden + 0.5 * rng.normal(size=n) > 0).astype(int)
    llm = hidden + 0.3 * rng.normal(size=n)
    return {"rate": rate, "llm": llm}, y


@pytest.mark.parametrize("l2", [0.01, 1.0, 30.0])
def test_fit_logistic_matches_scikit_learn(l2: float) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(150, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=150) > 0).astype(int)
    w, b = fit_logistic(x, y.astype(float), l2)
    reference = LogisticRegression(C=1 / l2, tol=1e-12, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(w, reference.coef_[0], atol=1e-5)
    assert b == pytest.approx(reference.intercept_[0], abs=1e-5)


def test_an_informative_llm_feature_is_kept_and_helps() -> None:
    columns, y = synthetic(600, llm_strength=1.0)
    hybrid = fit_hybrid(columns, y, base=["rate"], extra=["llm"])
    assert hybrid.features == ("rate", "llm")
    assert hybrid.note.startswith("with llm")
    test_columns, test_y = synthetic(600, llm_strength=1.0, seed=1)
    rates = fit_combiner(columns, y, ["rate"])
    assert auc(test_y, hybrid.predict_proba(test_columns)) > auc(
        test_y, rates.predict_proba(test_columns)
    )


@pytest.mark.parametrize("seed", [0, 4])
def test_a_useless_llm_feature_falls_back_to_the_rate_stack(seed: int) -> None:
    columns, y = synthetic(300, llm_strength=0.0, seed=seed)
    hybrid = fit_hybrid(columns, y, base=["rate"], extra=["llm"])
    assert hybrid.features == ("rate",)
    assert hybrid.note.startswith("rates only")
    stack = fit_combiner(columns, y, ["rate"])
    assert (hybrid.weights, hybrid.intercept, hybrid.l2) == (
        stack.weights,
        stack.intercept,
        stack.l2,
    )


def test_a_noise_gain_within_one_standard_error_keeps_the_rates() -> None:
    """Noise "LLM" features sometimes raise the out-of-fold AUC a little by chance: the plain
    "any gain" rule (``margin_se=0``) takes them in, the default one-s.e. rule does not."""
    lucky = []
    for seed in range(40):
        columns, y = synthetic(300, llm_strength=0.0, seed=seed)
        if fit_hybrid(columns, y, base=["rate"], extra=["llm"], margin_se=0).features != ("rate",):
            lucky.append((columns, y))
    assert lucky, "no seed gave the noise feature an out-of-fold gain"
    for columns, y in lucky:
        hybrid = fit_hybrid(columns, y, base=["rate"], extra=["llm"])
        assert hybrid.features == ("rate",)
        assert "not above the noise" in hybrid.note, hybrid.note


def test_the_gain_standard_error_is_a_paired_bootstrap() -> None:
    columns, y = synthetic(400, llm_strength=0.5)
    a, b = columns["rate"] + columns["llm"], columns["rate"]
    se = auc_gain_standard_error(y, a, b, seed=3)
    assert se == auc_gain_standard_error(y, a, b, seed=3)  # seeded: the same every time
    gains = []
    rng = np.random.default_rng(7)
    for _ in range(300):
        pick = rng.integers(0, len(y), len(y))
        gains.append(auc(y[pick], a[pick]) - auc(y[pick], b[pick]))
    assert se == pytest.approx(np.std(gains, ddof=1), rel=0.25)
    # paired: far below the unpaired spread of two separate AUCs (Hanley-McNeil, ~0.02 each)
    assert se < 0.02


def test_weights_round_trip_through_json() -> None:
    columns, y = synthetic(200, llm_strength=1.0)
    hybrid = fit_hybrid(columns, y, base=["rate"], extra=["llm"])
    again = HybridCombiner.from_dict(json.loads(json.dumps(hybrid.to_dict())))
    assert again == hybrid
    np.testing.assert_array_equal(again.predict_proba(columns), hybrid.predict_proba(columns))


def test_a_constant_feature_does_not_break_the_fit() -> None:
    columns, y = synthetic(100, llm_strength=0.0)
    combiner = fit_combiner({**columns, "flat": np.ones(100)}, y, ["rate", "flat"])
    assert np.isfinite(combiner.predict_proba({**columns, "flat": np.ones(100)})).all()


@pytest.mark.parametrize(
    ("columns", "labels", "message"),
    [
        ({"rate": np.zeros(10)}, np.r_[np.zeros(5), np.ones(5)], r"missing features \['llm'\]"),
        (
            {"rate": np.r_[np.nan, np.zeros(9)], "llm": np.zeros(10)},
            np.r_[np.zeros(5), np.ones(5)],
            "'rate' has non-finite",
        ),
        ({"rate": np.zeros(10), "llm": np.zeros(10)}, np.ones(10), "each class"),
        ({"rate": np.zeros(10), "llm": np.zeros(10)}, np.full(10, 2), r"labels must be"),
        ({"rate": np.zeros(10), "llm": np.zeros(9)}, np.ones(10), "differ in length"),
    ],
)
def test_bad_input_is_named(columns, labels, message) -> None:
    with pytest.raises(HybridError, match=message):
        fit_hybrid(columns, labels, base=["rate"], extra=["llm"])


def test_a_bad_stored_combiner_is_refused() -> None:
    good = fit_combiner(*synthetic(100, 0.0), ["rate"]).to_dict()
    with pytest.raises(HybridError, match="kind 'tree'"):
        HybridCombiner.from_dict({**good, "kind": "tree"})
    with pytest.raises(HybridError, match="differ in length"):
        HybridCombiner.from_dict({**good, "weights": [1.0, 2.0]})
    with pytest.raises(HybridError, match="non-finite"):
        HybridCombiner.from_dict({**good, "intercept": float("nan")})
    with pytest.raises(HybridError, match="malformed"):
        HybridCombiner.from_dict({k: v for k, v in good.items() if k != "means"})
