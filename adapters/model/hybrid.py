"""The hybrid score: a logistic regression over named features (LLM logits, rate features).

Fit it on *out-of-sample* predictions only (validation samples the adapters never trained on,
or test-then-train scores of earlier windows): the LLM's in-sample logits are overconfident.
Features are standardised, the intercept is not penalised, and the L2 strength is chosen by
k-fold cross-validated log-loss. The fitted combiner is plain numbers
(:meth:`HybridCombiner.to_dict`), so it can travel in a serving set like α does today.

**Never worse than the rates (the safeguard).** :func:`fit_hybrid` fits two combiners on the
same folds: one on the ``base`` features only (the rate stack) and one on ``base + extra`` (the
rates plus the LLM logits). It keeps the LLM features only when they raise the pooled
out-of-fold AUC by more than one standard error of that gain (the one-standard-error rule;
the s.e. from a seeded paired bootstrap of the out-of-fold scores), else the rates, and says
which in ``note``. A gain within the noise is not worth an LLM feature: with the plain "any
gain" rule, pure-noise "LLM" features (300 fitting samples, 3 informative rates, 100 draws,
AUC on 3,000 fresh samples) were kept 27 % (one) / 19 % (three) of the time at −0.0005 /
−0.0015 AUC on average, −0.011 / −0.014 at worst; in the ML-100K experiment (500 samples per
period) it took the LLM in on out-of-fold gains of +0.0007 and +0.002 and lost test AUC both
times. On later data this is an estimate, not a guarantee.

>>> rng = np.random.default_rng(0)
>>> rate = rng.normal(size=400)
>>> noise = rng.normal(size=400)  # an "LLM" that knows nothing
>>> y = (rate + rng.normal(size=400) > 0).astype(int)
>>> h = fit_hybrid({"rate": rate, "llm": noise}, y, base=["rate"], extra=["llm"])
>>> h.features, h.note.startswith("rates only")
(('rate',), True)
>>> HybridCombiner.from_dict(h.to_dict()) == h
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lsat.adapters.model.errors import AdapterError
from lsat.core.evaluation import auc

__all__ = [
    "L2_GRID",
    "HybridCombiner",
    "HybridError",
    "auc_gain_standard_error",
    "fit_combiner",
    "fit_hybrid",
    "fit_logistic",
    "logit",
]

L2_GRID: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)
"""L2 strengths tried (penalty ``l2/2 · |w|²`` on standardised features, summed log-loss)."""


class HybridError(AdapterError, ValueError):
    """Bad input to the combiner: missing or non-finite features, one class only, bad state."""


def logit(p: np.ndarray | Sequence[float], eps: float = 1e-6) -> np.ndarray:
    """log(p / (1 − p)), clipped away from 0 and 1.

    >>> logit([0.5, 0.8]).round(3).tolist()
    [0.0, 1.386]
    """
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(q / (1 - q))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float, max_iter: int = 50
) -> tuple[np.ndarray, float]:
    """Weights and intercept of L2-penalised logistic regression by Newton's method.

    Minimises summed log-loss + ``l2/2 · |w|²`` (scikit-learn's ``C = 1/l2``).

    >>> w, b = fit_logistic(np.array([[-2.0], [-1.0], [1.0], [2.0]]), np.array([0, 1, 0, 1]), 1.0)
    >>> w.round(2).tolist(), round(b, 3)
    ([0.29], 0.0)
    """
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(d + 1)
    penalty = np.full(d + 1, float(l2))
    penalty[-1] = 0.0  # the intercept is not penalised
    for _ in range(max_iter):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (p - y) + penalty * beta
        hessian = (
            (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty) + 1e-9 * np.eye(d + 1)
        )
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta[:-1].copy(), float(beta[-1])


@dataclass(frozen=True)
class HybridCombiner:
    """A fitted logistic combiner: P = σ(b + Σ w_k · (x_k − mean_k) / scale_k)."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float
    means: tuple[float, ...]
    scales: tuple[float, ...]
    l2: float
    note: str = ""

    def __post_init__(self) -> None:
        sizes = {len(self.features), len(self.weights), len(self.means), len(self.scales)}
        if len(sizes) != 1:
            raise HybridError(
                f"combiner fields differ in length: features {len(self.features)}, weights "
                f"{len(self.weights)}, means {len(self.means)}, scales {len(self.scales)}"
            )
        numbers = [*self.weights, *self.means, *self.scales, self.intercept]
        if not all(math.isfinite(v) for v in numbers) or any(s <= 0 for s in self.scales):
            raise HybridError(f"combiner has non-finite weights or non-positive scales: {self}")

    def matrix(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The standardised feature matrix (rows = samples) from named columns."""
        return (_columns(columns, self.features) - np.asarray(self.means)) / np.asarray(self.scales)

    def decision(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The combined logit per sample."""
        return self.matrix(columns) @ np.asarray(self.weights) + self.intercept

    def predict_proba(self, columns: Mapping[str, Any]) -> np.ndarray:
        """P(like) per sample."""
        return _sigmoid(self.decision(columns))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values; :meth:`from_dict` restores an equal combiner."""
        return {
            "kind": "logistic",
            "features": list(self.features),
            "weights": list(self.weights),
            "intercept": self.intercept,
            "means": list(self.means),
            "scales": list(self.scales),
            "l2": self.l2,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HybridCombiner:
        """The combiner :meth:`to_dict` wrote; raises :class:`HybridError` on a bad one."""
        if data.get("kind") != "logistic":
            raise HybridError(f"combiner kind {data.get('kind')!r} is not 'logistic'")
        try:
            return cls(
                features=tuple(str(f) for f in data["features"]),
                weights=tuple(float(w) for w in data["weights"]),
                intercept=float(data["intercept"]),
                means=tuple(float(m) for m in data["means"]),
                scales=tuple(float(s) for s in data["scales"]),
                l2=float(data["l2"]),
                note=str(data.get("note", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HybridError(f"malformed combiner {dict(data)!r}: {exc}") from exc


def _columns(columns: Mapping[str, Any], names: Sequence[str]) -> np.ndarray:
    missing = [n for n in names if n not in columns]
    if missing:
        raise HybridError(f"missing features {missing}; have {sorted(columns)}")
    if not names:
        raise HybridError("a combiner needs at least one feature")
    arrays = [np.asarray(columns[n], dtype=np.float64).reshape(-1) for n in names]
    lengths = {n: len(a) for n, a in zip(names, arrays, strict=True)}
    if len(set(lengths.values())) > 1:
        raise HybridError(f"features differ in length: {lengths}")
    x = np.column_stack(arrays)
    if not np.isfinite(x).all():
        bad = names[int(np.argmax(~np.isfinite(x).all(axis=0)))]
        raise HybridError(f"feature {bad!r} has non-finite values")
    return x


def _fit(
    x: np.ndarray, y: np.ndarray, names: Sequence[str], l2: float, note: str = ""
) -> HybridCombiner:
    means = x.mean(axis=0)
    scales = x.std(axis=0)
    scales = np.where(scales > 1e-12, scales, 1.0)
    w, b = fit_logistic((x - means) / scales, y, l2)
    return HybridCombiner(
        features=tuple(names),
        weights=tuple(float(v) for v in w),
        intercept=b,
        means=tuple(float(v) for v in means),
        scales=tuple(float(v) for v in scales),
        l2=float(l2),
        note=note,
    )


def _folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A fold number per sample, each class spread evenly over the folds (seeded)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=int)
    for cls in (0, 1):
        index = rng.permutation(np.flatnonzero(y == cls))
        fold[index] = np.arange(len(index)) % k
    return fold


def _cross_validate(
    x: np.ndarray, y: np.ndarray, fold: np.ndarray, l2_grid: Sequence[float]
) -> tuple[float, np.ndarray]:
    """The L2 strength with the lowest out-of-fold log-loss and its out-of-fold scores."""
    best: tuple[float, float, np.ndarray] | None = None
    names = [str(i) for i in range(x.shape[1])]
    for l2 in l2_grid:
        out = np.empty(len(y))
        for k in np.unique(fold):
            held = fold == k
            model = _fit(x[~held], y[~held], names, l2)
            out[held] = model.decision(dict(zip(names, x[held].T, strict=True)))
        p = np.clip(_sigmoid(out), 1e-12, 1 - 1e-12)
        loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        if best is None or loss < best[0] - 1e-12:
            best = (loss, float(l2), out)
    assert best is not None
    return best[1], best[2]


def _check_labels(labels: Any, n: int, folds: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.isin(y, (0, 1)).all():
        raise HybridError(f"labels must be {n} values in {{0, 1}}, got shape {y.shape}")
    smaller = int(min(y.sum(), n - y.sum()))
    if smaller < folds:
        raise HybridError(
            f"need at least {folds} samples of each class to cross-validate, got {smaller}"
        )
    return y.astype(np.float64)


def fit_combiner(
    columns: Mapping[str, Any],
    labels: Sequence[int] | np.ndarray,
    features: Sequence[str],
    *,
    l2_grid: Sequence[float] = L2_GRID,
    folds: int = 5,
    seed: int = 0,
) -> HybridCombiner:
    """A logistic combiner over ``features``, its L2 strength chosen by k-fold log-loss.

    >>> x = np.linspace(-2, 2, 40)
    >>> c = fit_combiner({"x": x}, (x > 0).astype(int), ["x"], l2_grid=[1.0])
    >>> bool(c.predict_proba({"x": [1.5]})[0] > 0.9), c.l2
    (True, 1.0)
    """
    x = _columns(columns, features)
    y = _check_labels(labels, len(x), folds)
    l2, _ = _cross_validate(x, y, _folds(y, folds, seed), l2_grid)
    return _fit(x, y, features, l2)


def auc_gain_standard_error(
    labels: np.ndarray,
    with_extra: np.ndarray,
    without: np.ndarray,
    *,
    resamples: int = 200,
    seed: int = 0,
) -> float:
    """Standard error of AUC(``with_extra``) − AUC(``without``) on the same samples, from a
    seeded paired bootstrap (both scores resampled together).

    >>> rng = np.random.default_rng(1)
    >>> y = rng.integers(0, 2, 400)
    >>> a = y + rng.normal(size=400)
    >>> round(auc_gain_standard_error(y, a, a), 6)  # the same scores: no gain, no spread
    0.0
    >>> 0.005 < auc_gain_standard_error(y, a + rng.normal(size=400), a) < 0.05
    True
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    gains = []
    for _ in range(resamples):
        pick = rng.integers(0, n, n)
        gain = auc(labels[pick], with_extra[pick]) - auc(labels[pick], without[pick])
        if math.isfinite(gain):
            gains.append(gain)
    return float(np.std(gains, ddof=1)) if len(gains) > 1 else math.nan


def fit_hybrid(
    columns: Mapping[str, Any],
    labels: Sequence[int] | np.ndarray,
    *,
    base: Sequence[str],
    extra: Sequence[str],
    l2_grid: Sequence[float] = L2_GRID,
    folds: int = 5,
    seed: int = 0,
    margin_se: float = 1.0,
) -> HybridCombiner:
    """The combiner over ``base + extra``, or over ``base`` alone when ``extra`` does not help.

    Both are cross-validated on the same folds; ``extra`` features (the LLM logits) are kept
    only if they raise the pooled out-of-fold AUC by more than ``margin_se`` standard errors
    of that gain (:func:`auc_gain_standard_error`; ``0``: any gain). ``note`` says which won.
    """
    every = [*base, *[f for f in extra if f not in base]]
    x_all = _columns(columns, every)
    y = _check_labels(labels, len(x_all), folds)
    fold = _folds(y, folds, seed)
    x_base = x_all[:, : len(base)] if base else None
    l2_all, oof_all = _cross_validate(x_all, y, fold, l2_grid)
    auc_all = auc(y, oof_all)
    if x_base is None:
        return _fit(x_all, y, every, l2_all, f"no base features; out-of-fold AUC {auc_all:.4f}")
    l2_base, oof_base = _cross_validate(x_base, y, fold, l2_grid)
    auc_base = auc(y, oof_base)
    gain = auc_all - auc_base
    se = auc_gain_standard_error(y, oof_all, oof_base, seed=seed) if gain > 0 else math.nan
    margin = margin_se * se if math.isfinite(se) else 0.0
    detail = f"out-of-fold AUC {auc_all:.4f} vs rates {auc_base:.4f} ({gain:+.4f}"
    detail += f", s.e. {se:.4f})" if math.isfinite(se) else ")"
    if gain > margin:
        return _fit(x_all, y, every, l2_all, f"with {', '.join(extra)}: {detail}")
    why = "not above the noise" if gain > 0 else "no gain"
    note = f"rates only: {', '.join(extra)} gave {detail}: {why}"
    return _fit(x_base, y, list(base), l2_base, note)
