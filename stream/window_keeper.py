"""The global window in the store: opened under the lock for a batch, saved with it, closed on
a manual request or when idle partitions time out.

Every operation that reads or moves the global window holds the store's lock (the pipeline
state row, :func:`lsat.stream.store.partitions.lock_state`), so the workers' batches, their
timers and manual closes all see the window as the previous holder committed it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from lsat.stream.global_window import MemoryPool, PendingSample
from lsat.stream.partitioned import BatchWindows, GlobalState
from lsat.stream.pipeline import PipelineState, Placed, StepResult, close_manually
from lsat.stream.store import SampleStore, StoredPartition, StoreTransaction, WindowClosure
from lsat.stream.store.partitions import StoredPool
from lsat.stream.triggers import RetrainRequest
from lsat.stream.windows import ClosedWindow, WindowPolicy

__all__ = ["PIPELINE_STATE", "Opened", "WindowKeeper", "closures"]

PIPELINE_STATE = "pipeline"
"""Name of the stored global state (open window, pending drift); its row is the store's lock."""


@dataclass(slots=True)
class Opened:
    """The global window as one transaction holds it: the stored global state (``legacy``: the
    raw JSON, with a single worker's detectors in a store from before partitions), the
    partitions' rows and the window being stepped."""

    glob: GlobalState
    legacy: dict[str, Any]
    saved: dict[int, StoredPartition]
    windows: BatchWindows
    pool: StoredPool


class WindowKeeper:
    """Opens, saves and closes the global window (module doc)."""

    def __init__(
        self,
        store: SampleStore,
        policy: WindowPolicy,
        *,
        idle_timeout_s: float,
        expected: Collection[int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.policy = policy
        self.idle_timeout_s = idle_timeout_s
        self.expected = expected
        self.clock = clock

    def current(self) -> PipelineState:
        """The open window as committed (no lock)."""
        saved = self.store.load_state(PIPELINE_STATE) or {}
        return GlobalState.from_dict(saved, self.clock()).pipeline

    def _windows(
        self, glob: GlobalState, saved: dict[int, StoredPartition], pool: Any, now_s: float
    ) -> BatchWindows:
        return BatchWindows(
            glob.pipeline,
            saved,
            pool,
            self.policy,
            now_s=now_s,
            idle_timeout_s=self.idle_timeout_s,
            expected=self.expected,
            since_s=glob.since_s,
        )

    def open(self, tx: StoreTransaction, now_s: float) -> Opened:
        """Lock the store and read the global window, the partitions and the pending samples."""
        legacy = tx.lock_state(PIPELINE_STATE)
        glob = GlobalState.from_dict(legacy, now_s)
        saved = tx.partitions()
        pool = tx.pending_pool(glob.pending_seq)
        return Opened(glob, legacy, saved, self._windows(glob, saved, pool, now_s), pool)

    def save(
        self,
        tx: StoreTransaction,
        opened: Opened,
        closed: Sequence[WindowClosure],
        stored_assigned: Sequence[tuple[PendingSample, int]],
    ) -> PipelineState:
        """Write what stepping the window did: stored pending samples that got a window, this
        batch's samples that still wait, the closed windows, the global state."""
        tx.assign_pending(stored_assigned)
        opened.pool.flush()
        for closure in closed:
            tx.close_window(closure)
        glob = GlobalState(opened.windows.state, opened.glob.since_s, opened.pool.next_seq)
        tx.put_state(PIPELINE_STATE, glob.to_dict())
        return glob.pipeline

    def close_manually(self) -> tuple[PipelineState, StepResult]:
        """Close the open window now (nothing when it is empty)."""
        with self.store.transaction() as tx:
            glob = GlobalState.from_dict(tx.lock_state(PIPELINE_STATE), self.clock())
            state, result = close_manually(glob.pipeline, now_s=self.clock())
            if result.closed:
                for closure in closures(result.closed, result.requests):
                    tx.close_window(closure)
                saved = GlobalState(state, glob.since_s, glob.pending_seq)
                tx.put_state(PIPELINE_STATE, saved.to_dict())
        return state, result

    def settle_idle(self) -> tuple[PipelineState, Placed] | None:
        """Settle under the global watermark now, when idle partitions timed out and moved it
        (``None`` otherwise: the usual case, checked without the lock)."""
        now_s = self.clock()
        glob = GlobalState.from_dict(self.store.load_state(PIPELINE_STATE) or {}, now_s)
        if not self._windows(glob, self.store.partitions(), MemoryPool(), now_s).moved():
            return None
        with self.store.transaction() as tx:
            opened = self.open(tx, now_s)
            placed = opened.windows.settle()
            found = closures(placed.closed, placed.requests)
            state = self.save(tx, opened, found, placed.assigned)
        return state, placed


def closures(
    closed: Sequence[ClosedWindow], requests: Sequence[RetrainRequest]
) -> list[WindowClosure]:
    """The store's closures of windows that just closed (with their requests' drift)."""
    drift_by_window = {r.window_id: dict(r.drift) for r in requests}
    return [
        WindowClosure(c.window_id, c.reason, c.last_ts, drift_by_window.get(c.window_id, {}))
        for c in closed
    ]
