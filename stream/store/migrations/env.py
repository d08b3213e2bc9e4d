"""Alembic environment: runs on the connection handed over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from lsat.stream.store.migrations import VERSION_TABLE
from lsat.stream.store.models import Base


def run_migrations() -> None:
    """Run the pending revisions on the connection handed over by the store."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run the stream store migrations through SampleStore / upgrade_store")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if getattr(context, "config", None) is not None:  # only under alembic, not on plain import
    run_migrations()
