"""enable_wal waits out another connection's lock instead of failing at once."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from lsat.core.sqlite_wal import enable_wal


def _locked(path: Path, seconds: float) -> threading.Thread:
    """Hold an exclusive lock on ``path`` for ``seconds`` in another thread (started)."""
    ready = threading.Event()

    def hold() -> None:
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO t VALUES (1)")
        ready.set()
        time.sleep(seconds)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait(5)
    return thread


def _fresh(tmp_path: Path) -> Path:
    path = tmp_path / "fresh.sqlite"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (x INTEGER)")
    setup.close()
    return path


def test_switches_once_the_lock_is_released(tmp_path: Path) -> None:
    path = _fresh(tmp_path)
    holder = _locked(path, 0.5)
    connection = sqlite3.connect(path, timeout=0, isolation_level=None)
    started = time.monotonic()
    assert enable_wal(connection, timeout_s=10) == "wal"
    assert time.monotonic() - started >= 0.3  # it did wait for the holder
    holder.join()
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def test_gives_up_after_the_timeout_with_sqlites_error(tmp_path: Path) -> None:
    path = _fresh(tmp_path)
    holder = _locked(path, 1.5)
    connection = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(connection, timeout_s=0.2)
    holder.join()
    connection.close()


def test_already_wal_is_left_alone(tmp_path: Path) -> None:
    path = _fresh(tmp_path)
    first = sqlite3.connect(path, isolation_level=None)
    assert enable_wal(first, timeout_s=1) == "wal"
    second = sqlite3.connect(path, isolation_level=None)
    assert enable_wal(second, timeout_s=1) == "wal"
    first.close()
    second.close()
