"""Batching python handlers and serial inference pipelines on real workers.

One private stack with no generic workers: each test starts a worker for its
own variant once its requests wait in the queue, so the batch it takes is
known exactly.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

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

BATCHING_HANDLER = """
import json
import os

batch_predict = True


def input_fn(body, content_type):
    return json.loads(body)["instances"]


def predict_fn(batch, model):
    with open(os.environ["HANDLER_TEST_CALL_LOG"], "a") as log:
        log.write(f"{len(batch)}\\n")
    if any(row[0] < -1000 for request in batch for row in request):
        raise ValueError("feature below -1000")
    return [[sum(row) for row in request] for request in batch]
"""


@pytest.fixture(scope="module")
def pstack(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("pipelines")
    with private_stack(s3, home, HANDLER_TEST_CALL_LOG=str(home / "calls.log")) as running:
        yield running


def bundle(path: Path, source: str) -> Path:
    data = source.encode()
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("handler.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


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


async def call_all(stack: Stack, endpoint: str, payloads: list[Any]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(payloads))
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=120, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(f"/v1/endpoints/{endpoint}/invocations", json={"instances": rows})
                for rows in payloads
            )
        )


def queue_then_serve(stack: Stack, endpoint: str, payloads: list[Any]) -> list[httpx.Response]:
    """Send every payload, wait until all of them are queued, then start the worker."""

    async def scenario() -> list[httpx.Response]:
        calls = asyncio.create_task(call_all(stack, endpoint, payloads))
        await asyncio.to_thread(
            wait_for,
            lambda: variant(stack, endpoint)["backlog"] == len(payloads),
            timeout_s=60,
            what=f"{len(payloads)} queued requests",
        )
        await asyncio.to_thread(serve, stack, endpoint)
        return await calls

    return asyncio.run(scenario())


def test_a_batching_handler_gets_whole_batches_and_a_bad_request_fails_alone(
    pstack: Stack, tmp_path: Path
) -> None:
    call_log = Path(pstack.env["HANDLER_TEST_CALL_LOG"])
    call_log.unlink(missing_ok=True)
    endpoint = unique("bh")
    with pstack.client() as client:
        model = register(
            client, unique("bh"), "python", bundle(tmp_path / "b.tar.gz", BATCHING_HANDLER)
        )
        create_endpoint(
            client,
            {
                "name": endpoint,
                "variants": [
                    {
                        "name": "a",
                        "model": model["name"],
                        "batching": {"max_batch_size": 32, "max_delay_ms": 5},
                    }
                ],
            },
        )
    payloads = [[[float(i), 1.0]] for i in range(16)]
    payloads[9] = [[-5000.0, 1.0]]
    responses = queue_then_serve(pstack, endpoint, payloads)
    for index, (rows, response) in enumerate(zip(payloads, responses, strict=True)):
        if index == 9:
            assert response.status_code == 424, response.text
            assert "feature below -1000" in response.json()["detail"]
        else:
            assert response.status_code == 200, response.text
            assert response.json() == {"predictions": [sum(rows[0])]}
    calls = [int(n) for n in call_log.read_text().split()]
    # All 16 in the first call; then bisection isolates the bad one (16 → 8 → 4 → 2 → 1).
    assert calls[0] == 16, calls
    assert len(calls) <= 1 + 2 * 4, calls
