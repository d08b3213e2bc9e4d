"""Alembic environment: runs on the connection handed over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from lsat.adapters.lifecycle.registry.migrations import VERSION_TABLE
from lsat.adapters.lifecycle.registry.models import RegistryBase


def run_migrations() -> None:
    """Run the pending revisions on the connection handed over by ``upgrade_to_head``."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run the registry migrations through upgrade_to_head(engine)")
    context.configure(
        connection=connection,
        target_metadata=RegistryBase.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if getattr(context, "config", None) is not None:  # only under alembic, not on plain import
    run_migrations()
