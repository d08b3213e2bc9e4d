"""Plain records shared by every subsystem: interactions, items, samples, datasets.

These are the contract between `lsat.data` (loaders), `adapters` (model core) and `stream`
(the live pipeline). Identifiers are strings everywhere; timestamps are unix seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["HISTORY_LENGTH", "Dataset", "Interaction", "Item", "Sample"]

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
class Sample:
    """A TALLRec training/scoring sample: the user's previous interactions and a target.

    History holds item ids oldest → newest with their labels, so titles are resolved at prompt
    time from the catalogue (a cold item gets its title once the catalogue knows it).
    """

    event_id: str
    user_id: str
    item_id: str
    timestamp: int
    label: int
    history_item_ids: tuple[str, ...]
    history_labels: tuple[int, ...]


@dataclass(slots=True)
class Dataset:
    """Interactions sorted by (timestamp, user_id, item_id) plus the item catalogue."""

    name: str
    interactions: list[Interaction]
    items: dict[str, Item]
    item_noun: str = "movie"
