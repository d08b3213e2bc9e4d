"""Stream fixtures: one real tansu broker per test session on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lsat.settings import KafkaSettings


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running :class:`stream.broker.EmbeddedBroker` with the project topics (2 partitions)."""
    from stream.broker import BrokerError, EmbeddedBroker, find_tansu, free_port

    try:
        find_tansu()
    except BrokerError as exc:
        pytest.skip(f"no tansu broker binary: {exc}")
    log_path: Path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    broker = EmbeddedBroker(KafkaSettings(partitions=2), port=free_port(), log_path=log_path)
    with broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_settings(tansu_broker: object) -> KafkaSettings:
    """KafkaSettings pointing at the session broker."""
    return tansu_broker.kafka_settings  # type: ignore[attr-defined]


@pytest.fixture
def fresh_kafka(kafka_settings: KafkaSettings) -> KafkaSettings:
    """KafkaSettings with topic names unique to this test, created on the session broker."""
    import uuid
    from dataclasses import replace

    from lsat.settings import TopicNames
    from stream.topics import ensure_topics

    tag = uuid.uuid4().hex[:8]
    topics = TopicNames(*(f"{name}.{tag}" for name in _topic_fields(TopicNames())))
    settings = replace(kafka_settings, topics=topics)
    ensure_topics(settings)
    return settings


def _topic_fields(topics: object) -> list[str]:
    from dataclasses import astuple

    return list(astuple(topics))  # type: ignore[arg-type]


@pytest.fixture
def consume() -> object:
    """The :func:`consume_all` helper (fixtures are how tests reach conftest helpers)."""
    return consume_all


def consume_all(
    settings: KafkaSettings, topic: str, expected: int, timeout_s: float = 30.0
) -> list[object]:
    """Read ``topic`` from the beginning until ``expected`` records arrived (or time is up).

    Counting records instead of trusting ListOffsets "latest" (tansu under-reports it).
    """
    import time

    from kafka import KafkaConsumer

    from stream.kafka_client import kafka_python_kwargs

    consumer = KafkaConsumer(
        topic,
        **kafka_python_kwargs(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
    )
    records: list[object] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records
