"""Worker leases with real processes: a long job on a live worker runs once however long it
takes; a realtime caller whose worker dies is retried elsewhere or answered 503, not 504.

One stack: a visibility timeout of 6 s (kombu's restore, run by the workers every
second, and the reconciler's, every second, would redeliver anything older), a
3 s lease (the shortest the visibility timeout allows), and a scheduler with the
local backend keeping two workers on variant `pair`. Variant `lone` has no
scheduler workers (max 0): the test runs its one worker itself, so its death is
seen only through its lease. (The recovery time at the default settings is
tests/integration/test_worker_crash.py's.)
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.broker import live_workers
from devstack.servers import SeaweedServer
from tests.integration import models
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    private_stack,
    register,
    unique,
    wait_for,
    wait_job,
)

pytestmark = pytest.mark.integration

VISIBILITY_S = 6
LEASE_S = 3


@pytest.fixture(scope="module")
def leased(
    s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]
) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("leases")
    with private_stack(
        s3,
        home,
        SLUICEWAY_VISIBILITY_TIMEOUT_S=str(VISIBILITY_S),
        SLUICEWAY_WORKER_LEASE_S=str(LEASE_S),
        SLUICEWAY_RECONCILE_INTERVAL_S="1",
        SLUICEWAY_SCHEDULER_INTERVAL_S="0.5",
        SLUICEWAY_LOCAL_CPU_SLOTS="2",
        SLUICEWAY_LOCAL_WARM_SPARE="false",
        SLUICEWAY_WORKER_PRELOAD="",  # python handlers only: no torch to import at boot
    ) as running:
        with running.client() as client:
            model = register(client, unique("recorder"), "python", model_files["recorder"])
            for name, workers in (("pair", 2), ("lone", 0)):
                create_endpoint(
                    client,
                    {
                        "name": f"{name}-{running.namespace}",
                        "variants": [
                            {
                                "name": "a",
                                "model": model["name"],
                                "min_workers": workers,
                                "max_workers": workers,
                            }
                        ],
                    },
                )
        scheduler = running._spawn(["scheduler"], "scheduler.log")
        running.start_worker("--variant", f"lone-{running.namespace}/a")
        try:
            wait_for(
                lambda: len(serving(running, "pair")) == 2 and len(serving(running, "lone")) == 1,
                timeout_s=90,
                what="two scheduler workers on `pair` and the test's worker on `lone`",
            )
            yield running
        finally:
            scheduler.send_signal(signal.SIGTERM)
            scheduler.wait(60)


def serving(stack: Stack, variant: str) -> set[int]:
    """Pids of the live workers serving endpoint `variant`'s queue."""
    import redis

    queue = f"{stack.namespace}.{variant}-{stack.namespace}.a"
    client = redis.Redis.from_url(stack.env["SLUICEWAY_REDIS_URL"])
    return {w.pid for w in live_workers(client, stack.namespace) if queue in w.queues}


def request(record: Path, sleep_s: float) -> tuple[str, dict[str, Any]]:
    request_id = uuid.uuid4().hex[:12]
    return request_id, {"id": request_id, "sleep_s": sleep_s, "record": str(record)}


class Call(threading.Thread):
    """One realtime call, made on a thread: its response and how long it took."""

    def __init__(self, url: str, body: dict[str, Any], timeout_ms: int) -> None:
        super().__init__(daemon=True)
        self.url, self.body, self.timeout_ms = url, body, timeout_ms
        self.response: httpx.Response | None = None
        self.started = time.monotonic()
        self.seconds = 0.0

    def run(self) -> None:
        self.started = started = time.monotonic()
        self.response = httpx.post(
            self.url,
            json=self.body,
            headers={"X-Timeout-Ms": str(self.timeout_ms)},
            timeout=self.timeout_ms / 1000 + 30,
        )
        self.seconds = time.monotonic() - started


def test_a_job_running_2_5_visibility_timeouts_on_a_live_worker_runs_once(
    leased: Stack, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    request_id, body = request(record, sleep_s=2.5 * VISIBILITY_S)
    with leased.client() as client:
        accepted = client.post(
            f"/v1/endpoints/pair-{leased.namespace}/async-invocations", json=body
        )
        assert accepted.status_code == 202, accepted.text
        job = wait_job(client, accepted.json()["job_id"], timeout_s=90)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1, job
    assert [run_id for run_id, _pid in models.recorded_runs(record)] == [request_id]


def test_a_realtime_call_whose_worker_dies_is_retried_on_the_other(
    leased: Stack, tmp_path: Path
) -> None:
    """The issue's case: an 8 s call with X-Timeout-Ms 12000 loses its worker 2 s in.
    The scheduler sees its child exit and ends the lease at once, so the call is back
    in the queue within about a second and the other worker answers it at about
    11 s, in time (it used to be a 504 at 12 s)."""
    record = tmp_path / "runs.txt"
    request_id, body = request(record, sleep_s=8)
    call = Call(f"{leased.api_url}/v1/endpoints/pair-{leased.namespace}/invocations", body, 12000)
    call.start()
    ((_id, victim),) = wait_for(
        lambda: models.recorded_runs(record), timeout_s=30, what="the call to start running"
    )
    time.sleep(max(2 - (time.monotonic() - call.started), 0))  # the fault: 2 s into the call
    os.kill(victim, signal.SIGKILL)
    call.join()
    assert call.response is not None
    print(f"retried call answered {call.response.status_code} after {call.seconds:.1f} s")
    assert call.response.status_code == 200, call.response.text
    runs = models.recorded_runs(record)
    assert [run_id for run_id, _pid in runs] == [request_id, request_id]
    assert call.response.json()["pid"] == runs[1][1] != victim


def test_a_realtime_call_whose_only_worker_dies_is_answered_503_once_its_lease_ends(
    leased: Stack, tmp_path: Path
) -> None:
    """No supervisor reports this worker's death: its lease ends 3 s after its last
    renewal and the scheduler's sweep (every second) answers the caller then — by
    about 4 s after the kill (11 s at the default 10 s lease), not at its 12 s timeout."""
    record = tmp_path / "runs.txt"
    _request_id, body = request(record, sleep_s=8)
    call = Call(f"{leased.api_url}/v1/endpoints/lone-{leased.namespace}/invocations", body, 12000)
    call.start()
    ((_id, victim),) = wait_for(
        lambda: models.recorded_runs(record), timeout_s=30, what="the call to start running"
    )
    (worker,) = leased.workers
    assert worker.pid == victim
    leased.kill_worker(worker)
    call.join()
    assert call.response is not None
    print(f"orphaned call answered {call.response.status_code} after {call.seconds:.1f} s")
    assert call.response.status_code == 503, call.response.text
    problem = call.response.json()
    assert problem["title"] == "Worker failed"
    assert "no other live worker serves variant" in problem["detail"], problem
    assert len(models.recorded_runs(record)) == 1
