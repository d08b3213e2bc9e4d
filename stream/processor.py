"""Applies the pure pipeline's effects: sample store, dead letters, retrain requests, metrics.

:class:`StreamProcessor` is what the faust agents call (synchronously, one event at a time). It
validates a raw message (:mod:`lsat.stream.events`), runs
:func:`lsat.stream.pipeline.process_interaction`,
and commits the interaction, its sample, the windows it closed and the new pipeline state in one
DB transaction (:meth:`SampleStore.commit_event`). Only then are messages returned to send, so a
source offset is never committed before its DB write.

Within a batch, ids already in the store are found with one query first, so a re-delivered
event never reaches the pipeline (history and detectors stay untouched).

Restart (crash-safe, chosen over faust changelog tables, which tansu never compacts): per-user
history is rebuilt from the stored interactions and the window state from the stored pipeline
state; closed windows whose retrain request was not confirmed sent are sent again. Re-delivered
events are recognised by event id (history tracker first, the DB's unique key as the backstop)
and change nothing. Drift detectors are saved with the window state, in the same transaction,
and restored with it, so a restart does not move window boundaries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Sequence

from lsat.core.settings import Settings
from lsat.data.samples import HistoryTracker
from lsat.data.types import HISTORY_LENGTH, Interaction
from lsat.stream.app import Outgoing
from lsat.stream.drift import LabelRateShift, MixShift
from lsat.stream.errors import InvalidEvent
from lsat.stream.events import DeadLetter, parse_interaction, parse_item
from lsat.stream.metrics import StreamMetrics
from lsat.stream.pipeline import (
    Detectors,
    PipelineState,
    StepResult,
    close_manually,
    process_interaction,
)
from lsat.stream.store import (
    DeadLetterRecord,
    IngestItem,
    SampleStore,
    SourcePosition,
    StoreTransaction,
    WindowClosure,
)
from lsat.stream.triggers import RetrainRequest
from lsat.stream.windows import WindowPolicy

__all__ = ["PIPELINE_STATE", "StreamProcessor", "default_detectors", "window_policy"]

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
    )


def default_detectors(settings: Settings) -> Detectors:
    """Label-rate and genre-mix detectors (none when drift detection is switched off)."""
    if not settings.stream.drift_detection:
        return Detectors()
    return Detectors(labels=[LabelRateShift()], mix=[MixShift()])


class StreamProcessor:
    """Validate → pipeline step → one DB transaction → messages to send; exports metrics."""

    def __init__(
        self,
        settings: Settings,
        store: SampleStore,
        metrics: StreamMetrics | None = None,
        detectors: Detectors | None = None,
        clock: Callable[[], float] = time.time,
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
        self.categories: dict[str, Hashable] = {}
        self.positions: dict[tuple[str, int], int] = {}
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

    def on_interaction(self, raw: bytes, source: SourcePosition) -> list[Outgoing]:
        """Handle one ``interactions`` message; returns what to send after the DB commit."""
        return self.on_interactions([(raw, source)])

    def on_interactions(self, batch: Sequence[tuple[bytes, SourcePosition]]) -> list[Outgoing]:
        """Handle messages in order, all in one DB transaction; what to send after commit.

        If the transaction fails, the in-memory state is rebuilt from the store and the error
        propagates (the messages were not acknowledged, so they will be delivered again).
        """
        started = time.perf_counter()
        state = self.state
        results: list[StepResult] = []
        letters: list[tuple[InvalidEvent, Outgoing]] = []
        duplicates = 0
        try:
            with self.store.transaction() as tx:
                parsed: list[tuple[Interaction | InvalidEvent, bytes, SourcePosition]] = []
                for raw, source in batch:
                    self._track_position(source)
                    parsed.append((self._parse(raw), raw, source))
                seen = tx.existing_event_ids(
                    p.key() for p, _, _ in parsed if isinstance(p, Interaction)
                )
                items: list[IngestItem] = []
                closures: list[WindowClosure] = []
                for outcome, raw, source in parsed:
                    if isinstance(outcome, InvalidEvent):
                        letter = self._dead_letter(tx, raw, outcome, source)
                        if letter is not None:
                            letters.append((outcome, letter))
                        continue
                    if outcome.key() in seen:
                        duplicates += 1
                        continue
                    seen.add(outcome.key())
                    state, result = self._step(state, outcome)
                    if result is None:
                        duplicates += 1
                        continue
                    results.append(result)
                    items.append(
                        IngestItem(
                            outcome,
                            result.sample,
                            window_id=result.window_id if result.sample is not None else None,
                            late=result.late,
                            source=source,
                        )
                    )
                    closures.extend(_closures(result))
                tx.add_events(items)
                for closure in closures:
                    tx.close_window(closure)
                tx.put_state(PIPELINE_STATE, state.to_dict(self.detectors))
        except Exception:
            log.exception("store transaction failed; restoring state from the store")
            self._restore()
            raise
        self.state = state
        m = self.metrics
        m.events.labels(status="duplicate").inc(duplicates)
        for error, _ in letters:
            m.events.labels(status="dlq").inc()
            m.dead_letters.labels(reason=error.reason_code).inc()
        for result in results:
            self._export(result)
        self._update_window_gauges()
        if batch:
            elapsed = time.perf_counter() - started
            for _ in batch:
                m.processing_seconds.observe(elapsed / len(batch))
        requests = [r for result in results for r in result.requests]
        return [letter for _, letter in letters] + [self._request_message(r) for r in requests]

    def _parse(self, raw: bytes) -> Interaction | InvalidEvent:
        try:
            return parse_interaction(
                raw, now_s=self.clock(), like_threshold=self.settings.stream.like_threshold
            )
        except InvalidEvent as error:
            return error

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
        )
        if result.duplicate:
            return state, None
        return new_state, result

    def _export(self, result: StepResult) -> None:
        m = self.metrics
        m.events.labels(status="late" if result.late else "ok").inc()
        if result.sample is not None:
            m.samples_stored.inc()
        for closed in result.closed:
            m.window_closures.labels(trigger=closed.reason).inc()
        for name, snapshot in result.drift.items():
            m.drift_statistic.labels(detector=name).set(float(snapshot["statistic"]))
            if snapshot["drift"]:
                m.drift_detections.labels(detector=name).inc()

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
                trigger=window.trigger or "manual",  # type: ignore[arg-type]
                drift={k: float(v) for k, v in window.drift_stats.items()},
                created_s=self.clock(),
            )
            messages.append(self._request_message(request))
        return messages

    def close_now(self) -> list[Outgoing]:
        """Close the open window on a manual request; the retrain request to send (if any)."""
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

    # --- items and dead letters ---------------------------------------------------------------

    def on_item(self, raw: bytes, source: SourcePosition) -> list[Outgoing]:
        """Handle one ``items`` message: upsert the catalogue entry (bad ones to the DLQ)."""
        try:
            item = parse_item(raw)
        except InvalidEvent as error:
            with self.store.transaction() as tx:
                letter = self._dead_letter(tx, raw, error, source)
            self.metrics.items.labels(status="dlq").inc()
            return [letter] if letter is not None else []
        self.store.upsert_item(item)
        self._remember_category(item.item_id, item.extra.get("genres"))
        self.metrics.items.labels(status="ok").inc()
        return []

    def _remember_category(self, item_id: str, genres: str | None) -> None:
        if genres:
            self.categories[item_id] = genres.split("|", 1)[0]

    def _dead_letter(
        self, tx: StoreTransaction, raw: bytes, error: InvalidEvent, source: SourcePosition
    ) -> Outgoing | None:
        """Record a rejected message; the DLQ message to send (None when re-delivered)."""
        letter = DeadLetter.from_error(
            raw, error, topic=source.topic, partition=source.partition, offset=source.offset
        )
        value = letter.to_json()
        record = DeadLetterRecord(error.reason_code, error.detail, value.decode("utf-8"), source)
        if not tx.add_dead_letter(record):
            return None  # re-delivered: its DLQ message was produced the first time
        key = f"{source.topic}:{source.partition}:{source.offset}".encode()
        return Outgoing(self.topics.dlq, key, value)

    def _track_position(self, source: SourcePosition) -> None:
        self.positions[(source.topic or "", source.partition)] = source.offset + 1


def _closures(result: StepResult) -> list[WindowClosure]:
    drift_by_window = {r.window_id: dict(r.drift) for r in result.requests}
    return [
        WindowClosure(c.window_id, c.reason, c.last_ts, drift_by_window.get(c.window_id, {}))
        for c in result.closed
    ]
