"""async options: failure prefix, invocation timeout and per-worker cap on endpoints;
each job's own timeout, expiry and failure location

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows from before this migration get the default timeout (SageMaker's, 900 s).
DEFAULT_INVOCATION_TIMEOUT_S = "900"


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("failure_prefix", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column(
                "invocation_timeout_s",
                sa.Integer(),
                nullable=False,
                server_default=DEFAULT_INVOCATION_TIMEOUT_S,
            )
        )
        batch.add_column(
            sa.Column("max_concurrent_invocations_per_worker", sa.Integer(), nullable=True)
        )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column(
                "invocation_timeout_s",
                sa.Integer(),
                nullable=False,
                server_default=DEFAULT_INVOCATION_TIMEOUT_S,
            )
        )
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("failure_location", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("failure_location")
        batch.drop_column("expires_at")
        batch.drop_column("invocation_timeout_s")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("max_concurrent_invocations_per_worker")
        batch.drop_column("invocation_timeout_s")
        batch.drop_column("failure_prefix")
