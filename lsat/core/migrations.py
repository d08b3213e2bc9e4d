"""Alembic migrations run from code: one runner for every subsystem that owns tables.

Each subsystem (the adapter registry, the stream store) ships its own revisions and its own
version table, so both histories live in one database without colliding. :meth:`Migrations.upgrade`
runs in one transaction: on PostgreSQL it holds an advisory lock and on SQLite the engine's
``BEGIN IMMEDIATE`` (:mod:`lsat.core.db`) holds the write lock, so processes opening a fresh
database at once create the tables exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

# Alembic logs plugin set-up at INFO on import; keep that out of CLI output unless the
# application configured the "alembic" logger itself.
if logging.getLogger("alembic").level == logging.NOTSET:
    logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData

__all__ = ["Migrations"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migrations:
    """The revisions under ``directory`` (an alembic script folder whose ``env.py`` runs on
    ``config.attributes["connection"]``), tracked in ``version_table``.

    ``lock_key``: the PostgreSQL advisory lock id held while migrating; ``name`` is for logs.
    """

    name: str
    directory: Path
    version_table: str
    lock_key: int

    def config(self, connection: Connection | None = None) -> Config:
        """An alembic config for these revisions (bound to ``connection`` when given)."""
        config = Config()
        config.set_main_option("script_location", str(self.directory))
        if connection is not None:
            config.attributes["connection"] = connection
        return config

    def head(self) -> str:
        """The newest revision shipped with this code."""
        head = ScriptDirectory.from_config(self.config()).get_current_head()
        if head is None:
            raise RuntimeError(f"{self.directory} holds no {self.name} revision")
        return head

    def current(self, engine: Engine) -> str | None:
        """The revision the database is at (``None`` before the first migration)."""
        with engine.connect() as connection:
            return self._context(connection).get_current_revision()

    def _context(self, connection: Connection) -> MigrationContext:
        return MigrationContext.configure(connection, opts={"version_table": self.version_table})

    def lock(self, connection: Connection) -> None:
        """Serialise migrations of this subsystem across processes (PostgreSQL advisory lock
        for the transaction; SQLite's write lock is already held by ``BEGIN IMMEDIATE``)."""
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({self.lock_key})")

    def upgrade(self, connection: Connection) -> str | None:
        """Migrate to head inside the caller's transaction; the revision it started from
        (the head itself when nothing was to do)."""
        self.lock(connection)
        before = self._context(connection).get_current_revision()
        if before == self.head():
            return before
        command.upgrade(self.config(connection), "head")
        logger.info("%s schema migrated from %s to %s", self.name, before or "empty", self.head())
        return before

    def stamp(self, connection: Connection) -> None:
        """Record head as applied without running it (a schema already built another way)."""
        command.stamp(self.config(connection), "head")

    def run_env(self, metadata: MetaData) -> None:
        """The body of this subsystem's alembic ``env.py``: run the revisions on the connection
        handed over in ``config.attributes`` (never on a URL of its own)."""
        from alembic import context

        connection = context.config.attributes.get("connection")
        if connection is None:
            raise RuntimeError(f"run the {self.name} migrations through lsat.core.migrations")
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=self.version_table,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()

    def upgrade_engine(self, engine: Engine) -> None:
        """:meth:`upgrade` in a transaction of its own; safe on an up-to-date database."""
        with engine.begin() as connection:
            self.upgrade(connection)
