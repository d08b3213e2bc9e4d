"""The ``adapter.retrain`` consumer: one job at a time, offsets committed only after the job.

Several trainers share one consumer group. Every consumed record ends as exactly one of
*handled* (a job outcome: promoted, rejected, duplicate, skipped) or *dead-lettered* (sent to
``adapter.retrain.dlq`` with its reason) before its offset is committed:

- a record that cannot be read (null value, not UTF-8, not JSON, not a valid request) is
  dead-lettered at once and the next record proceeds;
- a job that raises (training child died, or any other exception) is retried with exponential
  backoff (:class:`.retry.RetryPolicy`); after the last attempt the request is dead-lettered
  and the trainer moves on to the next window. Nothing but a failing dead-letter produce (the
  broker is gone) ends the loop.

A trainer killed mid-job leaves its request uncommitted for the next one (its training child
exits with it, leaving no adapter folder); a re-delivered request whose version is already
registered is a no-op, or is promoted if the trainer died before promoting it. kafka-python
heartbeats from a background thread; ``max_poll_interval`` is set above the longest job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from lsat.adapters.lifecycle.publisher import ServingSetPublisher
from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.trainer.child import train_in_child
from lsat.adapters.trainer.dead_letters import metric_reason, parse_request
from lsat.adapters.trainer.helpers import RetrainOutcome, TrainFn
from lsat.adapters.trainer.job import Retrainer, build_retrainer
from lsat.adapters.trainer.metrics import TrainerMetrics
from lsat.adapters.trainer.options import QualityOptions
from lsat.adapters.trainer.retry import GaveUp, RetryInterrupted, RetryPolicy, attempt
from lsat.core.settings import Settings
from lsat.stream.dead_letter import DeadLetter, internal_error_code
from lsat.stream.errors import InvalidEvent
from lsat.stream.kafka_client import kafka_python_kwargs
from lsat.stream.store import SampleStore
from lsat.stream.topics import retrain_dlq_topic

if TYPE_CHECKING:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.consumer.fetcher import ConsumerRecord

__all__ = ["run_trainer"]

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 30.0


def run_trainer(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    max_jobs: int | None = None,
    metrics: TrainerMetrics | None = None,
    train_fn: TrainFn = train_in_child,
    on_outcome: Callable[[RetrainOutcome], None] | None = None,
    retry: RetryPolicy | None = None,
    options: QualityOptions | None = None,
) -> int:
    """Consume ``adapter.retrain`` until ``stop`` is set or ``max_jobs`` jobs finished.

    Returns the number of finished jobs (dead-lettered requests do not count). ``retry``
    bounds the attempts per request (default :class:`RetryPolicy`); ``options`` are the
    quality options every job trains and combines with.
    """
    from kafka import KafkaConsumer, KafkaProducer

    stop = stop or threading.Event()
    metrics = metrics or TrainerMetrics()
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

    publish = ServingSetPublisher(settings.kafka, producer=producer)

    registry = open_registry(settings.db_url, artifact_store=settings.artifact_store)
    store = SampleStore(settings.db_url)
    retrainer = build_retrainer(
        settings,
        registry,
        store,
        publish=publish,
        metrics=metrics,
        train_fn=train_fn,
        options=options,
    )
    loop = _ConsumerLoop(
        consumer,
        producer,
        retrainer,
        retry or RetryPolicy(),
        dlq_topic=retrain_dlq_topic(topics),
        stop=stop,
        on_outcome=on_outcome,
    )
    try:
        while not stop.is_set() and (max_jobs is None or loop.finished < max_jobs):
            loop.poll_once()
    finally:
        consumer.close()
        producer.close()
        store.close()
        registry.close()
    return loop.finished


class _ConsumerLoop:
    """One poll's records, each handled or dead-lettered, then committed."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        retrainer: Retrainer,
        retry: RetryPolicy,
        *,
        dlq_topic: str,
        stop: threading.Event,
        on_outcome: Callable[[RetrainOutcome], None] | None,
    ) -> None:
        self.consumer, self.producer, self.retrainer = consumer, producer, retrainer
        self.retry, self.dlq_topic, self.stop = retry, dlq_topic, stop
        self.on_outcome = on_outcome
        self.finished = 0

    def poll_once(self) -> None:
        """Poll once; commit each record after it was handled or dead-lettered."""
        from kafka import OffsetAndMetadata, TopicPartition
        from kafka.errors import CommitFailedError

        for tp, records in self.consumer.poll(timeout_ms=500).items():
            for record in records:
                try:
                    self._process(record)
                except RetryInterrupted as exc:  # stopping: leave it for the next trainer
                    log.info("%s; %s@%d stays uncommitted", exc, tp, record.offset)
                    self.consumer.seek(TopicPartition(tp.topic, tp.partition), record.offset)
                    return
                try:
                    self.consumer.commit({tp: OffsetAndMetadata(record.offset + 1, None, -1)})
                except CommitFailedError as exc:  # rebalanced away: the next owner redoes it
                    log.warning(
                        "commit of %s@%d failed (%s); it will be re-delivered",
                        tp,
                        record.offset,
                        exc,
                    )
                    return

    def _process(self, record: ConsumerRecord) -> None:
        """Handle one record, or dead-letter it; raises only :class:`RetryInterrupted`."""
        value = record.value
        try:
            request = parse_request(value)
        except InvalidEvent as exc:
            self._dead_letter(record, exc.reason_code, exc.detail)
            return
        except Exception as exc:  # a parser bug must not stop the trainer either
            self._dead_letter(record, internal_error_code(exc), f"{type(exc).__name__}: {exc}")
            return
        what = f"window {request.window_id}"
        result = attempt(
            lambda: self.retrainer.handle(request), self.retry, wait=self.stop.wait, what=what
        )
        if isinstance(result, GaveUp):
            detail = f"{what}: gave up after {result.attempts} attempts: {result.detail}"
            self._dead_letter(record, result.reason, detail)
            return
        self.finished += 1
        if self.on_outcome is not None:
            self.on_outcome(result)

    def _dead_letter(self, record: ConsumerRecord, reason: str, detail: str) -> None:
        """Send the record's bounded dead letter (keyed like it) and count it; a failed send
        raises."""
        letter = DeadLetter.build(
            record.value,
            reason,
            detail,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
        )
        self.producer.send(self.dlq_topic, letter.to_json(), key=letter.key).get(SEND_TIMEOUT_S)
        label = metric_reason(letter.reason_code)
        self.retrainer.metrics.retrain_dead_lettered.labels(reason=label).inc()
        log.error(
            "dead-lettered %s@%d to %s: %s: %s",
            letter.topic,
            letter.offset,
            self.dlq_topic,
            letter.reason_code,
            letter.detail[:500],
        )
