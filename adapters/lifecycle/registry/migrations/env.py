"""Alembic environment of the registry (:meth:`lsat.core.migrations.Migrations.run_env`)."""

from __future__ import annotations

from alembic import context

from lsat.adapters.lifecycle.registry.engine import REGISTRY_MIGRATIONS
from lsat.adapters.lifecycle.registry.models import RegistryBase

if getattr(context, "config", None) is not None:  # only under alembic, not on plain import
    REGISTRY_MIGRATIONS.run_env(RegistryBase.metadata)
