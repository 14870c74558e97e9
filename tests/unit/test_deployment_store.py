"""The deployments room's transitions on a real (SQLite) database: each one guarded by the
state it expects, so a stale or second runner changes nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core import db
from core.config import get_settings
from core.db import session_scope, upgrade_schema
from core.states import DeploymentState
from core.tables import Deployment, Endpoint, EndpointConfig, Model, ModelVersion, Variant
from scheduler.deployments import store
from scheduler.deployments.decisions import Window

NS = "t"


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Endpoint `churn` serving config 1 (variant `a`), deploying config 2 (`a~2`)."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade_schema(url)
    monkeypatch.setenv("SLUICEWAY_DATABASE_URL", url)
    for cached in (get_settings, db.get_engine, db._session_factory):
        cached.cache_clear()
    with session_scope() as session:
        model = Model(name="m")
        model.versions.append(ModelVersion(version=1, framework="torch", artifact_uri="s3://m/1"))
        session.add(model)
        session.flush()
        version_id = model.versions[0].id
        endpoint = Endpoint(
            name="churn",
            output_prefix="s3://out/old/",
            status="updating",
            config_version=1,
            next_config_version=2,
            next_traffic_percent=0.0,
            deployment_id="d1",
        )
        endpoint.variants.append(Variant(name="a", model_version_id=version_id))
        endpoint.variants.append(
            Variant(name="a~2", public_name="a", config_version=2, model_version_id=version_id)
        )
        session.add(endpoint)
        session.flush()
        session.add(
            EndpointConfig(
                endpoint_id=endpoint.id,
                version=2,
                spec={"async": {"output_prefix": "s3://out/new/", "invocation_timeout_s": 60}},
            )
        )
        session.add(
            Deployment(
                id="d1",
                endpoint_id=endpoint.id,
                endpoint="churn",
                from_version=1,
                to_version=2,
                strategy="canary",
                params={"strategy": "canary", "canary_percent": 10},
                steps=[],
            )
        )
    yield "d1"
    for cached in (get_settings, db.get_engine, db._session_factory):
        cached.cache_clear()


def _rows() -> tuple[Endpoint, Deployment]:
    with session_scope() as session:
        endpoint = session.query(Endpoint).one()
        deployment = session.query(Deployment).one()
        session.expunge_all()
        return endpoint, deployment


def _advance(step_index: int, next_index: int, percent: float, *, last: bool = False) -> bool:
    return store.advance(
        "d1",
        step_index=step_index,
        next_index=next_index,
        percent=percent,
        last=last,
        baseline={"requests": 7.0},
        window=Window(requests=30, errors=0, p99_ms=5.0),
    )


def test_advance_moves_traffic_and_a_stale_step_changes_nothing(deployment: str) -> None:
    assert _advance(-1, 0, 10.0)
    endpoint, row = _rows()
    assert endpoint.next_traffic_percent == 10.0 and row.step_index == 0
    assert row.baseline == {"requests": 7.0} and row.steps[0]["percent"] == 10.0
    # A second runner that saw the deployment still provisioning moves nothing.
    assert not _advance(-1, 0, 10.0)
    assert _advance(0, 1, 100.0, last=True)
    endpoint, row = _rows()
    assert row.state == "baking" and endpoint.next_traffic_percent == 100.0
    assert row.steps[0]["outcome"] == "passed" and row.steps[0]["requests"] == 30


def test_rollback_sends_traffic_back_and_the_new_variant_drains(deployment: str) -> None:
    assert _advance(-1, 0, 10.0)
    reason = "error rate 20.0% (4 of 20 requests) at 10% of traffic > ..."
    window = Window(requests=20, errors=4)
    assert store.roll_back(
        "d1", step_index=0, state=DeploymentState.ROLLED_BACK, reason=reason, window=window
    )
    endpoint, row = _rows()
    assert (endpoint.config_version, endpoint.next_config_version) == (1, None)
    assert endpoint.deployment_id is None and endpoint.status == "rolling_back"
    assert row.state == "rolled_back" and row.reason == reason
    assert row.steps[0]["outcome"] == "rolled_back" and row.steps[0]["errors"] == 4
    assert not _advance(0, 1, 100.0)  # the runner's next move comes too late
    draining = store.draining_variants(NS)
    assert [d.key for d in draining] == ["a~2"]
    assert store.settle_rolled_back() == []  # a~2 still there
    assert store.remove_variant("churn", "a~2")
    assert store.settle_rolled_back() == ["churn"]


def test_success_serves_the_new_config_and_applies_its_async_block(deployment: str) -> None:
    assert _advance(-1, 0, 100.0, last=True)
    assert store.succeed("d1", step_index=0, window=None)
    endpoint, row = _rows()
    assert endpoint.config_version == 2 and endpoint.status == "in_service"
    assert endpoint.output_prefix == "s3://out/new/" and endpoint.invocation_timeout_s == 60
    assert row.state == "succeeded" and row.new_traffic_percent == 100.0
    assert [d.key for d in store.draining_variants(NS)] == ["a"]
    assert not store.succeed("d1", step_index=0, window=None)
