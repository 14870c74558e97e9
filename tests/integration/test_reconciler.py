"""The reconciler requeues accepted jobs whose message vanished from Redis, and
dead-letters those that keep losing it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import update

from cli.servers import SeaweedServer
from core.db import session_scope
from core.protocol import priority_lists, queue_name
from core.tables import Job
from scheduler.reconciler import MAX_DELIVERIES, Reconciler
from tests.integration import models
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    private_stack,
    register,
    stack_settings,
    unique,
    wait_job,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lonely(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API with no worker yet: queued messages stay where the test can lose them."""
    with private_stack(s3, tmp_path_factory.mktemp("reconcile")) as running:
        yield running


def test_lost_messages_are_requeued_and_every_job_finishes(
    lonely: Stack, model_files: dict[str, Path]
) -> None:
    rows = models.random_rows(2, seed=1)
    with lonely.client() as client:
        model = register(client, unique("xgb"), "xgboost", model_files["xgb"])
        name = unique("rec")
        create_endpoint(client, {"name": name, "variants": [{"name": "a", "model": model["name"]}]})
        jobs = [
            client.post(f"/v1/endpoints/{name}/async-invocations", json={"instances": rows}).json()
            for _ in range(5)
        ]
    client_redis = redis.Redis.from_url(lonely.env["SLUICEWAY_REDIS_URL"])
    # The queue is lost (say, Redis restarted without its append-only file).
    client_redis.delete(*priority_lists(queue_name(lonely.namespace, name, "a")))
    poisoned = jobs[0]["job_id"]
    with stack_settings(lonely):
        with session_scope() as session:
            session.execute(update(Job).where(Job.id == poisoned).values(attempts=MAX_DELIVERIES))
        report = Reconciler(client=client_redis, namespace=lonely.namespace, grace_s=0).tick()
        assert (report.requeued, report.dead_lettered) == (4, 1)
        # A second pass finds every job's message in place: nothing more to do.
        again = Reconciler(client=client_redis, namespace=lonely.namespace, grace_s=0).tick()
        assert (again.requeued, again.dead_lettered) == (0, 0)

    lonely.start_worker()
    with lonely.client() as client:
        for job in jobs[1:]:
            finished = wait_job(client, job["job_id"])
            assert finished["status"] == "succeeded", finished
            output = client.get(f"/v1/jobs/{job['job_id']}/output").json()
            models.assert_close(
                output["predictions"], models.predict_xgboost(model_files["xgb"], rows)
            )
        dead = client.get(f"/v1/jobs/{poisoned}").json()
        assert dead["status"] == "failed"
        assert dead["dead_letter"] is True
        assert "lost" in dead["error"]
        listed = client.get("/v1/jobs", params={"endpoint": name, "dead_letter": True}).json()
        assert [j["job_id"] for j in listed] == [poisoned]

        # A person retries it: it runs again from its stored input.
        retried = client.post(f"/v1/jobs/{poisoned}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["status"] == "queued"
        assert wait_job(client, poisoned)["status"] == "succeeded"
        assert client.post(f"/v1/jobs/{poisoned}/retry").status_code == 409
