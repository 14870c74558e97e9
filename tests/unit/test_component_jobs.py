"""A job on an inference component is rebuilt from its row (retry, the reconciler's requeue),
and its transform chunks go to the component's queue (SQLite, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core.db import make_engine, upgrade_schema
from core.jobs import async_invocation
from core.states import ComponentStatus
from core.tables import Endpoint, InferenceComponent, Job, Model, ModelVersion, TransformJob
from scheduler.transform.store import JobFailed, load_targets


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'components.db'}"
    upgrade_schema(url)
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        model = Model(name="m")
        model.versions.append(
            ModelVersion(version=1, framework="xgboost", artifact_uri="s3://models/m.json")
        )
        endpoint = Endpoint(name="shop", output_prefix="s3://out/shop/")
        session.add_all([model, endpoint])
        session.flush()
        session.add(
            InferenceComponent(
                endpoint_id=endpoint.id,
                name="small",
                model_version_id=model.versions[0].id,
                cpu_cores=0.5,
            )
        )
        session.commit()
        yield session
    engine.dispose()


def job_on(variant: str) -> Job:
    return Job(
        id="j1",
        endpoint="shop",
        variant=variant,
        input_location="s3://in/j1",
        content_type="application/json",
        output_location="s3://out/shop/j1.out",
    )


def test_a_component_job_is_rebuilt_for_its_queue(session: Session) -> None:
    invocation = async_invocation(session, job_on("ic.small"))
    assert invocation is not None
    assert (invocation.endpoint, invocation.variant) == ("shop", "ic.small")
    assert invocation.model.artifact_uri == "s3://models/m.json"
    assert async_invocation(session, job_on("ic.gone")) is None
    assert async_invocation(session, job_on("small")) is None, "no variant is named small"


def test_transform_chunks_go_to_the_component_until_it_is_deleted(session: Session) -> None:
    job = TransformJob(
        name="t",
        endpoint="shop",
        component="small",
        input_prefix="s3://in/x/",
        output_prefix="s3://out/y/",
        content_type="text/csv",
        split_type="line",
        batch_strategy="multi_record",
        max_payload_mb=6,
        assemble_with="line",
        join_source="none",
    )
    (target,) = load_targets(session, job)
    assert (target.endpoint, target.variant, target.model.name) == ("shop", "ic.small", "m")
    component = session.query(InferenceComponent).one()
    component.status = ComponentStatus.DELETING
    session.commit()
    with pytest.raises(JobFailed, match="inference component 'small' of endpoint 'shop'"):
        load_targets(session, job)
