"""Adapter version registry: versions keyed by ``(kind, version)``, audited alias pointers.

The trainer registers each adapter it writes, points ``candidate`` / ``serving-<kind>`` aliases
at versions that passed its guard, and the scorer resolves ``serving-*`` to find what to load.
Every alias move is logged (who, why, previous target) and can be rolled back.

Layers (after MLflow's registry): :class:`RegistryStore` (the contract, an ``abc.ABC``),
:class:`SqlRegistryStore` (SQLAlchemy; SQLite or PostgreSQL), ORM rows in ``models`` that never
leave the store, and the frozen entities below. Errors are drawn in
:mod:`lsat.adapters.lifecycle.registry.errors`.

>>> with open_registry("sqlite://") as registry:
...     long = registry.register("long", path="/a/long-1", sha256="a" * 64, trigger="bootstrap")
...     short = registry.register("short", path="/a/short-1", sha256="b" * 64, window_id=12)
...     merged = registry.register("merged", path="/a/m-1", sha256="c" * 64,
...                                parents=[long.key, short.key], metrics={"weight": 0.4})
...     [str(p) for p in registry.get("merged", 1).parents]
['long/v1', 'short/v1']
"""

from lsat.adapters.lifecycle.registry.base import RegistryStore
from lsat.adapters.lifecycle.registry.entities import (
    ADAPTER_STATUSES,
    AdapterKey,
    AdapterVersion,
    AliasChange,
    Evaluation,
    WindowId,
)
from lsat.adapters.lifecycle.registry.errors import (
    AdapterVersionInUse,
    AdapterVersionNotFound,
    AliasNotFound,
    AliasUnchanged,
    InvalidRegistryValue,
    NoPreviousTarget,
    RegistryError,
    VersionAllocationFailed,
    VersionRejected,
)
from lsat.adapters.lifecycle.registry.store import (
    DEFAULT_MAX_ATTEMPTS,
    SqlRegistryStore,
    open_registry,
)
from lsat.adapters.lifecycle.registry.window_scores import WindowScores

__all__ = [
    "ADAPTER_STATUSES",
    "DEFAULT_MAX_ATTEMPTS",
    "AdapterKey",
    "AdapterVersion",
    "AdapterVersionInUse",
    "AdapterVersionNotFound",
    "AliasChange",
    "AliasNotFound",
    "AliasUnchanged",
    "Evaluation",
    "InvalidRegistryValue",
    "NoPreviousTarget",
    "RegistryError",
    "RegistryStore",
    "SqlRegistryStore",
    "VersionAllocationFailed",
    "VersionRejected",
    "WindowId",
    "WindowScores",
    "open_registry",
]
