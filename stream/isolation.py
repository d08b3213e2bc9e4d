"""Per-record outcomes, failure classes and conflict descriptions for the worker's consumers.

Invariant: every consumed offset ends as exactly one :data:`Outcome` — ``stored``,
``dead_lettered`` or ``duplicate`` — before the consumer's handler returns (and so before its
offset is committed). :class:`Handled` carries those outcomes next to the messages to send, so tests
can check the invariant offset by offset.

A failure is either the record's fault (bad data the validation missed, a bug hit by one
record): that record is dead-lettered as ``internal_error:<class>`` and its batch goes on; or
the store's (:func:`is_store_failure`: the database is down, locked or gone): then nothing is
dead-lettered, :class:`StoreUnavailable` is raised and the consumer retries the same batch later.

>>> from lsat.data.types import Interaction
>>> conflict_detail(Interaction("u", "i", 5, 1, 4.0, "e1"), Interaction("u", "i", 5, 0, 2.0))
"event 'e1' is stored with different content: label 1 → 0, rating 4.0 → 2.0"
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from sqlalchemy import exc as sa_exc

from lsat.data.types import Interaction
from lsat.stream.dead_letter import internal_error_code
from lsat.stream.errors import StreamError
from lsat.stream.store import SampleStore, SourcePosition

if TYPE_CHECKING:
    from lsat.stream.app import Outgoing
    from lsat.stream.dlq import DeadLetterWriter
    from lsat.stream.metrics import StreamMetrics

__all__ = [
    "OUTCOMES",
    "Handled",
    "IsolatedHandler",
    "Outcome",
    "Record",
    "RecordOutcome",
    "StoreUnavailable",
    "conflict_detail",
    "content",
    "is_store_failure",
]

log = logging.getLogger(__name__)

Outcome = Literal["stored", "dead_lettered", "duplicate"]
OUTCOMES: tuple[Outcome, ...] = ("stored", "dead_lettered", "duplicate")


Record = tuple[bytes | None, SourcePosition]
"""A consumed message: its value (``None`` for a tombstone) and where it came from."""


class StoreUnavailable(StreamError):
    """The store failed (not the record): retry the whole batch later, dead-letter nothing."""


class RecordOutcome(NamedTuple):
    """What became of one consumed record; ``reason`` is the DLQ reason code (else "").

    (A named tuple: one is made per record, and a frozen dataclass costs twice as much.)
    """

    source: SourcePosition
    outcome: Outcome
    reason: str = ""


@dataclass(slots=True)
class Handled:
    """The result of handling a batch: messages to send after the commit, one outcome per
    record (in batch order).

    Kept as parallel lists (no object per record on the fast path); :attr:`outcomes` builds the
    :class:`RecordOutcome` list on demand.

    >>> h = Handled()
    >>> h.add(SourcePosition(0, 7), "stored"); h.add(SourcePosition(0, 8), "dead_lettered", "x")
    >>> [(o.source.offset, o.outcome, o.reason) for o in h.outcomes], h.count("stored")
    ([(7, 'stored', ''), (8, 'dead_lettered', 'x')], 1)
    """

    outgoing: list[Outgoing] = field(default_factory=list)
    sources: list[SourcePosition] = field(default_factory=list)
    kinds: list[Outcome] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)
    """DLQ reason code by record index, for the ``dead_lettered`` records."""

    def add(self, source: SourcePosition, outcome: Outcome, reason: str = "") -> None:
        """Record one record's outcome (``reason``: the DLQ reason of a dead-lettered one)."""
        if outcome == "dead_lettered":
            self.reasons[len(self.kinds)] = reason
        self.sources.append(source)
        self.kinds.append(outcome)

    def count(self, outcome: Outcome) -> int:
        """How many records ended as ``outcome``."""
        return self.kinds.count(outcome)

    @property
    def outcomes(self) -> list[RecordOutcome]:
        """One :class:`RecordOutcome` per record, in batch order."""
        reasons = self.reasons
        return [
            RecordOutcome(source, kind, reasons.get(n, ""))
            for n, (source, kind) in enumerate(zip(self.sources, self.kinds, strict=True))
        ]

    def extend(self, other: Handled) -> Handled:
        """Append another batch's messages and outcomes; returns ``self``."""
        start = len(self.kinds)
        self.outgoing.extend(other.outgoing)
        self.sources.extend(other.sources)
        self.kinds.extend(other.kinds)
        self.reasons.update({start + n: reason for n, reason in other.reasons.items()})
        return self


_STORE_FAILURES = (
    sa_exc.OperationalError,  # locked, disk I/O, connection lost, server shutting down
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # connection pool exhausted
    sa_exc.ResourceClosedError,
    ConnectionError,
    TimeoutError,
    MemoryError,
)


def is_store_failure(error: BaseException) -> bool:
    """Whether ``error`` says the store (not the record) failed: retry, never dead-letter.

    >>> is_store_failure(sa_exc.OperationalError("INSERT", {}, Exception("database is locked")))
    True
    >>> is_store_failure(UnicodeEncodeError("utf-8", "\\ud800", 0, 1, "surrogates"))
    False
    """
    if isinstance(error, (StoreUnavailable, *_STORE_FAILURES)):
        return True
    return isinstance(error, sa_exc.DBAPIError) and bool(error.connection_invalidated)


def content(interaction: Interaction) -> tuple[object, ...]:
    """What must match for a second delivery of an event id to be an exact duplicate."""
    it = interaction
    return (it.user_id, it.item_id, it.timestamp, it.label, it.rating)


_FIELDS = ("user_id", "item_id", "timestamp", "label", "rating")


def conflict_detail(stored: Interaction, new: Interaction) -> str:
    """Which fields differ between the stored event and a new one with the same id."""
    changes = [
        f"{name} {old!r} → {now!r}"
        for name, old, now in zip(_FIELDS, content(stored), content(new), strict=True)
        if old != now
    ]
    return f"event {stored.key()!r} is stored with different content: {', '.join(changes)}"


class IsolatedHandler:
    """The failure handling every consumer of the worker shares (mixed into the processor).

    A subclass provides ``store``, ``metrics``, ``dlq`` (a
    :class:`~lsat.stream.dlq.DeadLetterWriter`) and ``_restore()`` (rebuild all in-memory
    state from the store), and runs each batch through :meth:`_isolated`.
    """

    store: SampleStore
    metrics: StreamMetrics
    dlq: DeadLetterWriter
    _stale: bool = False

    def _restore(self) -> None:
        raise NotImplementedError

    def _refresh(self) -> None:
        """Restore from the store if a failure left the in-memory state unknown."""
        if not self._stale:
            return
        try:
            self._restore()
        except Exception as error:
            self.metrics.store_failures.inc()
            raise StoreUnavailable(f"cannot restore state from the store: {error!r}") from error
        self._stale = False

    def _recover(self, error: Exception, what: str) -> None:
        """After a failed transaction: restore; raise :class:`StoreUnavailable` if the store
        (not the record) failed."""
        store_failed = is_store_failure(error)
        if store_failed:
            log.warning("store failed on %s: %r", what, error)
        else:
            log.error("%s failed (%r)", what, error, exc_info=error)
        self._stale = True
        self._refresh()
        if store_failed:
            self.metrics.store_failures.inc()
            raise StoreUnavailable(f"store failed on {what}: {error!r}") from error

    def _isolated(
        self, batch: Sequence[Record], once: Callable[[Sequence[Record]], Handled], kind: str
    ) -> Handled:
        """``once(batch)``; if it fails, ``once`` per record; a record failing alone is
        dead-lettered as an internal error."""
        self._refresh()
        try:
            return once(batch)
        except Exception as error:
            self._recover(error, f"batch of {len(batch)} {kind}")
            if len(batch) == 1:
                return self._internal_error(batch[0], error, kind)
        handled = Handled()
        for record in batch:
            try:
                handled.extend(once([record]))
            except Exception as error:
                self._recover(error, f"{kind} record at {record[1]}")
                handled.extend(self._internal_error(record, error, kind))
        return handled

    def _internal_error(self, record: Record, error: Exception, kind: str) -> Handled:
        raw, source = record
        handled = Handled()
        try:
            with self.store.transaction() as tx:
                stored = self.dlq.previous(tx, [record]).get(
                    (source.topic, source.partition, source.offset)
                )
                if stored is not None:
                    self.dlq.again(handled, source, stored)
                else:
                    detail = f"{type(error).__name__}: {error}"
                    reason = internal_error_code(error)
                    self.dlq.add(tx, handled, raw, source, reason, detail)
        except Exception as failure:
            self.metrics.store_failures.inc()
            raise StoreUnavailable(f"cannot dead-letter {source}: {failure!r}") from failure
        self._count(handled, self.metrics.events if kind == "interactions" else self.metrics.items)
        return handled

    def _count(self, handled: Handled, counter: Any, stored_too: bool = False) -> None:
        """Outcome metrics of a committed batch (a metrics failure never fails the batch)."""
        try:
            if handled.reasons:
                counter.labels(status="dlq").inc(len(handled.reasons))
                for reason in handled.reasons.values():
                    self.metrics.dead_letters.labels(reason=reason).inc()
            if duplicates := handled.count("duplicate"):
                counter.labels(status="duplicate").inc(duplicates)
            if stored_too:
                counter.labels(status="ok").inc(handled.count("stored"))
        except Exception:
            log.exception("exporting metrics failed")
