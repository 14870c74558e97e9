"""A worker killed with SIGKILL in the middle of 200 async jobs loses none of them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from core.db import session_scope
from core.tables import Job
from tests.integration import models
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    register,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration

JOBS = 200


def job_states(job_ids: list[str]) -> Counter[str]:
    with session_scope() as session:
        rows = session.execute(select(Job.status).where(Job.id.in_(job_ids))).scalars()
        return Counter(rows)


@pytest.mark.parametrize("batch_size", [1, 32], ids=["one-at-a-time", "batches-of-32"])
def test_sigkill_mid_batch_loses_no_job_and_writes_each_output_once(
    stack: Stack, model_files: dict[str, Path], s3: Any, batch_size: int
) -> None:
    """With batches of 32 the victim holds up to 32 reserved messages when it dies."""
    bucket = unique("crash")
    with stack.client() as client:
        # 50 ms per job: the backlog outlasts the kill.
        slow = register(client, unique("slow"), "python", model_files["slow"])
        endpoint = create_endpoint(
            client,
            {
                "name": unique("crash"),
                "variants": [
                    {
                        "name": "a",
                        "model": slow["name"],
                        "batching": {"max_batch_size": batch_size, "max_delay_ms": 5},
                    }
                ],
                "async": {"output_prefix": f"s3://{bucket}/out/"},
            },
        )
        name = endpoint["name"]
        victim = stack.start_worker()
        wait_for(
            lambda: victim.pid in stack.heartbeat_pids(), timeout_s=60, what="the victim worker"
        )

        rows_by_job: dict[str, list[list[float]]] = {}
        with httpx.Client(base_url=stack.api_url, timeout=60) as fast:
            for i in range(JOBS):
                rows = models.random_rows(3, seed=1000 + i)
                response = fast.post(
                    f"/v1/endpoints/{name}/async-invocations", json={"instances": rows}
                )
                assert response.status_code == 202, response.text
                rows_by_job[response.json()["job_id"]] = rows
        job_ids = list(rows_by_job)

        # Kill one worker while the others are still working through the backlog.
        wait_for(
            lambda: "succeeded" in stack.worker_log(victim),
            timeout_s=60,
            what="the victim to be working through a batch",
        )
        stack.kill_worker(victim)
        assert job_states(job_ids)["succeeded"] < JOBS, "the kill came too late to matter"

        # Its reserved message comes back after the visibility timeout (10 s here).
        wait_for(
            lambda: job_states(job_ids)["succeeded"] == JOBS,
            timeout_s=120,
            what=f"all {JOBS} jobs to succeed after the kill",
            every_s=0.5,
        )
        states = job_states(job_ids)
        assert states == Counter({"succeeded": JOBS}), states

    # Exactly one output object per job, each with that job's predictions.
    keys = [o.object_name for o in s3.client().list_objects(bucket, prefix="out/", recursive=True)]
    assert sorted(keys) == sorted(f"out/{job_id}.out" for job_id in job_ids)
    for job_id in job_ids:
        stored = orjson.loads(s3.client().get_object(bucket, f"out/{job_id}.out").read())
        models.assert_close(stored["predictions"], [sum(row) for row in rows_by_job[job_id]])
