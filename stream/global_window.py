"""The one open window of the whole stream, fed by several partitions: pending samples settle.

With several partitions a sample cannot always be put in a window when it arrives: a sample
past the open window's span (``start_ts + max_span_s``) belongs to a later window whose start
is the earliest such sample of *every* partition, and a partition that is behind may still
deliver an earlier one. Such a sample is **pending** (stored, no window yet) until the global
watermark (the minimum of the partitions' watermarks, :mod:`lsat.stream.alignment`) shows that
nothing earlier can come. :func:`settle` then assigns pending samples in event-time order, the
way one worker reading all partitions in event-time order would:

* the open window takes every pending sample up to its span's end (or any, without a span), at
  most up to ``max_samples`` (it then closes as "full");
* then it closes as "span" if the watermark has passed its span's end;
* an empty window is anchored by the earliest pending sample once the watermark has reached it
  (a late one anchors at the watermark, as in :meth:`WindowState.include`).

Count windows (no span) never wait: samples go to the open window in the order they are
settled, which is commit order. With one partition the watermark is the partition's own and
every sample settles in its own step, exactly as :meth:`WindowState.add` would place it.

>>> policy = WindowPolicy(max_samples=100, max_span_s=10)
>>> pool = MemoryPool([PendingSample(100, False, "a"), PendingSample(115, False, "b")])
>>> settled = settle(WindowState(), 105, pool, policy)  # "b" may still have company before it
>>> [(s.ref, w) for s, w in settled.assigned], [s.ref for s in pool.items]
([('a', 0)], ['b'])
>>> settled = settle(settled.window, 115, pool, policy)
>>> [(c.window_id, c.reason, c.count) for c in settled.closed], settled.assigned[0][1]
([(0, 'span', 1)], 1)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Protocol

from lsat.stream.windows import ClosedWindow, WindowPolicy, WindowState

__all__ = ["MemoryPool", "PendingPool", "PendingSample", "Settled", "settle"]


@dataclass(frozen=True, slots=True)
class PendingSample:
    """A stored sample without a window yet: its event time, late flag and a reference
    (the event id)."""

    ts: int
    late: bool
    ref: Hashable


class PendingPool(Protocol):
    """Where pending samples wait (in memory, or in the store's ``pending_samples`` table)."""

    def add(self, sample: PendingSample) -> None:
        """Make a new sample pending."""
        ...

    def earliest(self) -> int | None:
        """The smallest pending event time (``None`` when nothing is pending)."""
        ...

    def take(self, until_ts: int | None, limit: int) -> list[PendingSample]:
        """Remove and return up to ``limit`` pending samples with ``ts <= until_ts`` (any when
        ``None``), earliest first."""
        ...


class MemoryPool:
    """A :class:`PendingPool` in a list (ties keep their arrival order)."""

    def __init__(self, items: Iterable[PendingSample] = ()) -> None:
        self.items: list[PendingSample] = list(items)

    def add(self, sample: PendingSample) -> None:
        """Make ``sample`` pending."""
        self.items.append(sample)

    def earliest(self) -> int | None:
        return min((s.ts for s in self.items), default=None)

    def take(self, until_ts: int | None, limit: int) -> list[PendingSample]:
        due = [s for s in self.items if until_ts is None or s.ts <= until_ts]
        due.sort(key=lambda s: s.ts)  # stable: arrival order among equal times
        taken = due[:limit]
        if taken:
            chosen = {id(s) for s in taken}
            self.items = [s for s in self.items if id(s) not in chosen]
        return taken


@dataclass(frozen=True, slots=True)
class Settled:
    """What :func:`settle` did: the new open window, the windows it closed (in order) and the
    pending samples it assigned, each with its window id."""

    window: WindowState
    closed: tuple[ClosedWindow, ...] = ()
    assigned: tuple[tuple[PendingSample, int], ...] = ()


def settle(
    window: WindowState, watermark: int | None, pool: PendingPool, policy: WindowPolicy
) -> Settled:
    """Move the global watermark up to ``watermark`` and assign what ``pool`` allows (module
    doc); closes by span and by count on the way."""
    state = window.with_watermark(watermark)
    span = policy.max_span_s
    closed: list[ClosedWindow] = []
    assigned: list[tuple[PendingSample, int]] = []
    while True:
        if state.start_ts is None:  # empty: the earliest pending sample anchors it when due
            first = pool.earliest()
            if first is None:
                break
            if span is not None and (state.watermark is None or first > state.watermark):
                break
            taken = pool.take(first, 1)
        else:  # what is due in the open window first, then maybe close it by span
            until = None if span is None else state.start_ts + span
            taken = pool.take(until, policy.max_samples - state.count)
            if not taken:
                if not state.span_passed(policy):
                    break
                state, done = state.close("span")
                closed.append(done)
                continue
        if not taken:
            break
        for sample in taken:
            state = state.include(sample.ts, sample.late)
            assigned.append((sample, state.window_id))
        if state.count >= policy.max_samples:
            state, done = state.close("full")
            closed.append(done)
    return Settled(state, tuple(closed), tuple(assigned))
