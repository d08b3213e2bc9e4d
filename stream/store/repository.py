"""``SampleStore``: the idempotent, crash-safe repository behind the stream worker.

Every write that belongs together runs in one transaction: an interaction is inserted with
``INSERT … ON CONFLICT (event_id) DO NOTHING``; only when it was new are its sample stored and
its window's count and end time updated. A re-delivered message therefore changes nothing, and a
crash before commit leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import sessionmaker

from lsat.core.db import READ_ONLY_OPTION, create_db_engine
from lsat.data.collaborative import CollaborativeCounts
from lsat.data.types import HISTORY_LENGTH, CollaborativeFeatures, Interaction, Item, Sample
from lsat.stream.store.collaborative import (
    candidate_samples,
    features_now,
    features_of,
    like_counts_kept,
    load_like_counts,
)
from lsat.stream.store.history import liked_unseen_items, user_history
from lsat.stream.store.models import (
    CatalogueItemRow,
    DeadLetterRow,
    InteractionRow,
    SampleRow,
    StreamStateRow,
    WindowRow,
)
from lsat.stream.store.partitions import partition_rows, pending_count, recent_interactions
from lsat.stream.store.records import (
    DeadLetterRecord,
    IngestItem,
    SourcePosition,
    StoredPartition,
    StoredWindow,
    WindowClosure,
)
from lsat.stream.store.schema import upgrade_store
from lsat.stream.store.transaction import StoreTransaction

__all__ = ["SampleStore"]


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
        collaborative=features_of(row),
    )


class SampleStore:
    """Samples, windows and dead letters in SQLite or PostgreSQL (by SQLAlchemy URL)."""

    def __init__(self, url: str, echo: bool = False, create: bool = True) -> None:
        self.engine: Engine = create_db_engine(url, echo=echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        reader = self.engine.execution_options(**{READ_ONLY_OPTION: True})
        self._reads = sessionmaker(reader, expire_on_commit=False)  # no write lock (SQLite)
        self._dialect = self.engine.dialect.name
        if create:
            self.create_schema()

    def create_schema(self) -> None:
        """Create or migrate the tables (:func:`~lsat.stream.store.schema.upgrade_store`); fill
        the like counts of a store created before they were kept."""
        upgrade_store(self.engine)
        with self._reads() as session:
            kept = like_counts_kept(session)
        if not kept:
            with self.transaction() as tx:
                tx.backfill_like_counts()

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """One transaction for several writes; commits on success, rolls back on error."""
        with self._sessions.begin() as session:
            yield StoreTransaction(session)

    # --- writes (each its own transaction) ----------------------------------------------------

    def ingest(self, item: IngestItem) -> bool:
        """Store one interaction (and sample); ``True`` when it was new, ``False`` if seen."""
        return self.ingest_many([item])[0]

    def ingest_many(self, items: Sequence[IngestItem]) -> list[bool]:
        """Store several interactions in one transaction; per item, whether it was new."""
        with self.transaction() as tx:
            existing = tx.existing_event_ids(item.interaction.key() for item in items)
            new: list[IngestItem] = []
            results = []
            for item in items:
                key = item.interaction.key()
                results.append(key not in existing)
                if key not in existing:
                    existing.add(key)
                    new.append(item)
            tx.add_events(new)
            return results

    def commit_event(
        self,
        item: IngestItem,
        state: Mapping[str, Mapping[str, Any]] | None = None,
        closures: Sequence[WindowClosure] = (),
    ) -> bool:
        """Store one event with everything it changed, atomically; ``False`` if already stored.

        ``state`` (named JSON blobs, e.g. the open window) and ``closures`` are written only
        when the interaction is new, in the same transaction.
        """
        with self.transaction() as tx:
            if not tx.commit_event(item, tuple(closures)):
                return False
            for name, data in (state or {}).items():
                tx.put_state(name, data)
            return True

    def apply_state(
        self, state: Mapping[str, Mapping[str, Any]], closures: Sequence[WindowClosure] = ()
    ) -> None:
        """Close windows and save named state in one transaction (e.g. a manual close)."""
        with self.transaction() as tx:
            for closure in closures:
                tx.close_window(closure)
            for name, data in state.items():
                tx.put_state(name, data)

    def put_state(self, name: str, data: Mapping[str, Any]) -> None:
        """Save a named JSON state on its own."""
        with self.transaction() as tx:
            tx.put_state(name, data)

    def open_window(self, window_id: int, start_ts: int | None = None) -> StoredWindow:
        """Create window ``window_id`` as open (idempotent: an existing one is returned)."""
        with self.transaction() as tx:
            row = tx.open_window(window_id, start_ts)
            tx.session.flush()
            return _window(row)

    def close_window(
        self,
        window_id: int,
        trigger: str,
        drift_stats: dict[str, Any] | None = None,
        end_ts: int | None = None,
    ) -> StoredWindow:
        """Mark a window closed by ``trigger`` (idempotent: closing twice keeps the first)."""
        with self.transaction() as tx:
            row = tx.close_window(WindowClosure(window_id, trigger, end_ts, drift_stats or {}))
            tx.session.flush()
            return _window(row)

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
        with self.transaction() as tx:
            return tx.add_dead_letter(record)

    def upsert_item(self, item: Item) -> None:
        """Insert or replace a catalogue entry."""
        with self.transaction() as tx:
            tx.upsert_item(item)

    # --- reads --------------------------------------------------------------------------------

    def load_state(self, name: str) -> dict[str, Any] | None:
        """A named JSON state, or ``None``."""
        with self._reads() as session:
            row = session.get(StreamStateRow, name)
            return dict(row.data) if row else None

    def partitions(self) -> dict[int, StoredPartition]:
        """Every partition's saved state (watermark, last commit, detectors), by partition."""
        with self._reads() as session:
            return partition_rows(session)

    def pending_samples(self) -> int:
        """How many samples wait for their global window."""
        with self._reads() as session:
            return pending_count(session)

    def like_counts(self) -> CollaborativeCounts:
        """The like counts of every stored interaction (co-like off): the worker's cache."""
        with self._reads() as session:
            return load_like_counts(session)

    def collaborative_features(
        self, user_id: str, item_ids: Sequence[str]
    ) -> dict[str, CollaborativeFeatures]:
        """Per item, the features an event ``(user_id, item)`` would carry now: the counts
        over every stored interaction, as a stored sample's are over those before it
        (``co_like`` is 0.0; an unknown user or item counts 0). For live scoring."""
        with self._reads() as session:
            return features_now(session, user_id, item_ids)

    def candidate_samples(
        self,
        user_id: str,
        item_ids: Sequence[str],
        length: int = HISTORY_LENGTH,
        timestamp: int = 0,
    ) -> list[Sample]:
        """One :class:`Sample` per item to score for ``user_id`` now (label unknown: 0), with
        the user's stored history and :meth:`collaborative_features`, from one read: the
        sample the stream would store for that event next, so
        :func:`lsat.data.collaborative.feature_columns` gives live scoring the same features
        as training."""
        with self._reads() as session:
            return candidate_samples(session, user_id, item_ids, length, timestamp)

    def catalogue(self) -> dict[str, Item]:
        """Every catalogue item by id."""
        with self._reads() as session:
            rows = session.scalars(select(CatalogueItemRow))
            return {r.item_id: Item(r.item_id, r.title, dict(r.extra or {})) for r in rows}

    def user_history(self, user_id: str, length: int) -> tuple[tuple[str, int], ...]:
        """``user_id``'s last ``length`` stored ``(item id, label)`` pairs, in arrival order."""
        with self._reads() as session:
            return user_history(session, user_id, length)

    def liked_unseen_items(self, user_id: str, count: int, recent: int) -> list[str]:
        """Up to ``count`` items of the latest ``recent`` interactions that ``user_id`` never
        touched, most liked first (ties: more interactions, then item id)."""
        with self._reads() as session:
            return liked_unseen_items(session, user_id, count, recent)

    def window(self, window_id: int) -> StoredWindow | None:
        """One window, or ``None``."""
        with self._reads() as session:
            row = session.get(WindowRow, window_id)
            return _window(row) if row else None

    def open_windows(self) -> list[StoredWindow]:
        """Windows still open, oldest first."""
        with self._reads() as session:
            rows = session.scalars(
                select(WindowRow).where(WindowRow.status == "open").order_by(WindowRow.id)
            )
            return [_window(r) for r in rows]

    def last_closed_windows(self, limit: int = 1) -> list[StoredWindow]:
        """The ``limit`` most recently closed windows, newest first."""
        with self._reads() as session:
            rows = session.scalars(
                select(WindowRow)
                .where(WindowRow.status == "closed")
                .order_by(WindowRow.id.desc())
                .limit(limit)
            )
            return [_window(r) for r in rows]

    def unpublished_closed_windows(self) -> list[StoredWindow]:
        """Closed windows whose retrain request was not confirmed published (crash recovery)."""
        with self._reads() as session:
            rows = session.scalars(
                select(WindowRow)
                .where(WindowRow.status == "closed", WindowRow.retrain_published_at.is_(None))
                .order_by(WindowRow.id)
            )
            return [_window(r) for r in rows]

    def window_samples(self, window_id: int, include_late: bool = True) -> list[Sample]:
        """Samples of one window ordered by event time (then arrival)."""
        with self._reads() as session:
            query = select(SampleRow).where(SampleRow.window_id == window_id)
            if not include_late:
                query = query.where(SampleRow.late.is_(False))
            rows = session.scalars(query.order_by(SampleRow.timestamp, SampleRow.id))
            return [_sample(r) for r in rows]

    def samples_between(self, start_ts: int, end_ts: int) -> list[Sample]:
        """Samples with ``start_ts <= timestamp < end_ts`` ordered by event time."""
        with self._reads() as session:
            rows = session.scalars(
                select(SampleRow)
                .where(SampleRow.timestamp >= start_ts, SampleRow.timestamp < end_ts)
                .order_by(SampleRow.timestamp, SampleRow.id)
            )
            return [_sample(r) for r in rows]

    def recent_interactions(
        self, per_user: int, partition: int | None = None
    ) -> dict[str, list[Interaction]]:
        """Each user's last ``per_user`` stored interactions, oldest → newest (arrival order);
        with ``partition``, those consumed from that partition.

        This is how the worker rebuilds per-user history after a restart or a rebalance.
        """
        with self._reads() as session:
            return recent_interactions(session, per_user, partition)

    def count_samples(self, window_id: int | None = None) -> int:
        """How many samples are stored (in one window when given)."""
        query = select(func.count()).select_from(SampleRow)
        if window_id is not None:
            query = query.where(SampleRow.window_id == window_id)
        with self._reads() as session:
            return int(session.scalar(query) or 0)

    def count_interactions(self) -> int:
        """How many distinct valid interactions are stored."""
        with self._reads() as session:
            return int(session.scalar(select(func.count()).select_from(InteractionRow)) or 0)

    def sample_event_ids(self) -> list[str]:
        """Every stored sample's event id (duplicates would show up twice; they cannot)."""
        with self._reads() as session:
            return list(session.scalars(select(SampleRow.event_id).order_by(SampleRow.id)))

    def dead_letters(self) -> list[DeadLetterRecord]:
        """The stored DLQ copies, oldest first."""
        with self._reads() as session:
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
