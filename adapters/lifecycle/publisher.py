"""The one producer of serving sets on ``adapter.versions``.

Every message that tells scorers what to serve goes through :class:`ServingSetPublisher`: the
trainer's promotions, ``lsat trainer --bootstrap-long`` (:func:`publish_current`) and the
scorer's promote / rollback. Each send uses the key ``serving`` (one partition keeps them in
order), ``acks=all``, and waits for the broker's acknowledgement, so a caller that returns has
published.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lsat.adapters.lifecycle.publication import ServingSet, current_serving_set
from lsat.adapters.lifecycle.registry import RegistryStore
from lsat.core.settings import KafkaSettings

if TYPE_CHECKING:
    from kafka import KafkaProducer

__all__ = ["SEND_TIMEOUT_S", "SERVING_KEY", "ServingSetPublisher", "publish_current"]

SEND_TIMEOUT_S = 30.0
SERVING_KEY = b"serving"


class ServingSetPublisher:
    """Sends :class:`ServingSet` messages; a callable, so it fits ``publish=`` parameters.

    ``producer``: an open kafka-python producer to share (kept open by :meth:`close`); by
    default one is created on the first send (``acks=all``) and closed by :meth:`close`.
    """

    def __init__(self, kafka: KafkaSettings, producer: KafkaProducer | None = None) -> None:
        self.kafka = kafka
        self.topic = kafka.topics.versions
        self._producer = producer
        self._owned = producer is None

    def __call__(self, serving: ServingSet) -> None:
        if self._producer is None:
            from kafka import KafkaProducer

            from lsat.stream.kafka_client import kafka_python_kwargs

            self._producer = KafkaProducer(**kafka_python_kwargs(self.kafka), acks="all")
        future = self._producer.send(self.topic, serving.to_json(), key=SERVING_KEY)
        future.get(timeout=SEND_TIMEOUT_S)

    def close(self) -> None:
        """Close the producer this publisher created (a shared one stays open)."""
        if self._owned and self._producer is not None:
            self._producer.close()
            self._producer = None

    def __enter__(self) -> ServingSetPublisher:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def publish_current(
    registry: RegistryStore, publish: Callable[[ServingSet], None]
) -> ServingSet | None:
    """Publish what the registry's serving aliases describe; ``None`` (nothing sent) when
    nothing serves yet."""
    serving = current_serving_set(registry)
    if serving is not None:
        publish(serving)
    return serving
