"""Plain records shared by every subsystem: interactions, items, samples, datasets.

These are the contract between `lsat.data` (loaders), `adapters` (model core) and `stream`
(the live pipeline). Identifiers are strings everywhere; timestamps are unix seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "HISTORY_LENGTH",
    "CollaborativeFeatures",
    "Dataset",
    "Interaction",
    "Item",
    "Sample",
]

HISTORY_LENGTH = 10
"""How many earlier interactions of the user a TALLRec sample carries."""


@dataclass(frozen=True, slots=True)
class Interaction:
    """One user-item interaction with its binary label already decided.

    ``rating`` keeps the raw rating when the source had one (``None`` for 0/1 datasets).
    """

    user_id: str
    item_id: str
    timestamp: int
    label: int
    rating: float | None = None
    event_id: str = ""

    def key(self) -> str:
        """The event id, or one derived from user, item and timestamp.

        >>> Interaction("u1", "i9", 100, 1).key()
        'u1:i9:100'
        """
        return self.event_id or f"{self.user_id}:{self.item_id}:{self.timestamp}"


@dataclass(frozen=True, slots=True)
class Item:
    """A catalogue entry; ``extra`` holds optional fields such as genres or year."""

    item_id: str
    title: str
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class CollaborativeFeatures:
    """Like counts as of just before one event (see :mod:`lsat.data.collaborative`).

    ``co_like`` scores how often the target was liked together with the user's recent likes
    (0 when nothing is known). Rates are smoothed toward the global like-rate with
    ``prior_strength`` pseudo-counts; with no data at all they are 0.5.

    >>> f = CollaborativeFeatures(3, 4, 0, 0, 60, 100)
    >>> f.user_rate(prior_strength=0), f.item_rate(prior_strength=10), f.global_rate
    (0.75, 0.6, 0.6)
    """

    user_likes: int
    user_count: int
    item_likes: int
    item_count: int
    global_likes: int
    global_count: int
    co_like: float = 0.0

    @property
    def global_rate(self) -> float:
        """Like-rate over every earlier event (0.5 before any)."""
        return self.global_likes / self.global_count if self.global_count else 0.5

    def _smoothed(self, likes: int, count: int, prior_strength: float) -> float:
        if count + prior_strength <= 0:
            return self.global_rate
        return (likes + prior_strength * self.global_rate) / (count + prior_strength)

    def user_rate(self, prior_strength: float = 10.0) -> float:
        """The user's earlier like-rate, smoothed toward the global rate."""
        return self._smoothed(self.user_likes, self.user_count, prior_strength)

    def item_rate(self, prior_strength: float = 10.0) -> float:
        """The item's earlier like-rate, smoothed toward the global rate."""
        return self._smoothed(self.item_likes, self.item_count, prior_strength)


@dataclass(frozen=True, slots=True)
class Sample:
    """A TALLRec training/scoring sample: the user's previous interactions and a target.

    History holds item ids oldest → newest with their labels, so titles are resolved at prompt
    time from the catalogue (a cold item gets its title once the catalogue knows it).
    ``collaborative`` is optional (None unless a prequential annotator filled it in).
    """

    event_id: str
    user_id: str
    item_id: str
    timestamp: int
    label: int
    history_item_ids: tuple[str, ...]
    history_labels: tuple[int, ...]
    collaborative: CollaborativeFeatures | None = field(default=None, compare=False)
    """Counts as of just before this event, when annotated (not part of equality)."""


@dataclass(slots=True)
class Dataset:
    """Interactions sorted by (timestamp, user_id, item_id) plus the item catalogue."""

    name: str
    interactions: list[Interaction]
    items: dict[str, Item]
    item_noun: str = "movie"
