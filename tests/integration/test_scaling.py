"""The scaler on real parts: `sluice scheduler` starting and stopping real worker processes.

One private stack (API + scheduler, no hand-started workers) with short scaling
timings: scale out under a backlog without passing max_workers, scale in while
jobs still flow and to zero once they stop with no job lost or run twice, a
realtime call waking a variant at zero, and the endpoint view and /metrics
showing it all.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select

from core.broker import live_workers
from core.db import session_scope
from core.tables import Job
from devstack.servers import SeaweedServer
from tests.integration import models
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    private_stack,
    register,
    stack_settings,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration

IDLE_S = 6.0
TIMINGS = {
    "SLUICEWAY_SCHEDULER_INTERVAL_S": "0.5",
    "SLUICEWAY_SCALE_IN_COOLDOWN_S": "2",
    "SLUICEWAY_SCALE_IN_WINDOW_S": "3",
    "SLUICEWAY_SCALE_TO_ZERO_IDLE_S": str(IDLE_S),
    "SLUICEWAY_LOCAL_CPU_SLOTS": "3",
}


@pytest.fixture(scope="module")
def scaled(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose only workers are those the scheduler starts."""
    with (
        private_stack(s3, tmp_path_factory.mktemp("scaling"), **TIMINGS) as running,
        stack_settings(running),
    ):
        scheduler = running._spawn(["scheduler"], "scheduler.log")
        running.workers.append(scheduler)  # stopped (SIGTERM) with the stack
        yield running


def scheduler_pid(stack: Stack) -> int:
    return stack.workers[0].pid


def worker_processes(parent: int) -> set[int]:
    """Live worker processes started by `parent`, read from /proc.

    Not the idle warm spare: a `workers.standby` process counts once it has
    been given a variant (it then names itself `sluice-worker`). Nor a child
    between fork and exec, which still shows the scheduler's command line.
    """
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        comm, rest = stat.split(" (", 1)[1].rsplit(") ", 1)
        state, ppid = rest.split()[:2]
        if int(ppid) != parent or state == "Z" or b"worker" not in cmdline:
            continue
        if b"workers.standby" in cmdline and comm != "sluice-worker":
            continue
        pids.add(int(entry.name))
    return pids


def consuming(stack: Stack, queue: str) -> set[int]:
    """Pids of live workers (their lease has not ended) serving `queue`."""
    client = redis.Redis.from_url(stack.env["SLUICEWAY_REDIS_URL"])
    return {w.pid for w in live_workers(client, stack.namespace) if queue in w.queues}


class ProcessWatch:
    """Samples the scheduler's worker processes every 50 ms in a thread: the most at once."""

    def __init__(self, parent: int) -> None:
        self.parent = parent
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.most = max(self.most, len(worker_processes(self.parent)))
            time.sleep(0.05)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def variant_view(client: httpx.Client, endpoint: str, variant: str = "a") -> dict[str, Any]:
    response = client.get(f"/v1/endpoints/{endpoint}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = next(v for v in response.json()["variants"] if v["name"] == variant)
    return view


def job_rows(job_ids: list[str]) -> list[tuple[str, int]]:
    with session_scope() as session:
        return list(session.execute(select(Job.status, Job.attempts).where(Job.id.in_(job_ids))))


def submit(client: httpx.Client, endpoint: str, seed: int) -> tuple[str, list[list[float]]]:
    rows = models.random_rows(2, seed=seed)
    response = client.post(f"/v1/endpoints/{endpoint}/async-invocations", json={"instances": rows})
    assert response.status_code == 202, response.text
    return response.json()["job_id"], rows


def test_scale_out_in_and_to_zero_loses_no_job_and_runs_none_twice(
    scaled: Stack, model_files: dict[str, Path], s3: Any
) -> None:
    bucket = unique("scaled")
    name = unique("burst")
    queue = f"{scaled.namespace}.{name}.a"
    with scaled.client() as client, ProcessWatch(scheduler_pid(scaled)) as watch:
        slow = register(client, unique("slow"), "python", model_files["slow"])  # 50 ms a call
        create_endpoint(
            client,
            {
                "name": name,
                "variants": [
                    {
                        "name": "a",
                        "model": slow["name"],
                        "min_workers": 0,
                        "max_workers": 2,
                        "target_backlog_per_worker": 5,
                    }
                ],
                "async": {"output_prefix": f"s3://{bucket}/out/"},
            },
        )
        assert variant_view(client, name)["workers"] == {"current": 0, "desired": 0}
        assert not worker_processes(scheduler_pid(scaled)), "min_workers 0: nothing runs idle"

        # A burst: the backlog asks for more than max_workers allows.
        rows_by_job = dict(submit(client, name, seed) for seed in range(200))
        wait_for(lambda: len(consuming(scaled, queue)) == 2, timeout_s=60, what="two workers")
        view = variant_view(client, name)
        assert view["workers"]["desired"] == 2
        assert view["scaling_events"][-1]["from"] == 0, view["scaling_events"]

        # Jobs keep trickling in while the backlog drains: the scaler drops to one
        # worker (warm shutdown) with work still flowing.
        def one_worker() -> bool:
            job_id, rows = submit(client, name, seed=10_000 + len(rows_by_job))
            rows_by_job[job_id] = rows
            return variant_view(client, name)["workers"]["desired"] == 1

        wait_for(one_worker, timeout_s=90, what="a scale-in to one worker", every_s=0.3)
        for _ in range(10):
            job_id, rows = submit(client, name, seed=20_000 + len(rows_by_job))
            rows_by_job[job_id] = rows
            time.sleep(0.2)

        # Nothing arrives any more: zero workers after the idle period.
        last_job_at = time.monotonic()
        wait_for(
            lambda: variant_view(client, name)["workers"]["desired"] == 0,
            timeout_s=IDLE_S + 30,
            what="scale to zero",
        )
        assert time.monotonic() - last_job_at >= IDLE_S - 1
        wait_for(
            lambda: not worker_processes(scheduler_pid(scaled)),
            timeout_s=30,
            what="the last worker process to exit",
        )
        view = variant_view(client, name)
        reasons = [e["reason"] for e in reversed(view["scaling_events"])]
        assert reasons[0].startswith("wake from zero"), reasons
        assert any(r.startswith("scale in") for r in reasons), reasons
        assert reasons[-1].startswith("idle for"), reasons
        assert view["backlog"] == 0 and view["workers"]["desired"] == 0

        metrics = client.get("/metrics").text
        labels = f'endpoint="{name}",variant="a"'
        assert f"sluiceway_workers_desired{{{labels}}} 0.0" in metrics
        assert f"sluiceway_scaling_last_event_to_workers{{{labels}}} 0.0" in metrics
        assert f"sluiceway_backlog{{{labels}}} 0.0" in metrics
    assert watch.most <= 2, f"{watch.most} worker processes at once; max_workers is 2"

    # Every job succeeded once: attempts 1 means no message was run twice.
    job_ids = list(rows_by_job)
    rows = job_rows(job_ids)
    assert Counter(status for status, _ in rows) == Counter({"succeeded": len(job_ids)})
    assert Counter(attempts for _, attempts in rows) == Counter({1: len(job_ids)})
    keys = [o.object_name for o in s3.client().list_objects(bucket, prefix="out/", recursive=True)]
    assert sorted(keys) == sorted(f"out/{job_id}.out" for job_id in job_ids)


def test_a_realtime_call_wakes_a_variant_at_zero(
    scaled: Stack, model_files: dict[str, Path]
) -> None:
    name = unique("cold")
    rows = models.random_rows(3, seed=5)
    with scaled.client() as client:
        xgb = register(client, unique("xgb"), "xgboost", model_files["xgb"])
        create_endpoint(
            client,
            {"name": name, "variants": [{"name": "a", "model": xgb["name"], "max_workers": 1}]},
        )
        assert variant_view(client, name)["workers"]["current"] == 0
        started = time.monotonic()
        response = client.post(f"/v1/endpoints/{name}/invocations", json={"instances": rows})
        waited = time.monotonic() - started
        assert response.status_code == 200, response.text
        models.assert_close(
            response.json()["predictions"], models.predict_xgboost(model_files["xgb"], rows)
        )
        events = variant_view(client, name)["scaling_events"]
        assert events[-1]["reason"].startswith("wake from zero"), events
        # The scaler noticed the waiting call within a tick or two of its arrival.
        woke_at = events[-1]["at"]
        assert woke_at, events
        print(f"cold-start realtime call answered in {waited:.1f} s")


def test_a_worker_stopped_mid_job_finishes_it_first(scaled: Stack, tmp_path: Path) -> None:
    """Scale-in is a warm shutdown: the job in hand finishes, once, before the worker exits."""
    name = unique("warm")
    bundle = models.build_slow_handler(tmp_path / "slower.tar.gz", delay_s=2.0)
    with scaled.client() as client:
        slow = register(client, unique("slower"), "python", bundle)
        create_endpoint(
            client,
            {
                "name": name,
                "variants": [
                    {
                        "name": "a",
                        "model": slow["name"],
                        "max_workers": 2,
                        "target_backlog_per_worker": 1,
                    }
                ],
            },
        )
        job_ids = [submit(client, name, seed)[0] for seed in range(5)]

        def two_running() -> bool:
            return sum(1 for status, _ in job_rows(job_ids) if status == "running") == 2

        wait_for(two_running, timeout_s=60, what="two jobs running on two workers")
        # Both workers are 2 s into a job: take one away now.
        response = client.patch(f"/v1/endpoints/{name}/variants/a", json={"max_workers": 1})
        assert response.status_code == 200, response.text
        wait_for(
            lambda: "stopped (exit 0)" in scaled.log("scheduler.log").split(name)[-1],
            timeout_s=60,
            what="the stopped worker to exit on its own",
        )
        wait_for(
            lambda: Counter(s for s, _ in job_rows(job_ids))["succeeded"] == len(job_ids),
            timeout_s=60,
            what="every job to succeed",
        )
    assert Counter(attempts for _, attempts in job_rows(job_ids)) == Counter({1: len(job_ids)})
    events = variant_view(httpx.Client(base_url=scaled.api_url), name)["scaling_events"]
    assert events[0]["reason"] == "max_workers is 1", events
