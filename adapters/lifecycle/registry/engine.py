"""Engines for the registry (SQLite file/memory or PostgreSQL) and running its migrations.

SQLite is made to take its write lock at ``BEGIN`` (``BEGIN IMMEDIATE``) and to honour
``SAVEPOINT``, the recipe from SQLAlchemy's pysqlite notes (read-only transactions use a
plain deferred ``BEGIN`` so readers never wait on writers under WAL); without it the driver starts
transactions late and savepoints do not nest. PostgreSQL migrations hold an advisory lock so
processes opening a fresh database at once create the tables exactly once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

# Alembic logs plugin set-up at INFO on import; keep that out of CLI output unless the
# application configured the "alembic" logger itself.
if logging.getLogger("alembic").level == logging.NOTSET:
    logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.pool import StaticPool

from lsat.adapters.lifecycle.registry.migrations import MIGRATIONS_DIR, VERSION_TABLE
from lsat.core.sqlite_wal import enable_wal

__all__ = [
    "READ_ONLY_OPTION",
    "create_registry_engine",
    "current_revision",
    "head_revision",
    "upgrade_to_head",
]

logger = logging.getLogger(__name__)

_MIGRATION_LOCK_KEY = 0x4C534154_52454731  # "LSATREG1": advisory lock id for migrations
SQLITE_BUSY_TIMEOUT_S = 60.0
READ_ONLY_OPTION = "registry_read_only"
"""Execution option: this transaction only reads (SQLite: ``BEGIN DEFERRED``, no write lock)."""


def create_registry_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder created, WAL and immediate writes.

    >>> create_registry_engine("sqlite://").dialect.name
    'sqlite'
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    if in_memory:
        kwargs["connect_args"]["check_same_thread"] = False
        kwargs["poolclass"] = StaticPool
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
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

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Create or upgrade the registry tables; safe to call on an up-to-date database.

    A line is logged when a migration actually ran.
    """
    config = _alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        before = context.get_current_revision()
        if before == head_revision():
            return
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    logger.info("registry schema migrated from %s to %s", before or "empty", head_revision())
