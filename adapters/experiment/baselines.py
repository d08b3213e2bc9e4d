"""Non-LLM baselines with a tiny River-like API, for comparison with the LoRA strategies.

Every baseline has ``learn_many(samples) -> self`` (update with more samples: counts add up,
matrix factorisation continues its SGD), ``fit(samples) -> self`` (forget, then learn) and
``predict_many(samples) -> np.ndarray`` (P(like), or a ranking score in [0, 1]). The
experiment refits them on periods 1..t with ``fit`` or feeds period t with ``learn_many``.

>>> from lsat.data.types import Sample
>>> train = [Sample("e", u, i, 0, y, (), ()) for u, i, y in
...          [("a", "x", 1), ("a", "y", 1), ("b", "x", 0), ("b", "y", 0)]]
>>> UserLikeRate(prior_strength=2).fit(train).predict_many(train[1:3]).round(3).tolist()
[0.75, 0.25]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from lsat.adapters.model.hybrid import HybridCombiner, HybridError, fit_combiner
from lsat.data.collaborative import FEATURE_COLUMNS, feature_columns
from lsat.data.types import Sample

__all__ = [
    "BASELINES",
    "Baseline",
    "HistoryLikeRate",
    "ItemLikeRate",
    "LikeRateSum",
    "MatrixFactorization",
    "RateStack",
    "UserLikeRate",
]


class Baseline(Protocol):
    """What the experiment needs from a baseline."""

    def learn_many(self, samples: Sequence[Sample]) -> Baseline: ...

    def fit(self, samples: Sequence[Sample]) -> Baseline: ...

    def predict_many(self, samples: Sequence[Sample]) -> np.ndarray: ...


class _GlobalRate:
    """Running like-rate over every learned sample (0.5 before any)."""

    def __init__(self) -> None:
        self.likes = 0
        self.count = 0

    def add(self, samples: Sequence[Sample]) -> None:
        self.likes += sum(s.label for s in samples)
        self.count += len(samples)

    @property
    def rate(self) -> float:
        return self.likes / self.count if self.count else 0.5


class _KeyedLikeRate:
    """Like-rate per key, Bayes-smoothed toward the global rate with ``prior_strength``."""

    key: Callable[[Sample], str]

    def __init__(self, prior_strength: float = 10.0) -> None:
        if prior_strength < 0:
            raise ValueError(f"prior_strength must be >= 0, got {prior_strength}")
        self.prior_strength = prior_strength
        self._reset()

    def _reset(self) -> None:
        self.global_rate = _GlobalRate()
        self._likes: dict[str, int] = defaultdict(int)
        self._counts: dict[str, int] = defaultdict(int)

    def learn_many(self, samples: Sequence[Sample]) -> _KeyedLikeRate:
        """Add the samples' labels to the per-key counts."""
        self.global_rate.add(samples)
        for sample in samples:
            key = type(self).key(sample)
            self._likes[key] += sample.label
            self._counts[key] += 1
        return self

    def fit(self, samples: Sequence[Sample]) -> _KeyedLikeRate:
        """Forget everything, then learn ``samples``."""
        self._reset()
        return self.learn_many(samples)

    def rate(self, key: str) -> float:
        """Smoothed like-rate of one key (the global rate for an unseen key)."""
        prior, k = self.global_rate.rate, self.prior_strength
        n = self._counts.get(key, 0)
        if n + k == 0:
            return prior
        return (self._likes.get(key, 0) + k * prior) / (n + k)

    def predict_many(self, samples: Sequence[Sample]) -> np.ndarray:
        """Smoothed like-rate of each sample's key."""
        return np.array([self.rate(type(self).key(s)) for s in samples], dtype=np.float64)


class UserLikeRate(_KeyedLikeRate):
    """How often the user liked items so far (smoothed)."""

    @staticmethod
    def key(sample: Sample) -> str:
        return sample.user_id


class ItemLikeRate(_KeyedLikeRate):
    """How often the item was liked so far (smoothed)."""

    @staticmethod
    def key(sample: Sample) -> str:
        return sample.item_id


class LikeRateSum:
    """Mean of the user's and the item's smoothed like-rates (a ranking score).

    >>> from lsat.data.types import Sample
    >>> train = [Sample("e", "a", "x", 0, 1, (), ()), Sample("e", "b", "y", 0, 0, (), ())]
    >>> LikeRateSum(prior_strength=0).fit(train).predict_many(train).tolist()
    [1.0, 0.0]
    """

    def __init__(self, prior_strength: float = 10.0) -> None:
        self.users = UserLikeRate(prior_strength)
        self.items = ItemLikeRate(prior_strength)

    def learn_many(self, samples: Sequence[Sample]) -> LikeRateSum:
        self.users.learn_many(samples)
        self.items.learn_many(samples)
        return self

    def fit(self, samples: Sequence[Sample]) -> LikeRateSum:
        self.users.fit(samples)
        self.items.fit(samples)
        return self

    def predict_many(self, samples: Sequence[Sample]) -> np.ndarray:
        return (self.users.predict_many(samples) + self.items.predict_many(samples)) / 2


class HistoryLikeRate:
    """Like-rate of the sample's own history (its last liked/disliked items), smoothed.

    Needs no per-user state: the sample carries the history. Learning only sets the prior.

    >>> from lsat.data.types import Sample
    >>> s = Sample("e", "u", "x", 0, 1, ("a", "b", "c", "d"), (1, 1, 1, 0))
    >>> float(HistoryLikeRate(prior_strength=4).fit([s]).predict_many([s])[0])
    0.875
    """

    def __init__(self, prior_strength: float = 2.0) -> None:
        self.prior_strength = prior_strength
        self.global_rate = _GlobalRate()

    def learn_many(self, samples: Sequence[Sample]) -> HistoryLikeRate:
        self.global_rate.add(samples)
        return self

    def fit(self, samples: Sequence[Sample]) -> HistoryLikeRate:
        self.global_rate = _GlobalRate()
        return self.learn_many(samples)

    def predict_many(self, samples: Sequence[Sample]) -> np.ndarray:
        k, prior = self.prior_strength, self.global_rate.rate
        likes = np.array([sum(s.history_labels) for s in samples], dtype=np.float64)
        counts = np.array([len(s.history_labels) for s in samples], dtype=np.float64)
        return (likes + k * prior) / np.maximum(counts + k, 1e-12)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class MatrixFactorization:
    """Logistic matrix factorisation with biases, trained by seeded mini-batch SGD.

    P(like) = σ(b + b_user + b_item + p_user · q_item); unseen users or items contribute zero.
    ``learn_many`` continues training from the current factors (new ids are added);
    ``fit`` starts again from the seed, so equal seeds and data give equal predictions.

    >>> from lsat.data.types import Sample
    >>> train = [Sample("e", u, i, 0, int(u == i), (), ()) for u in "abc" for i in "abc"]
    >>> mf = MatrixFactorization(n_factors=4, epochs=200, seed=1).fit(train)
    >>> bool(mf.predict_many(train[:1])[0] > mf.predict_many(train[1:2])[0])
    True
    """

    def __init__(
        self,
        n_factors: int = 16,
        epochs: int = 10,
        learning_rate: float = 0.05,
        l2: float = 0.01,
        batch_size: int = 32,
        init_scale: float = 0.1,
        seed: int = 0,
    ) -> None:
        if n_factors < 1 or epochs < 0 or batch_size < 1:
            raise ValueError(
                f"need n_factors >= 1, epochs >= 0, batch_size >= 1; got {n_factors}, "
                f"{epochs}, {batch_size}"
            )
        self.n_factors = n_factors
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.l2 = l2
        self.batch_size = batch_size
        self.init_scale = init_scale
        self.seed = seed
        self._reset()

    def _reset(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._user_index: dict[str, int] = {}
        self._item_index: dict[str, int] = {}
        self.global_bias = 0.0
        self.user_bias = np.zeros(0)
        self.item_bias = np.zeros(0)
        self.user_factors = np.zeros((0, self.n_factors))
        self.item_factors = np.zeros((0, self.n_factors))
        self._seen = _GlobalRate()

    def _indices(self, ids: list[str], index: dict[str, int]) -> np.ndarray:
        for key in ids:
            if key not in index:
                index[key] = len(index)
        return np.fromiter((index[key] for key in ids), dtype=np.int64, count=len(ids))

    def _grow(self) -> None:
        """Give newly indexed users/items a zero bias and small random factors."""
        for bias, factors, index in (
            ("user_bias", "user_factors", self._user_index),
            ("item_bias", "item_factors", self._item_index),
        ):
            extra = len(index) - len(getattr(self, bias))
            if extra > 0:
                setattr(self, bias, np.concatenate([getattr(self, bias), np.zeros(extra)]))
                new = self._rng.normal(0.0, self.init_scale, (extra, self.n_factors))
                setattr(self, factors, np.vstack([getattr(self, factors), new]))

    def learn_many(self, samples: Sequence[Sample]) -> MatrixFactorization:
        """Run ``epochs`` passes of SGD over ``samples`` from the current parameters."""
        if not samples:
            return self
        users = self._indices([s.user_id for s in samples], self._user_index)
        items = self._indices([s.item_id for s in samples], self._item_index)
        labels = np.fromiter((s.label for s in samples), dtype=np.float64, count=len(samples))
        self._grow()
        if self._seen.count == 0:
            rate = np.clip(labels.mean(), 1e-3, 1 - 1e-3)
            self.global_bias = float(np.log(rate / (1 - rate)))
        self._seen.add(samples)
        lr, l2 = self.learning_rate, self.l2
        for _ in range(self.epochs):
            order = self._rng.permutation(len(samples))
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                u, i, y = users[batch], items[batch], labels[batch]
                pu, qi = self.user_factors[u], self.item_factors[i]
                logits = (
                    self.global_bias + self.user_bias[u] + self.item_bias[i]
                    + np.einsum("bf,bf->b", pu, qi)
                )  # fmt: skip
                grad = _sigmoid(logits) - y  # d logloss / d logit, per sample
                self.global_bias -= lr * float(grad.mean())
                np.add.at(self.user_bias, u, -lr * (grad + l2 * self.user_bias[u]))
                np.add.at(self.item_bias, i, -lr * (grad + l2 * self.item_bias[i]))
                np.add.at(self.user_factors, u, -lr * (grad[:, None] * qi + l2 * pu))
                np.add.at(self.item_factors, i, -lr * (grad[:, None] * pu + l2 * qi))
        return self

    def fit(self, samples: Sequence[Sample]) -> MatrixFactorization:
        """Start again from the seed, then learn ``samples``."""
        self._reset()
        return self.learn_many(samples)

    def predict_many(self, samples: Sequence[Sample]) -> np.ndarray:
        """P(like) for each sample (unseen users/items fall back to the learned biases)."""
        n = len(samples)
        logits = np.full(n, self.global_bias)
        for k, sample in enumerate(samples):
            u = self._user_index.get(sample.user_id)
            i = self._item_index.get(sample.item_id)
            if u is not None:
                logits[k] += self.user_bias[u]
            if i is not None:
                logits[k] += self.item_bias[i]
            if u is not None and i is not None:
                logits[k] += float(self.user_factors[u] @ self.item_factors[i])
        return _sigmoid(logits)


class RateStack:
    """Logistic regression over the prequential collaborative features of annotated samples.

    Every learned sample carries its counts as of just before its event
    (:func:`lsat.data.collaborative.build_annotated_samples`), so fitting on all of them leaks
    nothing. Too few samples to cross-validate (fewer than 5 of a class) fall back to the
    item like-rate alone; before any sample every score is 0.5.

    >>> from lsat.data.collaborative import annotate_samples
    >>> ss = annotate_samples([Sample(str(k), f"u{k % 3}", f"i{k % 4}", k, int(k % 4 < 2),
    ...                               (), ()) for k in range(60)])
    >>> stack = RateStack().fit(ss[:40])
    >>> stack.model.features == FEATURE_COLUMNS, stack.predict_many(ss[40:]).shape
    (True, (20,))
    """

    def __init__(self) -> None:
        self._samples: list[Sample] = []
        self._model: HybridCombiner | None = None
        self._fitted = False

    def learn_many(self, samples: Sequence[Sample]) -> RateStack:
        self._samples.extend(samples)
        self._fitted = False
        return self

    def fit(self, samples: Sequence[Sample]) -> RateStack:
        self._samples = []
        return self.learn_many(samples)

    @property
    def model(self) -> HybridCombiner | None:
        """The fitted combiner (None: too few samples, the item rate is used)."""
        if not self._fitted:
            labels = np.array([s.label for s in self._samples])
            try:
                columns = feature_columns(self._samples)
                self._model = fit_combiner(columns, labels, FEATURE_COLUMNS)
            except HybridError:
                self._model = None
            self._fitted = True
        return self._model

    def decision(self, samples: Sequence[Sample]) -> np.ndarray:
        """The stack's logit per sample (0 for all before anything was learned)."""
        if not self._samples:
            return np.zeros(len(samples))
        columns = feature_columns(samples)
        model = self.model
        return columns["logit_item_rate"] if model is None else model.decision(columns)

    def predict_many(self, samples: Sequence[Sample]) -> np.ndarray:
        return _sigmoid(self.decision(samples))


BASELINES: dict[str, Callable[[], Baseline]] = {
    "user-like-rate": UserLikeRate,
    "item-like-rate": ItemLikeRate,
    "like-rate-sum": LikeRateSum,
    "history-like-rate": HistoryLikeRate,
    "matrix-factorization": MatrixFactorization,
    "rate-stack": RateStack,
}
"""Name → factory with default settings (for the experiment's command line)."""
