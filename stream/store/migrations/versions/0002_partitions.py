"""Partitioned workers: per-partition state rows and samples pending their global window.

Revision ID: 0002_partitions
Revises: 0001_stream_initial
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_partitions"
down_revision = "0001_stream_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_partitions",
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=True),
        sa.Column("active_s", sa.Float(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partition"),
    )
    op.create_table(
        "pending_samples",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_pending_samples_timestamp", "pending_samples", ["timestamp"])


def downgrade() -> None:
    op.drop_index("ix_pending_samples_timestamp", table_name="pending_samples")
    op.drop_table("pending_samples")
    op.drop_table("stream_partitions")
