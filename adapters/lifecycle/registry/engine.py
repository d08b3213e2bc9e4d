"""Running the registry's migrations (its engine comes from :mod:`lsat.core.db`, the runner
from :mod:`lsat.core.migrations`).

PostgreSQL migrations hold an advisory lock so processes opening a fresh database at once create
the tables exactly once.
"""

from __future__ import annotations

from sqlalchemy import Engine

from lsat.adapters.lifecycle.registry.migrations import MIGRATIONS_DIR, VERSION_TABLE
from lsat.core.migrations import Migrations

__all__ = ["REGISTRY_MIGRATIONS", "current_revision", "head_revision", "upgrade_to_head"]

REGISTRY_MIGRATIONS = Migrations(
    name="registry",
    directory=MIGRATIONS_DIR,
    version_table=VERSION_TABLE,
    lock_key=0x4C534154_52454731,  # "LSATREG1"
)


def head_revision() -> str:
    """The newest revision shipped with this code."""
    return REGISTRY_MIGRATIONS.head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    return REGISTRY_MIGRATIONS.current(engine)


def upgrade_to_head(engine: Engine) -> None:
    """Create or upgrade the registry tables; safe to call on an up-to-date database.

    A line is logged when a migration actually ran.
    """
    REGISTRY_MIGRATIONS.upgrade_engine(engine)
