"""The per-event step the faust worker calls: interaction in, effects (as data) out.

:func:`process_interaction` does no I/O. Given the per-user :class:`HistoryTracker`, the window
state and the detectors, it returns a :class:`StepResult`: the sample to store (none while the
user has fewer than ``HISTORY_LENGTH`` earlier interactions, or for a re-delivered event), its
window id and late flag, windows that closed with their :class:`RetrainRequest`, and the drift
detectors' statistics. The processor stores the sample, publishes the requests, exports metrics.
Given like counts (:class:`~lsat.data.collaborative.CollaborativeCounts`), the sample carries
them as of just before its event.

Order within one step: the detectors see the sample first; then the window takes it (which may
close the previous window by span, or this one as full); drift that fired for a window that
closed in this step rides on its request, the rest stays pending until the open window holds
``policy.drift_close_min`` samples (see :mod:`lsat.stream.triggers`).

Saving: ``state.to_dict(detectors)`` holds the window, the pending drift and every detector's
state; ``PipelineState.from_dict(saved, detectors)`` restores all three, so a worker that
crashed and restarted closes its windows where one that never stopped does.

>>> from lsat.data.samples import HistoryTracker
>>> from lsat.data.types import Interaction
>>> policy = WindowPolicy(max_samples=2)
>>> history, state = HistoryTracker(length=1), PipelineState()
>>> for t, item in enumerate(["a", "b", "c"]):
...     event = Interaction("u", item, 1000 + t, 1)
...     state, res = process_interaction(state, event, policy=policy, history=history, now_s=0)
...     print(item, res.sample is not None, res.window_id, [r.trigger for r in res.requests])
a False 0 []
b True 0 []
c True 0 ['full']
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lsat.data.collaborative import CollaborativeCounts
from lsat.data.samples import HistoryTracker
from lsat.data.types import Interaction, Sample
from lsat.stream.drift.base import DriftDetector
from lsat.stream.errors import InvalidConfig
from lsat.stream.global_window import MemoryPool, PendingPool, PendingSample, settle
from lsat.stream.triggers import RetrainRequest, drift_close_due
from lsat.stream.windows import ClosedWindow, WindowPolicy, WindowState

__all__ = [
    "Detectors",
    "PipelineState",
    "Placed",
    "StepResult",
    "close_manually",
    "observe",
    "place",
    "process_interaction",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Detectors:
    """Detectors fed by the step: ``labels`` get each sample's 0/1 label, ``mix`` get the
    sample item's category (when the caller knows it)."""

    labels: list[DriftDetector] = field(default_factory=list)
    mix: list[DriftDetector] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = [d.name for d in self.all()]
        if len(set(names)) != len(names):
            raise InvalidConfig(f"drift detector names must be unique, got {names}")

    def all(self) -> list[DriftDetector]:
        """Every detector, in labels, mix order."""
        return [*self.labels, *self.mix]

    def by_name(self, name: str) -> DriftDetector:
        """The detector called ``name`` (its ``name`` attribute)."""
        for detector in self.all():
            if detector.name == name:
                return detector
        names = [d.name for d in self.all()]
        raise InvalidConfig(f"no drift detector named {name!r}; have {names}")

    def to_state(self) -> dict[str, dict[str, Any]]:
        """Every detector's :meth:`~lsat.stream.drift.DriftDetector.to_state`, by name."""
        return {d.name: d.to_state() for d in self.all()}

    def load_state(self, states: Mapping[str, Any]) -> list[str]:
        """Restore each detector in place from ``states`` (as :meth:`to_state` gave them).

        A detector with no saved state, or one saved with other arguments (the configuration
        changed), starts empty; their names are returned and logged. A malformed state raises
        :class:`InvalidConfig`.
        """
        cold = []
        for detector in self.all():
            saved = states.get(detector.name)
            if saved is not None and not isinstance(saved, Mapping):
                raise InvalidConfig(
                    f"saved state of {detector.name!r} is not an object: {saved!r:.80}"
                )
            kind, params = type(detector).__name__, detector.params()
            if saved and saved.get("detector") == kind and saved.get("params") == params:
                detector.load_state(saved)
            else:
                detector.reset()
                cold.append(detector.name)
        if cold and states:
            log.warning("drift detectors %s start empty: no saved state with their settings", cold)
        return cold


@dataclass(frozen=True, slots=True)
class PipelineState:
    """The stream's own state besides user histories: the open window and pending drift.

    The detectors (mutable, updated in place by each step) are saved alongside it: pass them
    to :meth:`to_dict` and :meth:`from_dict`.
    """

    window: WindowState = field(default_factory=WindowState)
    pending_drift: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self, detectors: Detectors | None = None) -> dict[str, Any]:
        """JSON-able form for the DB, with the detectors' states when given."""
        data: dict[str, Any] = {
            "window": self.window.to_dict(),
            "pending_drift": dict(self.pending_drift),
        }
        if detectors is not None:
            data["detectors"] = detectors.to_state()
        return data

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], detectors: Detectors | None = None
    ) -> PipelineState:
        """Inverse of :meth:`to_dict`; ``detectors`` are restored in place from the saved
        states (see :meth:`Detectors.load_state`; a save without them leaves them empty)."""
        pending = {str(k): float(v) for k, v in data.get("pending_drift", {}).items()}
        if detectors is not None:
            detectors.load_state(data.get("detectors") or {})
        return cls(WindowState.from_dict(dict(data["window"])), pending)


@dataclass(frozen=True, slots=True)
class StepResult:
    """The effects of one step, for the processor to apply."""

    sample: Sample | None
    window_id: int | None
    late: bool = False
    duplicate: bool = False
    closed: tuple[ClosedWindow, ...] = ()
    requests: tuple[RetrainRequest, ...] = ()
    drift: dict[str, dict[str, float | bool]] = field(default_factory=dict)


def _close_all(
    state: PipelineState,
    closed: tuple[ClosedWindow, ...],
    fired: dict[str, float],
    sample_window: int | None,
    policy: WindowPolicy,
    now_s: float,
) -> tuple[PipelineState, tuple[ClosedWindow, ...], tuple[RetrainRequest, ...]]:
    """Turn closures into requests, attach drift, then close early on due drift."""
    pending = dict(state.pending_drift)
    requests = []
    for window in closed:
        drift = pending
        if window.window_id == sample_window:  # the window holding the new sample closed
            drift, fired = {**pending, **fired}, {}
        pending = {}
        requests.append(RetrainRequest.from_closed(window, drift=drift, created_s=now_s))
    pending.update(fired)
    window_state = state.window
    if drift_close_due(window_state, policy, pending):
        window_state, window = window_state.close("drift")
        closed = (*closed, window)
        requests.append(RetrainRequest.from_closed(window, drift=pending, created_s=now_s))
        pending = {}
    return PipelineState(window_state, pending), closed, tuple(requests)


def process_interaction(
    state: PipelineState,
    interaction: Interaction,
    *,
    policy: WindowPolicy,
    history: HistoryTracker,
    detectors: Detectors | None = None,
    item_category: Hashable | None = None,
    now_s: float | None = None,
    counts: CollaborativeCounts | None = None,
) -> tuple[PipelineState, StepResult]:
    """One validated interaction through history, like counts, window, drift and triggers.

    ``history``, ``counts`` and the detectors are updated in place; the window state is
    returned anew. With ``counts``, every new interaction is counted and its sample carries
    the counts as they were just before it (``Sample.collaborative``). A re-delivered event
    (same key among the user's remembered events) changes nothing.

    This is the stream of one partition; the worker runs the same two halves
    (:func:`observe` per partition, :func:`place` on the global window) over several.
    """
    if history.is_duplicate(interaction):
        return state, StepResult(None, None, duplicate=True)
    now_s = time.time() if now_s is None else now_s
    sample, fired, drift = observe(interaction, history, detectors, item_category, counts)
    late = state.window.is_late(interaction.timestamp, policy)
    pool = MemoryPool()
    if sample is not None:
        pool.add(PendingSample(interaction.timestamp, late, interaction.key()))
    placed = place(state, interaction.timestamp, pool, fired, policy, now_s, interaction.key())
    window_id = placed.window_of(interaction.key()) if sample is not None else placed.open_id
    result = StepResult(sample, window_id, late, False, placed.closed, placed.requests, drift)
    return placed.state, result


def observe(
    interaction: Interaction,
    history: HistoryTracker,
    detectors: Detectors | None = None,
    item_category: Hashable | None = None,
    counts: CollaborativeCounts | None = None,
) -> tuple[Sample | None, dict[str, float], dict[str, dict[str, float | bool]]]:
    """The partition-local half of a step: the sample (history and like counts as of just
    before the event), the drift statistics that fired and every detector's snapshot."""
    features = None
    if counts is not None:
        features = counts.observe(interaction.user_id, interaction.item_id, interaction.label)
    sample = history.observe(interaction, features)
    fired: dict[str, float] = {}
    drift: dict[str, dict[str, float | bool]] = {}
    if sample is not None and detectors is not None:
        feeds: list[tuple[DriftDetector, Any]] = [(d, sample.label) for d in detectors.labels]
        if item_category is not None:
            feeds += [(d, item_category) for d in detectors.mix]
        for detector, x in feeds:
            detector.update(x)
            drift[detector.name] = detector.snapshot()
            if detector.drift_detected:
                fired[detector.name] = float(detector.statistic)
    return sample, fired, drift


@dataclass(frozen=True, slots=True)
class Placed:
    """What :func:`place` did to the global window: the new state, the pending samples it
    assigned (with their window), the windows that closed and their requests."""

    state: PipelineState
    assigned: tuple[tuple[PendingSample, int], ...]
    closed: tuple[ClosedWindow, ...]
    requests: tuple[RetrainRequest, ...]
    open_id: int
    """The open window's id before a drift close (where a non-sample event went)."""

    def window_of(self, ref: Hashable) -> int | None:
        """The window the pending sample ``ref`` was assigned to (``None``: still pending)."""
        for sample, window_id in self.assigned:
            if sample.ref == ref:
                return window_id
        return None


def place(
    state: PipelineState,
    watermark: int | None,
    pool: PendingPool,
    fired: Mapping[str, float],
    policy: WindowPolicy,
    now_s: float,
    sample_ref: Hashable | None = None,
) -> Placed:
    """The global half of a step: settle ``pool`` under ``watermark``
    (:func:`~lsat.stream.global_window.settle`), then attach drift to the closed windows and
    close early on due drift (``fired``: what this step's sample set off; its window, when it
    closed here, carries it). ``sample_ref``: the reference of this step's new sample, if any."""
    settled = settle(state.window, watermark, pool, policy)
    if not settled.closed and not fired and not state.pending_drift:  # most events: no closure
        open_id = settled.window.window_id
        return Placed(PipelineState(settled.window, {}), settled.assigned, (), (), open_id)
    sample_window = None
    for sample, window_id in settled.assigned:
        if sample_ref is not None and sample.ref == sample_ref:
            sample_window = window_id
            break
    new_state, closed, requests = _close_all(
        PipelineState(settled.window, state.pending_drift),
        settled.closed,
        dict(fired),
        sample_window,
        policy,
        now_s,
    )
    return Placed(new_state, settled.assigned, closed, requests, settled.window.window_id)


def close_manually(
    state: PipelineState, *, now_s: float | None = None
) -> tuple[PipelineState, StepResult]:
    """Close the open window on request (a no-op result when it is empty)."""
    if state.window.count == 0:
        return state, StepResult(None, state.window.window_id)
    window_state, window = state.window.close("manual")
    now_s = time.time() if now_s is None else now_s
    request = RetrainRequest.from_closed(window, drift=state.pending_drift, created_s=now_s)
    result = StepResult(None, window.window_id, closed=(window,), requests=(request,))
    return PipelineState(window_state, {}), result
