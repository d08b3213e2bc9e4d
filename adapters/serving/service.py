"""Scoring with one serving set per request: P(like) from long, short, merged and combined.

History for a user comes from the request or from the stream store (the last
``HISTORY_LENGTH`` interactions it holds); titles come from the store's catalogue, refreshed
every few seconds (a cold item is scored by its id until the catalogue has a title).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from lsat.adapters.model.combine import ensemble
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.serving.api import BadRequest
from lsat.adapters.serving.state import LoadedSet, ServingState
from lsat.data.types import HISTORY_LENGTH, Sample

__all__ = ["HistorySource", "ScoringService", "StoreHistory", "combined_scores"]


class HistorySource(Protocol):
    """Where a user's recent history and the catalogue titles are read."""

    def history(self, user_id: str, length: int) -> tuple[tuple[str, int], ...]:
        """The user's last ``length`` (item_id, label) pairs, oldest first."""

    def titles(self) -> dict[str, str]:
        """item_id → title."""


class StoreHistory:
    """Reads history and titles from the stream :class:`~lsat.stream.store.SampleStore` database."""

    def __init__(self, url: str) -> None:
        from lsat.stream.store import SampleStore

        self.store = SampleStore(url, create=False)

    def history(self, user_id: str, length: int) -> tuple[tuple[str, int], ...]:
        """The user's last ``length`` stored interactions in arrival order."""
        from sqlalchemy import select

        from lsat.stream.store.models import InteractionRow

        query = (
            select(InteractionRow.item_id, InteractionRow.label)
            .where(InteractionRow.user_id == user_id)
            .order_by(InteractionRow.id.desc())
            .limit(length)
        )
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        return tuple((str(item), int(label)) for item, label in reversed(rows))

    def titles(self) -> dict[str, str]:
        """The catalogue's titles."""
        return {item_id: item.title for item_id, item in self.store.catalogue().items()}


def combined_scores(scores: dict[str, np.ndarray], alpha: float) -> np.ndarray:
    """α·P_long + (1−α)·P_short when both serve, else the one that does (else merged).

    >>> combined_scores({"long": np.array([0.8]), "short": np.array([0.4])}, 0.25)
    array([0.5])
    >>> combined_scores({"merged": np.array([0.3])}, 0.5)
    array([0.3])
    """
    if "long" in scores and "short" in scores:
        return ensemble(scores["long"], scores["short"], alpha)
    for kind in ("short", "long", "merged"):
        if kind in scores:
            return scores[kind]
    raise BadRequest("the serving set holds no adapter")


class ScoringService:
    """Answers score / recommend requests; each request uses exactly one :class:`LoadedSet`."""

    def __init__(
        self,
        recommender: LoraRecommender,
        state: ServingState,
        model_lock: threading.RLock,
        history_source: HistorySource | None = None,
        *,
        history_length: int = HISTORY_LENGTH,
        titles_refresh_s: float = 5.0,
    ) -> None:
        self.recommender = recommender
        self.state = state
        self.model_lock = model_lock
        self.history_source = history_source
        self.history_length = history_length
        self.titles_refresh_s = titles_refresh_s
        self._titles_at = 0.0
        self._titles = dict(recommender.titles)
        recommender.titles = self._titles

    def _refresh_titles(self) -> None:
        if (
            self.history_source is None
            or time.monotonic() - self._titles_at < self.titles_refresh_s
        ):
            return
        self._titles.update(self.history_source.titles())
        self._titles_at = time.monotonic()

    def user_history(
        self, user_id: str, given: Sequence[tuple[str, int]] | None
    ) -> tuple[tuple[str, int], ...]:
        """The history to prompt with: the request's, else the store's; 400 when there is none."""
        if given is not None:
            if not given:
                raise BadRequest(f"history for user {user_id!r} is empty")
            return tuple(given)[-self.history_length :]
        if self.history_source is None:
            raise BadRequest(f"unknown user {user_id!r}: no history given and no store configured")
        found = self.history_source.history(user_id, self.history_length)
        if not found:
            raise BadRequest(f"unknown user {user_id!r}: no interactions stored; pass history")
        return found

    def score(
        self,
        user_id: str,
        item_ids: Sequence[str],
        history: Sequence[tuple[str, int]] | None = None,
    ) -> dict[str, Any]:
        """P(like) of each item per adapter kind and combined, with the versions used."""
        pairs = self.user_history(user_id, history)
        self._refresh_titles()
        samples = [
            Sample(
                event_id=f"score:{user_id}:{item_id}",
                user_id=user_id,
                item_id=item_id,
                timestamp=0,
                label=0,
                history_item_ids=tuple(item for item, _ in pairs),
                history_labels=tuple(label for _, label in pairs),
            )
            for item_id in item_ids
        ]
        with self.state.acquire() as serving:
            scores = self._score_with(serving, samples)
            combined = combined_scores(scores, serving.alpha)
            described = serving.describe()
        items = []
        for index, item_id in enumerate(item_ids):
            entry: dict[str, Any] = {"item_id": item_id, "title": self._titles.get(item_id)}
            for kind, values in scores.items():
                entry[f"p_{kind}"] = float(values[index])
            entry["p_combined"] = float(combined[index])
            items.append(entry)
        return {
            "user_id": user_id,
            "items": items,
            "versions": described["versions"],
            "alpha": described["alpha"],
            "history_length": len(pairs),
        }

    def _score_with(self, serving: LoadedSet, samples: list[Sample]) -> dict[str, np.ndarray]:
        kinds = [kind for kind in ("long", "short", "merged") if kind in serving.names]
        names = [serving.names[kind] for kind in kinds]
        with self.model_lock:
            by_name = self.recommender.score_many(names, samples)
        return {kind: by_name[serving.names[kind]] for kind in kinds}

    def recommend(
        self,
        user_id: str,
        candidates: Sequence[str],
        k: int,
        history: Sequence[tuple[str, int]] | None = None,
    ) -> dict[str, Any]:
        """The ``k`` candidates with the highest combined P(like), best first."""
        unique = list(dict.fromkeys(candidates))
        scored = self.score(user_id, unique, history)
        ranked = sorted(scored["items"], key=lambda e: (-e["p_combined"], e["item_id"]))
        return {
            "user_id": user_id,
            "items": [
                {"item_id": e["item_id"], "title": e["title"], "score": e["p_combined"]}
                for e in ranked[:k]
            ],
            "versions": scored["versions"],
            "alpha": scored["alpha"],
        }
