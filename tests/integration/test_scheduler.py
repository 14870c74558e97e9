"""`sluice scheduler` keeps each variant's workers alive: a worker killed with SIGKILL is
replaced, a PATCH of min_workers is picked up within seconds, and SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.broker import live_workers
from devstack.servers import SeaweedServer
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    private_stack,
    register,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def bare_stack(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with private_stack(
        s3, tmp_path_factory.mktemp("scheduler"), SLUICEWAY_SCHEDULER_INTERVAL_S="0.5"
    ) as running:
        yield running


def worker_pids(stack: Stack) -> set[int]:
    client = redis.Redis.from_url(stack.env["SLUICEWAY_REDIS_URL"])
    return {w.pid for w in live_workers(client, stack.namespace)}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_worker_is_replaced_and_sigterm_stops_them_all(
    bare_stack: Stack, model_files: dict[str, Path]
) -> None:
    with bare_stack.client() as client:
        model = register(client, unique("xgb"), "xgboost", model_files["xgb"])
        name = unique("kept")
        create_endpoint(
            client,
            {
                "name": name,
                "variants": [{"name": "a", "model": model["name"], "min_workers": 1}],
            },
        )
    scheduler = bare_stack._spawn(["scheduler"], "scheduler.log")
    try:
        first = wait_for(
            lambda: worker_pids(bare_stack), timeout_s=60, what="the scheduler's first worker"
        )
        (victim,) = first
        os.kill(victim, signal.SIGKILL)
        replacement = wait_for(
            lambda: {p for p in worker_pids(bare_stack) if p != victim and alive(p)},
            timeout_s=60,
            what="a replacement worker",
        )
        assert len(replacement) == 1

        with bare_stack.client() as client:
            response = client.patch(
                f"/v1/endpoints/{name}/variants/a", json={"min_workers": 2, "max_workers": 2}
            )
            assert response.status_code == 200, response.text

        def two_alive() -> set[int] | None:
            pids = {p for p in worker_pids(bare_stack) if alive(p)}
            return pids if len(pids) == 2 else None

        both = wait_for(two_alive, timeout_s=60, what="a second worker after the PATCH")

        scheduler.send_signal(signal.SIGTERM)
        assert scheduler.wait(60) == 0, bare_stack.log("scheduler.log")
        for pid in both:
            wait_for(lambda pid=pid: not alive(pid), timeout_s=30, what=f"worker {pid} to stop")
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
            scheduler.wait()
