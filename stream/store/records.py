"""Plain records the stream store returns (ORM rows never leave :mod:`lsat.stream.store`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lsat.data.types import Interaction, Sample

__all__ = [
    "DeadLetterRecord",
    "IngestItem",
    "SourcePosition",
    "StoredEvent",
    "StoredPartition",
    "StoredWindow",
    "WindowClosure",
    "WindowStatus",
]

WindowStatus = str
"""``"open"`` or ``"closed"``."""


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a message came from: topic partition and offset."""

    partition: int
    offset: int
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class StoredWindow:
    """A window as stored: ``count`` samples between event times ``start_ts`` and ``end_ts``."""

    id: int
    status: WindowStatus
    start_ts: int | None
    end_ts: int | None
    count: int
    trigger: str | None = None
    drift_stats: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    closed_at: datetime | None = None
    retrain_published: bool = False


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A copy of a dead-lettered message with its reason code."""

    reason: str
    detail: str
    payload: str
    source: SourcePosition | None = None


@dataclass(frozen=True, slots=True)
class WindowClosure:
    """A window to mark closed in the same transaction as the event that closed it."""

    window_id: int
    trigger: str
    end_ts: int | None = None
    drift_stats: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class IngestItem:
    """One valid interaction to store, with its sample (``None`` when history was too short)
    and the sha256 of the message it came from."""

    interaction: Interaction
    sample: Sample | None = None
    window_id: int | None = None
    late: bool = False
    source: SourcePosition | None = None
    payload_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A stored interaction and the sha256 of its message (``None`` for old rows)."""

    interaction: Interaction
    source: SourcePosition | None = None
    payload_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class StoredPartition:
    """A partition's saved state: ``seq`` (bumped by each commit that changed it), watermark,
    when it last committed events (epoch seconds) and its JSON state (drift detectors)."""

    partition: int
    seq: int
    watermark: int | None
    active_s: float
    state: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
