"""``StoreTransaction``: the writes of the stream store inside one DB transaction.

The worker handles a batch of messages in one transaction: each event's interaction is
inserted with ``INSERT … ON CONFLICT (event_id) DO NOTHING``; only when it was new are its
sample, its window's count and the windows it closed written. Named state (the open window)
is saved once at the end. Everything commits together, or nothing does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lsat.data.collaborative import CollaborativeCounts
from lsat.data.types import Interaction, Item
from lsat.stream.errors import StreamError
from lsat.stream.global_window import PendingSample
from lsat.stream.store import partitions
from lsat.stream.store.bulk import BulkInsert
from lsat.stream.store.collaborative import (
    SAMPLE_FEATURE_COLUMNS,
    add_like_counts,
    backfill_like_counts,
    like_counts_of,
)
from lsat.stream.store.membership import member_of
from lsat.stream.store.models import (
    CatalogueItemRow,
    DeadLetterRow,
    InteractionRow,
    SampleRow,
    StreamStateRow,
    WindowRow,
)
from lsat.stream.store.partitions import StoredPool
from lsat.stream.store.records import (
    DeadLetterRecord,
    IngestItem,
    SourcePosition,
    StoredEvent,
    StoredPartition,
    WindowClosure,
)

__all__ = ["StoreError", "StoreTransaction"]

_INTERACTION_COLUMNS = (
    "event_id",
    "user_id",
    "item_id",
    "timestamp",
    "label",
    "rating",
    "source_partition",
    "source_offset",
    "payload_sha256",
)
_SAMPLE_COLUMNS = (
    "event_id",
    "user_id",
    "item_id",
    "timestamp",
    "label",
    "history",
    "window_id",
    "late",
    "source_partition",
    "source_offset",
    *(column for column, _ in SAMPLE_FEATURE_COLUMNS),
)
_NO_FEATURES = (None,) * len(SAMPLE_FEATURE_COLUMNS)
_BULK_INSERTS: dict[Any, tuple[BulkInsert, BulkInsert]] = {}


def _bulk_inserts(insert: Any) -> tuple[BulkInsert, BulkInsert]:
    """The (interactions, samples) bulk inserts for this dialect's ``insert`` (built once)."""
    pair = _BULK_INSERTS.get(insert)
    if pair is None:
        shared = ("inserted_at",)
        interactions = cast(Table, InteractionRow.__table__)
        samples = cast(Table, SampleRow.__table__)
        pair = _BULK_INSERTS[insert] = (
            BulkInsert(interactions, _INTERACTION_COLUMNS, shared, "event_id", insert),
            BulkInsert(samples, _SAMPLE_COLUMNS, shared, "event_id", insert),
        )
    return pair


class StoreError(StreamError):
    """A store operation was asked something impossible (names the window or event)."""


class StoreTransaction:
    """Write operations bound to one open session (see :meth:`SampleStore.transaction`)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        dialect = session.get_bind().dialect.name
        if dialect not in ("postgresql", "sqlite"):
            raise StoreError(f"unsupported database dialect {dialect!r}")
        self._dialect = dialect
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def existing_event_ids(self, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` are already stored (one query per 500 ids)."""
        wanted = list(dict.fromkeys(event_ids))
        found: set[str] = set()
        for condition in member_of(InteractionRow.event_id, wanted, self._dialect):
            found.update(self.session.scalars(select(InteractionRow.event_id).where(condition)))
        return found

    def stored_events(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
        """The stored interactions among ``event_ids``, by id (one query per 500 ids)."""
        wanted = list(dict.fromkeys(event_ids))
        found: dict[str, StoredEvent] = {}
        for condition in member_of(InteractionRow.event_id, wanted, self._dialect):
            rows = self.session.execute(
                select(
                    InteractionRow.event_id,
                    InteractionRow.user_id,
                    InteractionRow.item_id,
                    InteractionRow.timestamp,
                    InteractionRow.label,
                    InteractionRow.rating,
                    InteractionRow.source_partition,
                    InteractionRow.source_offset,
                    InteractionRow.payload_sha256,
                ).where(condition)
            )
            for event_id, user, item, ts, label, rating, partition, offset, sha in rows:
                it = Interaction(user, item, ts, label, rating, event_id)
                where = None if partition is None or offset is None else (partition, offset)
                found[event_id] = StoredEvent(it, where and SourcePosition(*where), sha)
        return found

    def dead_lettered(
        self, topic: str | None, partition: int, offsets: Iterable[int]
    ) -> dict[int, str]:
        """Which of these source offsets were dead-lettered already: offset → stored DLQ record.

        One range query over the unique (topic, partition, offset) index.
        """
        wanted = set(offsets)
        if not wanted:
            return {}
        rows = self.session.execute(
            select(DeadLetterRow.source_offset, DeadLetterRow.payload).where(
                DeadLetterRow.source_topic == topic,
                DeadLetterRow.source_partition == partition,
                DeadLetterRow.source_offset.between(min(wanted), max(wanted)),
            )
        )
        return {offset: payload for offset, payload in rows if offset in wanted}

    def commit_event(self, item: IngestItem, closures: tuple[WindowClosure, ...] = ()) -> bool:
        """Insert one interaction (with its sample, window count and closures) unless stored."""
        if self.existing_event_ids([item.interaction.key()]):
            return False
        self.add_events([item])
        for closure in closures:
            self.close_window(closure)
        return True

    def add_events(self, items: Sequence[IngestItem]) -> None:
        """Bulk-insert new interactions and their samples, count samples into windows and
        the interactions into the like counts (:mod:`lsat.stream.store.collaborative`).

        The caller has checked the ids with :meth:`existing_event_ids` (the worker is the only
        writer of its partitions); ``ON CONFLICT DO NOTHING`` keeps a racing duplicate out.
        """
        if not items:
            return
        interactions: list[tuple[Any, ...]] = []
        samples: list[tuple[Any, ...]] = []
        windows: dict[int, list[int]] = {}
        for item in items:
            it, source = item.interaction, item.source
            partition = source.partition if source else None
            offset = source.offset if source else None
            event_id = it.key()
            interactions.append(
                (
                    event_id,
                    it.user_id,
                    it.item_id,
                    it.timestamp,
                    it.label,
                    it.rating,
                    partition,
                    offset,
                    item.payload_sha256,
                )
            )
            sample = item.sample
            if sample is None:
                continue
            f = sample.collaborative
            samples.append(
                (
                    event_id,
                    sample.user_id,
                    sample.item_id,
                    sample.timestamp,
                    sample.label,
                    {
                        "item_ids": list(sample.history_item_ids),
                        "labels": list(sample.history_labels),
                    },
                    item.window_id,
                    item.late,
                    partition,
                    offset,
                    *(
                        _NO_FEATURES
                        if f is None
                        else (
                            f.user_likes,
                            f.user_count,
                            f.item_likes,
                            f.item_count,
                            f.global_likes,
                            f.global_count,
                        )
                    ),
                )
            )
            if item.window_id is not None:
                windows.setdefault(item.window_id, []).append(sample.timestamp)
        conn = self.session.connection()
        shared = {"inserted_at": datetime.now(UTC)}
        insert_interactions, insert_samples = _bulk_inserts(self._insert)
        insert_interactions.execute(conn, interactions, shared)
        insert_samples.execute(conn, samples, shared)
        add_like_counts(self.session, self._insert, [item.interaction for item in items])
        for window_id, timestamps in windows.items():
            row = self._window_row(window_id)
            row.count += len(timestamps)
            low, high = min(timestamps), max(timestamps)
            row.start_ts = low if row.start_ts is None else min(row.start_ts, low)
            row.end_ts = high if row.end_ts is None else max(row.end_ts, high)

    def backfill_like_counts(self) -> bool:
        """Count the stored interactions into the like-count tables once (a store created
        before they existed); ``False`` when they were already kept."""
        return backfill_like_counts(self.session, self._insert)

    def _window_row(self, window_id: int) -> WindowRow:
        row = self.session.get(WindowRow, window_id)
        if row is None:
            row = WindowRow(id=window_id, status="open", count=0, opened_at=datetime.now(UTC))
            self.session.add(row)
        return row

    def open_window(self, window_id: int, start_ts: int | None = None) -> WindowRow:
        """The window row, created open when missing."""
        row = self._window_row(window_id)
        if row.start_ts is None:
            row.start_ts = start_ts
        return row

    def close_window(self, closure: WindowClosure) -> WindowRow:
        """Mark a window closed (idempotent: the first close wins)."""
        row = self._window_row(closure.window_id)
        if row.status != "closed":
            row.status = "closed"
            row.trigger = closure.trigger
            row.drift_stats = dict(closure.drift_stats)
            row.closed_at = datetime.now(UTC)
            if closure.end_ts is not None:
                end = closure.end_ts
                row.end_ts = end if row.end_ts is None else max(row.end_ts, end)
        return row

    # --- partitioned workers (lsat.stream.store.partitions) ------------------------------------

    def lock_state(self, name: str) -> dict[str, Any]:
        """The named state, locked until this transaction ends (``{}`` when new): the lock every
        worker's batch takes first, so batches commit one after the other."""
        return partitions.lock_state(self.session, self._insert, name)

    def partitions(self) -> dict[int, StoredPartition]:
        """Every partition's saved state."""
        return partitions.partition_rows(self.session)

    def put_partition(self, record: StoredPartition) -> None:
        """Save one partition's state."""
        partitions.put_partition(self.session, record)

    def pending_pool(self, next_seq: int) -> StoredPool:
        """The stored pending samples, to settle with this batch's (see
        :class:`~lsat.stream.store.partitions.StoredPool`)."""
        return StoredPool(self.session, self._insert, next_seq)

    def assign_pending(self, assigned: Sequence[tuple[PendingSample, int]]) -> None:
        """Give stored pending samples their window and count them into it."""
        partitions.assign_pending(self.session, ((str(s.ref), w) for s, w in assigned))
        for sample, window_id in assigned:
            row = self._window_row(window_id)
            row.count += 1
            row.start_ts = sample.ts if row.start_ts is None else min(row.start_ts, sample.ts)
            row.end_ts = sample.ts if row.end_ts is None else max(row.end_ts, sample.ts)

    def recent_interactions(
        self, per_user: int, partition: int | None = None
    ) -> dict[str, list[Interaction]]:
        """Each user's last ``per_user`` interactions (of one partition), oldest first."""
        return partitions.recent_interactions(self.session, per_user, partition)

    def like_counts_of(self, users: Iterable[str], items: Iterable[str]) -> CollaborativeCounts:
        """The committed like counts of these users and items, and the totals."""
        return like_counts_of(self.session, users, items)

    def item_extras(self, item_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The catalogue's extra fields (e.g. ``genres``) of the known ``item_ids``."""
        wanted = sorted(set(item_ids))
        found: dict[str, dict[str, Any]] = {}
        for condition in member_of(CatalogueItemRow.item_id, wanted, self._dialect):
            query = select(CatalogueItemRow.item_id, CatalogueItemRow.extra).where(condition)
            found.update({str(k): dict(v or {}) for k, v in self.session.execute(query)})
        return found

    def put_state(self, name: str, data: Mapping[str, Any]) -> None:
        """Save a named JSON state."""
        row = self.session.get(StreamStateRow, name)
        if row is None:
            self.session.add(
                StreamStateRow(name=name, data=dict(data), updated_at=datetime.now(UTC))
            )
        else:
            row.data = dict(data)
            row.updated_at = datetime.now(UTC)

    def add_dead_letter(self, record: DeadLetterRecord) -> bool:
        """Keep a copy of a DLQ message (idempotent by source position); new?"""
        source = record.source
        result = self.session.execute(
            self._insert(DeadLetterRow)
            .values(
                reason=record.reason,
                detail=record.detail,
                payload=record.payload,
                source_topic=source.topic if source else None,
                source_partition=source.partition if source else None,
                source_offset=source.offset if source else None,
                inserted_at=datetime.now(UTC),
            )
            .on_conflict_do_nothing()
            .returning(DeadLetterRow.id)
        )
        return result.scalar_one_or_none() is not None

    def upsert_item(self, item: Item) -> None:
        """Insert or replace a catalogue entry."""
        row = self.session.get(CatalogueItemRow, item.item_id)
        if row is None:
            self.session.add(
                CatalogueItemRow(item_id=item.item_id, title=item.title, extra=dict(item.extra))
            )
        else:
            row.title, row.extra = item.title, dict(item.extra)
            row.updated_at = datetime.now(UTC)
