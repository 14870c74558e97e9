"""inference components: per-model compute and copies on one endpoint; transform jobs may
target one

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inference_components",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cpu_cores", sa.Float(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("gpu_memory_mb", sa.Integer(), nullable=False),
        sa.Column("min_copies", sa.Integer(), nullable=False),
        sa.Column("max_copies", sa.Integer(), nullable=False),
        sa.Column("scaling_metric", sa.String(length=40), nullable=False),
        sa.Column("scaling_target", sa.Float(), nullable=False),
        sa.Column("scale_in_cooldown_s", sa.Float(), nullable=True),
        sa.Column("scale_to_zero_idle_s", sa.Float(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("max_batch_size", sa.Integer(), nullable=False),
        sa.Column("max_delay_ms", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint_id", "name"),
    )
    with op.batch_alter_table("transform_jobs") as batch:
        batch.add_column(sa.Column("component", sa.String(length=63), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transform_jobs") as batch:
        batch.drop_column("component")
    op.drop_table("inference_components")
