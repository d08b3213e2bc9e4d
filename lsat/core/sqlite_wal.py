"""Switch a SQLite database to write-ahead logging safely when several processes open it at once.

``PRAGMA journal_mode=WAL`` needs an exclusive lock and, while another connection holds one
(typically a second process initialising the same fresh file), SQLite can answer "database is
locked" at once instead of waiting for its busy timeout. WAL is a property of the file, so a
connection that finds it already set does nothing; otherwise the switch is retried with backoff.

>>> import sqlite3
>>> connection = sqlite3.connect(":memory:")
>>> enable_wal(connection, timeout_s=1.0)  # in-memory databases keep "memory" mode
'memory'
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = ["enable_wal"]


def enable_wal(dbapi_connection: Any, timeout_s: float) -> str:
    """Put the connection's database in WAL mode; returns the journal mode now in force.

    Retries "database is locked" for up to ``timeout_s`` seconds, then raises it.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        cursor = dbapi_connection.cursor()
        try:
            mode = str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode in ("wal", "memory"):
                return mode
            return str(cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        finally:
            cursor.close()
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
