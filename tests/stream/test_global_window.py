"""The global window over partitions (pure): pending samples settle under the aligned watermark.

* one partition: settling places every sample exactly where :meth:`WindowState.add` does
  (random streams with out-of-order events, lateness, spans and counts);
* several partitions, each in event-time order, interleaved at random: span windows hold the
  same samples as one stream read in event-time order;
* count windows fill in commit order: every closed window holds ``max_samples``.
"""

from __future__ import annotations

import random

import pytest

from lsat.stream.alignment import PartitionClock, aligned_watermark
from lsat.stream.global_window import MemoryPool, PendingSample, settle
from lsat.stream.windows import WindowPolicy, WindowState

Event = tuple[str, int, bool]  # (event id, event time, makes a sample)


def single_stream(events: list[Event], policy: WindowPolicy) -> tuple[dict[str, int], list]:
    """Window of each sample and the closes, by WindowState.add / advance."""
    state, where, closes = WindowState(), {}, []
    for ref, ts, sample in events:
        if sample:
            state, step = state.add(ts, policy)
            where[ref] = step.window_id
        else:
            state, step = state.advance(ts, policy)
        closes += [(c.window_id, c.reason, c.count, c.start_ts) for c in step.closed]
    return where, closes


def settled_stream(events: list[Event], policy: WindowPolicy) -> tuple[dict[str, int], list]:
    """The same stream through settle, one partition (its watermark is the global one)."""
    state, where, closes = WindowState(), {}, []
    pool = MemoryPool()
    for ref, ts, sample in events:
        if sample:
            pool.add(PendingSample(ts, state.is_late(ts, policy), ref))
        settled = settle(state, ts, pool, policy)
        state = settled.window
        where.update({s.ref: w for s, w in settled.assigned})
        closes += [(c.window_id, c.reason, c.count, c.start_ts) for c in settled.closed]
        assert not pool.items, "one partition: a sample never waits"
    return where, closes


def random_stream(rng: random.Random, n: int, disorder: int) -> list[Event]:
    ts, events = 1000, []
    for k in range(n):
        ts += rng.choice([0, 0, 1, 2, 5, 30])
        jitter = rng.randint(0, disorder) if rng.random() < 0.2 else 0
        events.append((f"e{k}", ts - jitter, rng.random() < 0.8))
    return events


@pytest.mark.parametrize("seed", range(40))
def test_one_partition_settles_like_the_single_stream(seed: int) -> None:
    rng = random.Random(seed)
    policy = WindowPolicy(
        max_samples=rng.choice([1, 3, 10, 1000]),
        max_span_s=rng.choice([None, 5, 40, 200]),
        allowed_lateness_s=rng.choice([0, 3, 50]),
    )
    events = random_stream(rng, 300, disorder=rng.choice([0, 10, 100]))
    assert settled_stream(events, policy) == single_stream(events, policy)


def partitioned_run(
    partitions: list[list[Event]], policy: WindowPolicy, rng: random.Random
) -> tuple[dict[str, int], list]:
    """Interleave the partitions at random (each stays in order), settle after every event
    under the minimum of the partitions' watermarks; at the end every partition is idle."""
    clocks: dict[int, PartitionClock] = {}
    state, where, closes = WindowState(), {}, []
    pool = MemoryPool()
    cursors = [0] * len(partitions)
    now = 0.0

    def run(watermark: int | None) -> None:
        nonlocal state
        settled = settle(state, watermark, pool, policy)
        state = settled.window
        where.update({s.ref: w for s, w in settled.assigned})
        closes.extend((c.window_id, c.reason, c.count, c.start_ts) for c in settled.closed)

    while any(c < len(p) for c, p in zip(cursors, partitions, strict=True)):
        p = rng.choice([i for i, part in enumerate(partitions) if cursors[i] < len(part)])
        batch = partitions[p][cursors[p] : cursors[p] + rng.randint(1, 7)]
        cursors[p] += len(batch)
        for ref, ts, sample in batch:
            mark = max(ts, clocks[p].watermark or ts) if p in clocks else ts
            clocks[p] = PartitionClock(mark, now)
            if sample:
                pool.add(PendingSample(ts, False, ref))
            run(
                aligned_watermark(
                    clocks, now_s=now, idle_timeout_s=1e9, expected=range(3), since_s=0.0
                )
            )
    now += 10.0  # the stream has ended: every partition idle, the largest watermark rules
    run(aligned_watermark(clocks, now_s=now, idle_timeout_s=1.0, expected=range(3)))
    assert not pool.items
    return where, closes


@pytest.mark.parametrize("seed", range(25))
def test_span_windows_over_partitions_equal_one_ordered_stream(seed: int) -> None:
    rng = random.Random(seed)
    policy = WindowPolicy(max_samples=10**6, max_span_s=rng.choice([3, 20, 60]))
    events = random_stream(rng, 400, disorder=0)
    partitions: list[list[Event]] = [[], [], []]
    users = {}
    for event in events:  # "keyed by user": a random user per event, a user per partition
        user = rng.randrange(12)
        partitions[users.setdefault(user, user % 3)].append(event)
    where, closes = partitioned_run(partitions, policy, rng)
    expected_where, expected_closes = single_stream(events, policy)
    assert where == expected_where
    assert closes == expected_closes


@pytest.mark.parametrize("seed", range(10))
def test_count_windows_fill_in_commit_order(seed: int) -> None:
    rng = random.Random(seed)
    policy = WindowPolicy(max_samples=7)
    events = random_stream(rng, 300, disorder=0)
    partitions = [events[0::3], events[1::3], events[2::3]]
    where, closes = partitioned_run(partitions, policy, rng)
    samples = [ref for ref, _, sample in events if sample]
    assert sorted(where) == sorted(samples)
    assert [c[2] for c in closes] == [7] * (len(samples) // 7)
    assert all(c[1] == "full" for c in closes)


def test_a_sample_past_the_span_waits_for_the_slow_partition() -> None:
    policy = WindowPolicy(max_samples=100, max_span_s=10)
    clocks = {0: PartitionClock(100, 0.0), 1: PartitionClock(100, 0.0)}
    pool = MemoryPool([PendingSample(100, False, "a0")])
    state = settle(WindowState(), 100, pool, policy).window
    clocks[0] = PartitionClock(150, 0.0)  # partition 0 runs ahead
    pool.add(PendingSample(150, False, "a1"))
    watermark = aligned_watermark(clocks, now_s=0.0, idle_timeout_s=30.0)
    settled = settle(state, watermark, pool, policy)
    assert watermark == 100 and settled.assigned == () and [s.ref for s in pool.items] == ["a1"]
    clocks[1] = PartitionClock(105, 0.0)  # partition 1 still inside window 0
    pool.add(PendingSample(105, False, "b0"))
    watermark = aligned_watermark(clocks, now_s=0.0, idle_timeout_s=30.0)
    settled = settle(settled.window, watermark, pool, policy)
    assert [(s.ref, w) for s, w in settled.assigned] == [("b0", 0)]
    # partition 1 goes quiet: after the idle timeout partition 0 alone moves the watermark
    watermark = aligned_watermark(clocks, now_s=31.0, idle_timeout_s=30.0)
    settled = settle(settled.window, watermark, pool, policy)
    assert watermark == 150
    assert [(c.window_id, c.reason, c.count) for c in settled.closed] == [(0, "span", 2)]
    assert [(s.ref, w) for s, w in settled.assigned] == [("a1", 1)]


def test_a_partition_never_seen_holds_the_windows_until_the_idle_timeout() -> None:
    clocks = {0: PartitionClock(500, 100.0)}
    assert (
        aligned_watermark(clocks, now_s=100.0, idle_timeout_s=30.0, expected=[0, 1], since_s=90.0)
        is None
    )
    assert (
        aligned_watermark(clocks, now_s=121.0, idle_timeout_s=30.0, expected=[0, 1], since_s=90.0)
        == 500
    )
    # one partition: its watermark, idle or not
    assert aligned_watermark(clocks, now_s=1e6, idle_timeout_s=1.0, expected=[0]) == 500
