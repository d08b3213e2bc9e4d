"""ORM rows of the registry. They never leave :mod:`lsat.adapters.lifecycle.registry.store`.

Table names start with ``adapter_`` / ``registry_`` so they share a database with the stream's
tables; the schema itself is created by the alembic migrations in ``migrations/``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from lsat.core.kinds import ADAPTER_KINDS

__all__ = [
    "AdapterArtifactRow",
    "AdapterEvaluationRow",
    "AdapterVersionRow",
    "AliasHistoryRow",
    "AliasRow",
    "RegistryBase",
    "WindowScoreRow",
    "utc_now",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use timezone-aware UTC")
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RegistryBase(DeclarativeBase):
    """Declarative base of the registry's own metadata (not shared with the stream)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AdapterVersionRow(RegistryBase):
    """One version; ``(kind, version)`` is unique and is what concurrent writers race on."""

    __tablename__ = "adapter_versions"
    __table_args__ = (
        UniqueConstraint("kind", "version"),
        CheckConstraint(f"kind IN ({', '.join(map(repr, ADAPTER_KINDS))})", name="kind"),
        CheckConstraint("status IN ('candidate', 'rejected', 'archived')", name="status"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(Text)
    trigger: Mapped[str | None] = mapped_column(String(32))
    window_ids: Mapped[list[Any]] = mapped_column(JSON)
    parents: Mapped[list[Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    uri: Mapped[str | None] = mapped_column(Text)
    """Where the artifact store keeps it (``None``: the folder at ``path``, rows before 0003)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class AliasRow(RegistryBase):
    """The current target of one alias (a pointer row, updated in place)."""

    __tablename__ = "registry_aliases"
    __table_args__ = (
        ForeignKeyConstraint(
            ["kind", "version"], ["adapter_versions.kind", "adapter_versions.version"]
        ),
    )

    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AliasHistoryRow(RegistryBase):
    """Append-only log of every alias change (never updated or deleted)."""

    __tablename__ = "registry_alias_history"
    __table_args__ = (
        CheckConstraint("action IN ('set', 'rollback')", name="action"),
        Index("ix_registry_alias_history_alias_id", "alias", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alias: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    previous_kind: Mapped[str | None] = mapped_column(String(16))
    previous_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AdapterEvaluationRow(RegistryBase):
    """Test-then-train metrics of one version on one window; re-recording replaces them."""

    __tablename__ = "adapter_evaluations"
    __table_args__ = (
        UniqueConstraint("kind", "version", "window_id"),
        ForeignKeyConstraint(
            ["kind", "version"], ["adapter_versions.kind", "adapter_versions.version"]
        ),
        CheckConstraint("n >= 0", name="n_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    window_id: Mapped[str] = mapped_column(String(128))
    auc: Mapped[float | None] = mapped_column(Float)
    logloss: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WindowScoreRow(RegistryBase):
    """Per-sample test-then-train scores of one window and what each scorer achieved on it.

    ``columns`` holds equal-length lists (labels, event ids, the adapters' probabilities, the
    rate features), all out-of-sample: scored before any training on the window. The trainer
    fits its combiners on the rows of recent windows; re-recording a window replaces its row.
    """

    __tablename__ = "adapter_window_scores"
    __table_args__ = (
        UniqueConstraint("window_id"),
        CheckConstraint("n >= 0", name="n_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    window_id: Mapped[str] = mapped_column(String(128))
    n: Mapped[int] = mapped_column(Integer)
    columns: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AdapterArtifactRow(RegistryBase):
    """One adapter folder's canonical archive (the ``db`` artifact store), keyed by its sha256.

    Content-addressed and immutable: a row is written once and never updated.
    """

    __tablename__ = "adapter_artifacts"
    __table_args__ = (CheckConstraint("size >= 0", name="size_nonnegative"),)

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
