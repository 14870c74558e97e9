"""Realtime and async round trips through real API, Redis, S3 and worker processes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration import models
from tests.integration.conftest import Stack, create_endpoint, register, unique, wait_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def endpoint(stack: Stack, model_files: dict[str, Path]) -> dict[str, Any]:
    """An endpoint with an XGBoost variant `a` and a torch variant `b`, weights 1:3."""
    with stack.client() as client:
        xgb = register(client, unique("xgb"), "xgboost", model_files["xgb"])
        mlp = register(client, unique("mlp"), "torch", model_files["torch"])
        return create_endpoint(
            client,
            {
                "name": unique("ep"),
                "variants": [
                    {"name": "a", "model": xgb["name"], "weight": 1},
                    {"name": "b", "model": mlp["name"], "weight": 3},
                ],
            },
        )


def test_realtime_matches_the_model_called_directly(
    stack: Stack, endpoint: dict[str, Any], model_files: dict[str, Path]
) -> None:
    rows = models.random_rows(5, seed=1)
    with stack.client() as client:
        for variant, expected in (
            ("a", models.predict_xgboost(model_files["xgb"], rows)),
            ("b", models.predict_torch(model_files["torch"], rows)),
        ):
            response = client.post(
                f"/v1/endpoints/{endpoint['name']}/invocations",
                json={"instances": rows},
                headers={"X-Target-Variant": variant},
            )
            assert response.status_code == 200, response.text
            assert response.headers["X-Invoked-Variant"] == variant
            assert response.headers["X-Job-Id"]
            models.assert_close(response.json()["predictions"], expected)


def test_realtime_csv_in_csv_out(
    stack: Stack, endpoint: dict[str, Any], model_files: dict[str, Path]
) -> None:
    rows = models.random_rows(3, seed=2)
    body = "\n".join(",".join(str(v) for v in row) for row in rows) + "\n"
    with stack.client() as client:
        response = client.post(
            f"/v1/endpoints/{endpoint['name']}/invocations",
            content=body,
            headers={"Content-Type": "text/csv", "X-Target-Variant": "a"},
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    got = [float(line) for line in response.text.splitlines()]
    models.assert_close(got, models.predict_xgboost(model_files["xgb"], rows))


def test_async_round_trip_writes_the_output_object(
    stack: Stack, endpoint: dict[str, Any], model_files: dict[str, Path], s3: Any
) -> None:
    rows = models.random_rows(4, seed=3)
    with stack.client() as client:
        response = client.post(
            f"/v1/endpoints/{endpoint['name']}/async-invocations",
            json={"instances": rows},
            headers={"X-Target-Variant": "b"},
        )
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["status"] == "queued"
        assert response.headers["Location"] == f"/v1/jobs/{accepted['job_id']}"
        job = wait_job(client, accepted["job_id"])
        assert job["status"] == "succeeded", job
        assert job["variant"] == "b"
        assert job["started_at"] and job["finished_at"]
        output = client.get(f"/v1/jobs/{accepted['job_id']}/output")
    assert output.status_code == 200
    expected = models.predict_torch(model_files["torch"], rows)
    models.assert_close(output.json()["predictions"], expected)
    # The same bytes are in the object store at output_location.
    bucket, key = accepted["output_location"].removeprefix("s3://").split("/", 1)
    stored = s3.client().get_object(bucket, key).read()
    assert orjson.loads(stored) == output.json()


def test_async_from_an_input_location(
    stack: Stack, endpoint: dict[str, Any], model_files: dict[str, Path], s3: Any
) -> None:
    rows = models.random_rows(6, seed=4)
    bucket = unique("inputs")
    client_s3 = s3.client()
    client_s3.make_bucket(bucket)
    payload = orjson.dumps({"instances": rows})
    client_s3.put_object(bucket, "in/req.json", io.BytesIO(payload), len(payload))
    with stack.client() as client:
        response = client.post(
            f"/v1/endpoints/{endpoint['name']}/async-invocations",
            headers={
                "X-Input-Location": f"s3://{bucket}/in/req.json",
                "Content-Type": "application/json",
                "X-Target-Variant": "a",
            },
        )
        assert response.status_code == 202, response.text
        job = wait_job(client, response.json()["job_id"])
        assert job["status"] == "succeeded", job
        output = client.get(f"/v1/jobs/{job['job_id']}/output").json()
    models.assert_close(output["predictions"], models.predict_xgboost(model_files["xgb"], rows))


def test_weights_split_traffic_and_can_be_changed(stack: Stack, endpoint: dict[str, Any]) -> None:
    """400 requests at weights 1:3 land near 100:300; after re-weighting only `a` serves."""
    rows = models.random_rows(1, seed=5)
    name = endpoint["name"]
    counts = {"a": 0, "b": 0}
    with httpx.Client(base_url=stack.api_url, timeout=60) as client:
        for _ in range(400):
            response = client.post(f"/v1/endpoints/{name}/invocations", json={"instances": rows})
            assert response.status_code == 200, response.text
            counts[response.headers["X-Invoked-Variant"]] += 1
        # Binomial(400, 0.25): mean 100, sd ~8.7; 60..140 is beyond 4.5 sd.
        assert 60 <= counts["a"] <= 140, counts

        patched = client.patch(
            f"/v1/endpoints/{name}/weights",
            json={"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 0}]},
        )
        assert patched.status_code == 200, patched.text
        seen = {
            client.post(f"/v1/endpoints/{name}/invocations", json={"instances": rows}).headers[
                "X-Invoked-Variant"
            ]
            for _ in range(30)
        }
        assert seen == {"a"}
        client.patch(
            f"/v1/endpoints/{name}/weights",
            json={"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}]},
        )


def test_idempotency_key_returns_the_first_job(stack: Stack, endpoint: dict[str, Any]) -> None:
    key = unique("idem")
    body = {"instances": models.random_rows(2, seed=6)}
    with stack.client() as client:
        first = client.post(
            f"/v1/endpoints/{endpoint['name']}/async-invocations",
            json=body,
            headers={"Idempotency-Key": key},
        )
        second = client.post(
            f"/v1/endpoints/{endpoint['name']}/async-invocations",
            json=body,
            headers={"Idempotency-Key": key},
        )
        other = client.post(
            f"/v1/endpoints/{endpoint['name']}/async-invocations",
            json=body,
            headers={"Idempotency-Key": unique("idem")},
        )
    assert first.status_code == second.status_code == other.status_code == 202
    assert first.json()["job_id"] == second.json()["job_id"]
    assert other.json()["job_id"] != first.json()["job_id"]
