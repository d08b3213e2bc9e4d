"""The faust app: thin agents that decode, call the processor, and send what it asks.

Settings that work on tansu and real Kafka: session timeout 6 s / heartbeat 1 s (tansu holds
JoinGroup for half the session timeout), the web server bound to ``bind_host`` on a configured
port (``web_enabled=False`` alone still binds 0.0.0.0:6066), raw bytes in and out, and tables
kept in memory: all state that must survive a restart lives in the sample store (see
:mod:`lsat.stream.processor`). Offsets are committed by faust only for acknowledged events, and a
batch of events is acknowledged after its agent iteration returns, i.e. after the DB commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faust

from lsat.core.settings import Settings
from lsat.stream.kafka_client import faust_broker_credentials, faust_broker_url
from lsat.stream.store import SourcePosition

__all__ = ["Outgoing", "Processor", "build_app"]

log = logging.getLogger(__name__)
BATCH_MAX_EVENTS = 500
"""Most interactions handled in one DB transaction."""
BATCH_WITHIN_S = 0.05
"""How long a partial batch waits for more events."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message the processor wants sent; ``on_sent`` runs once the broker acknowledged it."""

    topic: str
    key: bytes | None
    value: bytes
    on_sent: Any = None


class Processor(Protocol):
    """What the agents call; synchronous and quick (training never runs here)."""

    def on_interactions(self, batch: Sequence[tuple[bytes, SourcePosition]]) -> list[Outgoing]: ...

    def on_item(self, raw: bytes, source: SourcePosition) -> list[Outgoing]: ...

    def pending_outgoing(self) -> list[Outgoing]: ...


def build_app(settings: Settings, processor: Processor, *, web_port: int | None = None) -> Any:
    """A faust app whose agents feed ``processor``; run it with
    :func:`lsat.stream.worker.run_worker`."""
    kafka, stream = settings.kafka, settings.stream
    datadir = Path(settings.home) / "faust"
    app = faust.App(
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

    async def send_all(messages: list[Outgoing]) -> None:
        for message in messages:
            future = await topic(message.topic).send(key=message.key, value=message.value)
            await future  # wait for the broker's ack before the source offset can be committed
            if message.on_sent is not None:
                message.on_sent()

    @app.agent(topic(names.interactions), name="interactions")
    async def interactions(stream_: Any) -> None:
        # take_events acknowledges a batch only after this loop body returns (DB committed).
        async for events in stream_.take_events(BATCH_MAX_EVENTS, within=BATCH_WITHIN_S):
            batch = [
                (e.value, SourcePosition(e.message.partition, e.message.offset, names.interactions))
                for e in events
            ]
            await send_all(processor.on_interactions(batch))

    @app.agent(topic(names.items), name="items")
    async def items(stream_: Any) -> None:
        async for event in stream_.events():
            source = SourcePosition(event.message.partition, event.message.offset, names.items)
            await send_all(processor.on_item(event.value, source))

    @app.task
    async def republish_pending() -> None:
        await send_all(processor.pending_outgoing())

    app.lsat_send_all = send_all  # used by the web view and tests
    return app
