"""``SampleStore``: the idempotent, crash-safe repository behind the stream worker.

Every write that belongs together runs in one transaction: an interaction is inserted with
``INSERT … ON CONFLICT (event_id) DO NOTHING``; only when it was new are its sample stored and
its window's count and end time updated. A re-delivered message therefore changes nothing, and a
crash before commit leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from lsat.data.types import Interaction, Item, Sample
from stream.errors import StreamError
from stream.store.engine import make_engine
from stream.store.models import (
    Base,
    CatalogueItemRow,
    DeadLetterRow,
    InteractionRow,
    SampleRow,
    StreamStateRow,
    WindowRow,
)
from stream.store.records import DeadLetterRecord, SourcePosition, StoredWindow, WindowClosure

__all__ = ["IngestItem", "SampleStore", "StoreError"]


class StoreError(StreamError):
    """A store operation was asked something impossible (names the window or event)."""


@dataclass(frozen=True, slots=True)
class IngestItem:
    """One valid interaction to store, with its sample (``None`` when history was too short)."""

    interaction: Interaction
    sample: Sample | None = None
    window_id: int | None = None
    late: bool = False
    source: SourcePosition | None = None


def _window(row: WindowRow) -> StoredWindow:
    return StoredWindow(
        id=row.id,
        status=row.status,
        start_ts=row.start_ts,
        end_ts=row.end_ts,
        count=row.count,
        trigger=row.trigger,
        drift_stats=dict(row.drift_stats or {}),
        closed_at=row.closed_at,
        retrain_published=row.retrain_published_at is not None,
    )


def _sample(row: SampleRow) -> Sample:
    history = row.history or {}
    return Sample(
        event_id=row.event_id,
        user_id=row.user_id,
        item_id=row.item_id,
        timestamp=row.timestamp,
        label=row.label,
        history_item_ids=tuple(history.get("item_ids", ())),
        history_labels=tuple(int(x) for x in history.get("labels", ())),
    )


class SampleStore:
    """Samples, windows and dead letters in SQLite or PostgreSQL (by SQLAlchemy URL)."""

    def __init__(self, url: str, echo: bool = False, create: bool = True) -> None:
        self.engine: Engine = make_engine(url, echo=echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._dialect = self.engine.dialect.name
        if create:
            self.create_schema()

    def create_schema(self) -> None:
        """Create the tables that do not exist yet."""
        Base.metadata.create_all(self.engine)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self._dialect == "postgresql" else sqlite
        if self._dialect not in ("postgresql", "sqlite"):
            raise StoreError(f"unsupported database dialect {self._dialect!r}")
        return dialect.insert(table)

    # --- writes -------------------------------------------------------------------------------

    def ingest(self, item: IngestItem) -> bool:
        """Store one interaction (and sample); ``True`` when it was new, ``False`` if seen."""
        return self.ingest_many([item])[0]

    def ingest_many(self, items: Sequence[IngestItem]) -> list[bool]:
        """Store several interactions in one transaction; per item, whether it was new."""
        results: list[bool] = []
        with self._sessions.begin() as session:
            for item in items:
                results.append(self._ingest_one(session, item))
        return results

    def commit_event(
        self,
        item: IngestItem,
        state: Mapping[str, Mapping[str, Any]] | None = None,
        closures: Sequence[WindowClosure] = (),
    ) -> bool:
        """Store one event with everything it changed, atomically; ``False`` if already stored.

        ``state`` (named JSON blobs, e.g. the open window) and ``closures`` are written only
        when the interaction is new, in the same transaction: a re-delivered event changes
        nothing, and a crash before commit leaves no trace.
        """
        with self._sessions.begin() as session:
            if not self._ingest_one(session, item):
                return False
            for closure in closures:
                self._close(session, closure)
            for name, data in (state or {}).items():
                self._put_state(session, name, data)
            return True

    def _put_state(self, session: Session, name: str, data: Mapping[str, Any]) -> None:
        row = session.get(StreamStateRow, name)
        if row is None:
            session.add(StreamStateRow(name=name, data=dict(data)))
        else:
            row.data = dict(data)
            row.updated_at = datetime.now(UTC)

    def put_state(self, name: str, data: Mapping[str, Any]) -> None:
        """Save a named JSON state on its own (e.g. after a manual window close)."""
        with self._sessions.begin() as session:
            self._put_state(session, name, data)

    def load_state(self, name: str) -> dict[str, Any] | None:
        """A named JSON state, or ``None``."""
        with self._sessions() as session:
            row = session.get(StreamStateRow, name)
            return dict(row.data) if row else None

    def upsert_item(self, item: Item) -> None:
        """Insert or replace a catalogue entry."""
        with self._sessions.begin() as session:
            row = session.get(CatalogueItemRow, item.item_id)
            if row is None:
                session.add(
                    CatalogueItemRow(item_id=item.item_id, title=item.title, extra=dict(item.extra))
                )
            else:
                row.title, row.extra, row.updated_at = (
                    item.title,
                    dict(item.extra),
                    datetime.now(UTC),
                )

    def catalogue(self) -> dict[str, Item]:
        """Every catalogue item by id."""
        with self._sessions() as session:
            rows = session.scalars(select(CatalogueItemRow))
            return {r.item_id: Item(r.item_id, r.title, dict(r.extra or {})) for r in rows}

    def _ingest_one(self, session: Session, item: IngestItem) -> bool:
        it, source = item.interaction, item.source
        event_id = it.key()
        inserted = session.execute(
            self._insert(InteractionRow)
            .values(
                event_id=event_id,
                user_id=it.user_id,
                item_id=it.item_id,
                timestamp=it.timestamp,
                label=it.label,
                rating=it.rating,
                source_partition=source.partition if source else None,
                source_offset=source.offset if source else None,
                inserted_at=datetime.now(UTC),
            )
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(InteractionRow.id)
        )
        if inserted.scalar_one_or_none() is None:
            return False
        if item.sample is None:
            return True
        sample = item.sample
        session.add(
            SampleRow(
                event_id=event_id,
                user_id=sample.user_id,
                item_id=sample.item_id,
                timestamp=sample.timestamp,
                label=sample.label,
                history={
                    "item_ids": list(sample.history_item_ids),
                    "labels": list(sample.history_labels),
                },
                window_id=item.window_id,
                late=item.late,
                source_partition=source.partition if source else None,
                source_offset=source.offset if source else None,
            )
        )
        if item.window_id is not None:
            self._count_into_window(session, item.window_id, sample.timestamp)
        return True

    def _count_into_window(self, session: Session, window_id: int, timestamp: int) -> None:
        row = session.get(WindowRow, window_id, with_for_update=self._dialect == "postgresql")
        if row is None:
            row = WindowRow(id=window_id, status="open", start_ts=timestamp, count=0)
            session.add(row)
        row.count += 1
        row.start_ts = timestamp if row.start_ts is None else min(row.start_ts, timestamp)
        row.end_ts = timestamp if row.end_ts is None else max(row.end_ts, timestamp)
        session.flush()

    def open_window(self, window_id: int, start_ts: int | None = None) -> StoredWindow:
        """Create window ``window_id`` as open (idempotent: an existing one is returned)."""
        with self._sessions.begin() as session:
            row = session.get(WindowRow, window_id)
            if row is None:
                row = WindowRow(id=window_id, status="open", start_ts=start_ts, count=0)
                session.add(row)
                session.flush()
            return _window(row)

    def close_window(
        self,
        window_id: int,
        trigger: str,
        drift_stats: dict[str, Any] | None = None,
        end_ts: int | None = None,
    ) -> StoredWindow:
        """Mark a window closed by ``trigger`` (idempotent: closing twice keeps the first)."""
        with self._sessions.begin() as session:
            return _window(
                self._close(session, WindowClosure(window_id, trigger, end_ts, drift_stats or {}))
            )

    def _close(self, session: Session, closure: WindowClosure) -> WindowRow:
        row = session.get(WindowRow, closure.window_id)
        if row is None:
            row = WindowRow(id=closure.window_id, status="open", count=0)
            session.add(row)
        if row.status != "closed":
            row.status = "closed"
            row.trigger = closure.trigger
            row.drift_stats = dict(closure.drift_stats)
            row.closed_at = datetime.now(UTC)
            if closure.end_ts is not None:
                end = closure.end_ts
                row.end_ts = end if row.end_ts is None else max(row.end_ts, end)
        session.flush()
        return row

    def mark_retrain_published(self, window_id: int) -> None:
        """Record that the retrain request of a closed window reached the broker."""
        with self._sessions.begin() as session:
            session.execute(
                update(WindowRow)
                .where(WindowRow.id == window_id)
                .values(retrain_published_at=datetime.now(UTC))
            )

    def add_dead_letter(self, record: DeadLetterRecord) -> bool:
        """Keep a copy of a DLQ message (idempotent by source position); ``True`` if new."""
        source = record.source
        with self._sessions.begin() as session:
            result = session.execute(
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

    # --- reads --------------------------------------------------------------------------------

    def window(self, window_id: int) -> StoredWindow | None:
        """One window, or ``None``."""
        with self._sessions() as session:
            row = session.get(WindowRow, window_id)
            return _window(row) if row else None

    def open_windows(self) -> list[StoredWindow]:
        """Windows still open, oldest first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(WindowRow).where(WindowRow.status == "open").order_by(WindowRow.id)
            )
            return [_window(r) for r in rows]

    def last_closed_windows(self, limit: int = 1) -> list[StoredWindow]:
        """The ``limit`` most recently closed windows, newest first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(WindowRow)
                .where(WindowRow.status == "closed")
                .order_by(WindowRow.id.desc())
                .limit(limit)
            )
            return [_window(r) for r in rows]

    def unpublished_closed_windows(self) -> list[StoredWindow]:
        """Closed windows whose retrain request was not confirmed published (crash recovery)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(WindowRow)
                .where(WindowRow.status == "closed", WindowRow.retrain_published_at.is_(None))
                .order_by(WindowRow.id)
            )
            return [_window(r) for r in rows]

    def window_samples(self, window_id: int, include_late: bool = True) -> list[Sample]:
        """Samples of one window ordered by event time (then arrival)."""
        with self._sessions() as session:
            query = select(SampleRow).where(SampleRow.window_id == window_id)
            if not include_late:
                query = query.where(SampleRow.late.is_(False))
            rows = session.scalars(query.order_by(SampleRow.timestamp, SampleRow.id))
            return [_sample(r) for r in rows]

    def samples_between(self, start_ts: int, end_ts: int) -> list[Sample]:
        """Samples with ``start_ts <= timestamp < end_ts`` ordered by event time."""
        with self._sessions() as session:
            rows = session.scalars(
                select(SampleRow)
                .where(SampleRow.timestamp >= start_ts, SampleRow.timestamp < end_ts)
                .order_by(SampleRow.timestamp, SampleRow.id)
            )
            return [_sample(r) for r in rows]

    def recent_interactions(self, per_user: int) -> dict[str, list[Interaction]]:
        """Each user's last ``per_user`` stored interactions, oldest → newest (arrival order).

        This is how the worker rebuilds per-user history after a restart.
        """
        ranked = select(
            InteractionRow,
            func.row_number()
            .over(partition_by=InteractionRow.user_id, order_by=InteractionRow.id.desc())
            .label("rank"),
        ).subquery()
        query = (
            select(ranked).where(ranked.c.rank <= per_user).order_by(ranked.c.user_id, ranked.c.id)
        )
        history: dict[str, list[Interaction]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                history.setdefault(row["user_id"], []).append(
                    Interaction(
                        user_id=row["user_id"],
                        item_id=row["item_id"],
                        timestamp=row["timestamp"],
                        label=row["label"],
                        rating=row["rating"],
                        event_id=row["event_id"],
                    )
                )
        return history

    def count_samples(self, window_id: int | None = None) -> int:
        """How many samples are stored (in one window when given)."""
        query = select(func.count()).select_from(SampleRow)
        if window_id is not None:
            query = query.where(SampleRow.window_id == window_id)
        with self._sessions() as session:
            return int(session.scalar(query) or 0)

    def count_interactions(self) -> int:
        """How many distinct valid interactions are stored."""
        with self._sessions() as session:
            return int(session.scalar(select(func.count()).select_from(InteractionRow)) or 0)

    def sample_event_ids(self) -> list[str]:
        """Every stored sample's event id (duplicates would show up twice; they cannot)."""
        with self._sessions() as session:
            return list(session.scalars(select(SampleRow.event_id).order_by(SampleRow.id)))

    def dead_letters(self) -> list[DeadLetterRecord]:
        """The stored DLQ copies, oldest first."""
        with self._sessions() as session:
            rows = session.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id))
            return [
                DeadLetterRecord(
                    reason=r.reason,
                    detail=r.detail,
                    payload=r.payload,
                    source=SourcePosition(r.source_partition, r.source_offset, r.source_topic)
                    if r.source_partition is not None and r.source_offset is not None
                    else None,
                )
                for r in rows
            ]
