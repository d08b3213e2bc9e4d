"""Out-of-sample rows: what test-then-train scored on each window, kept to fit combiners on.

Each window's evaluation scores it with what served *before* any training on it, so its
per-sample scores are out-of-sample by construction. :class:`WindowRowsLog` writes them to the
registry (``adapter_window_scores``: survives a trainer restart); :class:`EarlierRows` reads
the rows of recent windows back as one :class:`Rows` table for fitting the rate stack and the
hybrid combiner. Columns: ``label``, ``event_id``, ``p_long`` / ``p_short`` / ``p_combined`` /
``p_hybrid`` / ``p_served`` (what those scored) and the rate features of
:mod:`lsat.adapters.lifecycle.hybrid_features`.

>>> rows = Rows({"x": np.array([0.1, 0.2, 0.3])}, np.array([0, 1, 1]), ["a", "b", "c"],
...             ["4", "4", "5"])
>>> rows.take(np.array([True, False, True])).event_ids, rows.features(["x", "y"])
(['a', 'c'], None)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lsat.adapters.lifecycle.hybrid_features import llm_columns, rate_columns
from lsat.adapters.lifecycle.registry import RegistryStore, WindowScores
from lsat.data.types import Sample
from lsat.stream.store import SampleStore

__all__ = ["PROB_PREFIX", "EarlierRows", "Rows", "WindowRowsLog", "window_int"]

PROB_PREFIX = "p_"
"""Stored probability columns are ``p_<name>`` (``p_long``, ``p_short``, ``p_combined``)."""

_LOGGED = ("long", "short", "combined", "hybrid", "served")


def window_int(window_id: object) -> int | None:
    """A window id as an integer (``None`` when it is not one).

    >>> window_int("12"), window_int("w3")
    (12, None)
    """
    try:
        return int(str(window_id))
    except ValueError:
        return None


@dataclass(frozen=True)
class Rows:
    """A table of out-of-sample rows: named float columns, labels, event ids, window ids."""

    columns: Mapping[str, np.ndarray]
    labels: np.ndarray
    event_ids: list[str]
    windows: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def empty(cls) -> Rows:
        return cls({}, np.zeros(0, dtype=int), [], [])

    def take(self, mask: np.ndarray) -> Rows:
        """The rows where ``mask`` is true."""
        index = np.flatnonzero(mask)
        return Rows(
            {k: v[index] for k, v in self.columns.items()},
            self.labels[index],
            [self.event_ids[i] for i in index],
            [self.windows[i] for i in index],
        )

    def features(self, names: Sequence[str]) -> dict[str, np.ndarray] | None:
        """The columns ``names`` (``None`` when one is missing)."""
        if not set(names) <= self.columns.keys():
            return None
        return {name: self.columns[name] for name in names}

    @classmethod
    def concat(cls, parts: Sequence[Rows]) -> Rows:
        """Rows of every part, keeping only the columns all parts have."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        shared = set.intersection(*(set(p.columns) for p in parts))
        return cls(
            {k: np.concatenate([p.columns[k] for p in parts]) for k in sorted(shared)},
            np.concatenate([p.labels for p in parts]),
            [e for p in parts for e in p.event_ids],
            [w for p in parts for w in p.windows],
        )


def rows_of_window(scores: WindowScores) -> Rows:
    """The rows of one stored window, probabilities turned into ``logit_<kind>`` features."""
    raw = {k: np.asarray(v, dtype=np.float64) for k, v in scores.columns.items()
           if k not in ("label", "event_id")}  # fmt: skip
    probs = {k[len(PROB_PREFIX) :]: v for k, v in raw.items() if k.startswith(PROB_PREFIX)}
    columns = {**raw, **llm_columns(probs)}
    n = scores.n
    return Rows(
        columns,
        np.asarray(scores.columns.get("label", []), dtype=int),
        [str(e) for e in scores.columns.get("event_id", [""] * n)],
        [scores.window_id] * n,
    )


def rows_of_samples(samples: Sequence[Sample], window_id: object) -> Rows:
    """Rate-feature rows of stored samples (no LLM scores: for the rate stack only)."""
    return Rows(
        rate_columns(samples),
        np.array([s.label for s in samples], dtype=int),
        [s.event_id for s in samples],
        [str(window_id)] * len(samples),
    )


class WindowRowsLog:
    """Records a window's out-of-sample rows and its per-name metrics in the registry."""

    def __init__(self, registry: RegistryStore) -> None:
        self.registry = registry

    def record(
        self,
        window_id: int,
        samples: Sequence[Sample],
        probs: Mapping[str, np.ndarray],
        metrics: Mapping[str, Mapping[str, float]],
    ) -> WindowScores:
        """Store labels, event ids, ``p_long`` / ``p_short`` / ``p_combined`` and rates."""
        columns: dict[str, list] = {
            "label": [int(s.label) for s in samples],
            "event_id": [s.event_id for s in samples],
        }
        for name in _LOGGED:
            if name in probs:
                columns[PROB_PREFIX + name] = [round(float(p), 6) for p in probs[name]]
        for name, values in rate_columns(samples).items():
            columns[name] = [round(float(v), 6) for v in values]
        return self.registry.record_window_scores(window_id, columns, metrics)


class EarlierRows:
    """Reads the out-of-sample rows of the ``windows`` most recent windows before a window.

    ``store``: where the rate stack finds windows the trainer never scored (the long adapter's
    bootstrap windows), so a baseline exists from the first evaluated window on.
    """

    def __init__(
        self, registry: RegistryStore, store: SampleStore | None = None, *, windows: int = 8
    ) -> None:
        self.registry, self.store, self.windows = registry, store, windows

    def scored(self, before: int, *, upto: bool = False) -> Rows:
        """Rows of the newest ``windows`` scored windows with id ``< before`` (``<=`` with
        ``upto``), oldest first."""
        recent = self.registry.window_scores(limit=self.windows + 8)  # a few retried ones
        kept = [
            s
            for s in recent
            if (w := window_int(s.window_id)) is not None and (w <= before if upto else w < before)
        ]
        return Rows.concat([rows_of_window(s) for s in kept[-self.windows :]])

    def rates(self, before: int) -> Rows:
        """Rate-feature rows of the newest ``windows`` windows before ``before``: scored ones
        from the registry, the others (e.g. bootstrap windows) from the stored samples."""
        scored = self.scored(before)
        have = set(scored.windows)
        if self.store is None or len(have) >= self.windows:
            return scored
        closed = sorted(
            w.id for w in self.store.last_closed_windows(self.windows + 64) if w.id < before
        )
        missing = [w for w in closed[-self.windows :] if str(w) not in have]
        extra = [rows_of_samples(self.store.window_samples(w), w) for w in missing]
        return Rows.concat([*extra, scored])
