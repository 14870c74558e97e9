"""`sluice scheduler` keeps its workers alive: a worker killed with SIGKILL is replaced."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import msgpack
import pytest
import redis

from cli.servers import SeaweedServer
from tests.integration.conftest import (
    Stack,
    drop_postgres_database,
    make_stack,
    new_postgres_database,
    postgres_url,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def bare_stack(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    database = new_postgres_database()
    try:
        yield make_stack(
            tmp_path_factory.mktemp("scheduler"),
            s3,
            postgres_url(database),
            SLUICEWAY_WORKERS="1",
            SLUICEWAY_SCHEDULER_INTERVAL_S="0.5",
        )
    finally:
        drop_postgres_database(database)


def worker_pids(stack: Stack) -> set[int]:
    client = redis.Redis.from_url(stack.env["SLUICEWAY_REDIS_URL"])
    keys = list(client.scan_iter(match=f"{stack.namespace}:worker:*"))
    return {msgpack.unpackb(raw)["pid"] for raw in client.mget(keys) if raw} if keys else set()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_worker_is_replaced_and_sigterm_stops_them_all(bare_stack: Stack) -> None:
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
        scheduler.send_signal(signal.SIGTERM)
        assert scheduler.wait(60) == 0, bare_stack.log("scheduler.log")
        (new_pid,) = replacement
        wait_for(lambda: not alive(new_pid), timeout_s=30, what="the worker to stop")
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
            scheduler.wait()
