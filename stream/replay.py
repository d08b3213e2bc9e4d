"""Replay a dataset onto Kafka: the catalogue to ``items``, then interactions in event-time order.

Interactions go to ``interactions`` keyed by user id with the Kafka message timestamp set to the
event time (ms). ``speed`` is a multiple of real time by event time (``0`` = as fast as possible).
A small JSON checkpoint records the last event that the broker acknowledged, so ``resume``
continues right after it.

>>> from lsat.data.types import Interaction
>>> json.loads(interaction_message(Interaction("u1", "i2", 880000000, 1, 4.0)))
{'event_id': 'u1:i2:880000000', 'user_id': 'u1', 'item_id': 'i2',
 'timestamp': 880000000, 'rating': 4.0}
>>> pacing_delay_s(first_ts=0, event_ts=100, speed=10.0, elapsed_s=4.0)
6.0
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lsat.core.settings import KafkaSettings
from lsat.data.types import Dataset, Interaction, Item
from lsat.stream.errors import StreamError
from lsat.stream.kafka_client import kafka_python_kwargs

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = [
    "ReplayCheckpoint",
    "ReplayError",
    "ReplaySummary",
    "interaction_message",
    "item_message",
    "pacing_delay_s",
    "parse_speed",
    "replay",
    "select_interactions",
]

log = logging.getLogger(__name__)
FLUSH_EVERY = 2000
"""Flush (and checkpoint) every this many events when not pacing."""
PACED_FLUSH_EVERY = 50


class ReplayError(StreamError):
    """Bad replay arguments or a checkpoint that does not match the dataset."""


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """What a replay published."""

    items: int
    events: int
    bytes: int
    seconds: float
    skipped_resume: int = 0

    @property
    def events_per_s(self) -> float:
        """Published interactions per wall-clock second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for humans."""
        return (
            f"published {self.items} items and {self.events} events ({self.bytes:,} bytes) "
            f"in {self.seconds:.2f} s = {self.events_per_s:,.0f} events/s"
            + (f"; skipped {self.skipped_resume} already published" if self.skipped_resume else "")
        )


@dataclass(frozen=True, slots=True)
class ReplayCheckpoint:
    """The last acknowledged event: its index in the dataset's time order and its key."""

    dataset: str
    index: int
    event_id: str

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ReplayCheckpoint | None:
        """The saved checkpoint, or ``None`` when there is none."""
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(str(data["dataset"]), int(data["index"]), str(data["event_id"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ReplayError(f"replay checkpoint {path} is unreadable: {exc}") from None


def parse_speed(text: str) -> float:
    """``"max"`` or ``"0"`` → 0 (no pacing); else a positive multiple of real time.

    >>> parse_speed("max"), parse_speed("3600")
    (0.0, 3600.0)
    """
    if text.strip().lower() in ("max", "0", "inf"):
        return 0.0
    try:
        speed = float(text)
    except ValueError:
        raise ReplayError(f"speed must be a number or 'max', got {text!r}") from None
    if not speed > 0:
        raise ReplayError(f"speed must be > 0 (or 0/'max' for no pacing), got {text!r}")
    return speed


def interaction_message(interaction: Interaction) -> bytes:
    """The JSON value of an ``interactions`` message (rating when known, else the label)."""
    record: dict[str, object] = {
        "event_id": interaction.key(),
        "user_id": interaction.user_id,
        "item_id": interaction.item_id,
        "timestamp": interaction.timestamp,
    }
    if interaction.rating is not None:
        record["rating"] = interaction.rating
    else:
        record["label"] = interaction.label
    return json.dumps(record).encode("utf-8")


def item_message(item: Item) -> bytes:
    """The JSON value of an ``items`` message."""
    return json.dumps({"item_id": item.item_id, "title": item.title, **item.extra}).encode()


def pacing_delay_s(first_ts: int, event_ts: int, speed: float, elapsed_s: float) -> float:
    """Seconds to wait before sending an event ``event_ts - first_ts`` event-seconds in."""
    if speed <= 0:
        return 0.0
    return max(0.0, (event_ts - first_ts) / speed - elapsed_s)


def select_interactions(
    dataset: Dataset,
    start_ts: int | None = None,
    end_ts: int | None = None,
    limit: int | None = None,
    after_index: int = -1,
) -> Iterator[tuple[int, Interaction]]:
    """(index, interaction) in time order with ``start_ts <= t < end_ts``, after ``after_index``,
    at most ``limit`` of them (the index is the position in ``dataset.interactions``)."""
    if limit is not None and limit < 0:
        raise ReplayError(f"limit must be >= 0, got {limit}")
    sent = 0
    for index, interaction in enumerate(dataset.interactions):
        if limit is not None and sent >= limit:
            return
        if index <= after_index:
            continue
        if start_ts is not None and interaction.timestamp < start_ts:
            continue
        if end_ts is not None and interaction.timestamp >= end_ts:
            continue
        sent += 1
        yield index, interaction


def _progress(total: int, enabled: bool) -> tqdm:
    from tqdm import tqdm

    return tqdm(total=total, unit="ev", disable=not enabled, desc="replay", leave=False)


def replay(
    dataset: Dataset,
    kafka: KafkaSettings,
    *,
    speed: float = 0.0,
    start_ts: int | None = None,
    end_ts: int | None = None,
    limit: int | None = None,
    checkpoint_path: Path | None = None,
    resume: bool = False,
    publish_items: bool = True,
    progress: bool = True,
) -> ReplaySummary:
    """Publish the catalogue then the selected interactions; returns the summary."""
    from kafka import KafkaProducer

    after_index = -1
    if resume:
        if checkpoint_path is None:
            raise ReplayError("resume needs a checkpoint path")
        checkpoint = ReplayCheckpoint.load(checkpoint_path)
        if checkpoint is not None:
            if checkpoint.dataset != dataset.name:
                raise ReplayError(
                    f"checkpoint {checkpoint_path} is for dataset {checkpoint.dataset!r}, "
                    f"not {dataset.name!r}"
                )
            after_index = checkpoint.index
    selected = list(select_interactions(dataset, start_ts, end_ts, limit, after_index))
    producer = KafkaProducer(**kafka_python_kwargs(kafka), linger_ms=5, acks="all")
    topics = kafka.topics
    sent_bytes = items = 0
    started = time.monotonic()
    try:
        if publish_items:
            for item in dataset.items.values():
                value = item_message(item)
                producer.send(topics.items, key=item.item_id.encode(), value=value)
                sent_bytes += len(value)
                items += 1
            producer.flush()
        first_ts = selected[0][1].timestamp if selected else 0
        paced_from = time.monotonic()
        with _progress(len(selected), progress) as bar:
            for count, (index, interaction) in enumerate(selected, start=1):
                delay = pacing_delay_s(
                    first_ts, interaction.timestamp, speed, time.monotonic() - paced_from
                )
                if delay > 0:
                    time.sleep(delay)
                value = interaction_message(interaction)
                producer.send(
                    topics.interactions,
                    key=interaction.user_id.encode(),
                    value=value,
                    timestamp_ms=interaction.timestamp * 1000,
                )
                sent_bytes += len(value)
                bar.update(1)
                every = PACED_FLUSH_EVERY if speed > 0 else FLUSH_EVERY
                if count % every == 0 or count == len(selected):
                    producer.flush()
                    if checkpoint_path is not None:
                        ReplayCheckpoint(dataset.name, index, interaction.key()).save(
                            checkpoint_path
                        )
        producer.flush()
    finally:
        producer.close()
    summary = ReplaySummary(
        items, len(selected), sent_bytes, time.monotonic() - started, max(after_index + 1, 0)
    )
    log.info(summary.describe())
    return summary
