"""The store's schema: alembic migrations (:mod:`lsat.stream.store.migrations`), and the bridge
for a store created before them.

:func:`upgrade_store` creates a fresh store's tables or migrates them to the newest revision, in
one transaction that holds the migration lock. A store created by an older version with
``create_all`` (its tables but no ``alembic_version_stream``) is first brought to the models'
schema the old way: missing tables created, missing *nullable* columns added with ``ALTER
TABLE … ADD COLUMN`` (old rows read NULL; anything else is refused), then stamped as the first
revision, which is that schema. From then on every change is a revision.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, MetaData, inspect
from sqlalchemy.schema import CreateColumn

from lsat.stream.errors import StreamError
from lsat.stream.store.migrations import STORE_MIGRATIONS, VERSION_TABLE
from lsat.stream.store.models import Base

__all__ = ["add_missing_columns", "upgrade_store"]

log = logging.getLogger(__name__)


def upgrade_store(engine: Engine) -> None:
    """Create or migrate the store's tables to head; safe to call on an up-to-date store."""
    with engine.begin() as connection:
        STORE_MIGRATIONS.lock(connection)
        tables = set(inspect(connection).get_table_names())
        if VERSION_TABLE in tables or not tables & set(Base.metadata.tables):
            STORE_MIGRATIONS.upgrade(connection)
            return
        Base.metadata.create_all(connection)
        add_missing_columns(connection, Base.metadata)
        STORE_MIGRATIONS.stamp(connection)
        log.info("store created before migrations: schema completed, stamped as head")


def add_missing_columns(bind: Engine | Connection, metadata: MetaData) -> list[str]:
    """Add the model columns missing from existing tables; returns ``table.column`` names.

    Given an engine it runs in a transaction of its own; given a connection, in the caller's.
    """
    if isinstance(bind, Engine):
        with bind.begin() as conn:  # one connection: a second one could wait on this one's lock
            return add_missing_columns(conn, metadata)
    added: list[str] = []
    inspector = inspect(bind)
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
            ddl = CreateColumn(column).compile(dialect=bind.dialect)
            bind.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}')
            added.append(f"{table.name}.{column.name}")
    if added:
        log.info("store schema upgraded: added %s", added)
    return added
