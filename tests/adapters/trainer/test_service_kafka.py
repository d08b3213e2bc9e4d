"""The trainer's consumer loop on a real tansu broker with child-process training.

A killed training child and a killed trainer process both leave the request uncommitted and no
visible partial version; the request is then completed exactly once. Two trainers in one
consumer group handle each request once and never clash on version numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from kafka import KafkaProducer
from trainer_helpers import fill_windows, trainer_settings

from lsat.adapters.lifecycle.publication import ServingSet
from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.trainer import RetrainOutcome, RetryPolicy, run_trainer
from lsat.adapters.trainer.child import ChildJob, ChildResult, run_job, train_in_child
from lsat.core.settings import KafkaSettings, Settings
from lsat.stream.kafka_client import kafka_python_kwargs
from lsat.stream.triggers import RetrainRequest

pytestmark = pytest.mark.kafka
HERE = Path(__file__).resolve().parent
FAST_RETRY = RetryPolicy(max_attempts=3, backoff_s=0.05)


def _settings(tmp_path: Path, kafka: KafkaSettings, **trainer: object) -> Settings:
    settings = trainer_settings(tmp_path, f"sqlite:///{tmp_path}/lsat.sqlite", **trainer)
    stream = replace(settings.stream, session_timeout_s=2.0, heartbeat_interval_s=0.5)
    return replace(settings, kafka=kafka, stream=stream)


def _send_requests(kafka: KafkaSettings, window_ids: list[int]) -> None:
    producer = KafkaProducer(**kafka_python_kwargs(kafka), acks="all")
    try:
        for w in window_ids:
            request = RetrainRequest(w, 0, 10, 30, "full", {}, 1.0)
            producer.send(kafka.topics.retrain, request.to_json(), key=str(w).encode()).get(30)
    finally:
        producer.close()


def _visible_folders(settings: Settings) -> list[str]:
    folder = settings.artifact_dir
    return (
        sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        if folder.exists()
        else []
    )


def _run(
    settings: Settings, jobs: int, train_fn: Callable[[ChildJob], ChildResult]
) -> list[RetrainOutcome]:
    outcomes: list[RetrainOutcome] = []
    run_trainer(
        settings, max_jobs=jobs, train_fn=train_fn, on_outcome=outcomes.append, retry=FAST_RETRY
    )
    return outcomes


def test_run_trainer_promotes_publishes_and_survives_a_killed_child(
    tmp_path: Path, fresh_kafka: KafkaSettings, consume: Callable
) -> None:
    settings = _settings(tmp_path, fresh_kafka)
    fill_windows(settings.db_url, {1: 30})
    _send_requests(fresh_kafka, [1])
    attempts: list[int] = []

    def kill_first_child(job: ChildJob) -> ChildResult:
        """First attempt: a real child, SIGKILLed; the retry trains in-process (faster)."""
        if attempts:
            attempts.append(0)
            return run_job(job)
        return train_in_child(job, on_start=lambda pid: (attempts.append(pid), os.kill(pid, 9)))

    outcomes = _run(settings, 1, kill_first_child)
    assert len(attempts) == 2  # the killed child's request was tried again
    assert [(o.window_id, o.outcome) for o in outcomes] == [(1, "promoted")]
    with open_registry(settings.db_url) as registry:
        assert [v.version for v in registry.list(kind="short")] == [1]
        assert registry.resolve("serving-short").version == 1
    assert len(_visible_folders(settings)) == 1
    records = consume(fresh_kafka, fresh_kafka.topics.versions, 1)
    assert ServingSet.from_json(records[0].value).keys == {"short": 1}


def test_killed_trainer_process_leaves_nothing_and_the_next_trainer_finishes(
    tmp_path: Path, fresh_kafka: KafkaSettings
) -> None:
    settings = _settings(tmp_path, fresh_kafka)
    fill_windows(settings.db_url, {1: 30})
    _send_requests(fresh_kafka, [1])
    spec = {
        "home": str(tmp_path),
        "db_url": settings.db_url,
        "bootstrap": fresh_kafka.bootstrap_servers,
        "retrain": fresh_kafka.topics.retrain,
        "versions": fresh_kafka.topics.versions,
        "group": settings.trainer.group_id,
        # long enough (tens of seconds on the tiny model) that the kill lands mid-training
        "epochs": 500,
    }
    process = subprocess.Popen(
        [sys.executable, str(HERE / "trainer_process.py"), json.dumps(spec)],
        stderr=subprocess.PIPE,
        text=True,
    )
    child_pid = None
    try:
        for line in process.stderr:  # type: ignore[union-attr]
            if "in child pid" in line:
                child_pid = int(line.rsplit(" ", 1)[1])
            if child_pid is not None and f"child pid {child_pid}: training" in line:
                break  # the child loaded the model and is training now
        assert child_pid is not None, "the trainer never started a training child"
        process.kill()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    deadline = time.monotonic() + 20
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(child_pid), "the orphaned training child kept running"
    with open_registry(settings.db_url) as registry:
        assert registry.list(kind="short") == []
    assert _visible_folders(settings) == []

    outcomes = _run(settings, 1, run_job)  # the next trainer (trains in-process: faster)
    assert [(o.window_id, o.outcome) for o in outcomes] == [(1, "promoted")]
    with open_registry(settings.db_url) as registry:
        assert [v.version for v in registry.list(kind="short")] == [1]
    assert len(_visible_folders(settings)) == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_two_trainers_in_one_group_handle_each_request_once(
    tmp_path: Path, fresh_kafka: KafkaSettings
) -> None:
    settings = _settings(tmp_path, fresh_kafka)
    windows = [1, 2, 3, 4]
    fill_windows(settings.db_url, dict.fromkeys(windows, 24))
    _send_requests(fresh_kafka, windows)
    outcomes: list[tuple[str, RetrainOutcome]] = []
    stop = threading.Event()

    def trainer(name: str) -> None:
        def record(outcome: RetrainOutcome) -> None:
            outcomes.append((name, outcome))
            if len(outcomes) >= len(windows):
                stop.set()

        run_trainer(settings, stop=stop, train_fn=run_job, on_outcome=record)

    threads = [threading.Thread(target=trainer, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    stop.set()
    assert sorted(o.window_id for _, o in outcomes) == windows
    assert all(o.outcome in ("promoted", "rejected") for _, o in outcomes)
    with open_registry(settings.db_url) as registry:
        shorts = registry.list(kind="short")
        assert sorted(v.version for v in shorts) == [1, 2, 3, 4]
        assert sorted(int(v.window_ids[0]) for v in shorts) == windows
