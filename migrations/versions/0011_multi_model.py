"""multi-model variants: a variant may serve every model under an S3 prefix

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("variants") as batch:
        batch.alter_column("model_version_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("multi_model_prefix", sa.Text(), nullable=True))
        batch.add_column(sa.Column("multi_model_framework", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("model_memory_mb", sa.Integer(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("target_model", sa.Text(), nullable=True))
    with op.batch_alter_table("transform_jobs") as batch:
        batch.add_column(sa.Column("target_model", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transform_jobs") as batch:
        batch.drop_column("target_model")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("target_model")
    op.execute("DELETE FROM variants WHERE model_version_id IS NULL")
    with op.batch_alter_table("variants") as batch:
        batch.drop_column("model_memory_mb")
        batch.drop_column("multi_model_framework")
        batch.drop_column("multi_model_prefix")
        batch.alter_column("model_version_id", existing_type=sa.Integer(), nullable=False)
