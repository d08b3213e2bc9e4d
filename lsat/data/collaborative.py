"""Leak-free collaborative signal: like counts per user and item, kept as a stream sees them.

:class:`CollaborativeCounts` follows River's verbs: ``features_before(user, item)`` reads the
counts *as of just before* an event, then ``learn_one(user, item, label)`` adds it. Calling them
in that order over a time-ordered stream makes every feature prequential: no feature can hold
its own event or a later one. The state is plain JSON (:meth:`~CollaborativeCounts.to_state`),
so a stream worker can keep it next to the user histories.

Besides counts it keeps one item-item signal, ``co_like``: for the target item, the mean over
the user's ``co_like_window`` most recent likes *j* of ``pairs(i, j) / sqrt(likes_i · likes_j)``,
where ``pairs(i, j)`` counts the times one user liked both within that window (a streaming,
cosine-normalised item-based CF score). Its state grows with the distinct co-liked pairs
(≈ likes × window in the worst case); ``co_like_window=0`` switches it off.

>>> counts = CollaborativeCounts(co_like_window=3)
>>> for user, item, label in [("a", "x", 1), ("a", "y", 1), ("b", "x", 1), ("b", "z", 0)]:
...     counts = counts.learn_one(user, item, label)
>>> f = counts.features_before("b", "y")  # b liked x; x and y were liked together by a
>>> (f.user_likes, f.user_count, f.item_likes, f.item_count, f.global_likes, f.global_count)
(1, 2, 1, 1, 3, 4)
>>> round(f.co_like, 3)  # pairs(x, y) / sqrt(likes_y · likes_x) = 1 / sqrt(1 · 2)
0.707
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from lsat.data.errors import LsatDataError
from lsat.data.samples import HistoryTracker
from lsat.data.types import HISTORY_LENGTH, CollaborativeFeatures, Interaction, Sample

__all__ = [
    "FEATURE_COLUMNS",
    "CollaborativeCounts",
    "annotate_samples",
    "build_annotated_samples",
    "feature_columns",
]

STATE_VERSION = 1


class CollaborativeCounts:
    """Per-user, per-item and global like counts plus a co-like score, updated one event at a time.

    The caller de-duplicates re-delivered events (the stream's :class:`HistoryTracker` does).
    """

    def __init__(self, co_like_window: int = 10) -> None:
        if co_like_window < 0:
            raise LsatDataError(f"co_like_window must be >= 0, got {co_like_window}")
        self.co_like_window = co_like_window
        self.global_likes = 0
        self.global_count = 0
        self._users: dict[str, list[int]] = {}  # user -> [likes, count]
        self._items: dict[str, list[int]] = {}  # item -> [likes, count]
        self._recent_likes: dict[str, list[str]] = {}  # user -> newest liked items
        self._pairs: dict[tuple[str, str], int] = {}  # sorted (item, item) -> co-likes

    def __len__(self) -> int:
        """How many events were learned."""
        return self.global_count

    def _pair(self, a: str, b: str) -> int:
        return self._pairs.get((a, b) if a < b else (b, a), 0)

    def co_like(self, user_id: str, item_id: str) -> float:
        """Mean cosine co-like score of ``item_id`` with the user's recent likes (0 if unknown).

        >>> CollaborativeCounts().co_like("nobody", "x")
        0.0
        """
        likes_i = self._items.get(item_id, (0, 0))[0]
        recent = [j for j in self._recent_likes.get(user_id, ()) if j != item_id]
        if likes_i == 0 or not recent:
            return 0.0
        total = sum(self._pair(item_id, j) / math.sqrt(likes_i * self._items[j][0]) for j in recent)
        return total / len(recent)

    def features_before(self, user_id: str, item_id: str) -> CollaborativeFeatures:
        """The counts as they stand now, i.e. just before the event about to be learned."""
        user = self._users.get(user_id, (0, 0))
        item = self._items.get(item_id, (0, 0))
        return CollaborativeFeatures(
            user_likes=user[0],
            user_count=user[1],
            item_likes=item[0],
            item_count=item[1],
            global_likes=self.global_likes,
            global_count=self.global_count,
            co_like=self.co_like(user_id, item_id) if self.co_like_window else 0.0,
        )

    def learn_one(self, user_id: str, item_id: str, label: int) -> CollaborativeCounts:
        """Add one event (label 0 or 1); returns ``self``."""
        if label not in (0, 1):
            raise LsatDataError(f"label must be 0 or 1, got {label!r} ({user_id}, {item_id})")
        label = int(label)
        for table, key in ((self._users, user_id), (self._items, item_id)):
            entry = table.setdefault(key, [0, 0])
            entry[0] += label
            entry[1] += 1
        self.global_likes += label
        self.global_count += 1
        if label and self.co_like_window:
            recent = self._recent_likes.setdefault(user_id, [])
            for j in recent:
                if j == item_id:
                    continue
                pair = (item_id, j) if item_id < j else (j, item_id)
                self._pairs[pair] = self._pairs.get(pair, 0) + 1
            if item_id in recent:
                recent.remove(item_id)
            recent.append(item_id)
            del recent[: -self.co_like_window]
        return self

    def observe(self, user_id: str, item_id: str, label: int) -> CollaborativeFeatures:
        """``features_before`` then ``learn_one``: the event's features, with the event learned."""
        features = self.features_before(user_id, item_id)
        self.learn_one(user_id, item_id, label)
        return features

    # ---- state ----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Plain JSON-able state (lists and dicts of str/int only).

        >>> counts = CollaborativeCounts(co_like_window=2).learn_one("u", "i", 1)
        >>> import json; state = json.loads(json.dumps(counts.to_state()))
        >>> CollaborativeCounts.from_state(state).features_before("u", "i").item_likes
        1
        """
        return {
            "version": STATE_VERSION,
            "co_like_window": self.co_like_window,
            "global": [self.global_likes, self.global_count],
            "users": {k: list(v) for k, v in self._users.items()},
            "items": {k: list(v) for k, v in self._items.items()},
            "recent_likes": {k: list(v) for k, v in self._recent_likes.items()},
            "pairs": [[a, b, n] for (a, b), n in self._pairs.items()],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> CollaborativeCounts:
        """Counts restored from :meth:`to_state`; a malformed state raises LsatDataError."""
        try:
            if state["version"] != STATE_VERSION:
                raise LsatDataError(
                    f"collaborative state version {state['version']!r}, expected {STATE_VERSION}"
                )
            counts = cls(int(state["co_like_window"]))
            counts.global_likes, counts.global_count = (int(v) for v in state["global"])
            counts._users = {str(k): [int(v[0]), int(v[1])] for k, v in state["users"].items()}
            counts._items = {str(k): [int(v[0]), int(v[1])] for k, v in state["items"].items()}
            counts._recent_likes = {
                str(k): [str(i) for i in v] for k, v in state["recent_likes"].items()
            }
            counts._pairs = {(str(a), str(b)): int(n) for a, b, n in state["pairs"]}
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise LsatDataError(f"malformed collaborative state: {exc!r}") from exc
        return counts


def build_annotated_samples(
    interactions: Iterable[Interaction],
    length: int = HISTORY_LENGTH,
    counts: CollaborativeCounts | None = None,
) -> list[Sample]:
    """TALLRec samples of time-ordered ``interactions``, each with the counts just before it.

    Every interaction updates the counts, also those that give no sample (a user's first
    ``length``), exactly as a stream sees them. ``counts`` (updated in place) may carry state.

    >>> its = [Interaction("u", f"i{t}", t, t % 2) for t in range(4)]
    >>> [(s.item_id, s.collaborative.user_count) for s in build_annotated_samples(its, length=2)]
    [('i2', 2), ('i3', 3)]
    """
    counts = counts if counts is not None else CollaborativeCounts()
    tracker = HistoryTracker(length)
    samples = []
    for interaction in interactions:
        if tracker.is_duplicate(interaction):
            continue
        sample = tracker.observe(interaction)
        features = counts.observe(interaction.user_id, interaction.item_id, interaction.label)
        if sample is not None:
            samples.append(replace(sample, collaborative=features))
    return samples


def annotate_samples(
    samples: Sequence[Sample], counts: CollaborativeCounts | None = None
) -> list[Sample]:
    """Copies of time-ordered ``samples`` carrying the counts of the samples before each.

    Only the given samples are counted (plus what ``counts`` already holds); use
    :func:`build_annotated_samples` to count every interaction of a dataset.

    >>> ss = [Sample(str(t), "u", "i", t, t % 2, (), ()) for t in range(3)]
    >>> [s.collaborative.item_likes for s in annotate_samples(ss)]
    [0, 0, 1]
    """
    counts = counts if counts is not None else CollaborativeCounts()
    return [
        replace(s, collaborative=counts.observe(s.user_id, s.item_id, s.label)) for s in samples
    ]


FEATURE_COLUMNS: tuple[str, ...] = (
    "logit_user_rate",
    "logit_item_rate",
    "logit_history_rate",
    "co_like",
    "log_item_count",
)
"""The columns :func:`feature_columns` returns, in order."""


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def feature_columns(
    samples: Sequence[Sample], prior_strength: float = 10.0, history_prior: float = 2.0
) -> dict[str, np.ndarray]:
    """Numeric features of annotated samples, named as in :data:`FEATURE_COLUMNS`.

    Rates are smoothed toward the global rate before the event and given as logits; the
    history rate is the like-rate of the sample's own history (``history_prior`` pseudo-counts).

    >>> s = Sample("e", "u", "i", 0, 1, ("a", "b"), (1, 1),
    ...            CollaborativeFeatures(1, 2, 0, 0, 1, 2, 0.25))
    >>> [round(float(v[0]), 3) for v in feature_columns([s], prior_strength=0).values()]
    [0.0, 0.0, 1.099, 0.25, 0.0]
    """
    missing = [s.event_id for s in samples if s.collaborative is None]
    if missing:
        raise LsatDataError(
            f"{len(missing)} samples carry no collaborative features (first {missing[0]!r}); "
            "build them with build_annotated_samples or annotate_samples"
        )
    feats = [s.collaborative for s in samples if s.collaborative is not None]  # all of them
    history = np.array(
        [
            (sum(s.history_labels) + history_prior * f.global_rate)
            / max(len(s.history_labels) + history_prior, 1e-12)
            for s, f in zip(samples, feats, strict=True)
        ]
    )
    return {
        "logit_user_rate": _logit(np.array([f.user_rate(prior_strength) for f in feats])),
        "logit_item_rate": _logit(np.array([f.item_rate(prior_strength) for f in feats])),
        "logit_history_rate": _logit(history),
        "co_like": np.array([f.co_like for f in feats], dtype=np.float64),
        "log_item_count": np.log1p(np.array([f.item_count for f in feats], dtype=np.float64)),
    }
