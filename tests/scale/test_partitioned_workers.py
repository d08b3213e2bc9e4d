"""Three real ``lsat worker`` processes in one consumer group over 3 partitions (tansu) on one
PostgreSQL store, against one worker's run of the same ML-100K events:

* the stored samples are the same (event ids, histories, labels), every span window holds the
  same samples, and there is one retrain request per closed window;
* the same while one of the three is killed with SIGKILL twice, at random points, and
  restarted: nothing lost, nothing stored or counted twice, one request per window.

Events are produced in chunks, at most a few hundred ahead of the store, so a kill always lands
while events are in flight. The always-run test is the killed one on 2,500 events (it checks all
of the above); the 20,000-event runs, without and with kills, are marked ``slow``.
Every partition ends with an event far past the last window (``with_sentinels``), so the last
window closes without waiting for the idle timeout, which is set high: no partition is left out
while the workers rebalance, so the windows must equal the one worker's exactly.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from partitioned_cluster import Workers, broker, producer, stream_cases, wait_for, with_sentinels
from sqlalchemy import text

from lsat.data.loaders import load_dataset
from lsat.data.types import Interaction
from lsat.stream.store import SampleStore
from lsat.stream.triggers import RetrainRequest

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
cases = stream_cases()
CHUNK, AHEAD = 250, 500
"""Events produced at a time, and how far production may run ahead of the store."""


@pytest.fixture(scope="module")
def interactions(ml100k_dir: Path) -> list[Interaction]:
    return load_dataset(ml100k_dir).interactions


def consistent_counts(store: SampleStore) -> None:
    """Nothing counted twice: like-count totals, window counts and samples agree."""
    with store.engine.connect() as conn:
        interactions = conn.execute(text("SELECT count(*) FROM stream_interactions")).scalar()
        totals = conn.execute(text("SELECT count FROM like_count_totals")).scalar()
        by_window = dict(
            conn.execute(text("SELECT window_id, count(*) FROM samples GROUP BY window_id")).all()
        )
        rows = dict(conn.execute(text("SELECT id, count FROM windows")).all())
    assert totals == interactions
    assert None not in by_window, "a sample still waits for its window"
    assert {w: n for w, n in rows.items() if n} == by_window


def run(
    tmp_path: Path,
    postgres_url: str,
    consume: object,
    events: list[Interaction],
    kill_at: list[float],
) -> None:
    span = cases.span_of(events, 12)
    stream = {"window_max_samples": 10**6, "window_max_span_s": span}
    sent = with_sentinels(events, span)
    reference = cases.single_run([it for it, _ in sent], tmp_path / "single", **stream)
    expected = cases.closed_windows(reference)
    total = len(sent)
    kills = [int(f * total) for f in kill_at]
    store = SampleStore(postgres_url)
    with broker(tmp_path) as kafka, producer(kafka) as send:
        workers = Workers(
            tmp_path / "cluster",
            kafka,
            postgres_url,
            LSAT_WINDOW_MAX_SAMPLES=str(10**6),
            LSAT_WINDOW_MAX_SPAN_S=str(span),
            LSAT_PARTITION_IDLE_TIMEOUT_S="600",
        )
        try:
            for _ in range(3):
                workers.start()
            for slot in range(3):
                wait_for(lambda s=slot: workers.assigned(s), 120, "partitions", workers)
            # produce in chunks, at most AHEAD events ahead of the store; a kill lands once its
            # point is reached, while later events are still to be produced
            produced = 0
            while produced < total:
                chunk = sent[produced : produced + CHUNK]
                send(chunk)
                produced += len(chunk)
                if kills and kills[0] <= produced - 100:
                    at = kills.pop(0)
                    wait_for(lambda n=at: store.count_interactions() >= n, 300, "events", workers)
                    workers.kill(0)
                    assert produced < total
                    workers.start(0)
                    wait_for(lambda: workers.assigned(0), 120, "the new worker's partitions")
                else:
                    low = produced - AHEAD
                    wait_for(lambda n=low: store.count_interactions() >= n, 300, "events", workers)
            assert not kills, f"kills left at {kills}: the stream ended first"
            wait_for(lambda: store.count_interactions() >= total, 600, "every event", workers)
            wait_for(lambda: len(store.last_closed_windows(10_000)) >= len(expected), 120, "closes")
            wait_for(lambda: not store.unpublished_closed_windows(), 60, "requests sent", workers)
        finally:
            workers.stop()
        requests = consume(kafka, kafka.topics.retrain, len(expected) + 1, timeout_s=1.5)  # type: ignore[operator]
    assert store.count_interactions() == total
    consistent_counts(store)
    assert cases.samples_of(store) == cases.samples_of(reference)
    assert cases.windows_of(store) == cases.windows_of(reference)
    assert cases.closed_windows(store) == expected
    per_window = Counter(RetrainRequest.from_json(r.value).window_id for r in requests)
    assert sorted(per_window) == [w for w, _ in expected]
    assert set(per_window.values()) == {1}, f"requests sent more than once: {per_window}"
    store.close()
    reference.close()


@pytest.mark.slow
def test_three_workers_store_what_one_worker_stores(
    tmp_path: Path, postgres_url: str, consume: object, interactions: list
) -> None:
    run(tmp_path, postgres_url, consume, interactions[:20_000], kill_at=[])


@pytest.mark.parametrize(
    "n_events",
    [pytest.param(2500, id="2.5k"), pytest.param(20_000, id="20k", marks=pytest.mark.slow)],
)
def test_a_worker_killed_twice_loses_and_doubles_nothing(
    tmp_path: Path, postgres_url: str, consume: object, interactions: list, n_events: int
) -> None:
    rng = random.Random(n_events)
    kill_at = [rng.uniform(0.15, 0.4), rng.uniform(0.5, 0.8)]
    run(tmp_path, postgres_url, consume, interactions[:n_events], kill_at=kill_at)
