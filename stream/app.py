"""The faust app: a batch consumer for interactions, a thin agent for items, and what they send.

``interactions`` is read by a :class:`~lsat.stream.batch_consumer.BatchConsumer` (aiokafka
``getmany``, batches of up to ``LSAT_STREAM_BATCH_MAX_EVENTS``, its own consumer group): faust's
per-event path cost more CPU than the processing itself. The low-volume ``items`` topic keeps a
faust agent. faust still runs the web view, the timers, the producer and the worker's life cycle.

Settings that work on tansu and real Kafka: session timeout 6 s / heartbeat 1 s (tansu holds
JoinGroup for half the session timeout), the web server bound to ``bind_host`` on a configured
port (``web_enabled=False`` alone still binds 0.0.0.0:6066), raw bytes in and out, and tables
kept in memory: all state that must survive a restart lives in the sample store (see
:mod:`lsat.stream.processor`). Offsets are committed only for handled events: a batch's after
the DB commit and after the broker acknowledged every message the batch produced.

A consumer never raises (faust would acknowledge the whole batch and move past it): the processor
isolates bad records itself, and a failing store or producer is retried with exponential backoff
(:func:`until_done`) on the same batch. Store work runs in one worker thread
(:class:`SerialThread`), off the event loop, so a slow or locked database never stops the
consumer's heartbeats (the broker would drop the member after the session timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import faust
from aiokafka import TopicPartition

from lsat.core.settings import Settings
from lsat.stream.batch_consumer import BatchConsumer
from lsat.stream.kafka_client import faust_broker_credentials, faust_broker_url
from lsat.stream.store import SourcePosition

if TYPE_CHECKING:
    from lsat.stream.isolation import Handled

__all__ = ["Outgoing", "Processor", "SerialThread", "WorkerApp", "build_app", "until_done"]

log = logging.getLogger(__name__)
T = TypeVar("T")
BATCH_MAX_EVENTS = 500
"""Most items handled in one DB transaction (interactions: ``stream.batch_max_events``)."""
BATCH_WITHIN_S = 0.05
"""How long a partial batch waits for more events."""
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
"""Backoff bounds for retrying a batch whose store or producer failed."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message the processor wants sent; ``on_sent`` runs once the broker acknowledged it."""

    topic: str
    key: bytes | None
    value: bytes
    on_sent: Any = None


class Processor(Protocol):
    """What the agents call, in a worker thread (blocking DB work; training never runs here)."""

    def handle_interactions(
        self, batch: Sequence[tuple[bytes | None, SourcePosition]]
    ) -> Handled: ...

    def handle_items(self, batch: Sequence[tuple[bytes | None, SourcePosition]]) -> Handled: ...

    def pending_outgoing(self) -> list[Outgoing]: ...


class SerialThread:
    """Runs blocking calls one at a time in one thread, off the event loop.

    One thread serialises every call into the processor (both consumers, the web view, the
    startup task), so the processor needs no locks. A call whose awaiting task is cancelled
    still runs to its end before the cancellation goes on: a DB transaction is never left
    half-way while faust acknowledges its batch.
    """

    def __init__(self, name: str = "lsat-store") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        future = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            while not future.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({future})
            raise

    def shutdown(self) -> None:
        """Let the running call finish; refuse new ones."""
        self._executor.shutdown(wait=True)


class WorkerApp(faust.App):
    """The faust app of :func:`build_app`, with what the web view and tests call into."""

    lsat_send_all: Callable[[list[Outgoing]], Awaitable[None]]
    """Send messages (retried until the broker acknowledges each), then run their ``on_sent``."""
    lsat_serial: SerialThread
    """The processor's one thread (the web view calls through it)."""
    lsat_interactions: BatchConsumer
    """The consumer of ``interactions`` (its assignment and high watermarks give the lag)."""


async def until_done(
    call: Callable[[], Awaitable[T]],
    what: str,
    *,
    first_s: float = RETRY_FIRST_S,
    max_s: float = RETRY_MAX_S,
) -> T:
    """``await call()`` until it succeeds, sleeping ``first_s``, 2×, … up to ``max_s`` between
    failures (each logged). Nothing is skipped: the caller's batch stays unacknowledged."""
    delay = first_s
    while True:
        try:
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.error("%s failed, retrying in %.1f s: %r", what, delay, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_s)


def build_app(
    settings: Settings,
    processor: Processor,
    *,
    on_assigned: Callable[[set[TopicPartition]], None] | None = None,
    web_port: int | None = None,
    retry_first_s: float = RETRY_FIRST_S,
    retry_max_s: float = RETRY_MAX_S,
) -> WorkerApp:
    """A faust app that feeds ``processor``: ``interactions`` through a
    :class:`~lsat.stream.batch_consumer.BatchConsumer` (``on_assigned`` sees its assignments),
    ``items`` through a faust agent; run it with :func:`lsat.stream.worker.run_worker`. A
    failing store or producer is retried after ``retry_first_s``, doubling up to
    ``retry_max_s``."""
    kafka, stream = settings.kafka, settings.stream
    datadir = Path(settings.home) / "faust"
    app = WorkerApp(
        stream.app_id,
        broker=faust_broker_url(kafka),
        broker_credentials=faust_broker_credentials(kafka),
        broker_session_timeout=stream.session_timeout_s,
        broker_heartbeat_interval=stream.heartbeat_interval_s,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        topic_partitions=kafka.partitions,
        topic_replication_factor=1,
        topic_allow_declare=False,
        store="memory://",
        datadir=str(datadir),
        web_enabled=True,
        web_bind=settings.bind_host,
        web_port=web_port if web_port is not None else stream.worker_web_port,
        web_host=settings.bind_host,
        value_serializer="raw",
        key_serializer="raw",
        producer_acks=-1,
    )
    names = kafka.topics
    topics: dict[str, Any] = {}

    def topic(name: str) -> Any:
        if name not in topics:
            topics[name] = app.topic(name, key_type=bytes, value_type=bytes, internal=False)
        return topics[name]

    serial = SerialThread()

    async def retried(call: Callable[[], Awaitable[T]], what: str) -> T:
        return await until_done(call, what, first_s=retry_first_s, max_s=retry_max_s)

    async def send_one(message: Outgoing) -> None:
        future = await topic(message.topic).send(key=message.key, value=message.value)
        await future  # wait for the broker's ack before the source offset can be committed

    async def send_all(messages: list[Outgoing]) -> None:
        for message in messages:
            await retried(functools.partial(send_one, message), f"sending to {message.topic}")
            if message.on_sent is not None:
                try:
                    await serial(message.on_sent)
                except Exception:  # e.g. the DB is down: the message is re-sent at restart
                    log.exception("recording that a message to %s was sent failed", message.topic)

    def batch_of(events: Sequence[Any], name: str) -> list[tuple[bytes | None, SourcePosition]]:
        return [
            (e.value, SourcePosition(e.message.partition, e.message.offset, name)) for e in events
        ]

    async def handle_interactions(batch: list[tuple[bytes | None, SourcePosition]]) -> None:
        handled = await retried(
            functools.partial(serial, processor.handle_interactions, batch),
            f"storing {len(batch)} interactions",
        )
        await send_all(handled.outgoing)

    interactions = BatchConsumer(
        kafka,
        names.interactions,
        f"{stream.app_id}-{names.interactions}",
        handle_interactions,
        max_records=stream.batch_max_events,
        session_timeout_s=stream.session_timeout_s,
        heartbeat_interval_s=stream.heartbeat_interval_s,
        on_assigned=on_assigned,
    )

    @app.task
    async def consume_interactions() -> None:
        # A failed start (broker unreachable) or a consumer crash is retried with backoff.
        await retried(interactions.run, f"consuming {names.interactions}")

    @app.agent(topic(names.items), name="items")
    async def items(stream_: Any) -> None:
        async for events in stream_.take_events(BATCH_MAX_EVENTS, within=BATCH_WITHIN_S):
            batch = batch_of(events, names.items)
            handled = await retried(
                functools.partial(serial, processor.handle_items, batch),
                f"storing {len(batch)} items",
            )
            await send_all(handled.outgoing)

    @app.task
    async def republish_pending() -> None:
        pending = await retried(
            functools.partial(serial, processor.pending_outgoing),
            "listing unsent retrain requests",
        )
        await send_all(pending)

    app.lsat_send_all = send_all  # used by the web view and tests
    app.lsat_interactions = interactions
    app.lsat_serial = serial  # the processor's one thread (the web view calls through it)
    return app
