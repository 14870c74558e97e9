"""The reconciler requeues accepted jobs whose message vanished from Redis, and
dead-letters those that keep losing it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import update

from core.db import session_scope
from core.protocol import priority_lists, queue_name, unacked_keys, unacked_mutex_key
from core.queue import restore_stale_reservations
from core.tables import Job
from devstack.servers import SeaweedServer
from scheduler.reconcile.reconciler import MAX_DELIVERIES, Reconciler
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
from workers.consumer import RESERVE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lonely(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API with no worker yet: queued messages stay where the test can lose them."""
    with private_stack(s3, tmp_path_factory.mktemp("reconcile")) as running:
        yield running


def submit_jobs(
    stack: Stack, model: Path, rows: list[list[float]], *, count: int
) -> tuple[str, list[dict[str, Any]]]:
    """A new endpoint serving the XGBoost `model`, and `count` async jobs sent to it."""
    with stack.client() as client:
        registered = register(client, unique("xgb"), "xgboost", model)
        name = unique("rec")
        spec = {"name": name, "variants": [{"name": "a", "model": registered["name"]}]}
        create_endpoint(client, spec)
        jobs = [
            client.post(f"/v1/endpoints/{name}/async-invocations", json={"instances": rows}).json()
            for _ in range(count)
        ]
    return name, jobs


def test_lost_messages_are_requeued_and_every_job_finishes(
    lonely: Stack, model_files: dict[str, Path]
) -> None:
    rows = models.random_rows(2, seed=1)
    name, jobs = submit_jobs(lonely, model_files["xgb"], rows, count=5)
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


def test_reservations_stranded_by_a_dead_worker_are_restored(
    lonely: Stack, model_files: dict[str, Path]
) -> None:
    """A worker dies holding messages while kombu's restore lock is left held (by
    a worker or a Redis stopped mid-restore): no worker restores anything until
    the lock expires, and the jobs look present. The reconciler puts them back."""
    for worker in list(lonely.workers):  # nobody consumes while the scene is set
        lonely.kill_worker(worker)
    rows = models.random_rows(3, seed=2)
    name, jobs = submit_jobs(lonely, model_files["xgb"], rows, count=4)
    client_redis = redis.Redis.from_url(lonely.env["SLUICEWAY_REDIS_URL"])
    queue = queue_name(lonely.namespace, name, "a")
    unacked, index = unacked_keys(lonely.namespace)
    reserve = client_redis.register_script(RESERVE)  # what a batching worker runs
    lists = priority_lists(queue)
    # Three taken five minutes ago by a worker since killed; one taken just now.
    for taken_at, count in ((time.time() - 300, 3), (time.time(), 1)):
        reserve(keys=[unacked, index, *lists], args=[count, taken_at, queue, *[count] * 4])
    assert client_redis.hlen(unacked) == 4
    client_redis.set(unacked_mutex_key(lonely.namespace), "dead-holder", ex=300)

    with stack_settings(lonely):
        reconciler = Reconciler(client=client_redis, namespace=lonely.namespace, grace_s=60)
        assert reconciler.tick().restored == 3
        assert sum(client_redis.llen(key) for key in lists) == 3
        # The fresh reservation is a live worker's business: left alone.
        assert client_redis.hlen(unacked) == 1
        assert reconciler.tick().restored == 0

    lonely.start_worker()
    expected = models.predict_xgboost(model_files["xgb"], rows)
    with lonely.client() as client:
        finished = [wait_job(client, job["job_id"], timeout_s=60) for job in jobs[:3]]
        # ...and the fourth, once its reservation is old enough (here: at once).
        assert restore_stale_reservations(client_redis, lonely.namespace, older_than_s=0) == 1
        finished.append(wait_job(client, jobs[3]["job_id"], timeout_s=60))
        assert [job["status"] for job in finished] == ["succeeded"] * 4, finished
        for job in jobs:
            output = client.get(f"/v1/jobs/{job['job_id']}/output").json()
            models.assert_close(output["predictions"], expected)
    client_redis.delete(unacked_mutex_key(lonely.namespace))
