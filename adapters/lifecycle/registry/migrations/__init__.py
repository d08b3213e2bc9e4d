"""Alembic migrations of the registry's tables, run programmatically by ``open_registry``.

The version table is ``alembic_version_registry`` so the stream's own migrations in the same
database never collide with these.
"""

from pathlib import Path

__all__ = ["MIGRATIONS_DIR", "VERSION_TABLE"]

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version_registry"
