"""Schema migrations that change existing rows: what those rows become (SQLite, no network)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from core.db import MIGRATIONS_DIR


def _alembic(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


def test_transform_jobs_from_before_the_threshold_keep_their_old_rule(tmp_path: Path) -> None:
    """A job submitted before max_failed_records_percent existed was promised that
    failed records never fail it: the migration gives it 100, and the column keeps no
    server default (the API always writes the value, default 0)."""
    url = f"sqlite:///{tmp_path / 'schema.db'}"
    command.upgrade(_alembic(url), "0005")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO transform_jobs (id, name, input_prefix, output_prefix, "
                    "content_type, split_type, batch_strategy, max_payload_mb, assemble_with, "
                    "join_source, status, processed_records, failed_records, completed_objects, "
                    "runs, created_at, updated_at) VALUES ('j1', 'old', 's3://d/in/', "
                    "'s3://d/out/', 'text/csv', 'line', 'multi_record', 6, 'line', 'none', "
                    "'running', 0, 0, 0, 1, '2026-11-01', '2026-11-01')"
                )
            )
        command.upgrade(_alembic(url), "head")
        with engine.connect() as connection:
            kept = connection.scalar(text("SELECT max_failed_records_percent FROM transform_jobs"))
        assert kept == 100
        column = next(
            c
            for c in inspect(engine).get_columns("transform_jobs")
            if c["name"] == "max_failed_records_percent"
        )
        assert column["default"] is None and column["nullable"] is False
        command.downgrade(_alembic(url), "0005")
        names = {c["name"] for c in inspect(engine).get_columns("transform_jobs")}
        assert "max_failed_records_percent" not in names
    finally:
        engine.dispose()
