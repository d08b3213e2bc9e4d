"""Several workers' processors on one store, without Kafka: each owns partitions of
``interactions`` (keyed by user), batches interleave at random, partitions move between them.

Checked against one processor reading every event in order (one partition): the same samples
(event ids, histories, labels), span windows with the same samples, one retrain request per
closed window, like counts as of the committing transaction, nothing lost or counted twice when
a partition moves, comes back, or a stale owner commits late. SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from partitioned_cases import (
    closed_windows,
    requests_in,
    samples_of,
    settings_for,
    single_run,
    span_of,
    windows_of,
)
from sqlalchemy import text

from lsat.core.settings import Settings
from lsat.data.loaders import load_dataset
from lsat.data.types import Interaction
from lsat.stream.processor import StreamProcessor
from lsat.stream.replay import interaction_message
from lsat.stream.store import SampleStore, SourcePosition
from lsat.stream.triggers import RetrainRequest

N_EVENTS = 2400
PARTITIONS = 3
Records = list[tuple[bytes, SourcePosition]]


def partition_of(user_id: str) -> int:
    return zlib.crc32(user_id.encode()) % PARTITIONS


def by_partition(events: Sequence[Interaction]) -> list[Records]:
    """Each partition's records in order, offsets counted per partition."""
    parts: list[Records] = [[] for _ in range(PARTITIONS)]
    for it in events:
        p = partition_of(it.user_id)
        parts[p].append((interaction_message(it), SourcePosition(p, len(parts[p]), "interactions")))
    return parts


@pytest.fixture(scope="module")
def events(ml100k_dir: Path) -> list[Interaction]:
    return load_dataset(ml100k_dir).interactions[:N_EVENTS]


class Cluster:
    """Processors sharing ``db_url`` and one fake clock; ``owner[p]`` handles partition ``p``."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.now = time.time()  # the parser refuses events from the future
        self.store = SampleStore(settings.db_url)
        self.procs = [
            StreamProcessor(settings, SampleStore(settings.db_url), clock=lambda: self.now)
            for _ in range(count)
        ]
        self.requests: list[RetrainRequest] = []

    def feed(self, proc: int, records: Records) -> None:
        self.requests += requests_in(self.procs[proc].on_interactions(records))

    def finish(self, timeout_s: float) -> None:
        """Every partition goes quiet: after the idle timeout a tick closes what it may."""
        self.now += timeout_s + 1
        self.requests += requests_in(self.procs[0].tick())

    def close(self) -> None:
        for proc in self.procs:
            proc.store.close()
        self.store.close()


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lsat.sqlite'}"


def interleave(parts: list[Records], rng: random.Random) -> list[tuple[int, Records]]:
    """Batches of 1–300 records, partitions chosen at random, each partition in order."""
    cursors = [0] * len(parts)
    out = []
    while any(c < len(p) for c, p in zip(cursors, parts, strict=True)):
        p = rng.choice([i for i, part in enumerate(parts) if cursors[i] < len(part)])
        n = rng.randint(1, 300)
        out.append((p, parts[p][cursors[p] : cursors[p] + n]))
        cursors[p] += n
    return out


def test_three_processors_store_what_one_stores(
    db_url: str, tmp_path: Path, events: list[Interaction]
) -> None:
    span = span_of(events, 10)
    stream = {"window_max_samples": 10**6, "window_max_span_s": span}
    reference = single_run(events, tmp_path / "single", **stream)
    cluster = Cluster(settings_for(db_url, tmp_path, PARTITIONS, **stream), 3)
    waited = 0
    for p, batch in interleave(by_partition(events), random.Random(1)):
        cluster.feed(p, batch)
        waited = max(waited, cluster.store.pending_samples())
    assert waited > 0  # some samples had to wait for a slower partition
    cluster.finish(30.0)
    store = cluster.store
    assert store.pending_samples() == 0
    assert store.count_interactions() == N_EVENTS
    assert samples_of(store) == samples_of(reference)
    assert windows_of(store) == windows_of(reference)
    assert closed_windows(store) == closed_windows(reference)
    requested = sorted((r.window_id, r.sample_count) for r in cluster.requests)
    assert requested == closed_windows(store), "one request per closed window"
    cluster.close()
    reference.close()


def test_count_windows_fill_in_commit_order(tmp_path: Path, events: list[Interaction]) -> None:
    db_url = sqlite_url(tmp_path)  # the store's part is the same on both: SQLite is enough
    cluster = Cluster(settings_for(db_url, tmp_path, PARTITIONS, window_max_samples=400), 2)
    for p, batch in interleave(by_partition(events), random.Random(2)):
        cluster.feed(p % 2, batch)  # processor 0 owns partitions 0 and 2
    store = cluster.store
    closed = closed_windows(store)
    samples = store.count_samples()
    assert [count for _, count in closed] == [400] * (samples // 400)
    assert sum(len(s) for s in windows_of(store).values()) == samples
    assert sorted((r.window_id, r.sample_count) for r in cluster.requests) == closed
    cluster.close()


def commit_order_counts(store: SampleStore) -> list[tuple[int, int, int, int]]:
    """Per sample: (its item count, interactions of that item committed before it, its global
    count, interactions committed before it)."""
    query = """
        SELECT s.item_count_before,
               (SELECT count(*) FROM stream_interactions j
                 WHERE j.item_id = i.item_id AND j.id < i.id),
               s.global_count_before,
               (SELECT count(*) FROM stream_interactions j WHERE j.id < i.id)
          FROM samples s JOIN stream_interactions i ON i.event_id = s.event_id
    """
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(query)).all()]  # type: ignore[misc]


def test_partitions_moving_between_workers_lose_and_double_nothing(
    db_url: str, tmp_path: Path, events: list[Interaction]
) -> None:
    """Partition 0 moves A → B (re-delivered from an earlier offset) → back to A, whose copy
    is stale by then; a stale owner also commits an old batch late. Samples, histories and
    windows still equal the single run, the like counts are as of each commit."""
    span = span_of(events, 8)
    stream = {"window_max_samples": 10**6, "window_max_span_s": span}
    reference = single_run(events, tmp_path / "single", **stream)
    cluster = Cluster(settings_for(db_url, tmp_path, PARTITIONS, **stream), 3)
    parts = by_partition(events)
    zero, third = parts[0], len(parts[0]) // 3
    moves = [  # (processor, first offset, end): A, then B from an earlier offset, A late, A
        (0, 0, third),
        (1, third - 50, 2 * third),
        (0, third, third + 40),  # a batch A had in flight, committed after B's
        (0, 2 * third - 20, len(zero)),
    ]
    rng = random.Random(3)
    plan = interleave([[], *parts[1:]], rng)
    spots = sorted(rng.sample(range(len(plan) + 1), len(moves)), reverse=True)
    for spot, (proc, start, end) in zip(spots, reversed(moves), strict=True):
        plan.insert(spot, (proc, zero[start:end]))
    for proc, batch in plan:
        cluster.feed(proc, batch)
    cluster.finish(30.0)
    store = cluster.store
    assert store.count_interactions() == N_EVENTS
    assert samples_of(store) == samples_of(reference)
    assert windows_of(store) == windows_of(reference)
    counts = commit_order_counts(store)
    assert counts and all(a == b and c == d for a, b, c, d in counts)
    cluster.close()
    reference.close()


def test_an_idle_partition_stops_holding_windows_after_the_timeout(
    tmp_path: Path, events: list[Interaction]
) -> None:
    db_url = sqlite_url(tmp_path)  # the store's part is the same on both: SQLite is enough
    span = span_of(events, 10)
    settings = settings_for(db_url, tmp_path, 2, window_max_samples=10**6, window_max_span_s=span)
    cluster = Cluster(settings, 2)
    parts = by_partition(events)
    cluster.feed(1, parts[1][:5])  # partition 1: a few events, then silence
    cluster.feed(0, parts[0])
    held = closed_windows(cluster.store)  # what closed before partition 1's watermark
    assert cluster.store.pending_samples() > 0
    assert cluster.procs[1].tick() == []  # not idle yet: nothing moves
    cluster.now += 31.0
    cluster.requests += requests_in(cluster.procs[1].tick())
    closed = closed_windows(cluster.store)
    assert len(closed) >= len(held) + 3 and cluster.store.pending_samples() == 0
    assert sorted((r.window_id, r.sample_count) for r in cluster.requests) == closed
    # partition 1 comes back with old events: stored, late, in the open window
    cluster.feed(1, parts[1][5:200])
    open_window = cluster.procs[1].state.window
    assert open_window.late_count > 0
    assert cluster.store.count_interactions() == len(parts[0]) + 200
    cluster.close()


def test_unconfirmed_requests_are_sent_again_by_any_worker(
    tmp_path: Path, events: list[Interaction]
) -> None:
    db_url = sqlite_url(tmp_path)  # the store's part is the same on both: SQLite is enough
    settings = settings_for(db_url, tmp_path, 1, window_max_samples=300)
    cluster = Cluster(settings, 2)
    records = [
        (interaction_message(it), SourcePosition(0, n, "interactions"))
        for n, it in enumerate(events[:1500])
    ]
    unsent = requests_in(cluster.procs[0].on_interactions(records), sent=False)  # it "died"
    assert unsent
    assert cluster.procs[1].tick() == []  # not overdue yet
    cluster.now += 31.0
    again = requests_in(cluster.procs[1].tick())
    assert sorted(r.window_id for r in again) == sorted(r.window_id for r in unsent)
    cluster.now += 31.0
    assert cluster.procs[1].tick() == [] and cluster.procs[0].pending_outgoing() == []
    cluster.close()
