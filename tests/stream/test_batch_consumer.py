"""The worker's batch consumer of ``interactions`` on a real tansu broker (2 partitions).

What the worker relies on: every record reaches ``handle`` in offset order per partition, in
batches of at most ``max_records``; offsets are committed only after ``handle`` returned, so
a consumer started again in the same group goes on where the last one stopped (nothing twice);
a batch whose ``handle`` raised is fetched again, not skipped; two consumers of one group split
the partitions between them and together see every record once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from lsat.core.settings import KafkaSettings
from lsat.stream.batch_consumer import BatchConsumer
from lsat.stream.isolation import Record
from lsat.stream.kafka_client import aiokafka_kwargs

pytestmark = pytest.mark.kafka
SESSION_S, HEARTBEAT_S = 2.0, 0.5


async def _produce(kafka: KafkaSettings, topic: str, n: int, start: int = 0) -> None:
    producer = AIOKafkaProducer(**aiokafka_kwargs(kafka))
    await producer.start()
    try:
        for k in range(start, start + n):
            await producer.send(topic, value=f"e{k}".encode(), partition=k % 2)
        await producer.flush()
    finally:
        await producer.stop()


def _consumer(
    kafka: KafkaSettings,
    group: str,
    handle: Callable[[list[Record]], Awaitable[None]],
    assigned: list[set[TopicPartition]] | None = None,
    max_records: int = 50,
) -> BatchConsumer:
    return BatchConsumer(
        kafka,
        kafka.topics.interactions,
        group,
        handle,
        max_records=max_records,
        session_timeout_s=SESSION_S,
        heartbeat_interval_s=HEARTBEAT_S,
        on_assigned=assigned.append if assigned is not None else None,
        poll_timeout_s=0.1,
    )


async def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_batches_in_order_then_a_restart_resumes_after_the_committed_offsets(
    fresh_kafka: KafkaSettings,
) -> None:
    topic, group = fresh_kafka.topics.interactions, f"g-{uuid.uuid4().hex[:6]}"
    seen: list[Record] = []
    sizes: list[int] = []
    assigned: list[set[TopicPartition]] = []

    async def handle(batch: list[Record]) -> None:
        sizes.append(len(batch))
        seen.extend(batch)

    async def scenario() -> None:
        await _produce(fresh_kafka, topic, 300)
        task = asyncio.create_task(_consumer(fresh_kafka, group, handle, assigned).run())
        await _until(lambda: len(seen) >= 300, 30, "300 records")
        await asyncio.sleep(0.3)  # the last commit
        await _stop(task)
        await _produce(fresh_kafka, topic, 100, start=300)
        task = asyncio.create_task(_consumer(fresh_kafka, group, handle).run())
        await _until(lambda: len(seen) >= 400, 30, "100 more records")
        await asyncio.sleep(0.5)  # anything delivered twice would arrive by now
        await _stop(task)

    asyncio.run(scenario())
    values = [value for value, _ in seen]
    assert sorted(values) == sorted(f"e{k}".encode() for k in range(400)), "lost or doubled"
    assert max(sizes) <= 50 and len(sizes) >= 8
    for partition in (0, 1):
        offsets = [p.offset for _, p in seen if p.partition == partition]
        assert offsets == list(range(200)), f"partition {partition} out of order"
    assert all(p.topic == topic for _, p in seen)
    assert assigned == [{TopicPartition(topic, 0), TopicPartition(topic, 1)}]


def test_a_batch_whose_handler_raised_is_fetched_again(fresh_kafka: KafkaSettings) -> None:
    topic, group = fresh_kafka.topics.interactions, f"g-{uuid.uuid4().hex[:6]}"
    attempts: list[list[bytes | None]] = []
    stored: list[bytes | None] = []

    async def handle(batch: list[Record]) -> None:
        attempts.append([value for value, _ in batch])
        if len(attempts) == 1:
            raise RuntimeError("the store went away")
        stored.extend(value for value, _ in batch)

    async def scenario() -> None:
        await _produce(fresh_kafka, topic, 40)
        task = asyncio.create_task(_consumer(fresh_kafka, group, handle).run())
        await _until(lambda: len(stored) >= 40, 30, "40 records stored")
        await _stop(task)

    asyncio.run(scenario())
    assert len(attempts) >= 2
    failed = set(attempts[0])
    assert failed and failed <= set(stored), "the failed batch was skipped"
    assert sorted(stored) == sorted(f"e{k}".encode() for k in range(40))


def test_two_consumers_of_one_group_split_the_partitions_and_see_each_record_once(
    fresh_kafka: KafkaSettings,
) -> None:
    topic, group = fresh_kafka.topics.interactions, f"g-{uuid.uuid4().hex[:6]}"
    seen: dict[str, list[Record]] = {"a": [], "b": []}
    assigned_b: list[set[TopicPartition]] = []

    def handler(name: str) -> Callable[[list[Record]], Awaitable[None]]:
        async def handle(batch: list[Record]) -> None:
            seen[name].extend(batch)

        return handle

    async def scenario() -> None:
        await _produce(fresh_kafka, topic, 100)
        first = asyncio.create_task(_consumer(fresh_kafka, group, handler("a")).run())
        await _until(lambda: len(seen["a"]) >= 100, 30, "the first consumer's 100")
        await asyncio.sleep(0.3)
        second = asyncio.create_task(_consumer(fresh_kafka, group, handler("b"), assigned_b).run())
        await _until(lambda: any(len(a) == 1 for a in assigned_b), 30, "the rebalance")
        await _produce(fresh_kafka, topic, 100, start=100)
        await _until(lambda: len(seen["a"]) + len(seen["b"]) >= 200, 30, "200 records")
        await asyncio.sleep(0.5)
        await asyncio.gather(_stop(first), _stop(second))

    asyncio.run(scenario())
    every = [value for name in ("a", "b") for value, _ in seen[name]]
    assert sorted(every) == sorted(f"e{k}".encode() for k in range(200)), "lost or doubled"
    (partition_b,) = {p.partition for _, p in seen["b"]}
    late_a = {p.partition for _, p in seen["a"][100:]}
    assert late_a == {1 - partition_b}, "after the rebalance each partition has one reader"
