"""The one SQLAlchemy engine factory: every database of the project (registry, sample store).

One set of settings. PostgreSQL: the psycopg 3 driver for plain ``postgresql://`` URLs,
``pool_pre_ping``. SQLite: the file's folder is created; the busy timeout is
:data:`SQLITE_BUSY_TIMEOUT_S`; the file is switched to write-ahead logging
(:func:`lsat.core.sqlite_wal.enable_wal`, ``synchronous=NORMAL``, the WAL recommendation) so
readers never block the writer; foreign keys are enforced; and a transaction takes its write lock
at ``BEGIN`` (``BEGIN IMMEDIATE``, the recipe from SQLAlchemy's pysqlite notes) so two writers
queue on the busy timeout instead of failing on a lock upgrade, and ``SAVEPOINT`` nests. A
transaction that only reads asks for a plain deferred ``BEGIN`` with the execution option
:data:`READ_ONLY_OPTION`. In-memory SQLite (``sqlite://``) is one database shared by every
thread of the process.

>>> normalize_url("postgresql://u@h/db")
'postgresql+psycopg://u@h/db'
>>> normalize_url("sqlite:///x.sqlite")
'sqlite:///x.sqlite'
>>> engine = create_db_engine("sqlite://")
>>> with engine.begin() as connection:
...     connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.pool import StaticPool

from lsat.core.sqlite_wal import enable_wal

__all__ = ["READ_ONLY_OPTION", "SQLITE_BUSY_TIMEOUT_S", "create_db_engine", "normalize_url"]

SQLITE_BUSY_TIMEOUT_S = 60.0
READ_ONLY_OPTION = "lsat_read_only"
"""Execution option: this transaction only reads (SQLite: ``BEGIN DEFERRED``, no write lock)."""


def normalize_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain ``postgresql://`` / ``postgres://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_db_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` with the project's SQLite / PostgreSQL settings (module doc)."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    if in_memory:
        kwargs["connect_args"]["check_same_thread"] = False
        kwargs["poolclass"] = StaticPool
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, **kwargs)
    _make_sqlite_transactional(engine, wal=not in_memory)
    return engine


def _make_sqlite_transactional(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver no longer issues BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        if wal:
            enable_wal(dbapi_connection, SQLITE_BUSY_TIMEOUT_S)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")
