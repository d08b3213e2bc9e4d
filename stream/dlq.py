"""The worker's dead-letter writer: one bounded record per rejected source offset.

:meth:`DeadLetterWriter.add` builds the bounded :class:`~lsat.stream.dead_letter.DeadLetter`,
keeps a copy in the ``dead_letters`` table (in the caller's transaction, unique by source
topic/partition/offset) and returns the DLQ message to send after the commit. When a source
offset is delivered again (a restart before its offset was committed), :meth:`previous` finds
its stored copy, and the same record is sent again (DLQ consumers may see it twice, with the
same key; never zero times) while the offset counts as a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lsat.stream.app import Outgoing
from lsat.stream.dead_letter import DLQ_PAYLOAD_BYTES, DLQ_RECORD_BYTES, DeadLetter
from lsat.stream.isolation import Handled
from lsat.stream.store import DeadLetterRecord, SourcePosition, StoreTransaction

__all__ = ["DeadLetterWriter", "Position"]

Position = tuple[str | None, int, int]
"""(topic, partition, offset) of a source message."""


class DeadLetterWriter:
    """Dead letters to ``topic``, cut to ``max_payload_bytes`` / ``max_record_bytes``."""

    def __init__(
        self,
        topic: str,
        *,
        max_payload_bytes: int = DLQ_PAYLOAD_BYTES,
        max_record_bytes: int = DLQ_RECORD_BYTES,
    ) -> None:
        self.topic = topic
        self.max_payload_bytes = max_payload_bytes
        self.max_record_bytes = max_record_bytes

    def previous(
        self, tx: StoreTransaction, batch: Sequence[tuple[object, SourcePosition]]
    ) -> dict[Position, str]:
        """Source positions of ``batch`` dead-lettered before: position → stored record."""
        by_partition: dict[tuple[str | None, int], list[int]] = {}
        for _, source in batch:
            by_partition.setdefault((source.topic, source.partition), []).append(source.offset)
        found: dict[Position, str] = {}
        for (topic, partition), offsets in by_partition.items():
            for offset, value in tx.dead_lettered(topic, partition, offsets).items():
                found[(topic, partition, offset)] = value
        return found

    def add(
        self,
        tx: StoreTransaction,
        handled: Handled,
        payload: bytes | None,
        source: SourcePosition,
        reason: str,
        detail: str,
        context: Mapping[str, str] | None = None,
    ) -> None:
        """Dead-letter one record: stored row, message to send, outcome ``dead_lettered``
        (``duplicate`` if a racing delivery stored it first)."""
        letter = DeadLetter.build(
            payload,
            reason,
            detail,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            context=context,
            max_payload_bytes=self.max_payload_bytes,
            max_record_bytes=self.max_record_bytes,
        )
        value = letter.to_json()
        record = DeadLetterRecord(letter.reason_code, letter.detail, value.decode(), source)
        new = tx.add_dead_letter(record)
        handled.outgoing.append(self.message(source, value))
        if new:
            handled.add(source, "dead_lettered", letter.reason_code)
        else:
            handled.add(source, "duplicate")

    def again(self, handled: Handled, source: SourcePosition, stored: str) -> None:
        """A re-delivered, already dead-lettered record: send its stored record again."""
        handled.outgoing.append(self.message(source, stored.encode()))
        handled.add(source, "duplicate")

    def message(self, source: SourcePosition, value: bytes) -> Outgoing:
        """The DLQ message for ``source`` (keyed ``topic:partition:offset``)."""
        key = f"{source.topic}:{source.partition}:{source.offset}".encode()
        return Outgoing(self.topic, key, value)
