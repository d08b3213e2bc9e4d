"""Sustained-loss drift on the serving combination's per-sample losses (Page-Hinkley).

The window evaluation hands each window's losses to :class:`LossDrift`; the long-adapter policy
reads :attr:`LossDrift.in_last_window` and :meth:`LossDrift.reset` starts over after a refresh.
"""

from __future__ import annotations

from collections.abc import Sequence

from lsat.adapters.trainer.metrics import TrainerMetrics
from lsat.stream.drift.page_hinkley import PageHinkley

__all__ = ["LossDrift"]


class LossDrift:
    """A Page-Hinkley detector on losses, counting detections into ``metrics``.

    >>> drift = LossDrift(TrainerMetrics())
    >>> drift.observe([0.1] * 100), drift.observe([5.0] * 100)
    (0, 1)
    """

    def __init__(self, metrics: TrainerMetrics, detector: PageHinkley | None = None) -> None:
        self.metrics = metrics
        self.detector = detector or PageHinkley()
        self.in_last_window = False
        self._last_window: int | None = None

    def observe(self, losses: Sequence[float]) -> int:
        """Feed per-sample losses; count (and return) new detections.

        Only transitions into drift count, however long the detector stays there.
        """
        detections = 0
        in_drift = self.detector.drift_detected
        for loss in losses:
            now = self.detector.update(loss).drift_detected
            if now and not in_drift:
                detections += 1
                self.metrics.loss_drift_detections.inc()
            in_drift = now
        self.metrics.loss_drift.set(self.detector.statistic)
        return detections

    def observe_window(self, window_id: int, losses: Sequence[float]) -> bool:
        """:meth:`observe` one window's losses once; remember whether it detected a drift.

        A retried job scores its window again: the same window's losses are not fed twice.

        >>> drift = LossDrift(TrainerMetrics())
        >>> drift.observe_window(1, [0.1] * 100), drift.observe_window(2, [5.0] * 100)
        (False, True)
        >>> before = drift.detector.statistic
        >>> drift.observe_window(2, [5.0] * 100), drift.detector.statistic == before
        (True, True)
        """
        if window_id == self._last_window:
            return self.in_last_window
        self._last_window = window_id
        self.in_last_window = self.observe(losses) > 0
        return self.in_last_window

    def reset(self) -> None:
        """Start over (after the long adapter was refreshed)."""
        self.detector.reset()
        self.in_last_window = False
