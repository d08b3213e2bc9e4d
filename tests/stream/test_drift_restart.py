"""Crashes do not move window boundaries: the drift detectors are saved with the window state.

With the default detectors and a 900-sample window, the first 8,000 ml-100k events close one
window on drift (label shift, around event 7,700). A worker that restarted its detectors empty
after a crash would miss or move that close (checked against the pure pipeline below, so these
tests can fail). Here:

* the processor, "crashed" (dropped) mid-stream and rebuilt on the same store with re-delivery,
  stores the same windows as an uninterrupted one (SQLite and PostgreSQL: the detector state
  is strict JSON);
* the real worker process on a real tansu broker, killed with SIGKILL twice mid-stream and
  restarted, stores the same windows table as an uninterrupted worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from worker_cases import feed

from lsat.core.settings import KafkaSettings, Settings, StreamSettings
from lsat.data.loaders import load_dataset
from lsat.data.samples import HistoryTracker
from lsat.data.types import Dataset
from lsat.stream.broker import EmbeddedBroker, free_port
from lsat.stream.pipeline import PipelineState, process_interaction
from lsat.stream.processor import StreamProcessor, default_detectors, window_policy
from lsat.stream.replay import item_message, replay
from lsat.stream.store import SampleStore, SourcePosition

REPO_ROOT = Path(__file__).resolve().parents[2]
N_EVENTS = 8000
WINDOW = 900

WindowRow = tuple  # (id, status, trigger, count, start_ts, end_ts, drift statistics)


@pytest.fixture(scope="module")
def dataset(ml100k_dir: Path) -> Dataset:
    data = load_dataset(ml100k_dir)
    data.interactions = data.interactions[:N_EVENTS]
    return data


def settings_for(home: Path, db_url: str) -> Settings:
    return Settings(
        home=home, database_url=db_url, stream=StreamSettings(window_max_samples=WINDOW)
    )


def windows_table(store: SampleStore) -> list[WindowRow]:
    rows = [*store.last_closed_windows(1000), *store.open_windows()]
    return sorted(
        (w.id, w.status, w.trigger, w.count, w.start_ts, w.end_ts, w.drift_stats) for w in rows
    )


def pure_windows(settings: Settings, dataset: Dataset, cold_at: set[int] = frozenset()) -> list:
    """(window id, trigger, count) of the closes the pure pipeline makes; detectors replaced
    by empty ones before the events at ``cold_at`` (what a restart without saved state did)."""
    state, history = PipelineState(), HistoryTracker()
    detectors = default_detectors(settings)
    genres = {i: (it.extra.get("genres") or "").split("|", 1)[0] for i, it in dataset.items.items()}
    closes = []
    for k, event in enumerate(dataset.interactions):
        if k in cold_at:
            detectors = default_detectors(settings)
        state, result = process_interaction(
            state,
            event,
            policy=window_policy(settings),
            history=history,
            detectors=detectors,
            item_category=genres.get(event.item_id) or None,
            now_s=0.0,
        )
        closes += [(r.window_id, r.trigger, r.sample_count) for r in result.requests]
    return closes


def closes_of(table: list[WindowRow]) -> list[tuple[int, str, int]]:
    return [(w[0], w[2], w[3]) for w in table if w[1] != "open"]


def load_items(processor: StreamProcessor, dataset: Dataset) -> None:
    for n, item in enumerate(dataset.items.values()):
        processor.on_item(item_message(item), SourcePosition(0, n, "items"))


def test_processor_crash_and_redelivery_keep_the_windows(
    db_url: str, tmp_path: Path, dataset: Dataset
) -> None:
    settings = settings_for(tmp_path, db_url)
    reference = pure_windows(settings, dataset)
    assert "drift" in [trigger for _, trigger, _ in reference], "no drift close: nothing tested"
    assert pure_windows(settings, dataset, cold_at={3000}) != reference

    store = SampleStore(db_url)
    first = StreamProcessor(settings, store)
    load_items(first, dataset)
    feed(first, dataset.interactions[:3137], 0, batch=500)
    # crash: a new processor on the same store; events from 2900 on are delivered again
    second = StreamProcessor(settings, SampleStore(db_url))
    feed(second, dataset.interactions[2900:], 2900, batch=500)
    assert store.count_interactions() == N_EVENTS
    assert closes_of(windows_table(store)) == reference
    store.close()


# --- the real worker process, killed with SIGKILL ---------------------------------------------


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, worker=None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker is not None and worker.poll() is not None:
            raise AssertionError(f"worker exited with {worker.returncode} while waiting for {what}")
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        [sys.executable, "-m", "lsat.apps.cli", "worker"],
        env=env,
        cwd=env["LSAT_HOME"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def worker_run(home: Path, dataset: Dataset, kill_at: list[int]) -> tuple[list, list[int]]:
    """One private broker (1 partition: events in replay order), the catalogue stored first,
    then the interactions; SIGKILL once ``kill_at[i]`` events are stored, restart each time.
    Returns the windows table and how many events were stored at each kill."""
    home.mkdir()
    db_url = f"sqlite:///{home / 'lsat.sqlite'}"
    broker = EmbeddedBroker(KafkaSettings(partitions=1), port=free_port(), log_path=home / "t.log")
    killed_at = []
    with broker:
        kafka = broker.kafka_settings
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "LSAT_HOME": str(home),
            "LSAT_DATABASE_URL": db_url,
            "LSAT_KAFKA_BOOTSTRAP": kafka.bootstrap_servers,
            "LSAT_WORKER_WEB_PORT": str(free_port()),
            "LSAT_STREAM_METRICS_PORT": str(free_port()),
            "LSAT_WINDOW_MAX_SAMPLES": str(WINDOW),
            "LSAT_DRIFT_DETECTION": "1",
            "LSAT_KAFKA_SESSION_TIMEOUT_S": "2",
            "LSAT_KAFKA_HEARTBEAT_INTERVAL_S": "0.5",
            "LSAT_STREAM_APP_ID": f"lsat-drift-{uuid.uuid4().hex[:6]}",
        }
        store = SampleStore(db_url)
        worker = start_worker(env, home / "worker0.log")
        try:
            replay(dataset, kafka, limit=0, progress=False)  # the catalogue only
            n_items = len(dataset.items)
            wait_for(lambda: len(store.catalogue()) == n_items, 60, "the catalogue", worker)
            replay(dataset, kafka, publish_items=False, progress=False)
            for n, threshold in enumerate(kill_at, start=1):
                wait_for(lambda t=threshold: store.count_interactions() >= t, 90, "events", worker)
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait(10)
                killed_at.append(store.count_interactions())
                worker = start_worker(env, home / f"worker{n}.log")
            wait_for(lambda: store.count_interactions() >= N_EVENTS, 120, "all events", worker)
        finally:
            stop(worker)
        table = windows_table(store)
        store.close()
    return table, killed_at


@pytest.mark.kafka
@pytest.mark.slow
def test_killed_worker_stores_the_same_windows_as_a_clean_one(
    tmp_path: Path, dataset: Dataset
) -> None:
    settings = settings_for(tmp_path, "sqlite://")
    reference = pure_windows(settings, dataset)
    clean, _ = worker_run(tmp_path / "clean", dataset, kill_at=[])
    assert closes_of(clean) == reference
    killed, killed_at = worker_run(tmp_path / "killed", dataset, kill_at=[2500, 5000])
    assert all(0 < k < N_EVENTS for k in killed_at), f"kills not mid-stream: {killed_at}"
    # without saved detector state these kills would have moved the windows
    assert pure_windows(settings, dataset, cold_at=set(killed_at)) != reference
    assert killed == clean


def test_a_store_from_before_partitions_continues_its_windows(
    tmp_path: Path, dataset: Dataset
) -> None:
    """A single worker's store saved the window and the detectors in one state row (no
    partition rows): a worker of this version continues it where it stopped."""
    from sqlalchemy import text

    db_url = f"sqlite:///{tmp_path / 'legacy.sqlite'}"
    settings = settings_for(tmp_path, db_url)
    reference = pure_windows(settings, dataset)
    store = SampleStore(db_url)
    first = StreamProcessor(settings, store)
    load_items(first, dataset)
    feed(first, dataset.interactions[:3137], 0, batch=500)
    (row,) = store.partitions().values()
    saved = store.load_state("pipeline") or {}
    legacy = {"window": saved["window"], "pending_drift": saved["pending_drift"]}
    store.put_state("pipeline", {**legacy, "detectors": row.state["detectors"]})
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM stream_partitions"))
    second = StreamProcessor(settings, SampleStore(db_url))
    feed(second, dataset.interactions[3137:], 3137, batch=500)
    assert closes_of(windows_table(store)) == reference
    # without the saved detectors partition 0 would start cold and move a window
    assert pure_windows(settings, dataset, cold_at={3137}) != reference
    store.close()
