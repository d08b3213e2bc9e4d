"""Alembic migrations of the stream store's tables, run by :class:`~lsat.stream.store.SampleStore`.

The version table is ``alembic_version_stream``; the registry's (``alembic_version_registry``)
lives beside it in the same database. A model change needs a revision here: a test compares the
migrated schema with the ORM rows.
"""

from pathlib import Path

from lsat.core.migrations import Migrations

__all__ = ["MIGRATIONS_DIR", "STORE_MIGRATIONS", "VERSION_TABLE"]

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version_stream"
STORE_MIGRATIONS = Migrations(
    name="stream store",
    directory=MIGRATIONS_DIR,
    version_table=VERSION_TABLE,
    lock_key=0x4C534154_53545231,  # "LSATSTR1"
)
