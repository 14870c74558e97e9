"""Limits that keep the platform safe under floods and bad input: a variant's backlog
(429 with Retry-After, nothing accepted lost), instances per request, readable buckets."""

from __future__ import annotations

import http.client
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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

LIMIT = 20
READABLE = f"readable-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def small_stack(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with private_stack(
        s3,
        tmp_path_factory.mktemp("limits"),
        SLUICEWAY_MAX_BACKLOG=str(LIMIT),
        SLUICEWAY_BACKLOG_CHECK_MS="0",
        SLUICEWAY_MAX_INSTANCES="10",
        SLUICEWAY_READABLE_BUCKETS=READABLE,
    ) as running:
        yield running


def test_a_full_backlog_answers_429_and_every_accepted_job_still_runs(
    small_stack: Stack, model_files: dict[str, Path]
) -> None:
    with small_stack.client() as client:
        model = register(client, unique("xgb"), "xgboost", model_files["xgb"])
        name = unique("bp")
        create_endpoint(client, {"name": name, "variants": [{"name": "a", "model": model["name"]}]})
        body = {"instances": models.random_rows(1, seed=1)}
        accepted, refused = [], []
        for _ in range(LIMIT + 10):  # no worker yet: the queue only grows
            response = client.post(f"/v1/endpoints/{name}/async-invocations", json=body)
            if response.status_code == 202:
                accepted.append(response.json()["job_id"])
            else:
                refused.append(response)
        assert len(accepted) == LIMIT
        assert len(refused) == 10
        for response in refused:
            assert response.status_code == 429
            assert response.headers["content-type"] == "application/problem+json"
            assert int(response.headers["Retry-After"]) >= 1
            assert f"limit {LIMIT}" in response.json()["detail"]
        realtime = client.post(f"/v1/endpoints/{name}/invocations", json=body)
        assert realtime.status_code == 429

        small_stack.start_worker()
        for job_id in accepted:
            assert wait_job(client, job_id)["status"] == "succeeded"
        wait_for(
            lambda: client.post(f"/v1/endpoints/{name}/invocations", json=body).status_code == 200,
            timeout_s=30,
            what="the drained variant to accept requests again",
        )


def test_instances_per_request_and_readable_buckets_are_limited(
    small_stack: Stack, model_files: dict[str, Path], s3: SeaweedServer
) -> None:
    client_s3 = s3.client()
    payload = b'{"instances": [[1, 2, 3, 4]]}'
    private = unique("private")  # exists and holds the object, but is not allowed
    for bucket in (READABLE, private):
        client_s3.make_bucket(bucket)
        client_s3.put_object(bucket, "in.json", io.BytesIO(payload), len(payload))
    with small_stack.client() as client:
        model = register(client, unique("xgb"), "xgboost", model_files["xgb"])
        name = unique("lim")
        create_endpoint(client, {"name": name, "variants": [{"name": "a", "model": model["name"]}]})
        too_many = client.post(
            f"/v1/endpoints/{name}/invocations",
            json={"instances": models.random_rows(11, seed=2)},
        )
        assert too_many.status_code == 413
        assert "11 instances; the limit is 10" in too_many.json()["detail"]

        def from_bucket(bucket: str) -> httpx.Response:
            return client.post(
                f"/v1/endpoints/{name}/async-invocations",
                headers={
                    "X-Input-Location": f"s3://{bucket}/in.json",
                    "Content-Type": "application/json",
                },
            )

        assert from_bucket(READABLE).status_code == 202
        refused = from_bucket(private)
        assert refused.status_code == 403
        assert "SLUICEWAY_READABLE_BUCKETS" in refused.json()["detail"]


def test_oversized_or_malformed_headers_are_refused(small_stack: Stack) -> None:
    with small_stack.client() as client:
        huge = client.get("/v1/models", headers={"X-Padding": "x" * 20_000})
        assert huge.status_code == 431
        assert huge.headers["content-type"] == "application/problem+json"
        many = client.get("/v1/models", headers={f"X-H{i}": "1" for i in range(150)})
        assert many.status_code == 431
        assert client.get("/v1/models", headers={"X-Fine": "y" * 1000}).status_code == 200


def test_an_idle_connection_is_still_served_after_uvicorns_default_keep_alive(
    stack: Stack,
) -> None:
    """Regression: with uvicorn's 5 s default keep-alive, a client (or balancer)
    reusing a connection idle for about that long raced the close and got a reset
    instead of an answer (an httpx.ReadError in a test). The API keeps idle
    connections for SLUICEWAY_API_KEEP_ALIVE_S (75 s)."""
    host, port = stack.api_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        first.read()
        opened = connection.sock
        time.sleep(6)  # idle past uvicorn's 5 s: the connection must still be open
        connection.request("GET", "/healthz")  # a closed one: RemoteDisconnected
        second = connection.getresponse()
        second.read()
        assert (first.status, second.status) == (200, 200)
        assert connection.sock is opened  # the same connection, reused
    finally:
        connection.close()
