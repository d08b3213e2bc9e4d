"""Consumes one topic in large batches with a plain aiokafka group consumer.

Why not a faust agent: faust hands an agent its events one at a time through its conductor and
stream, about 120–150 µs of event-loop CPU per event (``bench/results/workers.md``), which
shares the GIL with the processor thread and kept a worker near 3k events/s. ``getmany``
returns whatever the fetcher already holds, up to ``max_records`` across the assigned
partitions, for a couple of µs per event; under load the batches fill up, so the store's
per-batch work (one transaction, ~25 statements) is shared by hundreds of events.

Delivery is at-least-once, as with the agent: a batch's offsets are committed only after
``handle`` returned (the DB commit done and every message the batch produced acknowledged).
A batch re-delivered after a crash or a rebalance is recognised by the store (stored event ids)
and counted as duplicates, never stored twice. On a rebalance the revoked partitions' batch in
progress is finished and committed first (bounded by ``revoke_wait_s``), so a clean handover
re-delivers nothing.

The consumer joins its own group (``<app id>-<topic>``): faust's group speaks faust's assignor
protocol, which a plain consumer cannot join.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from lsat.core.settings import KafkaSettings
from lsat.stream.isolation import Record
from lsat.stream.kafka_client import aiokafka_kwargs
from lsat.stream.store import SourcePosition

__all__ = ["BatchConsumer", "records_of"]

log = logging.getLogger(__name__)


def records_of(fetched: dict[TopicPartition, list[Any]]) -> list[Record]:
    """``getmany``'s messages as records, partition by partition in offset order.

    >>> from types import SimpleNamespace as M
    >>> tp = TopicPartition("interactions", 1)
    >>> records_of({tp: [M(value=b"a", offset=7), M(value=b"b", offset=8)]})[1]
    (b'b', SourcePosition(partition=1, offset=8, topic='interactions'))
    """
    return [
        (message.value, SourcePosition(tp.partition, message.offset, tp.topic))
        for tp, messages in fetched.items()
        for message in messages
    ]


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: BatchConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.owner.finish_batch()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self.owner.on_assigned is not None:
            self.owner.on_assigned(set(assigned))


class BatchConsumer:
    """Feed ``topic`` to ``handle`` in batches of at most ``max_records``; commit after each.

    ``handle`` must not raise for bad records (the processor isolates them) and retries store
    failures itself; if it raises anyway, the batch is not committed and is fetched again (the
    consumer seeks back to its first offsets).
    ``on_assigned`` is called with the partitions of every assignment.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        group_id: str,
        handle: Callable[[list[Record]], Awaitable[None]],
        *,
        max_records: int,
        session_timeout_s: float,
        heartbeat_interval_s: float,
        on_assigned: Callable[[set[TopicPartition]], None] | None = None,
        poll_timeout_s: float = 0.5,
        revoke_wait_s: float | None = None,
    ) -> None:
        self.kafka, self.topic, self.group_id = kafka, topic, group_id
        self.handle = handle
        self.max_records = max_records
        self.session_timeout_s = session_timeout_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.on_assigned = on_assigned
        self.poll_timeout_s = poll_timeout_s
        self.revoke_wait_s = revoke_wait_s if revoke_wait_s is not None else session_timeout_s / 2
        self.consumer: AIOKafkaConsumer | None = None
        self._batch_lock = asyncio.Lock()

    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer holds now (empty before it joined)."""
        return set(self.consumer.assignment()) if self.consumer is not None else set()

    def highwater(self, tp: TopicPartition) -> int | None:
        """The log end the last fetch saw for ``tp`` (``None`` before any fetch)."""
        return self.consumer.highwater(tp) if self.consumer is not None else None

    async def finish_batch(self) -> None:
        """Wait (at most ``revoke_wait_s``) for the batch in progress and its offset commit."""
        try:
            await asyncio.wait_for(self._batch_lock.acquire(), self.revoke_wait_s)
        except TimeoutError:
            log.warning(
                "%s: a batch still in progress at a rebalance; its events may be delivered "
                "again to the partitions' next owner (counted as duplicates there)",
                self.topic,
            )
            return
        self._batch_lock.release()

    async def run(self) -> None:
        """Join the group and consume until cancelled (then leave the group)."""
        self.consumer = consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(self.kafka),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(self.session_timeout_s * 1000),
            heartbeat_interval_ms=int(self.heartbeat_interval_s * 1000),
        )
        consumer.subscribe([self.topic], listener=_Rebalance(self))
        await consumer.start()
        try:
            while True:
                await self._one_batch(consumer)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(consumer.stop())

    async def _one_batch(self, consumer: AIOKafkaConsumer) -> None:
        fetched = await consumer.getmany(
            timeout_ms=int(self.poll_timeout_s * 1000), max_records=self.max_records
        )
        if not fetched:
            return
        async with self._batch_lock:
            try:
                await self.handle(records_of(fetched))
            except Exception:
                log.exception("%s: handling a batch failed; it is fetched again", self.topic)
                for tp, messages in fetched.items():
                    if messages and tp in consumer.assignment():
                        consumer.seek(tp, messages[0].offset)
                return
            offsets = {tp: messages[-1].offset + 1 for tp, messages in fetched.items() if messages}
            try:
                await consumer.commit(offsets)
            except KafkaError as error:  # e.g. the partitions moved: the new owner re-reads them
                log.warning("%s: committing offsets failed (%r)", self.topic, error)
