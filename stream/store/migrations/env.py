"""Alembic environment of the stream store (:meth:`lsat.core.migrations.Migrations.run_env`)."""

from __future__ import annotations

from alembic import context

from lsat.stream.store.migrations import STORE_MIGRATIONS
from lsat.stream.store.models import Base

if getattr(context, "config", None) is not None:  # only under alembic, not on plain import
    STORE_MIGRATIONS.run_env(Base.metadata)
