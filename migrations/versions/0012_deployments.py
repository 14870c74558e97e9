"""endpoint lifecycle: immutable config versions, deployments, variants per config

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        # Endpoints from before this migration serve their first (and only) config.
        batch.add_column(
            sa.Column("config_version", sa.Integer(), nullable=False, server_default="1")
        )
        batch.add_column(sa.Column("next_config_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("next_traffic_percent", sa.Float(), nullable=True))
        batch.add_column(sa.Column("deployment_id", sa.String(length=36), nullable=True))
        batch.add_column(
            sa.Column("delete_requested_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("variants") as batch:
        batch.add_column(
            sa.Column("config_version", sa.Integer(), nullable=False, server_default="1")
        )
        batch.add_column(sa.Column("public_name", sa.String(length=63), nullable=True))
        # Set only on a shadow variant: the share of requests copied to it (0-100).
        batch.add_column(sa.Column("shadow_sampling_percent", sa.Float(), nullable=True))

    with op.batch_alter_table("jobs") as batch:
        # Which endpoint took the job (its created_at, as stored): a worker starts a
        # job only on that endpoint, never on one re-created under the same name.
        batch.add_column(
            sa.Column("endpoint_created_at", sa.DateTime(timezone=True), nullable=True)
        )

    op.create_table(
        "endpoint_configs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint_id", "version"),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=63), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=False),
        sa.Column("to_version", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("baseline", sa.JSON(), nullable=True),
        sa.Column("new_traffic_percent", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_deployments_state", "deployments", ["state"])
    op.create_index("ix_deployments_endpoint", "deployments", ["endpoint_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_deployments_endpoint", table_name="deployments")
    op.drop_index("ix_deployments_state", table_name="deployments")
    op.drop_table("deployments")
    op.drop_table("endpoint_configs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("endpoint_created_at")
    with op.batch_alter_table("variants") as batch:
        batch.drop_column("shadow_sampling_percent")
        batch.drop_column("public_name")
        batch.drop_column("config_version")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("delete_requested_at")
        batch.drop_column("deployment_id")
        batch.drop_column("next_traffic_percent")
        batch.drop_column("next_config_version")
        batch.drop_column("config_version")
