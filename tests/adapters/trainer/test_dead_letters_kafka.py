"""Bounded retries and dead letters of the trainer's consumer, on a real tansu broker.

Every consumed record of ``adapter.retrain`` ends as a job outcome or a dead letter on
``adapter.retrain.dlq`` (with its reason) before its offset is committed; one bad record or
one failing window never blocks the ones after it.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from trainer_helpers import fill_windows, trainer_settings

from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.trainer import RetrainOutcome, RetryPolicy, TrainerMetrics, run_trainer
from lsat.adapters.trainer.child import ChildJob, ChildResult, run_job
from lsat.adapters.trainer.errors import TrainerChildFailed
from lsat.core.settings import KafkaSettings, Settings
from lsat.stream.dead_letter import DeadLetter
from lsat.stream.kafka_client import kafka_python_kwargs
from lsat.stream.topics import retrain_dlq_topic
from lsat.stream.triggers import RetrainRequest

pytestmark = pytest.mark.kafka
FAST_RETRY = RetryPolicy(max_attempts=3, backoff_s=0.01)


def _settings(tmp_path: Path, kafka: KafkaSettings) -> Settings:
    settings = trainer_settings(tmp_path, f"sqlite:///{tmp_path}/lsat.sqlite")
    stream = replace(settings.stream, session_timeout_s=2.0, heartbeat_interval_s=0.5)
    return replace(settings, kafka=kafka, stream=stream)


def _request(window_id: int) -> bytes:
    return RetrainRequest(window_id, 0, 10, 30, "full", {}, 1.0).to_json()


def _send(kafka: KafkaSettings, values: list[bytes | None]) -> None:
    producer = KafkaProducer(
        **kafka_python_kwargs(kafka), acks="all", max_request_size=4 * 1024 * 1024
    )
    try:
        for n, value in enumerate(values):
            producer.send(kafka.topics.retrain, value, key=f"k{n}".encode()).get(30)
    finally:
        producer.close()


def _run_trainer(settings: Settings, **kwargs: Any) -> int:
    """:func:`run_trainer`, stopped after 180 s at the latest (a trainer stuck retrying one
    window forever then fails the test's assertions instead of hanging it)."""
    stop = threading.Event()
    guard = threading.Timer(180, stop.set)
    guard.start()
    try:
        return run_trainer(settings, stop=stop, **kwargs)
    finally:
        guard.cancel()


def _window(job: ChildJob) -> int:
    return int(job.metadata["window"])


def _dead_letters(kafka: KafkaSettings, consume: Callable, expected: int) -> list[DeadLetter]:
    """The dead letters on ``adapter.retrain.dlq``, each keyed like the record it stands for."""
    records = consume(kafka, retrain_dlq_topic(kafka.topics), expected)
    assert len(records) == expected
    letters = [DeadLetter.from_json(r.value) for r in records]
    for record, letter in zip(records, letters, strict=True):
        assert len(record.value) < 100_000  # always far below the broker's message limit
        assert record.key == f"k{letter.offset}".encode()
    return letters


def _committed(settings: Settings) -> int | None:
    consumer = KafkaConsumer(
        **kafka_python_kwargs(settings.kafka), group_id=settings.trainer.group_id
    )
    try:
        return consumer.committed(TopicPartition(settings.kafka.topics.retrain, 0))
    finally:
        consumer.close()


def _counter(metrics: TrainerMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "lsat_retrain_dead_lettered_total", {"reason": reason}
    )
    assert value is not None
    return value


def test_a_window_whose_training_always_fails_is_dead_lettered_and_the_next_is_trained(
    tmp_path: Path, fresh_kafka: KafkaSettings, consume: Callable
) -> None:
    settings = _settings(tmp_path, fresh_kafka)
    fill_windows(settings.db_url, {1: 24, 2: 24})
    _send(fresh_kafka, [_request(1), _request(2)])
    attempts: list[int] = []

    def window_1_always_fails(job: ChildJob) -> ChildResult:
        """Window 1's training child always fails (as ``train_in_child`` reports it)."""
        attempts.append(_window(job))
        if _window(job) == 1:
            raise TrainerChildFailed("training child pid 4242 failed: MemoryError")
        return run_job(job)

    metrics = TrainerMetrics()
    outcomes: list[RetrainOutcome] = []
    finished = _run_trainer(
        settings,
        max_jobs=1,
        metrics=metrics,
        train_fn=window_1_always_fails,
        on_outcome=outcomes.append,
        retry=FAST_RETRY,
    )
    assert finished == 1 and attempts == [1, 1, 1, 2]
    assert [(o.window_id, o.outcome) for o in outcomes] == [(2, "promoted")]
    [letter] = _dead_letters(fresh_kafka, consume, 1)
    where = (letter.topic, letter.partition, letter.offset)
    assert letter.reason_code == "training_failed" and where == (fresh_kafka.topics.retrain, 0, 0)
    assert "gave up after 3 attempts" in letter.detail and "MemoryError" in letter.detail
    assert RetrainRequest.from_json(letter.payload).window_id == 1
    assert _counter(metrics, "training_failed") == 1.0
    failed = metrics.registry.get_sample_value(
        "lsat_retrain_total", {"trigger": "full", "outcome": "failed"}
    )
    assert failed == 3.0
    assert _committed(settings) == 2  # both records are done: nothing is re-delivered
    with open_registry(settings.db_url) as registry:
        assert [int(v.window_ids[0]) for v in registry.list(kind="short")] == [2]


def test_an_unexpected_exception_does_not_stop_the_trainer(
    tmp_path: Path, fresh_kafka: KafkaSettings, consume: Callable
) -> None:
    settings = _settings(tmp_path, fresh_kafka)
    fill_windows(settings.db_url, {1: 24, 2: 24})
    _send(fresh_kafka, [_request(1), _request(2)])
    attempts: list[int] = []

    def window_1_folder_vanishes(job: ChildJob) -> ChildResult:
        """Window 1 trains for real, but its folder is gone before the trainer reads it."""
        attempts.append(_window(job))
        result = run_job(job)
        if _window(job) == 1:
            shutil.rmtree(result.path)
        return result

    metrics = TrainerMetrics()
    outcomes: list[RetrainOutcome] = []
    _run_trainer(
        settings,
        max_jobs=1,
        metrics=metrics,
        train_fn=window_1_folder_vanishes,
        on_outcome=outcomes.append,
        retry=replace(FAST_RETRY, max_attempts=2),
    )
    assert attempts == [1, 1, 2]
    assert [(o.window_id, o.outcome) for o in outcomes] == [(2, "promoted")]
    [letter] = _dead_letters(fresh_kafka, consume, 1)
    assert letter.reason_code == "internal_error:AdapterArtifactError" and letter.offset == 0
    assert "gave up after 2 attempts: AdapterArtifactError" in letter.detail
    assert _counter(metrics, "internal_error") == 1.0
    assert _committed(settings) == 2


def test_bad_records_are_dead_lettered_with_reasons_and_valid_ones_proceed(
    tmp_path: Path, fresh_kafka: KafkaSettings, consume: Callable
) -> None:
    settings = _settings(tmp_path, fresh_kafka)
    fill_windows(settings.db_url, {1: 24, 2: 24})
    huge = b"[" + b" " * (2 * 1024 * 1024)  # 2 MiB, not JSON
    values: list[bytes | None] = [
        None,  # a tombstone
        _request(1),
        b"\xff\xfe{",
        b'{"window_id": 1',
        b'{"window_id": "one"}',
        huge,
        _request(2),
    ]
    _send(fresh_kafka, values)
    metrics = TrainerMetrics()
    outcomes: list[RetrainOutcome] = []
    _run_trainer(
        settings,
        max_jobs=2,
        metrics=metrics,
        train_fn=run_job,
        on_outcome=outcomes.append,
        retry=FAST_RETRY,
    )
    assert [(o.window_id, o.outcome) for o in outcomes] == [(1, "promoted"), (2, "promoted")]
    letters = _dead_letters(fresh_kafka, consume, 5)
    assert [(d.offset, d.reason_code) for d in letters] == [
        (0, "null_value"),
        (2, "not_utf8"),
        (3, "not_json"),
        (4, "bad_retrain_request"),
        (5, "not_json"),
    ]
    assert all(d.topic == fresh_kafka.topics.retrain and d.partition == 0 for d in letters)
    assert letters[0].payload is None and letters[2].payload == b'{"window_id": 1'
    assert "fields" in letters[3].detail and "window_id" in letters[3].detail
    cut = letters[4]
    assert cut.truncated and cut.payload_size == len(huge)
    assert cut.payload_sha256 == hashlib.sha256(huge).hexdigest()
    assert cut.payload and cut.payload == huge[: len(cut.payload)]
    for reason, count in [
        ("null_value", 1),
        ("not_utf8", 1),
        ("not_json", 2),
        ("bad_retrain_request", 1),
        ("training_failed", 0),
        ("internal_error", 0),
    ]:
        assert _counter(metrics, reason) == count, reason
    assert _committed(settings) == len(values)
