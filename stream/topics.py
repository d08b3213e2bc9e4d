"""The project's Kafka topics and creating them on any broker (tansu or real Kafka).

>>> from lsat.core.settings import TopicNames
>>> names = [spec.name for spec in topic_specs(TopicNames(), partitions=3)]
>>> names[:3]
['interactions', 'items', 'interactions.dlq']
>>> names[3:]
['adapter.retrain', 'adapter.versions', 'adapter.retrain.dlq']
>>> topic_specs(TopicNames(), partitions=3)[1].compacted
True
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from lsat.core.settings import KafkaSettings, TopicNames
from lsat.stream.kafka_client import kafka_python_kwargs

__all__ = ["TopicSpec", "ensure_topics", "retrain_dlq_topic", "topic_specs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: name, partitions, and whether it is a compacted (latest-per-key) topic."""

    name: str
    partitions: int
    compacted: bool = False


def retrain_dlq_topic(topics: TopicNames) -> str:
    """The trainer's dead-letter topic, named after the retrain topic (``adapter.retrain.dlq``).

    >>> retrain_dlq_topic(TopicNames())
    'adapter.retrain.dlq'
    """
    return f"{topics.retrain}.dlq"


def topic_specs(topics: TopicNames, partitions: int = 1) -> list[TopicSpec]:
    """The six topics: interactions (key user id) and items (key item id, compacted) get
    ``partitions``; the DLQs and the adapter control topics have one partition (total order)."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions!r}")
    return [
        TopicSpec(topics.interactions, partitions),
        TopicSpec(topics.items, partitions, compacted=True),
        TopicSpec(topics.dlq, 1),
        TopicSpec(topics.retrain, 1),
        TopicSpec(topics.versions, 1),
        TopicSpec(retrain_dlq_topic(topics), 1),
    ]


def ensure_topics(settings: KafkaSettings, timeout_s: float = 20.0) -> list[str]:
    """Create the missing topics of ``settings.topics``; returns the names it created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**kafka_python_kwargs(settings), request_timeout_ms=10_000)
    created: list[str] = []
    try:
        existing = set(admin.list_topics())
        for spec in topic_specs(settings.topics, settings.partitions):
            if spec.name in existing:
                continue
            configs = {"cleanup.policy": "compact"} if spec.compacted else {}
            new_topic = NewTopic(spec.name, spec.partitions, 1, topic_configs=configs)
            try:
                admin.create_topics([new_topic], timeout_ms=int(timeout_s * 1000))
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        deadline = time.monotonic() + timeout_s
        wanted = {spec.name for spec in topic_specs(settings.topics, settings.partitions)}
        while not wanted <= set(admin.list_topics()):
            if time.monotonic() > deadline:
                missing = sorted(wanted - set(admin.list_topics()))
                raise TimeoutError(f"topics {missing} not visible after {timeout_s}s")
            time.sleep(0.1)
    finally:
        admin.close()
    if created:
        log.info("created topics %s", created)
    return created
