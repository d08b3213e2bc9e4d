"""TALLRec samples from interactions: pure logic shared by the batch experiment and the stream.

A sample for interaction *k* of a user carries the user's previous ``HISTORY_LENGTH``
interactions (item id + label, oldest → newest); users with fewer earlier interactions give
no sample yet. :class:`HistoryTracker` keeps that per-user state incrementally, in a JSON-able
form a faust table can hold, and ignores re-delivered events (at-least-once streams).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lsat.data.errors import LsatDataError
from lsat.data.types import HISTORY_LENGTH, CollaborativeFeatures, Dataset, Interaction, Sample

__all__ = [
    "History",
    "HistoryTracker",
    "build_samples",
    "make_sample",
    "push_history",
]

History = tuple[tuple[str, int], ...]
"""A user's recent (item_id, label) pairs, oldest → newest."""


def push_history(
    history: History, item_id: str, label: int, length: int = HISTORY_LENGTH
) -> History:
    """The history with one more interaction appended, keeping the newest ``length``.

    >>> push_history((("a", 1), ("b", 0)), "c", 1, length=2)
    (('b', 0), ('c', 1))
    """
    if length < 1:
        raise LsatDataError(f"history length must be >= 1, got {length}")
    return (*history, (item_id, int(label)))[-length:]


def make_sample(
    interaction: Interaction,
    history: Sequence[tuple[str, int]],
    length: int = HISTORY_LENGTH,
    collaborative: CollaborativeFeatures | None = None,
) -> Sample | None:
    """The sample for ``interaction`` given the user's earlier ``history`` (None if too short).

    Only the newest ``length`` entries of ``history`` are used; ``collaborative``: the counts as
    of just before the event, if kept.

    >>> it = Interaction("u", "z", 50, 1)
    >>> make_sample(it, (("a", 1),), length=2) is None
    True
    >>> s = make_sample(it, (("a", 1), ("b", 0), ("c", 1)), length=2)
    >>> s.event_id, s.history_item_ids, s.history_labels
    ('u:z:50', ('b', 'c'), (0, 1))
    """
    if len(history) < length:
        return None
    items, labels = zip(*history[-length:], strict=True)
    return Sample(
        interaction.key(),
        interaction.user_id,
        interaction.item_id,
        interaction.timestamp,
        interaction.label,
        items,
        tuple(map(int, labels)),
        collaborative,
    )


@dataclass(slots=True)
class _UserState:
    """The newest interactions of one user: (item_id, label) pairs and their event ids."""

    pairs: list[tuple[str, int]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


class HistoryTracker:
    """Per-user history that turns each observed interaction into a sample.

    ``remember_events`` entries are kept per user (at least ``length``); an interaction
    whose event id is among them is a re-delivery and is ignored.

    >>> tracker = HistoryTracker(length=2)
    >>> [tracker.observe(Interaction("u", i, t, 1)) is None for t, i in enumerate("abc")]
    [True, True, False]
    >>> tracker.observe(Interaction("u", "c", 2, 1)) is None  # same event again
    True
    >>> tracker.history("u")
    (('b', 1), ('c', 1))
    >>> state = tracker.to_state("u")
    >>> HistoryTracker.from_state({"u": state}, length=2).history("u")
    (('b', 1), ('c', 1))
    """

    def __init__(self, length: int = HISTORY_LENGTH, remember_events: int = 32) -> None:
        if length < 1:
            raise LsatDataError(f"history length must be >= 1, got {length}")
        self.length = length
        self.keep = max(length, remember_events)
        self._users: dict[str, _UserState] = {}

    def __contains__(self, user_id: str) -> bool:
        return user_id in self._users

    def __len__(self) -> int:
        return len(self._users)

    def history(self, user_id: str) -> History:
        """The user's newest ``length`` (item_id, label) pairs, oldest → newest."""
        state = self._users.get(user_id)
        if state is None:
            return ()
        return tuple(state.pairs[-self.length :])

    def is_duplicate(self, interaction: Interaction) -> bool:
        """Whether this event id is already among the user's remembered events."""
        state = self._users.get(interaction.user_id)
        key = interaction.key()
        return state is not None and key in state.events

    def observe(
        self, interaction: Interaction, collaborative: CollaborativeFeatures | None = None
    ) -> Sample | None:
        """Build the sample from the history before ``interaction`` (carrying
        ``collaborative``), then record it.

        Returns None while the user has fewer than ``length`` earlier interactions, and for
        a re-delivered event (whose sample was produced the first time).
        """
        key = interaction.key()
        state = self._users.get(interaction.user_id)
        if state is None:
            state = self._users[interaction.user_id] = _UserState()
        elif key in state.events:
            return None
        sample = make_sample(interaction, state.pairs, self.length, collaborative)
        state.pairs.append((interaction.item_id, int(interaction.label)))
        state.events.append(key)
        if len(state.events) > self.keep:
            del state.pairs[0], state.events[0]
        return sample

    def observe_many(self, interactions: Iterable[Interaction]) -> list[Sample]:
        """Observe interactions in order; the samples they produce."""
        samples = []
        for interaction in interactions:
            sample = self.observe(interaction)
            if sample is not None:
                samples.append(sample)
        return samples

    def to_state(self, user_id: str) -> list[list[str | int]]:
        """JSON-able state of one user: ``[[item_id, label, event_id], ...]`` oldest first."""
        state = self._users.get(user_id)
        if state is None:
            return []
        return [[i, lab, e] for (i, lab), e in zip(state.pairs, state.events, strict=True)]

    def set_state(self, user_id: str, state: Sequence[Sequence[str | int]]) -> None:
        """Replace one user's state with what :meth:`to_state` returned."""
        entries = []
        for position, entry in enumerate(state):
            if len(entry) != 3 or entry[1] not in (0, 1):
                raise LsatDataError(
                    f"bad history state for user {user_id!r} at position {position}: {entry!r}"
                    " (expected [item_id, 0|1, event_id])"
                )
            entries.append((str(entry[0]), int(entry[1]), str(entry[2])))
        kept = entries[-self.keep :]
        self._users[user_id] = _UserState([(i, lab) for i, lab, _ in kept], [e for *_, e in kept])

    @classmethod
    def from_state(
        cls,
        states: dict[str, Sequence[Sequence[str | int]]],
        length: int = HISTORY_LENGTH,
        remember_events: int = 32,
    ) -> HistoryTracker:
        """A tracker restored from ``{user_id: to_state(user_id)}``."""
        tracker = cls(length, remember_events)
        for user_id, state in states.items():
            tracker.set_state(user_id, state)
        return tracker


def build_samples(dataset: Dataset, length: int = HISTORY_LENGTH) -> list[Sample]:
    """Every sample of a dataset, in its (time-sorted) interaction order.

    >>> from lsat.data.types import Dataset
    >>> its = [Interaction("u", f"i{t}", t, t % 2) for t in range(4)]
    >>> [s.item_id for s in build_samples(Dataset("toy", its, {}), length=2)]
    ['i2', 'i3']
    """
    return HistoryTracker(length).observe_many(dataset.interactions)
