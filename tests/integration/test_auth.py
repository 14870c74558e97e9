"""API keys with SLUICEWAY_AUTH=on: 401 without a valid key, 403 beyond its scope or endpoints."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.servers import SeaweedServer
from tests.integration import models
from tests.integration.conftest import (
    REPO,
    Stack,
    private_stack,
    unique,
    wait_job,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def auth_stack(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with private_stack(s3, tmp_path_factory.mktemp("auth"), SLUICEWAY_AUTH="on") as running:
        running.start_worker()
        yield running


def new_key(stack: Stack, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "keys", "create", *args],
        env=stack.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    key = result.stdout.strip()
    assert key.startswith("sw_") and "\n" not in key  # the key alone on stdout
    return key


def as_key(stack: Stack, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=stack.api_url, timeout=60, headers=headers)


def test_keys_scopes_and_endpoint_limits(auth_stack: Stack, model_files: dict[str, Path]) -> None:
    admin = new_key(auth_stack, "--scope", "admin")
    name, other = unique("auth"), unique("other")
    with as_key(auth_stack, admin) as client, model_files["xgb"].open("rb") as f:
        response = client.post(
            "/v1/models",
            data={"name": "m-" + name, "framework": "xgboost"},
            files={"file": ("model.json", f)},
        )
        assert response.status_code == 201, response.text
        for endpoint in (name, other):
            spec = {"name": endpoint, "variants": [{"name": "a", "model": "m-" + name}]}
            assert client.post("/v1/endpoints", json=spec).status_code == 201
    invoker = new_key(auth_stack, "--scope", "invoke", "--endpoint", name)
    body = {"instances": models.random_rows(2, seed=1)}

    # Public routes need no key.
    with as_key(auth_stack, None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
        for response in (
            anonymous.get("/v1/models"),
            anonymous.post(f"/v1/endpoints/{name}/invocations", json=body),
        ):
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["WWW-Authenticate"] == "Bearer"
    for wrong in ("sw_nope_nope", admin[:-4] + "abcd", "not-a-key"):
        with as_key(auth_stack, wrong) as client:
            assert client.get("/v1/models").status_code == 401

    with as_key(auth_stack, invoker) as client:
        ok = client.post(f"/v1/endpoints/{name}/invocations", json=body)
        assert ok.status_code == 200, ok.text
        accepted = client.post(f"/v1/endpoints/{name}/async-invocations", json=body)
        assert accepted.status_code == 202
        assert wait_job(client, accepted.json()["job_id"])["status"] == "succeeded"
        forbidden = client.post(f"/v1/endpoints/{other}/invocations", json=body)
        assert forbidden.status_code == 403
        assert other in forbidden.json()["detail"]
        assert client.get("/v1/models").status_code == 403  # control plane needs admin
        assert client.delete(f"/v1/endpoints/{name}").status_code == 403

    with as_key(auth_stack, admin) as client:
        # The admin key may invoke any endpoint; the invoke key's job is invisible to
        # a key limited to another endpoint.
        job = client.post(f"/v1/endpoints/{other}/async-invocations", json=body).json()
    with as_key(auth_stack, invoker) as client:
        assert client.get(f"/v1/jobs/{job['job_id']}").status_code == 404


def test_the_key_never_appears_in_logs(auth_stack: Stack) -> None:
    key = new_key(auth_stack, "--scope", "admin")
    with as_key(auth_stack, key) as client:
        client.get("/v1/models")
        client.get("/v1/nope")
    secret = key.rsplit("_", 1)[1]
    for log in auth_stack.home.glob("*.log"):
        assert secret not in log.read_text(errors="replace"), log.name
