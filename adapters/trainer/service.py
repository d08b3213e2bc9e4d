"""The ``adapter.retrain`` consumer: one job at a time, offsets committed only after the job.

Several trainers share one consumer group. A job runs to the end (registered or rejected) before
its offset is committed, so a trainer killed mid-run leaves the request for the next one (its
training child exits with it, leaving no adapter folder); a re-delivered request whose version
is already registered is a no-op, or is promoted if the trainer died before promoting it.
kafka-python heartbeats from a background thread; ``max_poll_interval`` is set above the
longest training run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from lsat.adapters.lifecycle.publication import ServingSet, current_serving_set
from lsat.adapters.lifecycle.registry import RegistryStore, open_registry
from lsat.adapters.trainer.child import train_in_child
from lsat.adapters.trainer.errors import TrainerChildFailed
from lsat.adapters.trainer.job import Retrainer, RetrainOutcome, TrainFn
from lsat.adapters.trainer.metrics import TrainerMetrics
from lsat.core.settings import Settings
from lsat.stream.errors import InvalidEvent
from lsat.stream.kafka_client import kafka_python_kwargs
from lsat.stream.store import SampleStore
from lsat.stream.triggers import RetrainRequest

__all__ = ["run_trainer"]

log = logging.getLogger(__name__)


def run_trainer(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    max_jobs: int | None = None,
    metrics: TrainerMetrics | None = None,
    train_fn: TrainFn = train_in_child,
    on_outcome: Callable[[RetrainOutcome], None] | None = None,
) -> int:
    """Consume ``adapter.retrain`` until ``stop`` is set or ``max_jobs`` jobs finished.

    Returns the number of finished jobs. A failed training child leaves the offset uncommitted
    and seeks back, so the same request is tried again (by this or another trainer).
    """
    from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

    stop = stop or threading.Event()
    topics = settings.kafka.topics
    common = kafka_python_kwargs(settings.kafka)
    producer = KafkaProducer(**common, acks="all")
    consumer = KafkaConsumer(
        topics.retrain,
        **common,
        group_id=settings.trainer.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1,
        session_timeout_ms=int(settings.stream.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.stream.heartbeat_interval_s * 1000),
        max_poll_interval_ms=int(settings.trainer.max_poll_interval_s * 1000),
    )

    def publish(serving: ServingSet) -> None:
        producer.send(topics.versions, serving.to_json(), key=b"serving").get(timeout=30)

    registry = open_registry(settings.db_url)
    store = SampleStore(settings.db_url)
    retrainer = Retrainer(
        settings, registry, store, publish=publish, metrics=metrics, train_fn=train_fn
    )
    finished = 0
    try:
        while not stop.is_set() and (max_jobs is None or finished < max_jobs):
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    try:
                        request = RetrainRequest.from_json(record.value)
                    except InvalidEvent as exc:
                        log.error(
                            "skipping bad retrain request at %s@%d: %s", tp, record.offset, exc
                        )
                    else:
                        try:
                            outcome = retrainer.handle(request)
                        except TrainerChildFailed as exc:
                            log.error("window %d: %s; will retry", request.window_id, exc)
                            consumer.seek(TopicPartition(tp.topic, tp.partition), record.offset)
                            break
                        finished += 1
                        if on_outcome is not None:
                            on_outcome(outcome)
                    consumer.commit({tp: OffsetAndMetadata(record.offset + 1, None, -1)})
    finally:
        consumer.close()
        producer.close()
        store.close()
        registry.close()
    return finished


def publish_current_serving_set(settings: Settings, registry: RegistryStore) -> ServingSet | None:
    """Publish what the registry's serving aliases describe on ``adapter.versions``.

    Used after ``lsat trainer --bootstrap-long`` so running scorers swap to the new long adapter
    at once instead of waiting for the first short promotion. ``None`` when nothing serves.
    """
    serving = current_serving_set(registry)
    if serving is None:
        return None
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka_python_kwargs(settings.kafka), acks="all")
    try:
        topic = settings.kafka.topics.versions
        producer.send(topic, serving.to_json(), key=b"serving").get(timeout=30)
    finally:
        producer.close()
    return serving
