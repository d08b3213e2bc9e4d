"""Running the registry's migrations (its engine comes from :mod:`lsat.core.db`).

PostgreSQL migrations hold an advisory lock so processes opening a fresh database at once create
the tables exactly once.
"""

from __future__ import annotations

import logging

# Alembic logs plugin set-up at INFO on import; keep that out of CLI output unless the
# application configured the "alembic" logger itself.
if logging.getLogger("alembic").level == logging.NOTSET:
    logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from lsat.adapters.lifecycle.registry.migrations import MIGRATIONS_DIR, VERSION_TABLE

__all__ = ["current_revision", "head_revision", "upgrade_to_head"]

logger = logging.getLogger(__name__)

_MIGRATION_LOCK_KEY = 0x4C534154_52454731  # "LSATREG1": advisory lock id for migrations


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
