"""Event-time windows over the sample stream: count and/or span bounded, with a watermark.

faust's windowed tables expire by wall clock, which purges replayed history at once, so the
stream keeps one open window in a small serialisable :class:`WindowState` and advances it with
pure methods. Windows are consecutive (tumbling) and numbered 0, 1, 2, …

* The **watermark** is the largest event time seen so far (samples and non-sample events).
* A sample is **late** when its event time < watermark − ``allowed_lateness_s``; it is still
  stored and counted in the open window (nothing is dropped), only flagged.
* A window closes as **"full"** right after the sample that brings it to ``max_samples``, and
  as **"span"** when the watermark passes ``start_ts + max_span_s``; the event that moves the
  watermark past it belongs to the next window. Drift or a manual request close it through
  :meth:`WindowState.close`; drift only once the window holds
  :attr:`WindowPolicy.drift_close_min` samples (by default a quarter of ``max_samples``, never
  fewer than the trainer's minimum :data:`MIN_TRAIN_SAMPLES`).

>>> policy = WindowPolicy(max_samples=2, max_span_s=100, allowed_lateness_s=10)
>>> state = WindowState()
>>> state, step = state.add(1000, policy)
>>> step.window_id, step.late, step.closed
(0, False, ())
>>> state, step = state.add(1005, policy)
>>> step.closed[0].reason, step.closed[0].count, state.window_id
('full', 2, 1)
>>> state, step = state.add(1200, policy)
>>> state, step = state.add(1400, policy)  # watermark passes 1200 + 100
>>> step.window_id, [(c.window_id, c.reason) for c in step.closed]
(2, [(1, 'span')])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lsat.stream.errors import InvalidConfig

__all__ = [
    "DRIFT_CLOSE_FRACTION",
    "MIN_TRAIN_SAMPLES",
    "CloseReason",
    "ClosedWindow",
    "WindowPolicy",
    "WindowState",
    "WindowStep",
]

CloseReason = Literal["full", "span", "drift", "manual"]
_CLOSE_REASONS: tuple[str, ...] = ("full", "span", "drift", "manual")
MIN_TRAIN_SAMPLES = 2
"""The fewest samples the trainer trains a window on (it skips smaller windows: one sample
cannot be split into training and validation)."""
DRIFT_CLOSE_FRACTION = 0.25
"""By default drift closes a window only once it is a quarter full: a handful of samples
right after the previous close makes a useless short adapter."""


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    """When windows close; ``max_span_s=None`` means count-bounded only.

    ``min_samples_on_drift``: the fewest samples a window needs before drift may close it
    (``None``: :attr:`drift_close_min`'s default). Smaller than :data:`MIN_TRAIN_SAMPLES` is
    refused (unless ``max_samples`` itself is smaller).

    >>> WindowPolicy(max_samples=2000).drift_close_min
    500
    >>> WindowPolicy(max_samples=6).drift_close_min, WindowPolicy(max_samples=1).drift_close_min
    (2, 1)
    >>> WindowPolicy(max_samples=100, min_samples_on_drift=30).drift_close_min
    30
    """

    max_samples: int
    max_span_s: int | None = None
    allowed_lateness_s: int = 0
    min_samples_on_drift: int | None = None

    def __post_init__(self) -> None:
        if self.max_samples < 1:
            raise InvalidConfig(f"max_samples must be ≥ 1, got {self.max_samples}")
        if self.max_span_s is not None and self.max_span_s <= 0:
            raise InvalidConfig(f"max_span_s must be > 0 or None, got {self.max_span_s}")
        if self.allowed_lateness_s < 0:
            raise InvalidConfig(f"allowed_lateness_s must be ≥ 0, got {self.allowed_lateness_s}")
        low = min(MIN_TRAIN_SAMPLES, self.max_samples)
        given = self.min_samples_on_drift
        if given is not None and not low <= given <= self.max_samples:
            raise InvalidConfig(
                f"min_samples_on_drift must be in [{low}, max_samples={self.max_samples}], "
                f"got {given}"
            )

    @property
    def drift_close_min(self) -> int:
        """The fewest samples a window holds before drift closes it."""
        if self.min_samples_on_drift is not None:
            return self.min_samples_on_drift
        share = math.ceil(self.max_samples * DRIFT_CLOSE_FRACTION)
        return min(self.max_samples, max(MIN_TRAIN_SAMPLES, share))


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A window that just closed: what a retrain request and the sample store need."""

    window_id: int
    reason: CloseReason
    start_ts: int
    first_ts: int
    last_ts: int
    count: int
    late_count: int


@dataclass(frozen=True, slots=True)
class WindowStep:
    """Where one event went: its window, whether it was late, and any windows it closed."""

    window_id: int
    late: bool
    closed: tuple[ClosedWindow, ...] = ()


@dataclass(frozen=True, slots=True)
class WindowState:
    """The open window and the watermark. Immutable: every method returns a new state.

    ``start_ts`` anchors the span (the first sample's event time, or the watermark when that
    sample was late); ``first_ts``/``last_ts`` are the min/max event time of its samples.
    """

    window_id: int = 0
    start_ts: int | None = None
    first_ts: int | None = None
    last_ts: int | None = None
    count: int = 0
    late_count: int = 0
    watermark: int | None = None

    def is_late(self, event_ts: int, policy: WindowPolicy) -> bool:
        """Whether ``event_ts`` is older than the watermark minus the allowed lateness."""
        return self.watermark is not None and event_ts < self.watermark - policy.allowed_lateness_s

    def advance(self, event_ts: int, policy: WindowPolicy) -> tuple[WindowState, WindowStep]:
        """Move the watermark for an event that is not a sample (may close the window by span).

        >>> policy = WindowPolicy(max_samples=9, max_span_s=10)
        >>> state, _ = WindowState().add(100, policy)
        >>> state, step = state.advance(111, policy)
        >>> [c.reason for c in step.closed], state.window_id, state.watermark
        (['span'], 1, 111)
        """
        late = self.is_late(event_ts, policy)
        state = self.with_watermark(event_ts)
        closed: tuple[ClosedWindow, ...] = ()
        if state.span_passed(policy):
            state, window = state.close("span")
            closed = (window,)
        return state, WindowStep(state.window_id, late, closed)

    def add(self, event_ts: int, policy: WindowPolicy) -> tuple[WindowState, WindowStep]:
        """Count a sample with event time ``event_ts`` in the open window."""
        late = self.is_late(event_ts, policy)
        state, step = self.advance(event_ts, policy)
        state = state.include(event_ts, late)
        window_id, closed = state.window_id, step.closed
        if state.count >= policy.max_samples:
            state, window = state.close("full")
            closed = (*closed, window)
        return state, WindowStep(window_id, late, closed)

    def with_watermark(self, event_ts: int | None) -> WindowState:
        """The same window with the watermark moved up to ``event_ts`` (never down).

        >>> WindowState(watermark=10).with_watermark(5).watermark
        10
        """
        if event_ts is None or (self.watermark is not None and self.watermark >= event_ts):
            return self
        # (the constructor, not dataclasses.replace: this runs for every event and is 3× faster)
        return WindowState(
            self.window_id,
            self.start_ts,
            self.first_ts,
            self.last_ts,
            self.count,
            self.late_count,
            event_ts,
        )

    def include(self, event_ts: int, late: bool) -> WindowState:
        """Count one sample in the open window, without moving the watermark. The first sample
        anchors the span: at its own time, or at the watermark when it is ``late``."""
        anchor = self.watermark if late and self.watermark is not None else event_ts
        first, last = self.first_ts, self.last_ts
        return WindowState(
            self.window_id,
            anchor if self.start_ts is None else self.start_ts,
            event_ts if first is None or event_ts < first else first,
            event_ts if last is None or event_ts > last else last,
            self.count + 1,
            self.late_count + 1 if late else self.late_count,
            self.watermark,
        )

    def span_passed(self, policy: WindowPolicy) -> bool:
        """Whether the watermark is past the open window's span (a non-empty window only)."""
        return (
            policy.max_span_s is not None
            and self.count > 0
            and self.start_ts is not None
            and self.watermark is not None
            and self.watermark > self.start_ts + policy.max_span_s
        )

    def close(self, reason: CloseReason) -> tuple[WindowState, ClosedWindow]:
        """Close the open window (it must hold a sample) and open the next one.

        >>> state, _ = WindowState().add(5, WindowPolicy(max_samples=3))
        >>> state, closed = state.close("manual")
        >>> closed.window_id, closed.count, state.window_id, state.count, state.watermark
        (0, 1, 1, 0, 5)
        """
        if reason not in _CLOSE_REASONS:
            raise InvalidConfig(f"close reason must be one of {_CLOSE_REASONS}, got {reason!r}")
        if self.count == 0 or self.start_ts is None or self.first_ts is None:
            raise InvalidConfig(f"window {self.window_id} is empty: nothing to close")
        assert self.last_ts is not None
        closed = ClosedWindow(
            self.window_id,
            reason,
            self.start_ts,
            self.first_ts,
            self.last_ts,
            self.count,
            self.late_count,
        )
        return WindowState(window_id=self.window_id + 1, watermark=self.watermark), closed

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for a faust table or the DB)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowState:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidConfig(f"unknown WindowState fields: {sorted(unknown)}")
        return cls(**data)
