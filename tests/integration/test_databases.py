"""The schema comes only from the Alembic migration, on SQLite and PostgreSQL alike,
and the whole stack runs on the embedded SQLite default."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from core.db import upgrade_schema
from devstack.servers import SeaweedServer
from tests.integration import models
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    drop_postgres_database,
    make_stack,
    new_postgres_database,
    postgres_url,
    register,
    unique,
    wait_job,
)

pytestmark = pytest.mark.integration

TABLES = {
    "alembic_version",
    "models",
    "model_versions",
    "endpoints",
    "variants",
    "jobs",
    "api_keys",
    "topics",
    "subscriptions",
    "events",
    "deliveries",
    "delivery_attempts",
    "transform_jobs",
    "transform_objects",
    "transform_chunks",
    "monitoring_baselines",
    "monitoring_schedules",
    "monitoring_executions",
    "sagemaker_resources",
    "inference_components",
    "endpoint_configs",
    "deployments",
}


def _sqlite(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'schema.db'}"


def _postgres(_tmp_path: Path) -> Iterator[str]:
    name = new_postgres_database()
    try:
        yield postgres_url(name)
    finally:
        drop_postgres_database(name)


@pytest.mark.parametrize("database", [_sqlite, _postgres], ids=["sqlite", "postgresql"])
def test_migration_creates_the_schema_and_is_repeatable(
    database: Callable[[Path], Iterator[str]], tmp_path: Path
) -> None:
    for url in database(tmp_path):
        upgrade_schema(url)
        upgrade_schema(url)  # a second run is a no-op, not an error
        engine = create_engine(url)
        try:
            inspector = inspect(engine)
            assert set(inspector.get_table_names()) == TABLES
            job_columns = {c["name"] for c in inspector.get_columns("jobs")}
            assert {"status", "output_location", "error", "idempotency_key"} <= job_columns
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def sqlite_stack(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("sqlite-stack")
    running = make_stack(home, s3, f"sqlite:///{home / 'sluiceway.db'}")
    try:
        running.start_api()
        running.start_worker()
        running.wait_workers(1)
        yield running
    finally:
        running.stop()


def test_round_trips_on_the_sqlite_default(
    sqlite_stack: Stack, model_files: dict[str, Path]
) -> None:
    rows = models.random_rows(3, seed=7)
    expected = models.predict_xgboost(model_files["xgb"], rows)
    with sqlite_stack.client() as client:
        model = register(client, unique("xgb"), "xgboost", model_files["xgb"])
        endpoint = create_endpoint(
            client, {"name": unique("lite"), "variants": [{"name": "a", "model": model["name"]}]}
        )
        url = f"/v1/endpoints/{endpoint['name']}"
        realtime = client.post(f"{url}/invocations", json={"instances": rows})
        assert realtime.status_code == 200, realtime.text
        models.assert_close(realtime.json()["predictions"], expected)
        accepted = client.post(f"{url}/async-invocations", json={"instances": rows})
        assert accepted.status_code == 202, accepted.text
        job = wait_job(client, accepted.json()["job_id"])
        assert job["status"] == "succeeded", job
        output = client.get(f"/v1/jobs/{job['job_id']}/output")
        models.assert_close(output.json()["predictions"], expected)
