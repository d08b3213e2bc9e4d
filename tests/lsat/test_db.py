"""lsat/core/db.py: the one engine factory and its SQLite / PostgreSQL settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from lsat.core.db import READ_ONLY_OPTION, SQLITE_BUSY_TIMEOUT_S, create_db_engine


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    return tmp_path / "sub" / "db.sqlite"  # the folder does not exist yet


def test_sqlite_file_settings(sqlite_file: Path) -> None:
    engine = create_db_engine(f"sqlite:///{sqlite_file}")
    try:
        with engine.connect() as connection:
            pragma = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
            }
        assert pragma == {
            "journal_mode": "wal",
            "foreign_keys": 1,
            "synchronous": 1,  # NORMAL
            "busy_timeout": int(SQLITE_BUSY_TIMEOUT_S * 1000),
        }
    finally:
        engine.dispose()


def test_a_write_transaction_takes_the_lock_at_begin(sqlite_file: Path) -> None:
    engine = create_db_engine(f"sqlite:///{sqlite_file}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(sqlite_file, timeout=0, isolation_level=None)
    try:
        with engine.begin() as connection:  # nothing written yet, but the lock is held
            connection.exec_driver_sql("SELECT 1")
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("ROLLBACK")
    finally:
        other.close()
        engine.dispose()


def test_a_read_only_transaction_does_not_wait_for_an_open_writer(sqlite_file: Path) -> None:
    engine = create_db_engine(f"sqlite:///{sqlite_file}")
    reader = engine.execution_options(**{READ_ONLY_OPTION: True})
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        with engine.begin() as writer:
            writer.exec_driver_sql("INSERT INTO t VALUES (2)")
            with reader.begin() as connection:  # same process, second connection
                assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 1
    finally:
        engine.dispose()


def test_in_memory_sqlite_is_one_database_for_every_connection() -> None:
    engine = create_db_engine("sqlite://")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0


@pytest.mark.postgres
def test_postgresql_by_plain_url(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    engine = create_db_engine(plain)
    try:
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
