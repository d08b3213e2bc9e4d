"""Applies the pure pipeline's effects: sample store, dead letters, retrain requests, metrics.

:class:`StreamProcessor` is what the faust agents call (from a worker thread, one batch at a
time). It validates raw messages (:mod:`lsat.stream.events`), runs
:func:`lsat.stream.pipeline.process_interaction`, and commits the interactions, their samples,
the windows they closed and the new pipeline state in one DB transaction. Only then are
messages returned to send, so a source offset is never committed before its DB write.

Per-record isolation: every consumed record ends as exactly one of stored, dead-lettered or
counted duplicate (:class:`~lsat.stream.isolation.Handled` lists which). Bad data is rejected
by validation inside the batch; anything else that fails a batch makes it run again record by
record, and only the record that still fails alone is dead-lettered (``internal_error:<class>``).
A store failure dead-letters nothing: :class:`~lsat.stream.isolation.StoreUnavailable` tells
the caller to retry. A re-delivered event id with the same content is a duplicate; with other
content it is dead-lettered as ``conflicting_duplicate`` with both payloads' sha256.

Restart (crash-safe, chosen over faust changelog tables, which tansu never compacts): per-user
history is rebuilt from the stored interactions and the window state from the stored pipeline
state; closed windows whose retrain request was not confirmed sent are sent again. Drift
detectors are saved with the window state, in the same transaction, and restored with it, so a
restart does not move window boundaries. Per-user and per-item like counts live in their own
tables, updated with the interactions (:mod:`lsat.stream.store.collaborative`); the in-memory
copy that annotates each sample is reloaded from them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from typing import cast

from lsat.core.settings import Settings
from lsat.data.samples import HistoryTracker
from lsat.data.types import HISTORY_LENGTH, Interaction, Item
from lsat.stream.app import Outgoing
from lsat.stream.dead_letter import (
    DLQ_PAYLOAD_BYTES,
    DLQ_RECORD_BYTES,
    internal_error_code,
)
from lsat.stream.dlq import DeadLetterWriter
from lsat.stream.drift import LabelRateShift, MixShift
from lsat.stream.errors import InvalidEvent
from lsat.stream.events import parse_interaction, parse_item
from lsat.stream.isolation import (
    Handled,
    IsolatedHandler,
    Record,
    conflict_detail,
    content,
)
from lsat.stream.metrics import StreamMetrics
from lsat.stream.pipeline import (
    Detectors,
    PipelineState,
    StepResult,
    close_manually,
    process_interaction,
)
from lsat.stream.store import (
    IngestItem,
    SampleStore,
    SourcePosition,
    StoredEvent,
    StoreTransaction,
    WindowClosure,
)
from lsat.stream.triggers import RetrainRequest, Trigger
from lsat.stream.windows import WindowPolicy

__all__ = ["PIPELINE_STATE", "Record", "StreamProcessor", "default_detectors", "window_policy"]

log = logging.getLogger(__name__)
PIPELINE_STATE = "pipeline"
"""Name of the stored pipeline state (open window + pending drift)."""
REMEMBERED_EVENTS = 32


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


class StreamProcessor(IsolatedHandler):
    """Validate → pipeline step → one DB transaction → messages to send; exports metrics.

    ``dlq_payload_bytes`` / ``dlq_record_bytes`` bound each dead-letter record (see
    :mod:`lsat.stream.dead_letter`); ``max_event_bytes`` is the largest valid message.
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
        self.categories: dict[str, Hashable] = {}
        self.positions: dict[tuple[str, int], int] = {}
        self._stale = False
        self._restore()

    def _restore(self) -> None:
        """Rebuild window state, per-user history and item categories from the store."""
        saved = self.store.load_state(PIPELINE_STATE)
        # detectors too: a failed batch may have fed them
        self.state = PipelineState.from_dict(saved or {"window": {}}, self.detectors)
        recent = self.store.recent_interactions(per_user=REMEMBERED_EVENTS)
        self.history = HistoryTracker.from_state(
            {u: [[i.item_id, i.label, i.key()] for i in its] for u, its in recent.items()},
            length=HISTORY_LENGTH,
            remember_events=REMEMBERED_EVENTS,
        )
        self.counts = self.store.like_counts()  # as committed: a failed batch may have fed it
        for item in self.store.catalogue().values():
            self._remember_category(item.item_id, item.extra.get("genres"))
        self._update_window_gauges()
        log.info(
            "processor restored: window %d with %d samples, %d users' history",
            self.state.window.window_id,
            self.state.window.count,
            len(recent),
        )

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
        state = self.state
        handled = Handled()
        results: list[StepResult] = []
        with self.store.transaction() as tx:
            before = self.dlq.previous(tx, batch)
            parsed: list[tuple[Interaction | InvalidEvent | str, bytes | None, SourcePosition]]
            parsed = []
            for raw, source in batch:
                self._track_position(source)
                again = before.get(_position(source)) if before else None
                parsed.append((self._parse(raw) if again is None else again, raw, source))
            stored = tx.stored_events(p.key() for p, _, _ in parsed if isinstance(p, Interaction))
            seen: dict[str, IngestItem] = {}
            items: list[IngestItem] = []
            closures: list[WindowClosure] = []
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
                state, result = self._step(state, outcome)
                if result is None:
                    seen[key] = IngestItem(outcome, source=source, payload_sha256=sha)
                    handled.add(source, "duplicate")
                    continue
                results.append(result)
                window_id = result.window_id if result.sample is not None else None
                item = IngestItem(outcome, result.sample, window_id, result.late, source, sha)
                seen[key] = item
                items.append(item)
                if result.closed:
                    closures.extend(_closures(result))
                add_source(source)  # handled.add(source, "stored"), minus a call per record
                add_kind("stored")
            tx.add_events(items)
            for closure in closures:
                tx.close_window(closure)
            tx.put_state(PIPELINE_STATE, state.to_dict(self.detectors))
        self.state = state
        self._count(handled, self.metrics.events)
        try:
            self._export(results)
            self._update_window_gauges()
        except Exception:
            log.exception("exporting metrics failed")
        handled.outgoing.extend(self._request_message(r) for x in results for r in x.requests)
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

    def _step(
        self, state: PipelineState, interaction: Interaction
    ) -> tuple[PipelineState, StepResult | None]:
        new_state, result = process_interaction(
            state,
            interaction,
            policy=self.policy,
            history=self.history,
            detectors=self.detectors,
            item_category=self.categories.get(interaction.item_id),
            now_s=self.clock(),
            counts=self.counts,
        )
        if result.duplicate:
            return state, None
        return new_state, result

    def _export(self, results: Sequence[StepResult]) -> None:
        """Metrics of a batch's stored events, one update per series (a label lookup per
        event cost more than the rest of the bookkeeping)."""
        m = self.metrics
        late = samples = 0
        last: dict[str, dict[str, float | bool]] = {}
        detections: dict[str, int] = {}
        for result in results:
            late += result.late
            samples += result.sample is not None
            for closed in result.closed:
                m.window_closures.labels(trigger=closed.reason).inc()
            for name, snapshot in result.drift.items():
                last[name] = snapshot
                if snapshot["drift"]:
                    detections[name] = detections.get(name, 0) + 1
        if results:
            m.events.labels(status="ok").inc(len(results) - late)
        if late:
            m.events.labels(status="late").inc(late)
        if samples:
            m.samples_stored.inc(samples)
        for name, snapshot in last.items():
            m.drift_statistic.labels(detector=name).set(float(snapshot["statistic"]))
        for name, count in detections.items():
            m.drift_detections.labels(detector=name).inc(count)

    def _update_window_gauges(self) -> None:
        count = self.state.window.count
        self.metrics.window_samples.set(count)
        self.metrics.window_fill.set(count / self.policy.max_samples)

    # --- retrain requests ---------------------------------------------------------------------

    def _request_message(self, request: RetrainRequest) -> Outgoing:
        def sent() -> None:
            self.store.mark_retrain_published(request.window_id)
            self.metrics.retrain_requests.labels(trigger=request.trigger).inc()

        return Outgoing(self.topics.retrain, request.request_id.encode(), request.to_json(), sent)

    def pending_outgoing(self) -> list[Outgoing]:
        """Retrain requests of closed windows not confirmed sent (e.g. after a crash)."""
        messages = []
        for window in self.store.unpublished_closed_windows():
            if window.count < 1 or window.start_ts is None or window.end_ts is None:
                continue
            request = RetrainRequest(
                window_id=window.id,
                first_ts=window.start_ts,
                last_ts=window.end_ts,
                sample_count=window.count,
                # the store keeps the close reason, a Trigger
                trigger=cast(Trigger, window.trigger or "manual"),
                drift={k: float(v) for k, v in window.drift_stats.items()},
                created_s=self.clock(),
            )
            messages.append(self._request_message(request))
        return messages

    def close_now(self) -> list[Outgoing]:
        """Close the open window on a manual request; the retrain request to send (if any)."""
        self._refresh()
        state, result = close_manually(self.state, now_s=self.clock())
        if not result.closed:
            return []
        saved = {PIPELINE_STATE: state.to_dict(self.detectors)}
        self.store.apply_state(saved, _closures(result))
        self.state = state
        self._export_closures_only(result)
        return [self._request_message(r) for r in result.requests]

    def _export_closures_only(self, result: StepResult) -> None:
        for closed in result.closed:
            self.metrics.window_closures.labels(trigger=closed.reason).inc()
        self._update_window_gauges()

    # --- items --------------------------------------------------------------------------------

    def on_item(self, raw: bytes | None, source: SourcePosition) -> list[Outgoing]:
        """Handle one ``items`` message: upsert the catalogue entry (bad ones to the DLQ)."""
        return self.handle_items([(raw, source)]).outgoing

    def handle_items(self, batch: Sequence[Record]) -> Handled:
        """Upsert ``items`` messages in one transaction (isolated like interactions): a valid
        item is ``stored`` (the latest version wins), a bad one dead-lettered."""
        return self._isolated(batch, self._items_once, "items")

    def _items_once(self, batch: Sequence[Record]) -> Handled:
        handled = Handled()
        good: list[Item] = []
        with self.store.transaction() as tx:
            before = self.dlq.previous(tx, batch)
            for raw, source in batch:
                self._track_position(source)
                again = before.get(_position(source))
                if again is not None:
                    self.dlq.again(handled, source, again)
                    continue
                try:
                    item = parse_item(raw, max_bytes=self.max_event_bytes)
                except InvalidEvent as error:
                    self.dlq.add(tx, handled, raw, source, error.reason_code, error.detail)
                    continue
                tx.upsert_item(item)
                good.append(item)
                handled.add(source, "stored")
        for item in good:
            self._remember_category(item.item_id, item.extra.get("genres"))
        self._count(handled, self.metrics.items, stored_too=True)
        return handled

    def _remember_category(self, item_id: str, genres: str | None) -> None:
        if genres:
            self.categories[item_id] = genres.split("|", 1)[0]

    def _track_position(self, source: SourcePosition) -> None:
        self.positions[(source.topic or "", source.partition)] = source.offset + 1


def _as_stored(item: IngestItem) -> StoredEvent:
    return StoredEvent(item.interaction, item.source, item.payload_sha256)


def _position(source: SourcePosition) -> tuple[str | None, int, int]:
    return (source.topic, source.partition, source.offset)


def _closures(result: StepResult) -> list[WindowClosure]:
    drift_by_window = {r.window_id: dict(r.drift) for r in result.requests}
    return [
        WindowClosure(c.window_id, c.reason, c.last_ts, drift_by_window.get(c.window_id, {}))
        for c in result.closed
    ]
