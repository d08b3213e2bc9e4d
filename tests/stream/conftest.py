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
