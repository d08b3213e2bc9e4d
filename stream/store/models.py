"""SQLAlchemy 2 ORM rows of the stream store; private to :mod:`lsat.stream.store` (never
returned)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "CatalogueItemRow",
    "DeadLetterRow",
    "InteractionRow",
    "ItemLikeCountRow",
    "LikeCountTotalRow",
    "PartitionRow",
    "PendingSampleRow",
    "SampleRow",
    "StreamStateRow",
    "UserLikeCountRow",
    "WindowRow",
]


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the stream tables (own metadata, so other subsystems keep theirs)."""


class InteractionRow(Base):
    """Every valid interaction once (idempotent by ``event_id``); the source of user history.

    ``id`` grows with arrival, so ``ORDER BY id`` per user is the order the stream saw.
    """

    __tablename__ = "stream_interactions"
    __table_args__ = (Index("ix_stream_interactions_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    item_id: Mapped[str] = mapped_column(String(255), nullable=False)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    label: Mapped[int] = mapped_column(Integer, nullable=False)
    rating: Mapped[float | None] = mapped_column(Float)
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    payload_sha256: Mapped[str | None] = mapped_column(String(64))
    """sha256 of the message it came from (tells a conflicting duplicate's two payloads
    apart); NULL for rows written before the column existed."""
    inserted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class SampleRow(Base):
    """A TALLRec sample: an interaction whose user already had a full history."""

    __tablename__ = "samples"
    __table_args__ = (Index("ix_samples_window_id_timestamp", "window_id", "timestamp"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    item_id: Mapped[str] = mapped_column(String(255), nullable=False)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    label: Mapped[int] = mapped_column(Integer, nullable=False)
    history: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    window_id: Mapped[int | None] = mapped_column(Integer)
    late: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    inserted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    # like counts as of just before this event (lsat.stream.store.collaborative); NULL for
    # samples stored before the stream kept them
    user_likes_before: Mapped[int | None] = mapped_column(Integer)
    user_count_before: Mapped[int | None] = mapped_column(Integer)
    item_likes_before: Mapped[int | None] = mapped_column(Integer)
    item_count_before: Mapped[int | None] = mapped_column(Integer)
    global_likes_before: Mapped[int | None] = mapped_column(BigInteger)
    global_count_before: Mapped[int | None] = mapped_column(BigInteger)


class WindowRow(Base):
    """An event-time window: open while filling, closed with the trigger that closed it."""

    __tablename__ = "windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    start_ts: Mapped[int | None] = mapped_column(BigInteger)
    end_ts: Mapped[int | None] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    trigger: Mapped[str | None] = mapped_column(String(32))
    drift_stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retrain_published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeadLetterRow(Base):
    """A copy of a message sent to the DLQ topic: ``payload`` is the bounded DLQ record (JSON),
    sent again as it is when its source message is delivered again."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        UniqueConstraint(
            "source_topic", "source_partition", "source_offset", name="uq_dead_letters_source"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reason: Mapped[str] = mapped_column(String(64), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="")
    payload: Mapped[str] = mapped_column(Text, nullable=False, default="")
    source_topic: Mapped[str | None] = mapped_column(String(255))
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    inserted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class StreamStateRow(Base):
    """Named JSON state of the worker (the open window), written with the event that changed it."""

    __tablename__ = "stream_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class CatalogueItemRow(Base):
    """The latest catalogue entry per item (from the ``items`` topic)."""

    __tablename__ = "catalogue_items"

    item_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class UserLikeCountRow(Base):
    """How many stored interactions each user has, and how many were likes (updated with the
    interactions, in their transaction; see :mod:`lsat.stream.store.collaborative`)."""

    __tablename__ = "user_like_counts"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    likes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class ItemLikeCountRow(Base):
    """How many stored interactions each item has, and how many were likes."""

    __tablename__ = "item_like_counts"

    item_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    likes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class LikeCountTotalRow(Base):
    """Totals over every stored interaction: one row, ``name = "global"``."""

    __tablename__ = "like_count_totals"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    likes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class PartitionRow(Base):
    """One partition of the ``interactions`` topic: its watermark, when it last committed
    events, its drift detectors' state, and ``seq`` (bumped by every commit that changes the
    partition's state: a worker whose copy has another ``seq`` reloads it)."""

    __tablename__ = "stream_partitions"

    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    watermark: Mapped[int | None] = mapped_column(BigInteger)
    active_s: Mapped[float] = mapped_column(Float, nullable=False)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class PendingSampleRow(Base):
    """A stored sample waiting for its global window (its ``samples`` row has no window yet):
    see :mod:`lsat.stream.global_window`."""

    __tablename__ = "pending_samples"
    __table_args__ = (Index("ix_pending_samples_timestamp", "timestamp"),)

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    late: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    """Arrival order (ties of ``timestamp`` settle in it)."""
