"""Dynamic batching on real Redis and real worker processes.

This module runs its own stack with no generic workers: each test starts a worker
for its own variant (`--variant`), so requests can be queued before any worker
exists and a batch's contents are known exactly.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from core.states import JOB_UNFINISHED
from core.tables import Job
from devstack.servers import SeaweedServer
from tests.integration import models
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    private_stack,
    register,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration

ON = {"max_batch_size": 32, "max_delay_ms": 5}


@pytest.fixture(scope="module")
def bstack(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with private_stack(s3, tmp_path_factory.mktemp("batching")) as running:
        yield running


def new_endpoint(stack: Stack, model_path: Path, framework: str, batching: dict[str, Any]) -> str:
    with stack.client() as client:
        model = register(client, unique("m"), framework, model_path)
        name = unique("b")
        create_endpoint(
            client,
            {
                "name": name,
                "variants": [{"name": "a", "model": model["name"], "batching": batching}],
            },
        )
    return name


def serve(stack: Stack, endpoint: str) -> None:
    """Start a worker for this endpoint's variant and wait until it serves it."""
    stack.start_worker("--variant", f"{endpoint}/a")
    wait_for(
        lambda: variant(stack, endpoint)["workers"]["current"] >= 1,
        timeout_s=60,
        what=f"a worker serving {endpoint}/a",
    )


def variant(stack: Stack, endpoint: str) -> dict[str, Any]:
    with stack.client() as client:
        result: dict[str, Any] = client.get(f"/v1/endpoints/{endpoint}").json()["variants"][0]
    return result


def batch_metrics(stack: Stack, endpoint: str) -> dict[str, float]:
    """This variant's batch-size histogram and counters, read from the API's /metrics."""
    text = httpx.get(f"{stack.api_url}/metrics", timeout=10).text
    found: dict[str, float] = {}
    pattern = re.compile(
        r"^(sluiceway_batch_size_(?:bucket|sum|count)|sluiceway_worker_\w+)\{"
        r'endpoint="'
        + re.escape(endpoint)
        + r'",(?:le="([^"]+)",)?variant="a"(?:,le="([^"]+)")?\} (\S+)$'
    )
    for line in text.splitlines():
        match = pattern.match(line)
        if match:
            name, le1, le2, value = match.groups()
            le = le1 or le2
            found[f"{name}[{le}]" if le else name] = float(value)
    return found


async def call_all(
    stack: Stack, endpoint: str, payloads: list[list[list[float]]]
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(payloads))
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=120, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(f"/v1/endpoints/{endpoint}/invocations", json={"instances": rows})
                for rows in payloads
            )
        )


def test_64_concurrent_callers_get_their_own_predictions_and_batches_form(
    bstack: Stack, model_files: dict[str, Path]
) -> None:
    endpoint = new_endpoint(bstack, model_files["torch"], "torch", ON)
    serve(bstack, endpoint)
    payloads = [models.random_rows(1 + i % 3, seed=i) for i in range(64 * 4)]
    for start in range(0, len(payloads), 64):  # four waves of 64 concurrent callers
        chunk = payloads[start : start + 64]
        responses = asyncio.run(call_all(bstack, endpoint, chunk))
        for rows, response in zip(chunk, responses, strict=True):
            assert response.status_code == 200, response.text
            models.assert_close(
                response.json()["predictions"], models.predict_torch(model_files["torch"], rows)
            )
    metrics = batch_metrics(bstack, endpoint)
    assert metrics["sluiceway_batch_size_count"] > 0
    mean = metrics["sluiceway_batch_size_sum"] / metrics["sluiceway_batch_size_count"]
    assert metrics["sluiceway_batch_size_sum"] == sum(len(p) for p in payloads)
    assert mean > 1, metrics


def test_a_poisoned_request_among_31_good_ones_fails_alone(
    bstack: Stack, model_files: dict[str, Path]
) -> None:
    """Thirty-two requests wait in the queue, then one worker takes them as one batch."""
    endpoint = new_endpoint(bstack, model_files["picky"], "torch", ON)
    payloads = [models.random_rows(1, seed=100 + i) for i in range(32)]
    payloads[13] = [[-5000.0, 0.0, 0.0, 0.0]]  # the picky model raises on this one

    async def scenario() -> list[httpx.Response]:
        calls = asyncio.create_task(call_all(bstack, endpoint, payloads))
        await asyncio.to_thread(
            wait_for,
            lambda: variant(bstack, endpoint)["backlog"] == 32,
            timeout_s=60,
            what="32 queued requests",
        )
        await asyncio.to_thread(serve, bstack, endpoint)
        return await calls

    responses = asyncio.run(scenario())
    for index, (rows, response) in enumerate(zip(payloads, responses, strict=True)):
        if index == 13:
            assert response.status_code == 424, response.text
            assert "feature below -1000" in response.json()["detail"]
        else:
            assert response.status_code == 200, response.text
            models.assert_close(
                response.json()["predictions"], models.predict_torch(model_files["picky"], rows)
            )
    metrics = batch_metrics(bstack, endpoint)
    assert metrics["sluiceway_batch_size_count"] == 1  # all 32 in one batch
    assert metrics["sluiceway_worker_errors_total"] == 1


def test_changing_max_batch_size_reaches_running_workers(
    bstack: Stack, model_files: dict[str, Path]
) -> None:
    endpoint = new_endpoint(bstack, model_files["torch"], "torch", ON)
    serve(bstack, endpoint)

    def over_four() -> float:
        metrics = batch_metrics(bstack, endpoint)
        return metrics["sluiceway_batch_size_count"] - metrics["sluiceway_batch_size_bucket[4.0]"]

    def load() -> None:
        payloads = [models.random_rows(1, seed=i) for i in range(64)]
        for response in asyncio.run(call_all(bstack, endpoint, payloads)):
            assert response.status_code == 200, response.text

    for _ in range(3):
        load()
    assert over_four() > 0, "at max_batch_size 32 some batches should exceed 4"

    with bstack.client() as client:
        patched = client.patch(
            f"/v1/endpoints/{endpoint}/variants/a",
            json={"batching": {"max_batch_size": 4, "max_delay_ms": 5}},
        )
        assert patched.status_code == 200, patched.text
    log = next(p for p in bstack.home.glob("worker-*.log") if endpoint in p.read_text())
    wait_for(
        lambda: "max_batch_size=4" in log.read_text(),
        timeout_s=30,
        what="the worker to pick up max_batch_size=4",
    )
    before = over_four()
    for _ in range(3):
        load()
    assert over_four() == before, "no batch may exceed the new max_batch_size of 4"


def test_realtime_overtakes_a_backlog_of_1000_async_jobs(
    bstack: Stack, model_files: dict[str, Path]
) -> None:
    endpoint = new_endpoint(bstack, model_files["torch"], "torch", ON)
    rows = models.random_rows(1, seed=9)

    async def submit_async(count: int) -> None:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=bstack.api_url, timeout=120, limits=limits) as client:
            semaphore = asyncio.Semaphore(32)

            async def one() -> None:
                async with semaphore:
                    response = await client.post(
                        f"/v1/endpoints/{endpoint}/async-invocations", json={"instances": rows}
                    )
                    assert response.status_code == 202, response.text

            await asyncio.gather(*(one() for _ in range(count)))

    # Enough that draining it takes seconds; the realtime calls need milliseconds each.
    asyncio.run(submit_async(1000))
    serve(bstack, endpoint)

    engine = create_engine(bstack.env["SLUICEWAY_DATABASE_URL"])

    def unfinished() -> int:
        with engine.connect() as connection:
            return int(
                connection.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.endpoint == endpoint, Job.status.in_(JOB_UNFINISHED))
                )
                or 0
            )

    with bstack.client() as client:
        for _ in range(5):
            response = client.post(
                f"/v1/endpoints/{endpoint}/invocations", json={"instances": rows}
            )
            assert response.status_code == 200, response.text
    # Five realtime answers came back while most of the async backlog still waits.
    assert unfinished() > 500
    engine.dispose()
