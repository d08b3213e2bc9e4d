"""Shared pieces of the partitioned-worker tests (tests/stream and tests/scale): settings, the
one-worker reference run, and the store read back as plain data.

(A plain module next to the tests; tests/scale loads it by path.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import text

from lsat.core.settings import KafkaSettings, Settings, StreamSettings
from lsat.data.types import Interaction
from lsat.stream.app import Outgoing
from lsat.stream.processor import StreamProcessor
from lsat.stream.replay import interaction_message
from lsat.stream.store import SampleStore, SourcePosition
from lsat.stream.triggers import RetrainRequest


def span_of(events: list[Interaction], windows: int) -> int:
    return (events[-1].timestamp - events[0].timestamp) // windows


def settings_for(db_url: str, home: Path, partitions: int, **stream: object) -> Settings:
    defaults: dict[str, object] = {"drift_detection": False, "partition_idle_timeout_s": 30.0}
    return Settings(
        home=home,
        database_url=db_url,
        kafka=KafkaSettings(partitions=partitions),
        stream=StreamSettings(**{**defaults, **stream}),  # type: ignore[arg-type]
    )


def requests_in(messages: Sequence[Outgoing], sent: bool = True) -> list[RetrainRequest]:
    """The retrain requests among ``messages`` (``sent``: confirm them as the app would)."""
    found = []
    for message in messages:
        if message.topic == "adapter.retrain":
            found.append(RetrainRequest.from_json(message.value))
            if sent and message.on_sent is not None:
                message.on_sent()
    return found


def samples_of(store: SampleStore) -> dict[str, tuple[object, ...]]:
    """event id → (history items, history labels, label) of every stored sample."""
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT event_id, history, label FROM samples")).all()
    out = {}
    for event_id, history, label in rows:
        h = json.loads(history) if isinstance(history, str) else history
        out[event_id] = (tuple(h["item_ids"]), tuple(h["labels"]), label)
    return out


def windows_of(store: SampleStore) -> dict[int, set[str]]:
    """window id → its samples' event ids (pending samples have no window: left out)."""
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT window_id, event_id FROM samples")).all()
    out: dict[int, set[str]] = {}
    for window_id, event_id in rows:
        if window_id is not None:
            out.setdefault(window_id, set()).add(event_id)
    return out


def closed_windows(store: SampleStore) -> list[tuple[int, int]]:
    return sorted((w.id, w.count) for w in store.last_closed_windows(10_000))


def single_run(events: list[Interaction], home: Path, **stream: object) -> SampleStore:
    """One processor, one partition, every event in order: the reference."""
    home.mkdir(exist_ok=True)
    url = f"sqlite:///{home / 'single.sqlite'}"
    store = SampleStore(url)
    processor = StreamProcessor(settings_for(url, home, 1, **stream), store)
    records = [
        (interaction_message(it), SourcePosition(0, n, "interactions"))
        for n, it in enumerate(events)
    ]
    for start in range(0, len(records), 250):
        requests_in(processor.on_interactions(records[start : start + 250]))
    return store
