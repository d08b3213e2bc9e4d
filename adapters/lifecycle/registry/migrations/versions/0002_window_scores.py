"""Per-window test-then-train scores (the out-of-sample rows the trainer fits combiners on).

Revision ID: 0002_window_scores
Revises: 0001_registry_initial
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_window_scores"
down_revision = "0001_registry_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adapter_window_scores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("window_id", sa.String(128), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("window_id", name="uq_adapter_window_scores_window_id"),
        sa.CheckConstraint("n >= 0", name="ck_adapter_window_scores_n_nonnegative"),
        sa.PrimaryKeyConstraint("id", name="pk_adapter_window_scores"),
    )


def downgrade() -> None:
    op.drop_table("adapter_window_scores")
