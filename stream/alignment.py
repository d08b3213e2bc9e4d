"""The global watermark over partitions: the minimum of the live partitions' watermarks.

Each partition's watermark is the largest event time its worker has committed (events of one
partition arrive in order: they are keyed by user id). A global event-time window may close only
once *every* partition is past its end — the minimum, as in Flink's watermark alignment.

A partition that has committed nothing for ``idle_timeout_s`` (wall clock) is **idle** and left
out, so an idle or stuck partition does not hold every window open forever; one never seen counts
as active since ``since_s`` (when the stream's state was created). A partition that comes back
after being left out is behind the global watermark: its samples are late (stored, counted in
the open window, flagged). When every partition is idle the global watermark is the largest
partition watermark (the stream has stopped: everything seen may close). With one partition the
global watermark is that partition's, idle or not.

>>> clocks = {0: PartitionClock(500, active_s=100.0), 1: PartitionClock(300, active_s=100.0)}
>>> aligned_watermark(clocks, now_s=110.0, idle_timeout_s=30.0)
300
>>> aligned_watermark(clocks, now_s=110.0, idle_timeout_s=30.0, expected=[0, 1, 2], since_s=90.0)
>>> aligned_watermark(clocks, now_s=125.0, idle_timeout_s=30.0, expected=[0, 1, 2], since_s=90.0)
300
>>> clocks[1] = PartitionClock(300, active_s=60.0)  # partition 1 went quiet
>>> aligned_watermark(clocks, now_s=110.0, idle_timeout_s=30.0)
500
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["PartitionClock", "aligned_watermark"]


@dataclass(frozen=True, slots=True)
class PartitionClock:
    """One partition's watermark (largest committed event time; ``None`` before any event) and
    when it last committed events (epoch seconds)."""

    watermark: int | None
    active_s: float


def aligned_watermark(
    clocks: Mapping[int, PartitionClock],
    *,
    now_s: float,
    idle_timeout_s: float,
    expected: Iterable[int] = (),
    since_s: float | None = None,
) -> int | None:
    """The global watermark (module doc) over ``clocks`` and the ``expected`` partitions (those
    without a clock have no watermark yet and count as active since ``since_s``, or as idle
    when it is ``None``). ``None``: some live partition has no watermark yet."""
    live: list[int] = []
    known: list[int] = []
    waiting = False
    partitions = set(clocks) | set(expected)
    for partition in partitions:
        clock = clocks.get(partition)
        active_s = clock.active_s if clock is not None else since_s
        watermark = clock.watermark if clock is not None else None
        if watermark is not None:
            known.append(watermark)
        is_live = len(partitions) == 1 or (
            active_s is not None and now_s - active_s <= idle_timeout_s
        )
        if not is_live:
            continue
        if watermark is None:
            waiting = True
        else:
            live.append(watermark)
    if waiting:
        return None
    if live:
        return min(live)
    return max(known, default=None)
