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

from core.broker import (
    Reservations,
    WorkerLease,
    priority_lists,
    queue_name,
    restore_stale_reservations,
    unacked_index_key,
    unacked_key,
    unacked_mutex_key,
)
from core.db import session_scope
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
        reconciler = Reconciler(
            client=client_redis, namespace=lonely.namespace, grace_s=0, stale_after_s=300
        )
        report = reconciler.tick()
        assert (report.requeued, report.dead_lettered) == (4, 1)
        # A second pass finds every job's message in place: nothing more to do.
        again = reconciler.tick()
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


def test_reservations_nobody_renews_are_restored_when_kombu_does_not(
    lonely: Stack, model_files: dict[str, Path]
) -> None:
    """Reservations no lease covers (let go after a transient failure, or taken by a
    consumer without a lease) come back after the visibility timeout through kombu's
    restore — which does not run while its lock is left held (by a worker or a Redis
    stopped mid-restore) or no worker is alive, and the jobs look present. The
    reconciler puts them back itself."""
    for worker in list(lonely.workers):  # nobody consumes while the scene is set
        lonely.kill_worker(worker)
    rows = models.random_rows(3, seed=2)
    name, jobs = submit_jobs(lonely, model_files["xgb"], rows, count=4)
    client_redis = redis.Redis.from_url(lonely.env["SLUICEWAY_REDIS_URL"])
    queue = queue_name(lonely.namespace, name, "a")
    unacked, index = unacked_key(lonely.namespace), unacked_index_key(lonely.namespace)
    lease = WorkerLease(
        client_redis, lonely.namespace, worker_id=unique("gone"), lease_s=10, info=dict
    )
    lease.register()
    reservations = Reservations(client_redis, lonely.namespace, worker_id=lease.worker_id)
    taken = reservations.take(queue, limit=4, steps=(0, 3, 6, 9), caps=(4, 4, 4, 4))
    assert taken is not None and len(taken) == 4
    tags = [tag for _invocation, tag in taken if tag]
    # A transient failure lets all four go; three of them five minutes ago.
    reservations.settle(queue, done=[], let_go=tags)
    client_redis.zadd(index, {tag: time.time() - 300 for tag in tags[:3]})
    lease.leave()
    assert client_redis.hlen(unacked) == 4
    client_redis.set(unacked_mutex_key(lonely.namespace), "dead-holder", ex=300)

    with stack_settings(lonely):
        reconciler = Reconciler(
            client=client_redis, namespace=lonely.namespace, grace_s=60, stale_after_s=60
        )
        assert reconciler.tick().restored == 3
        assert sum(client_redis.llen(key) for key in priority_lists(queue)) == 3
        # The fresh one waits out its retry delay: left alone.
        assert client_redis.hlen(unacked) == 1
        assert reconciler.tick().restored == 0

    lonely.start_worker()
    expected = models.predict_xgboost(model_files["xgb"], rows)
    by_tag = {tag: invocation.job_id for invocation, tag in taken}
    with lonely.client() as client:
        finished = [wait_job(client, by_tag[tag], timeout_s=60) for tag in tags[:3]]
        # ...and the fourth, once its reservation is old enough (here: at once).
        assert restore_stale_reservations(client_redis, lonely.namespace, older_than_s=0) == 1
        finished.append(wait_job(client, by_tag[tags[3]], timeout_s=60))
        assert [job["status"] for job in finished] == ["succeeded"] * 4, finished
        for job in jobs:
            output = client.get(f"/v1/jobs/{job['job_id']}/output").json()
            models.assert_close(output["predictions"], expected)
    client_redis.delete(unacked_mutex_key(lonely.namespace))
