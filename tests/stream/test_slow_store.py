"""A slow store does not cost the worker its group membership (real worker, real tansu broker).

The test holds SQLite's write lock from another connection for three session timeouts while
events arrive: the worker's transaction waits on the busy timeout the whole time. Store work runs
in a worker thread, so the event loop (which sends the consumer's heartbeats) keeps running:
the loop probe (a 0.25 s sleep, ``lsat_stream_event_loop_lag_seconds``) wakes on time all
through the lock, the worker keeps its one partition assignment, and every event is stored once
the lock goes.

Why the probe and not only the assignment count: tansu 0.6.0 does not expire a lone member that
stops heartbeating (checked: a worker stopped with SIGSTOP for 8 s against a 2 s session timeout
keeps generation 0), so on tansu only the loop shows the stall; on Kafka the same stall would
cost the membership. With the DB call made on the event loop (checked by hand), the probe wakes
once, ~6 s late, during the lock, and this test fails.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import pytest
from poison_cases import valid_events
from worker_process import counter, private_broker, produce, running_worker, scrape, wait_for
from worker_process import worker_env as env_for

from lsat.stream.broker import free_port
from lsat.stream.store import SampleStore

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
SESSION_TIMEOUT_S = 2.0  # worker_env's LSAT_KAFKA_SESSION_TIMEOUT_S


def test_a_locked_store_does_not_cost_the_worker_its_group_membership(tmp_path: Path) -> None:
    events = valid_events(random.Random(5), 200)
    db_path = tmp_path / "lsat.sqlite"
    metrics_port = free_port()
    with private_broker(tmp_path) as kafka:
        produce(kafka, [("interactions", b"k", raw) for raw in events[:100]])
        env = env_for(tmp_path, kafka, f"sqlite:///{db_path}", metrics_port)
        store = SampleStore(f"sqlite:///{db_path}")
        with running_worker(env, tmp_path / "worker.log") as worker:
            wait_for(lambda: store.count_interactions() == 100, 60, "first 100 stored", worker)
            assigned = "lsat_stream_partition_assignments_total"
            assert counter(scrape(metrics_port), assigned) == 1
            lock = sqlite3.connect(db_path, isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")  # the write lock: the worker's writes now wait
            try:
                produce(kafka, [("interactions", b"k", raw) for raw in events[100:]])
                time.sleep(SESSION_TIMEOUT_S)  # the worker has the batch and waits on the lock
                before = scrape(metrics_port)
                time.sleep(2 * SESSION_TIMEOUT_S)
                during = scrape(metrics_port)
                assert store.count_interactions() == 100, "the store was not blocked"
                assert worker.poll() is None
            finally:
                lock.execute("COMMIT")
                lock.close()
            wait_for(lambda: store.count_interactions() == 200, 60, "the rest stored", worker)
            time.sleep(2 * SESSION_TIMEOUT_S)  # a lost member would rejoin within this
            values = scrape(metrics_port)
            assert worker.poll() is None
    probes = "lsat_stream_event_loop_lag_seconds_count"
    woke = counter(during, probes) - counter(before, probes)
    assert woke >= 4, f"the event loop ran {woke} probes in {2 * SESSION_TIMEOUT_S} s of lock"
    stalls = counter(values, probes) - counter(
        values, "lsat_stream_event_loop_lag_seconds_bucket", le="2.5"
    )
    assert stalls == 0, "the event loop stalled longer than the session timeout"
    assert counter(values, assigned) == 1
    stored = sum(counter(values, "lsat_stream_events_total", status=s) for s in ("ok", "late"))
    assert stored == 200
    assert counter(values, "lsat_stream_store_failures_total") == 0
    store.close()
