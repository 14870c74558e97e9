"""transform jobs: max_failed_records_percent

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 22:00:00

Jobs created before this revision keep the rule they were submitted under
(their failed records never failed the job): they get 100. New jobs always
carry the value the API gives them (default 0), so the column keeps no
server default afterwards.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transform_jobs") as batch:
        batch.add_column(
            sa.Column(
                "max_failed_records_percent",
                sa.Float(),
                nullable=False,
                server_default=sa.text("100"),
            )
        )
    with op.batch_alter_table("transform_jobs") as batch:
        batch.alter_column("max_failed_records_percent", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("transform_jobs") as batch:
        batch.drop_column("max_failed_records_percent")
