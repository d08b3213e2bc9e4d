"""The real worker process on a real tansu broker: kill -9 mid-stream, restart, exactly once.

One scenario per database (SQLite file and a fresh PostgreSQL DB): malformed events and 5,000
ml-100k interactions are on the topic; the worker is killed with SIGKILL mid-stream and
restarted; then the store must match the pure pipeline run over the same events, the DLQ must
hold every malformed message with its reason (at least once; a copy sent again is the same
record), and adapter.retrain a request per closed window.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from worker_cases import (
    N_EVENTS,
    WINDOW,
    malformed_messages,
    pure_reference,
    stored_samples,
    stream_settings,
)

from lsat.apps.cli import main as lsat_main
from lsat.core.settings import KafkaSettings
from lsat.data.loaders import load_dataset
from lsat.stream.broker import EmbeddedBroker, free_port
from lsat.stream.events import DeadLetter
from lsat.stream.replay import replay
from lsat.stream.store import SampleStore
from lsat.stream.triggers import RetrainRequest

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def one_partition_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A private broker (1 partition: the worker sees events in replay order)."""
    broker = EmbeddedBroker(
        KafkaSettings(partitions=1), port=free_port(), log_path=tmp_path / "t.log"
    )
    with broker:
        yield broker


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        [sys.executable, "-m", "lsat.apps.cli", "worker"],
        env=env,
        cwd=env["LSAT_HOME"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_for(predicate, timeout_s: float, what: str, worker=None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker is not None and worker.poll() is not None:
            raise AssertionError(f"worker exited with {worker.returncode} while waiting for {what}")
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def test_worker_kill9_restart_exactly_once(
    one_partition_broker: EmbeddedBroker,
    db_url: str,
    tmp_path: Path,
    ml100k_dir: Path,
    consume,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kafka = one_partition_broker.kafka_settings
    dataset = load_dataset(ml100k_dir)
    events = dataset.interactions[:N_EVENTS]
    settings = stream_settings(tmp_path, db_url)
    samples, requests, _ = pure_reference(settings, events)
    malformed = malformed_messages()

    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    for _, raw in malformed:
        producer.send(kafka.topics.interactions, key=b"bad", value=raw)
    producer.flush()
    producer.close()
    dataset.interactions = events
    replay(dataset, kafka, progress=False)

    metrics_port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "LSAT_HOME": str(tmp_path),
        "LSAT_DATABASE_URL": db_url,
        "LSAT_KAFKA_BOOTSTRAP": kafka.bootstrap_servers,
        "LSAT_WORKER_WEB_PORT": str(free_port()),
        "LSAT_STREAM_METRICS_PORT": str(metrics_port),
        "LSAT_WINDOW_MAX_SAMPLES": str(WINDOW),
        "LSAT_DRIFT_DETECTION": "0",
        "LSAT_KAFKA_SESSION_TIMEOUT_S": "2",
        "LSAT_KAFKA_HEARTBEAT_INTERVAL_S": "0.5",
        "LSAT_STREAM_APP_ID": f"lsat-test-{uuid.uuid4().hex[:6]}",
        "LSAT_ADMIN_TOKEN": "s3cret",
    }
    store = SampleStore(db_url)
    worker = start_worker(env, tmp_path / "worker1.log")
    try:
        wait_for(lambda: store.count_interactions() >= 1000, 90, "1000 stored events", worker)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        killed_at = store.count_interactions()
        assert killed_at < N_EVENTS, "worker finished before the kill: nothing was mid-stream"

        worker = start_worker(env, tmp_path / "worker2.log")
        wait_for(lambda: store.count_interactions() >= N_EVENTS, 120, "all events", worker)
        wait_for(lambda: not store.unpublished_closed_windows(), 30, "retrain requests sent")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
            exposition = response.read().decode()
        open_before = store.open_windows()
        retrain_now = ["retrain", "--now", "--web-port", env["LSAT_WORKER_WEB_PORT"]]
        monkeypatch.setenv("LSAT_ADMIN_TOKEN", "wrong")
        assert lsat_main(retrain_now) == 1
        monkeypatch.setenv("LSAT_ADMIN_TOKEN", "s3cret")
        assert lsat_main(retrain_now) == 0
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    assert store.count_interactions() == N_EVENTS
    assert sorted(store.sample_event_ids()) == sorted(samples)
    assert stored_samples(store) == samples
    closed = sorted(store.last_closed_windows(100), key=lambda w: w.id)
    assert len(open_before) == 1
    manual = (open_before[0].id, "manual", len(samples) - sum(r.sample_count for r in requests))
    assert [(w.id, w.trigger, w.count) for w in closed] == [
        *((r.window_id, r.trigger, r.sample_count) for r in requests),
        manual,
    ]
    assert 'lsat_stream_events_total{status="ok"}' in exposition

    sent = consume(kafka, kafka.topics.retrain, len(requests) + 1)
    assert {RetrainRequest.from_json(r.value).window_id for r in sent} == {
        *(r.window_id for r in requests),
        manual[0],
    }
    # Dead letters are sent at least once: a batch re-delivered after the kill (its offsets not
    # yet committed) sends its stored records again, same key and bytes (stream/dlq.py).
    letters = consume(kafka, kafka.topics.dlq, 2 * len(malformed), timeout_s=5)
    copies: dict[bytes, set[bytes]] = {}
    for record in letters:
        copies.setdefault(record.key, set()).add(record.value)
    assert all(len(values) == 1 for values in copies.values()), "a resent record differs"
    got = sorted(
        (d.offset, d.reason_code)
        for d in (DeadLetter.from_json(next(iter(values))) for values in copies.values())
    )
    assert got == [(offset, code) for offset, (code, _) in enumerate(malformed)]
    assert json.loads(letters[0].value)["topic"] == kafka.topics.interactions
    store.close()
