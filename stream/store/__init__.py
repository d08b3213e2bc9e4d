"""The stream's sample/window store: SQLAlchemy models behind the ``SampleStore`` repository.

SQLite file by default, PostgreSQL by URL (engine settings: :mod:`lsat.core.db`). Writes are
idempotent by event id, so at-least-once delivery never double-counts.
"""

from lsat.stream.store.records import (
    DeadLetterRecord,
    IngestItem,
    SourcePosition,
    StoredEvent,
    StoredPartition,
    StoredWindow,
    WindowClosure,
)
from lsat.stream.store.repository import SampleStore
from lsat.stream.store.transaction import StoreError, StoreTransaction

__all__ = [
    "DeadLetterRecord",
    "IngestItem",
    "SampleStore",
    "SourcePosition",
    "StoreError",
    "StoreTransaction",
    "StoredEvent",
    "StoredPartition",
    "StoredWindow",
    "WindowClosure",
]
