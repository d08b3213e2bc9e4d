"""Applies the pipeline's effects: sample store, dead letters, retrain requests, metrics.

:class:`StreamProcessor` is what the worker's consumers call (from a worker thread, one batch at a
time). It validates raw messages (:mod:`lsat.stream.events`), runs each interaction through its
partition's history, like counts and detectors (:func:`lsat.stream.pipeline.observe`) and the
global window (:class:`lsat.stream.partitioned.BatchWindows`), and commits the interactions,
their samples, the windows they closed, the global state and the partitions' state in one DB
transaction. Only then are messages returned to send, so a source offset is never committed
before its DB write.

Several workers (one consumer group over the partitions of ``interactions``): each batch's
transaction first takes the store's lock, so the batches of all workers commit one after the
other on one global window; a partition's histories and detectors are this worker's copy only
while nobody else committed to that partition (else reloaded). See
:mod:`lsat.stream.partitioned`, :mod:`lsat.stream.alignment` (the global watermark and the idle
timeout) and :mod:`lsat.stream.outbox` (one retrain request per window). With one partition
every result is :func:`lsat.stream.pipeline.process_interaction`'s.

Per-record isolation: every consumed record ends as exactly one of stored, dead-lettered or
counted duplicate (:class:`~lsat.stream.isolation.Handled` lists which). Bad data is rejected
by validation inside the batch; anything else that fails a batch makes it run again record by
record, and only the record that still fails alone is dead-lettered (``internal_error:<class>``).
A store failure dead-letters nothing: :class:`~lsat.stream.isolation.StoreUnavailable` tells
the caller to retry. A re-delivered event id with the same content is a duplicate; with other
content it is dead-lettered as ``conflicting_duplicate`` with both payloads' sha256.

Restart (crash-safe, chosen over faust changelog tables, which tansu never compacts): per-user
history is rebuilt from the stored interactions, the window from the stored global state and
each partition's detectors from its row (saved in the same transaction, so a restart does not
move window boundaries); closed windows whose retrain request was not confirmed sent are sent
again. Per-user and per-item like counts live in their own tables, updated with the
interactions (:mod:`lsat.stream.store.collaborative`) and read by each batch in its
transaction.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace

from lsat.core.settings import Settings
from lsat.data.collaborative import CollaborativeCounts
from lsat.data.types import Interaction
from lsat.stream.app import Outgoing
from lsat.stream.catalogue import CatalogueHandler, position_of
from lsat.stream.dead_letter import (
    DLQ_PAYLOAD_BYTES,
    DLQ_RECORD_BYTES,
    internal_error_code,
)
from lsat.stream.dlq import DeadLetterWriter
from lsat.stream.drift import LabelRateShift, MixShift
from lsat.stream.errors import InvalidConfig, InvalidEvent
from lsat.stream.events import parse_interaction
from lsat.stream.global_window import PendingSample
from lsat.stream.isolation import (
    Handled,
    Record,
    StoreUnavailable,
    conflict_detail,
    content,
)
from lsat.stream.metrics import StreamMetrics
from lsat.stream.outbox import RetrainOutbox
from lsat.stream.partitioned import PartitionMemory
from lsat.stream.pipeline import Detectors, PipelineState, StepResult, observe
from lsat.stream.store import (
    IngestItem,
    SampleStore,
    SourcePosition,
    StoredEvent,
    StoreTransaction,
    WindowClosure,
)
from lsat.stream.window_keeper import PIPELINE_STATE, Opened, WindowKeeper, closures
from lsat.stream.windows import ClosedWindow, WindowPolicy

__all__ = ["PIPELINE_STATE", "Record", "StreamProcessor", "default_detectors", "window_policy"]

log = logging.getLogger(__name__)


def window_policy(settings: Settings) -> WindowPolicy:
    """The window policy configured in ``settings.stream``."""
    s = settings.stream
    return WindowPolicy(
        max_samples=s.window_max_samples,
        max_span_s=s.window_max_span_s,
        allowed_lateness_s=s.allowed_lateness_s,
        min_samples_on_drift=s.window_min_samples_on_drift,
    )


def default_detectors(settings: Settings) -> Detectors:
    """Label-rate and genre-mix detectors (none when drift detection is switched off)."""
    if not settings.stream.drift_detection:
        return Detectors()
    return Detectors(labels=[LabelRateShift()], mix=[MixShift()])


class StreamProcessor(CatalogueHandler):
    """Validate → pipeline step → one DB transaction → messages to send; exports metrics.

    ``dlq_payload_bytes`` / ``dlq_record_bytes`` bound each dead-letter record (see
    :mod:`lsat.stream.dead_letter`); ``max_event_bytes`` is the largest valid message.
    ``detectors`` is the template each partition's detectors are copied from.
    """

    def __init__(
        self,
        settings: Settings,
        store: SampleStore,
        metrics: StreamMetrics | None = None,
        detectors: Detectors | None = None,
        clock: Callable[[], float] = time.time,
        *,
        max_event_bytes: int = 16_384,
        dlq_payload_bytes: int = DLQ_PAYLOAD_BYTES,
        dlq_record_bytes: int = DLQ_RECORD_BYTES,
    ) -> None:
        self.settings = settings
        self.topics = settings.kafka.topics
        self.store = store
        self.metrics = metrics or StreamMetrics()
        self.detectors = detectors if detectors is not None else default_detectors(settings)
        for detector in self.detectors.all():  # every series exists (at 0) before a detection
            self.metrics.drift_detections.labels(detector=detector.name)
        self.policy = window_policy(settings)
        self.clock = clock
        self.max_event_bytes = max_event_bytes
        self.dlq = DeadLetterWriter(
            self.topics.dlq, max_payload_bytes=dlq_payload_bytes, max_record_bytes=dlq_record_bytes
        )
        self.outbox = RetrainOutbox(store, self.topics.retrain, self.metrics, clock)
        self.keeper = WindowKeeper(
            store,
            self.policy,
            idle_timeout_s=settings.stream.partition_idle_timeout_s,
            expected=range(settings.kafka.partitions),
            clock=clock,
        )
        self.categories: dict[str, Hashable] = {}
        self.category_asked: dict[str, float] = {}
        self.positions: dict[tuple[str, int], int] = {}
        self.parts: dict[int, PartitionMemory] = {}
        self.state = PipelineState()
        self._stale = False
        self._restore()

    def _restore(self) -> None:
        """Forget the partitions' copies (each is reloaded from the store when next used) and
        read the global window and the item categories."""
        self.parts = {}
        self.state = self.keeper.current()
        self.load_categories()
        self._update_window_gauges()
        log.info(
            "processor restored: window %d with %d samples",
            self.state.window.window_id,
            self.state.window.count,
        )

    @property
    def counts(self) -> CollaborativeCounts:
        """The like counts as committed (each batch reads its users' and items' in its
        transaction, so several workers count on each other's commits)."""
        return self.store.like_counts()

    def _partition(self, tx: StoreTransaction, partition: int, opened: Opened) -> PartitionMemory:
        """This worker's copy of ``partition``, reloaded when another commit changed it."""
        memory = self.parts.get(partition)
        stored = opened.saved.get(partition)
        if memory is not None and memory.seq == (stored.seq if stored else 0):
            return memory
        legacy = opened.legacy.get("detectors") if partition == 0 else None
        try:
            memory = PartitionMemory.load(tx, partition, stored, self.detectors, legacy)
        except InvalidConfig as error:  # a bad saved state: retry (and log), dead-letter nothing
            raise StoreUnavailable(f"partition {partition}'s saved state: {error}") from error
        self.parts[partition] = memory
        return memory

    # --- interactions -------------------------------------------------------------------------

    def on_interaction(self, raw: bytes | None, source: SourcePosition) -> list[Outgoing]:
        """Handle one ``interactions`` message; returns what to send after the DB commit."""
        return self.handle_interactions([(raw, source)]).outgoing

    def on_interactions(self, batch: Sequence[Record]) -> list[Outgoing]:
        """:meth:`handle_interactions`, returning only the messages to send."""
        return self.handle_interactions(batch).outgoing

    def handle_interactions(self, batch: Sequence[Record]) -> Handled:
        """Handle ``interactions`` messages in order: one outcome each, messages to send.

        Raises :class:`StoreUnavailable` (nothing dead-lettered) when the store failed.
        """
        started = time.perf_counter()
        handled = self._isolated(batch, self._interactions_once, "interactions")
        if batch:
            elapsed = time.perf_counter() - started
            for _ in batch:
                self.metrics.processing_seconds.observe(elapsed / len(batch))
        return handled

    def _interactions_once(self, batch: Sequence[Record]) -> Handled:
        handled = Handled()
        results: list[StepResult] = []
        now_s = self.clock()
        decoded = [self._parse(raw) for raw, _ in batch]  # before the lock: workers in parallel
        with self.store.transaction() as tx:
            opened = self.keeper.open(tx, now_s)
            windows = opened.windows
            before = self.dlq.previous(tx, batch)
            parsed: list[tuple[Interaction | InvalidEvent | str, bytes | None, SourcePosition]]
            parsed = []
            for (raw, source), event in zip(batch, decoded, strict=True):
                self._track_position(source)
                again = before.get(position_of(source)) if before else None
                parsed.append((event if again is None else again, raw, source))
            valid = [p for p, _, _ in parsed if isinstance(p, Interaction)]
            stored = tx.stored_events(p.key() for p in valid)
            counts = tx.like_counts_of((p.user_id for p in valid), (p.item_id for p in valid))
            self.learn_categories(tx, (p.item_id for p in valid))
            seen: dict[str, IngestItem] = {}
            items: list[IngestItem] = []
            waiting: dict[str, int] = {}  # pending samples of this batch → index in items
            stored_assigned: list[tuple[PendingSample, int]] = []
            closed: list[WindowClosure] = []
            touched: dict[int, PartitionMemory] = {}
            add_source, add_kind = handled.sources.append, handled.kinds.append
            for outcome, raw, source in parsed:
                if isinstance(outcome, str):  # dead-lettered when first delivered
                    self.dlq.again(handled, source, outcome)
                    continue
                if isinstance(outcome, InvalidEvent):
                    code, detail = outcome.reason_code, outcome.detail
                    self.dlq.add(tx, handled, raw, source, code, detail)
                    continue
                assert raw is not None  # it parsed into an Interaction
                sha = hashlib.sha256(raw).hexdigest()
                key = outcome.key()
                earlier = stored.get(key) if key not in seen else _as_stored(seen[key])
                if earlier is not None:
                    self._repeated(tx, handled, earlier, outcome, raw, source, sha)
                    continue
                part = self._partition(tx, source.partition, opened)
                if part.history.is_duplicate(outcome):
                    seen[key] = IngestItem(outcome, source=source, payload_sha256=sha)
                    handled.add(source, "duplicate")
                    continue
                touched[part.partition] = part
                sample, fired, drift = observe(
                    outcome,
                    part.history,
                    part.detectors,
                    self.categories.get(outcome.item_id),
                    counts,
                )
                late, placed = windows.step(part.partition, outcome, sample is not None, fired)
                part.watermark = windows.clocks[part.partition].watermark
                window_id = placed.window_of(key) if sample is not None else None
                result = StepResult(
                    sample, window_id, late, False, placed.closed, placed.requests, drift
                )
                results.append(result)
                for pending, assigned in placed.assigned:  # samples that waited for it
                    ref = str(pending.ref)
                    if ref == key:
                        continue
                    index = waiting.pop(ref, None)
                    if index is not None:  # of this batch: not stored yet
                        items[index] = replace(items[index], window_id=assigned)
                    else:
                        stored_assigned.append((pending, assigned))
                item = IngestItem(outcome, sample, window_id, late, source, sha)
                if sample is not None and window_id is None:
                    waiting[key] = len(items)
                seen[key] = item
                items.append(item)
                if placed.closed:
                    closed.extend(closures(placed.closed, placed.requests))
                add_source(source)  # handled.add(source, "stored"), minus a call per record
                add_kind("stored")
            tx.add_events(items)
            state = self.keeper.save(tx, opened, closed, stored_assigned)
            for part in touched.values():
                tx.put_partition(part.saved(now_s))
        for part in touched.values():
            part.seq += 1
        self.state = state
        self._count(handled, self.metrics.events)
        try:
            self.metrics.export_steps(results)
            self._update_window_gauges()
        except Exception:
            log.exception("exporting metrics failed")
        handled.outgoing.extend(self.outbox.message(r) for x in results for r in x.requests)
        return handled

    def _repeated(
        self,
        tx: StoreTransaction,
        handled: Handled,
        earlier: StoredEvent,
        event: Interaction,
        raw: bytes | None,
        source: SourcePosition,
        sha: str,
    ) -> None:
        """An event id seen before: an exact duplicate, or a conflicting one (dead-lettered)."""
        if content(earlier.interaction) == content(event):
            handled.add(source, "duplicate")
            return
        context = {
            "event_id": event.key(),
            "stored_payload_sha256": earlier.payload_sha256 or "unknown",
            "payload_sha256": sha,
        }
        if earlier.source is not None:
            context["stored_offset"] = f"{earlier.source.partition}:{earlier.source.offset}"
        detail = conflict_detail(earlier.interaction, event)
        self.dlq.add(tx, handled, raw, source, "conflicting_duplicate", detail, context)

    def _parse(self, raw: bytes | None) -> Interaction | InvalidEvent:
        try:
            return parse_interaction(
                raw,
                max_bytes=self.max_event_bytes,
                now_s=self.clock(),
                like_threshold=self.settings.stream.like_threshold,
            )
        except InvalidEvent as error:
            return error
        except Exception as error:  # a validation bug: this record only
            log.exception("validating an interaction failed")
            return InvalidEvent(internal_error_code(error), f"{type(error).__name__}: {error}")

    def _update_window_gauges(self) -> None:
        count = self.state.window.count
        self.metrics.window_samples.set(count)
        self.metrics.window_fill.set(count / self.policy.max_samples)

    # --- retrain requests and the timer -------------------------------------------------------

    def pending_outgoing(self) -> list[Outgoing]:
        """Retrain requests of closed windows not confirmed sent (e.g. after a crash)."""
        return self.outbox.unconfirmed()

    def close_now(self) -> list[Outgoing]:
        """Close the open window on a manual request; the retrain request to send (if any)."""
        self._refresh()
        self.state, result = self.keeper.close_manually()
        self._export_closures(result.closed)
        return [self.outbox.message(r) for r in result.requests]

    def tick(self) -> list[Outgoing]:
        """The worker's timer: settle the global window when idle partitions timed out (with
        one partition nothing ever changes here), and re-send overdue retrain requests."""
        self._refresh()
        messages: list[Outgoing] = []
        settled = self.keeper.settle_idle()
        if settled is not None:
            self.state, placed = settled
            self._export_closures(placed.closed)
            if placed.closed:
                ids = [c.window_id for c in placed.closed]
                log.info("idle partitions timed out: closed windows %s", ids)
            messages = [self.outbox.message(r) for r in placed.requests]
        return [*messages, *self.outbox.overdue()]

    def _export_closures(self, closed: Sequence[ClosedWindow]) -> None:
        for window in closed:
            self.metrics.window_closures.labels(trigger=window.reason).inc()
        self._update_window_gauges()


def _as_stored(item: IngestItem) -> StoredEvent:
    return StoredEvent(item.interaction, item.source, item.payload_sha256)
