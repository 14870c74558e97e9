"""data capture and model monitoring: endpoints' capture config, baselines, schedules, runs

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("data_capture", sa.JSON(), nullable=True))

    op.create_table(
        "monitoring_baselines",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("dataset", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("header", sa.Boolean(), nullable=False),
        sa.Column("output_prefix", sa.Text(), nullable=False),
        sa.Column("quality_thresholds", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("item_count", sa.BigInteger(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index("ix_monitoring_baselines_status", "monitoring_baselines", ["status"])

    op.create_table(
        "monitoring_schedules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("endpoint", sa.String(length=63), nullable=False),
        sa.Column("baseline", sa.String(length=63), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("alert_topic", sa.String(length=63), nullable=True),
        sa.Column("ground_truth_prefix", sa.Text(), nullable=True),
        sa.Column("problem_type", sa.String(length=32), nullable=True),
        sa.Column("output_prefix", sa.Text(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )

    op.create_table(
        "monitoring_executions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("schedule_id", sa.String(length=36), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("records_analyzed", sa.BigInteger(), nullable=False),
        sa.Column("violations", sa.JSON(), nullable=False),
        sa.Column("quality", sa.JSON(), nullable=True),
        sa.Column("report_location", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["schedule_id"], ["monitoring_schedules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_monitoring_executions_schedule",
        "monitoring_executions",
        ["schedule_id", "created_at"],
    )
    op.create_index("ix_monitoring_executions_status", "monitoring_executions", ["status"])


def downgrade() -> None:
    op.drop_index("ix_monitoring_executions_status", table_name="monitoring_executions")
    op.drop_index("ix_monitoring_executions_schedule", table_name="monitoring_executions")
    op.drop_table("monitoring_executions")
    op.drop_table("monitoring_schedules")
    op.drop_index("ix_monitoring_baselines_status", table_name="monitoring_baselines")
    op.drop_table("monitoring_baselines")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("data_capture")
