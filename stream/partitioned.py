"""Per-partition state and the global window, as one batch transaction sees them.

Several workers share the ``interactions`` partitions of one consumer group. What is local to a
partition lives with it: user histories (events are keyed by user id), the drift detectors and
the partition's watermark (:class:`PartitionMemory`, saved in the partition's row, reloaded by
whichever worker owns it next). What is global — the open window, its pending drift, the samples
pending their window — lives in the store and is read under the batch's lock
(:mod:`lsat.stream.store.partitions`). :class:`BatchWindows` steps the global window event by
event: each event moves its partition's watermark, the global watermark is the aligned minimum
(:func:`~lsat.stream.alignment.aligned_watermark`, with the idle timeout) and the pending samples
settle under it (:func:`~lsat.stream.pipeline.place`).

A sample is **late** when it is older than its partition's watermark or the global watermark
minus the allowed lateness (the latter happens to a partition left out as idle that comes
back). With one partition both are the one watermark and every step is
:func:`~lsat.stream.pipeline.process_interaction`'s.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from lsat.data.samples import HistoryTracker
from lsat.data.types import HISTORY_LENGTH, Interaction
from lsat.stream.alignment import PartitionClock, aligned_watermark
from lsat.stream.global_window import PendingPool, PendingSample
from lsat.stream.pipeline import Detectors, PipelineState, Placed, place
from lsat.stream.store import StoredPartition, StoreTransaction
from lsat.stream.windows import WindowPolicy

__all__ = ["REMEMBERED_EVENTS", "BatchWindows", "GlobalState", "PartitionMemory"]

log = logging.getLogger(__name__)
REMEMBERED_EVENTS = 32
"""Events remembered per user (history plus re-delivery detection)."""


@dataclass(slots=True)
class PartitionMemory:
    """A worker's copy of one partition's state, valid while ``seq`` equals the stored one."""

    partition: int
    seq: int
    history: HistoryTracker
    detectors: Detectors
    watermark: int | None

    @classmethod
    def load(
        cls,
        tx: StoreTransaction,
        partition: int,
        saved: StoredPartition | None,
        template: Detectors,
        legacy_detectors: Mapping[str, Any] | None = None,
    ) -> PartitionMemory:
        """The partition's state as committed: histories rebuilt from its stored interactions,
        detectors (copies of ``template``) restored from its row (a store from before
        partitions: partition 0 takes ``legacy_detectors``, the single worker's)."""
        recent = tx.recent_interactions(REMEMBERED_EVENTS, partition)
        history = HistoryTracker.from_state(
            {u: [[i.item_id, i.label, i.key()] for i in its] for u, its in recent.items()},
            length=HISTORY_LENGTH,
            remember_events=REMEMBERED_EVENTS,
        )
        detectors = copy.deepcopy(template)
        states = saved.state.get("detectors") if saved is not None else legacy_detectors
        detectors.load_state(states or {})
        log.info("partition %d loaded: %d users' history", partition, len(recent))
        if saved is None:
            return cls(partition, 0, history, detectors, None)
        return cls(partition, saved.seq, history, detectors, saved.watermark)

    def saved(self, active_s: float) -> StoredPartition:
        """The row to commit: ``seq`` bumped (this copy takes the new value on commit)."""
        state = {"detectors": self.detectors.to_state()}
        return StoredPartition(self.partition, self.seq + 1, self.watermark, active_s, state)


@dataclass(frozen=True, slots=True)
class GlobalState:
    """The stored global state: the open window and pending drift, since when the stream
    runs (never-seen partitions count as active from then) and the next pending number."""

    pipeline: PipelineState
    since_s: float
    pending_seq: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], now_s: float) -> GlobalState:
        """Read the stored JSON (``{}``: a new stream starting at ``now_s``). Detectors saved
        by a single worker before partitions are ignored here (see
        :meth:`PartitionMemory.load`)."""
        if not data:
            return cls(PipelineState(), now_s)
        pipeline = PipelineState.from_dict(data)
        return cls(pipeline, float(data.get("since_s", now_s)), int(data.get("pending_seq", 0)))

    def to_dict(self) -> dict[str, Any]:
        """The JSON to store."""
        return {**self.pipeline.to_dict(), "since_s": self.since_s, "pending_seq": self.pending_seq}


class BatchWindows:
    """The global window stepped by one transaction's events (module doc)."""

    def __init__(
        self,
        state: PipelineState,
        saved: Mapping[int, StoredPartition],
        pool: PendingPool,
        policy: WindowPolicy,
        *,
        now_s: float,
        idle_timeout_s: float,
        expected: Collection[int],
        since_s: float,
    ) -> None:
        self.state = state
        self.clocks = {p: PartitionClock(s.watermark, s.active_s) for p, s in saved.items()}
        self.pool = pool
        self.policy = policy
        self.now_s = now_s
        self.idle_timeout_s = idle_timeout_s
        self.expected = expected
        self.since_s = since_s

    def watermark(self) -> int | None:
        """The global watermark now (aligned over the partitions, idle ones left out)."""
        return aligned_watermark(
            self.clocks,
            now_s=self.now_s,
            idle_timeout_s=self.idle_timeout_s,
            expected=self.expected,
            since_s=self.since_s,
        )

    def is_late(self, partition: int, event_ts: int) -> bool:
        """Older than the partition's or the global watermark minus the allowed lateness."""
        clock = self.clocks.get(partition)
        lateness = self.policy.allowed_lateness_s
        mark = clock.watermark if clock is not None else None
        if mark is not None and event_ts < mark - lateness:
            return True
        return self.state.window.is_late(event_ts, self.policy)

    def step(
        self,
        partition: int,
        interaction: Interaction,
        has_sample: bool,
        fired: Mapping[str, float],
    ) -> tuple[bool, Placed]:
        """One event of ``partition`` (``has_sample``: it made a sample, now pending): whether it
        is late, and what settling the global window did."""
        ts = interaction.timestamp
        late = self.is_late(partition, ts)
        clock = self.clocks.get(partition)
        mark = ts if clock is None or clock.watermark is None else max(clock.watermark, ts)
        self.clocks[partition] = PartitionClock(mark, self.now_s)
        key = interaction.key()
        if has_sample:
            self.pool.add(PendingSample(ts, late, key))
        placed = place(self.state, self.watermark(), self.pool, fired, self.policy, self.now_s, key)
        self.state = placed.state
        return late, placed

    def settle(self) -> Placed:
        """Settle under the global watermark now, without an event (idle partitions timed out)."""
        placed = place(self.state, self.watermark(), self.pool, {}, self.policy, self.now_s)
        self.state = placed.state
        return placed

    def moved(self) -> bool:
        """Whether the global watermark now is past the stored one (a settle could close)."""
        watermark = self.watermark()
        stored = self.state.window.watermark
        return watermark is not None and (stored is None or watermark > stored)
