"""Additive schema upgrades: columns added to the models after a database was created.

``create_all`` creates missing tables but never alters existing ones. A new *nullable* column
is added here with ``ALTER TABLE … ADD COLUMN`` (SQLite and PostgreSQL both do that in place),
so a store created by an older version keeps working; old rows read the column as NULL.
Anything else (a new NOT NULL column, a changed type) needs a real migration and is refused.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, MetaData, inspect
from sqlalchemy.schema import CreateColumn

from lsat.stream.errors import StreamError

__all__ = ["add_missing_columns"]

log = logging.getLogger(__name__)


def add_missing_columns(engine: Engine, metadata: MetaData) -> list[str]:
    """Add the model columns missing from existing tables; returns ``table.column`` names."""
    added: list[str] = []
    with engine.begin() as conn:  # one connection: a second one could wait on this one's lock
        inspector = inspect(conn)
        existing_tables = set(inspector.get_table_names())
        for table in metadata.sorted_tables:
            if table.name not in existing_tables:
                continue
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                if not column.nullable or column.primary_key:
                    raise StreamError(
                        f"table {table.name!r} lacks NOT NULL column {column.name!r}: "
                        "this store needs a migration, not an in-place upgrade"
                    )
                ddl = CreateColumn(column).compile(dialect=engine.dialect)
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}')
                added.append(f"{table.name}.{column.name}")
    if added:
        log.info("store schema upgraded: added %s", added)
    return added
