"""Multi-model variants in SQL (migration 0010 on SQLite): the scaler, the reconciler's
rebuilt message and transform dispatch all read a variant without a model version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core import db
from core.config import get_settings
from core.db import make_engine, upgrade_schema
from core.jobs import async_invocation
from core.tables import Endpoint, Job, TransformJob, Variant
from scheduler.scaling.metrics import read_variants
from scheduler.transform.store import JobFailed, load_targets

PREFIX = "s3://models/cities/"


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'mm.db'}"
    upgrade_schema(url)
    monkeypatch.setenv("SLUICEWAY_DATABASE_URL", url)
    for cached in (get_settings, db.get_engine, db._session_factory):
        cached.cache_clear()
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        session.add(
            Endpoint(
                name="cities",
                output_prefix="s3://out/cities/",
                variants=[
                    Variant(
                        name="a",
                        model_version_id=None,
                        multi_model_prefix=PREFIX,
                        multi_model_framework="xgboost",
                        model_memory_mb=512,
                        min_workers=0,
                        max_workers=3,
                    )
                ],
            )
        )
        session.commit()
        yield session
    engine.dispose()
    for cached in (get_settings, db.get_engine, db._session_factory):
        cached.cache_clear()


def test_the_scaler_sees_a_multi_model_variant_with_its_framework(session: Session) -> None:
    (config,) = read_variants("sluiceway")
    assert (config.endpoint, config.variant, config.framework) == ("cities", "a", "xgboost")
    assert config.bounds.max_workers == 3


def test_a_requeued_async_job_keeps_its_target_model(session: Session) -> None:
    job = Job(
        endpoint="cities",
        variant="a",
        input_location="s3://in/x",
        content_type="application/json",
        output_location="s3://out/x.out",
        target_model="eu/paris.json",
    )
    invocation = async_invocation(session, job)
    assert invocation is not None
    assert invocation.model.name == "eu/paris.json"
    assert invocation.model.artifact_uri == PREFIX + "eu/paris.json"
    assert invocation.model.version == 0
    job.target_model = None  # cannot happen through the API: nothing to rebuild it with
    assert async_invocation(session, job) is None


def test_transform_dispatch_runs_the_jobs_target_model(session: Session) -> None:
    job = TransformJob(name="t", endpoint="cities", target_model="chicago.json")
    (target,) = load_targets(session, job)
    assert target.model.artifact_uri == PREFIX + "chicago.json"
    with pytest.raises(JobFailed, match="target_model"):
        load_targets(session, TransformJob(name="u", endpoint="cities"))
