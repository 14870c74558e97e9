"""scaling: a target backlog per worker for each endpoint variant

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "target_backlog_per_worker",
                sa.Integer(),
                nullable=False,
                server_default="10",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.drop_column("target_backlog_per_worker")
