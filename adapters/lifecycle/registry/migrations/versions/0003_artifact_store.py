"""Artifact URIs on versions, and the ``adapter_artifacts`` table of the ``db`` artifact store.

Revision ID: 0003_artifact_store
Revises: 0002_window_scores
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_artifact_store"
down_revision = "0002_window_scores"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("adapter_versions", sa.Column("uri", sa.Text(), nullable=True))
    op.create_table(
        "adapter_artifacts",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("size >= 0", name="ck_adapter_artifacts_size_nonnegative"),
        sa.PrimaryKeyConstraint("digest", name="pk_adapter_artifacts"),
    )


def downgrade() -> None:
    op.drop_table("adapter_artifacts")
    with op.batch_alter_table("adapter_versions") as batch:
        batch.drop_column("uri")
