"""Registry tables: adapter versions, alias pointers, alias history, evaluations.

Revision ID: 0001_registry_initial
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_registry_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adapter_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("trigger", sa.String(32), nullable=True),
        sa.Column("window_ids", sa.JSON(), nullable=False),
        sa.Column("parents", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("kind", "version", name="uq_adapter_versions_kind_version"),
        sa.CheckConstraint("kind IN ('long', 'short', 'merged')", name="ck_adapter_versions_kind"),
        sa.CheckConstraint(
            "status IN ('candidate', 'rejected', 'archived')", name="ck_adapter_versions_status"
        ),
        sa.CheckConstraint("version >= 1", name="ck_adapter_versions_version_positive"),
        sa.PrimaryKeyConstraint("id", name="pk_adapter_versions"),
    )
    op.create_index("ix_adapter_versions_created_at", "adapter_versions", ["created_at"])
    op.create_table(
        "registry_aliases",
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["kind", "version"],
            ["adapter_versions.kind", "adapter_versions.version"],
            name="fk_registry_aliases_kind_version_adapter_versions",
        ),
        sa.PrimaryKeyConstraint("alias", name="pk_registry_aliases"),
    )
    op.create_table(
        "registry_alias_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous_kind", sa.String(16), nullable=True),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('set', 'rollback')", name="ck_registry_alias_history_action"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_registry_alias_history"),
    )
    op.create_index("ix_registry_alias_history_alias_id", "registry_alias_history", ["alias", "id"])
    op.create_table(
        "adapter_evaluations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("window_id", sa.String(128), nullable=False),
        sa.Column("auc", sa.Float(), nullable=True),
        sa.Column("logloss", sa.Float(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "kind", "version", "window_id", name="uq_adapter_evaluations_kind_version_window_id"
        ),
        sa.ForeignKeyConstraint(
            ["kind", "version"],
            ["adapter_versions.kind", "adapter_versions.version"],
            name="fk_adapter_evaluations_kind_version_adapter_versions",
        ),
        sa.CheckConstraint("n >= 0", name="ck_adapter_evaluations_n_nonnegative"),
        sa.PrimaryKeyConstraint("id", name="pk_adapter_evaluations"),
    )


def downgrade() -> None:
    op.drop_table("adapter_evaluations")
    op.drop_table("registry_alias_history")
    op.drop_index("ix_adapter_versions_created_at", table_name="adapter_versions")
    op.drop_table("registry_aliases")
    op.drop_table("adapter_versions")
