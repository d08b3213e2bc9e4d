"""The stream's sample/window store: SQLAlchemy models behind the ``SampleStore`` repository.

SQLite file by default (WAL, busy timeout), PostgreSQL by URL (psycopg 3). Writes are
idempotent by event id, so at-least-once delivery never double-counts.
"""

from stream.store.engine import make_engine, normalize_url
from stream.store.records import DeadLetterRecord, SourcePosition, StoredWindow, WindowClosure
from stream.store.repository import IngestItem, SampleStore, StoreError

__all__ = [
    "DeadLetterRecord",
    "IngestItem",
    "SampleStore",
    "SourcePosition",
    "StoreError",
    "StoredWindow",
    "WindowClosure",
    "make_engine",
    "normalize_url",
]
