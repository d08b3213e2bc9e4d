"""Retrain requests, one per closed window, through the store as an outbox.

The window's row is the outbox entry: it is closed (``status = 'closed'``, trigger, drift) in the
same transaction as the events that closed it, and only one transaction can close a window (every
worker's batch holds the store lock, :mod:`lsat.stream.store.partitions`). After the commit the
worker that closed it sends the request and, once the broker acknowledged it, stamps
``retrain_published_at``. A request never confirmed (the worker died between commit and
acknowledgement, or could not stamp it) is sent again from the row: by any worker when it starts
(:meth:`RetrainOutbox.unconfirmed`), and by every worker's timer once it has stayed unconfirmed
for ``republish_after_s`` since that worker sent it or first saw it (:meth:`RetrainOutbox.overdue`,
on the worker's own clock). A request can therefore reach the topic
twice (sent, then the sender died before stamping it); the trainer treats a window it already
trained as done (``lsat.adapters.trainer.resume``, ``window_claim``), so each window is trained
once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from lsat.stream.app import Outgoing
from lsat.stream.metrics import StreamMetrics
from lsat.stream.store import SampleStore, StoredWindow
from lsat.stream.triggers import RetrainRequest, Trigger

__all__ = ["REPUBLISH_AFTER_S", "RetrainOutbox"]

REPUBLISH_AFTER_S = 30.0
"""How long a closed window's request may stay unconfirmed before another send."""


class RetrainOutbox:
    """Builds the messages of retrain requests and finds the unconfirmed ones (module doc)."""

    def __init__(
        self,
        store: SampleStore,
        topic: str,
        metrics: StreamMetrics,
        clock: Callable[[], float] = time.time,
        republish_after_s: float = REPUBLISH_AFTER_S,
    ) -> None:
        self.store = store
        self.topic = topic
        self.metrics = metrics
        self.clock = clock
        self.republish_after_s = republish_after_s
        self._sent_s: dict[int, float] = {}
        """Window id → when this worker sent its request or first saw it unconfirmed."""

    def message(self, request: RetrainRequest) -> Outgoing:
        """The request's message; once sent, its window is stamped published."""
        self._sent_s[request.window_id] = self.clock()

        def sent() -> None:
            self.store.mark_retrain_published(request.window_id)
            self.metrics.retrain_requests.labels(trigger=request.trigger).inc()
            self._sent_s.pop(request.window_id, None)

        return Outgoing(self.topic, request.request_id.encode(), request.to_json(), sent)

    def unconfirmed(self) -> list[Outgoing]:
        """The requests of every closed window not confirmed sent (e.g. after a crash)."""
        return [self._again(w) for w in self.store.unpublished_closed_windows() if _sendable(w)]

    def overdue(self) -> list[Outgoing]:
        """The unconfirmed requests this worker has known of (sent, or seen unconfirmed) for at
        least ``republish_after_s`` without a confirmation: sent again, then again after as
        long. Times are this worker's clock only."""
        now = self.clock()
        due = []
        waiting = [w for w in self.store.unpublished_closed_windows() if _sendable(w)]
        for gone in set(self._sent_s) - {w.id for w in waiting}:  # confirmed by any worker
            del self._sent_s[gone]
        for window in waiting:
            since = self._sent_s.setdefault(window.id, now)
            if now - since >= self.republish_after_s:
                due.append(self._again(window))  # restamps it: next time after as long
        return due

    def _again(self, window: StoredWindow) -> Outgoing:
        assert window.start_ts is not None and window.end_ts is not None
        request = RetrainRequest(
            window_id=window.id,
            first_ts=window.start_ts,
            last_ts=window.end_ts,
            sample_count=window.count,
            trigger=cast(Trigger, window.trigger or "manual"),  # the stored close reason
            drift={k: float(v) for k, v in window.drift_stats.items()},
            created_s=self.clock(),
        )
        return self.message(request)


def _sendable(window: StoredWindow) -> bool:
    return window.count >= 1 and window.start_ts is not None and window.end_ts is not None
