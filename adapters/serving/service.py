"""Scoring with one serving set per request: P(like) from long, short, merged and combined.

History for a user comes from the request or from the stream store (the last
``HISTORY_LENGTH`` interactions it holds); titles come from the store's catalogue, refreshed
every few seconds (a cold item is scored by its id until the catalogue has a title).

The model path: a request's candidates share the user's prompt prefix, so they are ranked with
:meth:`~lsat.adapters.model.recommender.LoraRecommender.score_groups` (prefix encoded once,
every serving adapter in one pass, bf16 where the hardware has it natively). Concurrent
requests share forward passes: each request is a job for one worker thread in front of the
model (:class:`~lsat.adapters.serving.batcher.MicroBatcher`: a short batching window, a bounded
queue, :class:`~lsat.adapters.serving.state.Overloaded` when it is full).

``/recommend`` without candidates ranks the store's most liked items among its last
``recent_interactions`` interactions that the user has not interacted with
(``recommend_candidates`` of them, default 100), a cheap SQL aggregate, re-ranked by the LLM.

Each adapter is prompted the way it was trained (its metadata's prompt format and item noun).
The combined score is the serving set's **hybrid** combiner where it has one (a logistic
regression over the adapters' logits and the like-rates, fitted by the trainer on out-of-sample
scores; the rates come from the store's like counts, as of now, through
:meth:`~lsat.stream.store.SampleStore.collaborative_features`), else — or when a feature it needs
is missing — the α ensemble. Responses say which (``combined``) and keep the ensemble as
``p_ensemble``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lsat.adapters.lifecycle.hybrid_features import hybrid_probs
from lsat.adapters.model.combine import ensemble
from lsat.adapters.model.precision import resolve_bf16
from lsat.adapters.model.prompts import uses_collaborative
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.scoring import model_device
from lsat.adapters.serving.api import BadRequest
from lsat.adapters.serving.batcher import MicroBatcher
from lsat.adapters.serving.memory import MemoryTrimmer
from lsat.adapters.serving.state import LoadedSet, ServingState
from lsat.core.kinds import ADAPTER_KINDS
from lsat.data.types import HISTORY_LENGTH, CollaborativeFeatures, Sample

__all__ = [
    "CandidateSource",
    "FeatureSource",
    "HistorySource",
    "ScoringService",
    "StoreHistory",
    "combined_scores",
]


class HistorySource(Protocol):
    """Where a user's recent history and the catalogue titles are read."""

    def history(self, user_id: str, length: int) -> tuple[tuple[str, int], ...]:
        """The user's last ``length`` (item_id, label) pairs, oldest first."""

    def titles(self) -> dict[str, str]:
        """item_id → title."""


@runtime_checkable
class FeatureSource(Protocol):
    """Where the like counts of (user, item) pairs are read, as of now."""

    def features(self, user_id: str, item_ids: Sequence[str]) -> dict[str, CollaborativeFeatures]:
        """Per item, the counts an event ``(user_id, item)`` would carry now."""


@runtime_checkable
class CandidateSource(Protocol):
    """Where ``/recommend`` finds candidates when the request names none."""

    def candidates(self, user_id: str, count: int) -> list[str]:
        """Up to ``count`` item ids worth ranking for ``user_id``, best guess first."""


class StoreHistory:
    """History, titles and default candidates from the stream store's database.

    ``recent_interactions``: how many of the latest interactions (all users) the default
    candidates are counted over.
    """

    def __init__(self, url: str, *, recent_interactions: int = 5000) -> None:
        from lsat.stream.store import SampleStore

        self.store = SampleStore(url, create=False)
        self.recent_interactions = recent_interactions

    def history(self, user_id: str, length: int) -> tuple[tuple[str, int], ...]:
        """The user's last ``length`` stored interactions in arrival order."""
        return self.store.user_history(user_id, length)

    def titles(self) -> dict[str, str]:
        """The catalogue's titles."""
        return {item_id: item.title for item_id, item in self.store.catalogue().items()}

    def candidates(self, user_id: str, count: int) -> list[str]:
        """The most liked items of the recent interactions that ``user_id`` never touched
        (ties: more interactions first, then item id)."""
        return self.store.liked_unseen_items(user_id, count, self.recent_interactions)

    def features(self, user_id: str, item_ids: Sequence[str]) -> dict[str, CollaborativeFeatures]:
        """The store's like counts for ``user_id`` and each item, as of now."""
        return self.store.collaborative_features(user_id, list(item_ids))


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


@dataclass(frozen=True, eq=False)
class _Job:
    """One request's samples, scored with the serving set it acquired."""

    serving: LoadedSet
    samples: list[Sample]


class ScoringService:
    """Answers score / recommend requests; each request uses exactly one :class:`LoadedSet`.

    ``bf16``: ``None`` = bf16 when the model's device computes it natively (see
    :mod:`lsat.adapters.model.precision`), else the given choice. ``batch_window_ms``,
    ``queue_limit``, ``max_batch_items``, ``queue_timeout_s``: the micro-batcher's window,
    bound on waiting requests (beyond: :class:`Overloaded`), items per forward, and longest wait.
    ``recommend_candidates``: how many default candidates ``recommend`` ranks when given none;
    ``candidate_source`` defaults to ``history_source`` when it can provide them.
    ``trim_interval_s``: after a batch's answers are out, freed native memory goes back to the OS,
    at most this often (:mod:`~lsat.adapters.serving.memory`; ``None``: never).
    ``model_thread``: the model runs on a worker thread of its own; ``False``: on the thread that
    calls :meth:`serve_model` (see :mod:`~lsat.adapters.serving.batcher` for why).
    """

    def __init__(
        self,
        recommender: LoraRecommender,
        state: ServingState,
        model_lock: Any,
        history_source: HistorySource | None = None,
        *,
        history_length: int = HISTORY_LENGTH,
        titles_refresh_s: float = 5.0,
        bf16: bool | None = None,
        batch_window_ms: float = 5.0,
        queue_limit: int = 64,
        max_batch_items: int = 256,
        queue_timeout_s: float | None = 60.0,
        recommend_candidates: int = 100,
        candidate_source: CandidateSource | None = None,
        trim_interval_s: float | None = 1.0,
        model_thread: bool = True,
    ) -> None:
        if recommend_candidates < 1:
            raise ValueError(f"recommend_candidates must be >= 1, got {recommend_candidates}")
        self.recommender = recommender
        self.state = state
        self.model_lock = model_lock
        self.history_source = history_source
        self.history_length = history_length
        self.titles_refresh_s = titles_refresh_s
        self.bf16 = resolve_bf16(bf16, model_device(recommender.model))
        self.recommend_candidates = recommend_candidates
        if candidate_source is None and isinstance(history_source, CandidateSource):
            candidate_source = history_source
        self.candidate_source = candidate_source
        self._titles_at = 0.0
        self._titles = dict(recommender.titles)
        recommender.titles = self._titles
        self.trimmer = MemoryTrimmer(trim_interval_s)
        self.batcher: MicroBatcher[_Job, dict[str, np.ndarray]] = MicroBatcher(
            self._run_batch,
            window_ms=batch_window_ms,
            queue_limit=queue_limit,
            max_batch_items=max_batch_items,
            timeout_s=queue_timeout_s,
            size_of=lambda job: len(job.samples),
            after_batch=self.trimmer.maybe_trim,
            own_thread=model_thread,
        )

    def serve_model(self) -> None:
        """Run the model's batches on the calling thread until :meth:`close`
        (``model_thread=False``)."""
        self.batcher.serve()

    def close(self) -> None:
        """Stop the batching worker (queued requests are still answered)."""
        self.batcher.close()

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
        return self._score(user_id, list(item_ids), self.user_history(user_id, history))

    def _score(
        self, user_id: str, item_ids: list[str], pairs: tuple[tuple[str, int], ...]
    ) -> dict[str, Any]:
        self._refresh_titles()
        features = self._features(user_id, item_ids)
        samples = [
            Sample(
                event_id=f"score:{user_id}:{item_id}",
                user_id=user_id,
                item_id=item_id,
                timestamp=0,
                label=0,
                history_item_ids=tuple(item for item, _ in pairs),
                history_labels=tuple(label for _, label in pairs),
                collaborative=features.get(item_id),
            )
            for item_id in item_ids
        ]
        with self.state.acquire() as serving:
            if not any(kind in serving.names for kind in ADAPTER_KINDS):
                raise BadRequest("the serving set holds no adapter")
            hints = [
                k for k in serving.names if uses_collaborative(serving.prompt(k).prompt_format)
            ]
            if hints and samples and any(s.collaborative is None for s in samples):
                raise BadRequest(
                    f"the serving {hints} adapter(s) were trained with like-count hints, which "
                    "need the store's like counts; none are configured for this scorer"
                )
            scores = self.batcher.submit(_Job(serving, samples)) if samples else {}
            ensemble_p = combined_scores(scores, serving.alpha) if samples else np.empty(0)
            hybrid = None
            if serving.hybrid is not None and samples:
                hybrid = hybrid_probs(serving.hybrid, samples, scores)
            combined = ensemble_p if hybrid is None else hybrid
            described = serving.describe()
        items = []
        for index, item_id in enumerate(item_ids):
            entry: dict[str, Any] = {"item_id": item_id, "title": self._titles.get(item_id)}
            for kind, values in scores.items():
                entry[f"p_{kind}"] = float(values[index])
            entry["p_ensemble"] = float(ensemble_p[index])
            entry["p_combined"] = float(combined[index])
            items.append(entry)
        return {
            "user_id": user_id,
            "items": items,
            "versions": described["versions"],
            "alpha": described["alpha"],
            "combined": "hybrid" if hybrid is not None else "ensemble",
            "history_length": len(pairs),
        }

    def _features(self, user_id: str, item_ids: list[str]) -> dict[str, CollaborativeFeatures]:
        """Like counts per item from the history source, when it keeps them ({} otherwise)."""
        source = self.history_source
        if not item_ids or not isinstance(source, FeatureSource):
            return {}
        return source.features(user_id, item_ids)

    def _run_batch(self, jobs: list[_Job]) -> list[dict[str, np.ndarray]]:
        """The batcher's worker: one ``score_groups`` call per serving set among ``jobs``."""
        results: list[dict[str, np.ndarray]] = [{} for _ in jobs]
        by_set: dict[int, list[int]] = {}
        for index, job in enumerate(jobs):
            by_set.setdefault(id(job.serving), []).append(index)
        for indices in by_set.values():
            serving = jobs[indices[0]].serving
            by_prompt: dict[object, list[str]] = {}  # adapters prompted alike share a pass
            for kind in ADAPTER_KINDS:
                if kind in serving.names:
                    by_prompt.setdefault(serving.prompt(kind), []).append(kind)
            for prompt_kinds in by_prompt.values():
                prompt = serving.prompt(prompt_kinds[0])
                names = [serving.names[kind] for kind in prompt_kinds]
                with self.model_lock:
                    self.recommender.prompt_format = prompt.prompt_format
                    self.recommender.item_noun = prompt.item_noun
                    scored = self.recommender.score_groups(
                        names, [jobs[i].samples for i in indices], bf16=self.bf16
                    )
                for index, by_name in zip(indices, scored, strict=True):
                    results[index].update({k: by_name[serving.names[k]] for k in prompt_kinds})
        return results

    def default_candidates(self, user_id: str, pairs: Sequence[tuple[str, int]]) -> list[str]:
        """``recommend_candidates`` items from the candidate source, minus the user's history."""
        if self.candidate_source is None:
            raise BadRequest("no candidates given and no store to pick them from; pass candidates")
        seen = {item for item, _ in pairs}
        found = self.candidate_source.candidates(user_id, self.recommend_candidates + len(seen))
        picked = [item for item in dict.fromkeys(found) if item not in seen]
        if not picked:
            raise BadRequest(f"no candidates for user {user_id!r} in the store; pass candidates")
        return picked[: self.recommend_candidates]

    def recommend(
        self,
        user_id: str,
        candidates: Sequence[str] | None,
        k: int,
        history: Sequence[tuple[str, int]] | None = None,
    ) -> dict[str, Any]:
        """The ``k`` candidates with the highest combined P(like), best first.

        ``candidates=None`` ranks :meth:`default_candidates` (the store's most liked recent
        items the user has not interacted with).
        """
        pairs = self.user_history(user_id, history)
        if candidates is None:
            candidates = self.default_candidates(user_id, pairs)
        unique = list(dict.fromkeys(candidates))
        scored = self._score(user_id, unique, pairs)
        ranked = sorted(scored["items"], key=lambda e: (-e["p_combined"], e["item_id"]))
        return {
            "user_id": user_id,
            "items": [
                {"item_id": e["item_id"], "title": e["title"], "score": e["p_combined"]}
                for e in ranked[:k]
            ],
            "versions": scored["versions"],
            "alpha": scored["alpha"],
            "combined": scored["combined"],
        }
