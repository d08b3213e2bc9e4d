"""After a long-adapter bootstrap the serving set is published, so scorers swap at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lsat.adapters.lifecycle.publication import ServingSet
from lsat.adapters.lifecycle.publisher import ServingSetPublisher, publish_current
from lsat.adapters.lifecycle.registry import open_registry
from lsat.core.settings import KafkaSettings, Settings

pytestmark = pytest.mark.kafka


def test_publishes_the_registry_serving_set(
    tmp_path: Path, fresh_kafka: KafkaSettings, consume: Callable
) -> None:
    settings = Settings(home=tmp_path, kafka=fresh_kafka)
    with open_registry(settings.db_url) as registry, ServingSetPublisher(fresh_kafka) as publish:
        assert publish_current(registry, publish) is None  # nothing serves yet
        long = registry.register("long", path=str(tmp_path / "long"), sha256="ab" * 32)
        registry.set_alias("serving-long", "long", long.version, reason="bootstrap", actor="t")
        published = publish_current(registry, publish)
    assert published is not None and published.keys == {"long": long.version}
    records = consume(fresh_kafka, fresh_kafka.topics.versions, 1)
    assert len(records) == 1 and records[0].key == b"serving"  # one key: one partition, in order
    received = ServingSet.from_json(records[0].value)
    assert received.keys == {"long": 1}
    assert received.long is not None and received.long.sha256 == "ab" * 32
