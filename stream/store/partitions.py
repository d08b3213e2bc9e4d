"""Store side of partitioned workers: the lock, partition rows, pending samples, reloads.

Every batch of interactions runs in one transaction that first locks the pipeline state row
(:func:`lock_state`: ``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite ``BEGIN IMMEDIATE``
already holds the database's write lock). So the batches of all workers commit one after the
other, each reading what the previous one committed: the global window, every partition's
watermark, the pending samples and the like counts are never read stale.

A partition's row (:class:`~lsat.stream.store.models.PartitionRow`) carries ``seq``, bumped by
each commit that changed the partition; a worker keeps its in-memory copy (user histories,
detectors) only while its ``seq`` matches, so a partition that moved to another worker and
back is reloaded (:func:`recent_interactions`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.orm import Session

from lsat.data.types import Interaction
from lsat.stream.global_window import PendingSample
from lsat.stream.store.models import (
    InteractionRow,
    PartitionRow,
    PendingSampleRow,
    SampleRow,
    StreamStateRow,
)
from lsat.stream.store.records import StoredPartition

__all__ = [
    "StoredPool",
    "assign_pending",
    "lock_state",
    "partition_rows",
    "pending_count",
    "put_partition",
    "recent_interactions",
]

Insert = Callable[[Table], Any]
PENDING = cast(Table, PendingSampleRow.__table__)
STATE = cast(Table, StreamStateRow.__table__)


def lock_state(session: Session, insert: Insert, name: str) -> dict[str, Any]:
    """The named state row's data, locked until the transaction ends (created as ``{}``)."""
    query = select(StreamStateRow.data).where(StreamStateRow.name == name).with_for_update()
    data = session.execute(query).scalar_one_or_none()
    if data is None:
        now = datetime.now(UTC)
        row = {"name": name, "data": {}, "updated_at": now}
        session.execute(insert(STATE).values(**row).on_conflict_do_nothing())
        data = session.execute(query).scalar_one()
    return dict(data)


def partition_rows(session: Session) -> dict[int, StoredPartition]:
    """Every partition's saved state, by partition."""
    rows = session.scalars(select(PartitionRow))
    return {
        r.partition: StoredPartition(
            r.partition, r.seq, r.watermark, r.active_s, dict(r.state or {})
        )
        for r in rows
    }


def put_partition(session: Session, record: StoredPartition) -> None:
    """Insert or replace one partition's row."""
    row = session.get(PartitionRow, record.partition)
    if row is None:
        row = PartitionRow(partition=record.partition)
        session.add(row)
    row.seq, row.watermark, row.active_s = record.seq, record.watermark, record.active_s
    row.state, row.updated_at = dict(record.state), datetime.now(UTC)


def recent_interactions(
    session: Session, per_user: int, partition: int | None = None
) -> dict[str, list[Interaction]]:
    """Each user's last ``per_user`` stored interactions, oldest first (arrival order); with
    ``partition``, only those consumed from it (partition 0 also takes rows without one)."""
    rows = InteractionRow
    ranked = select(
        rows,
        func.row_number().over(partition_by=rows.user_id, order_by=rows.id.desc()).label("rank"),
    )
    if partition is not None:
        where = rows.source_partition == partition
        ranked = ranked.where(
            or_(where, rows.source_partition.is_(None)) if partition == 0 else where
        )
    sub = ranked.subquery()
    query = select(sub).where(sub.c.rank <= per_user).order_by(sub.c.user_id, sub.c.id)
    history: dict[str, list[Interaction]] = {}
    for row in session.connection().execute(query).mappings():
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


def assign_pending(session: Session, assigned: Iterable[tuple[str, int]]) -> None:
    """Give stored pending samples (event id, window id) their window (rows already taken out
    of ``pending_samples`` by :meth:`StoredPool.take`)."""
    by_window: dict[int, list[str]] = {}
    for event_id, window_id in assigned:
        by_window.setdefault(window_id, []).append(event_id)
    for window_id, event_ids in by_window.items():
        for start in range(0, len(event_ids), 500):
            session.execute(
                update(SampleRow)
                .where(SampleRow.event_id.in_(event_ids[start : start + 500]))
                .values(window_id=window_id)
            )


class StoredPool:
    """The pending samples of the store plus this batch's new ones (a
    :class:`~lsat.stream.global_window.PendingPool`). Stored ones leave ``pending_samples``
    when taken; :meth:`flush` stores the new ones still pending. ``next_seq`` numbers them in
    arrival order (ties of event time settle in it)."""

    def __init__(self, session: Session, insert: Insert, next_seq: int) -> None:
        self._session = session
        self._insert = insert
        self.next_seq = next_seq
        self._new: list[PendingSample] = []
        self.stored_taken: list[PendingSample] = []
        self._stored_min = self._query_min()

    def _query_min(self) -> int | None:
        return cast(int | None, self._session.scalar(select(func.min(PendingSampleRow.timestamp))))

    def add(self, sample: PendingSample) -> None:
        """A new sample of this batch, pending until taken."""
        self._new.append(sample)

    def earliest(self) -> int | None:
        times = [s.ts for s in self._new]
        if self._stored_min is not None:
            times.append(self._stored_min)
        return min(times, default=None)

    def take(self, until_ts: int | None, limit: int) -> list[PendingSample]:
        low = self._stored_min
        if low is None or (until_ts is not None and low > until_ts):
            return self._take_new(until_ts, limit)  # nothing stored is due: no query
        stored: list[PendingSample] = []
        if low is not None and (until_ts is None or low <= until_ts):
            query = select(
                PendingSampleRow.event_id, PendingSampleRow.timestamp, PendingSampleRow.late
            )
            if until_ts is not None:
                query = query.where(PendingSampleRow.timestamp <= until_ts)
            query = query.order_by(PendingSampleRow.timestamp, PendingSampleRow.seq).limit(limit)
            stored = [
                PendingSample(int(t), bool(late), e) for e, t, late in self._session.execute(query)
            ]
        new = [s for s in self._new if until_ts is None or s.ts <= until_ts]
        merged = sorted([*stored, *new], key=lambda s: s.ts)[:limit]  # stable: stored first
        chosen = {id(s) for s in merged}
        taken_stored = [s for s in stored if id(s) in chosen]
        if taken_stored:
            ids = [str(s.ref) for s in taken_stored]
            for start in range(0, len(ids), 500):
                self._session.execute(
                    delete(PendingSampleRow).where(
                        PendingSampleRow.event_id.in_(ids[start : start + 500])
                    )
                )
            self.stored_taken.extend(taken_stored)
            self._stored_min = self._query_min()
        self._new = [s for s in self._new if id(s) not in chosen]
        return merged

    def _take_new(self, until_ts: int | None, limit: int) -> list[PendingSample]:
        """:meth:`take` among this batch's new samples only (the common case: one each)."""
        new = self._new
        if not new:
            return []
        if until_ts is None and len(new) == 1 and limit >= 1:
            self._new = []
            return new
        due = [s for s in new if until_ts is None or s.ts <= until_ts]
        merged = sorted(due, key=lambda s: s.ts)[:limit]
        chosen = {id(s) for s in merged}
        self._new = [s for s in new if id(s) not in chosen]
        return merged

    def flush(self) -> list[PendingSample]:
        """Store the new samples still pending; returns them."""
        rows: list[dict[str, Any]] = []
        for sample in self._new:
            rows.append(
                {
                    "event_id": str(sample.ref),
                    "timestamp": sample.ts,
                    "late": sample.late,
                    "seq": self.next_seq,
                }
            )
            self.next_seq += 1
        if rows:
            self._session.connection().execute(
                self._insert(PENDING).on_conflict_do_nothing(index_elements=["event_id"]), rows
            )
        left, self._new = self._new, []
        return left


def pending_count(session: Session) -> int:
    """How many samples wait for their window."""
    return int(session.scalar(select(func.count()).select_from(PendingSampleRow)) or 0)
