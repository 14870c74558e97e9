"""Batching python handlers and serial inference pipelines on real workers.

One private stack with no generic workers: each test starts a worker for its
own variant once its requests wait in the queue, so the batch it takes is
known exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from devstack.servers import SeaweedServer
from sluiceway import Client
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
from tests.integration.console_html import page_row
from tests.integration.models import handler_bundle as bundle
from tests.integration.models import tarball
from tests.integration.test_transform import csv_text, get, lines, put, submit, wait_status

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


# A pipeline's first step: takes the JSON instances, doubles every feature.
PREP = """
import json

import numpy as np


def input_fn(body, content_type):
    return np.asarray(json.loads(body)["instances"], dtype=np.float32)


def predict_fn(rows, model):
    if (rows < -1000).any():
        raise ValueError("feature below -1000")
    return rows * 2
"""

# Its last step: a probability in, [probability, label] out, its own output_fn.
POST = """
import json


def predict_fn(probabilities, model):
    return [[p, int(p > 0.5)] for p in probabilities]


def output_fn(predictions, accept):
    return json.dumps({"scored": predictions}), "application/json"
"""


def prep(rows: list[list[float]]) -> list[list[float]]:
    return (np.asarray(rows, dtype=np.float32) * 2).tolist()


def post(probabilities: list[float]) -> list[list[float]]:
    return [[p, int(p > 0.5)] for p in probabilities]


@pytest.fixture(scope="module")
def pstack(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("pipelines")
    with private_stack(
        s3,
        home,
        HANDLER_TEST_CALL_LOG=str(home / "calls.log"),
        SLUICEWAY_SCALER_BACKEND="none",  # the tests start their workers themselves
        SLUICEWAY_TRANSFORM_INTERVAL_S="0.2",
    ) as running:
        scheduler = running._spawn(["scheduler"], "scheduler.log")
        running.workers.append(scheduler)  # stopped (SIGTERM) with the stack
        yield running


@pytest.fixture(scope="module")
def churn(
    pstack: Stack, model_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Three registered steps (python prep → xgboost → python post), the pipeline over
    them and an endpoint serving it (no worker yet)."""
    folder = tmp_path_factory.mktemp("steps")
    names = {"prep": unique("prep"), "xgb": unique("xgb"), "post": unique("post")}
    with pstack.client() as client:
        register(client, names["prep"], "python", bundle(folder / "prep.tar.gz", PREP))
        register(client, names["xgb"], "xgboost", model_files["xgb"])
        register(client, names["post"], "python", bundle(folder / "post.tar.gz", POST))
        names["pipeline"] = unique("churn")
    # Through the SDK, with the CLI's step syntax: [STEP=]MODEL[:VERSION].
    with Client(pstack.api_url) as sdk:
        version = sdk.models.register_pipeline(
            names["pipeline"], f"prep={names['prep']}:1,xgb={names['xgb']},post={names['post']}"
        )
    assert version.framework == "pipeline" and version.steps is not None
    assert [step.name for step in version.steps] == ["prep", "xgb", "post"]
    with pstack.client() as client:
        names["endpoint"] = unique("churn")
        create_endpoint(
            client,
            {
                "name": names["endpoint"],
                "variants": [
                    {
                        "name": "a",
                        "model": names["pipeline"],
                        "batching": {"max_batch_size": 64, "max_delay_ms": 5},
                    }
                ],
            },
        )
    return names


def serve(stack: Stack, endpoint: str) -> None:
    """Start a worker for this endpoint's variant and wait until it serves it."""
    stack.start_worker("--variant", f"{endpoint}/a")
    wait_for(
        lambda: variant(stack, endpoint)["workers"]["current"] >= 1,
        timeout_s=60,
        what=f"a worker serving {endpoint}/a",
    )


def ensure_served(stack: Stack, endpoint: str) -> None:
    """A worker serves the endpoint (started by an earlier test, or now)."""
    if variant(stack, endpoint)["workers"]["current"] == 0:
        serve(stack, endpoint)


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


def test_a_pipeline_answers_as_its_steps_called_by_hand_and_a_bad_record_fails_alone(
    pstack: Stack, churn: dict[str, str], model_files: dict[str, Path]
) -> None:
    """Sixteen callers wait in the queue, then one worker takes them as one batch: one
    call per step for all of them, and the poisoned request fails naming its step."""
    payloads = [models.random_rows(1 + i % 3, seed=i) for i in range(16)]
    payloads[5] = [[-5000.0, 0.0, 0.0, 0.0]]
    responses = queue_then_serve(pstack, churn["endpoint"], payloads)
    for index, (rows, response) in enumerate(zip(payloads, responses, strict=True)):
        if index == 5:
            assert response.status_code == 424, response.text
            detail = response.json()["detail"]
            assert "pipeline step 'prep'" in detail and "feature below -1000" in detail
            continue
        assert response.status_code == 200, response.text
        expected = post(models.predict_xgboost(model_files["xgb"], prep(rows)))
        got = response.json()["scored"]
        models.assert_close([p for p, _ in got], [p for p, _ in expected])
        assert [label for _, label in got] == [label for _, label in expected]

    with pstack.client() as client:
        shown = client.get(f"/v1/models/{churn['pipeline']}").json()
    assert shown["framework"] == "pipeline"
    assert [(s["name"], s["model"], s["version"]) for s in shown["steps"]] == [
        ("prep", churn["prep"], 1),
        ("xgb", churn["xgb"], 1),
        ("post", churn["post"], 1),
    ]
    # The console's model page, rendered by the real API: the steps, in order.
    with pstack.client() as client:
        page = client.get(f"/console/models/{churn['pipeline']}")
    assert page.status_code == 200, page.text
    assert 'id="pipeline-steps"' in page.text
    for index, step in enumerate(shown["steps"], start=1):
        row = page_row(page.text, f"step-{step['name']}")
        assert row == (
            f"{index} {step['name']} {step['model']} v{step['version']} "
            f"{step['framework']} {step['artifact_uri']}"
        ), row
    assert f'href="/console/models/{churn["xgb"]}"' in page.text
    text = httpx.get(f"{pstack.api_url}/metrics", timeout=10).text
    for step in ("prep", "xgb", "post"):
        assert (
            f'sluiceway_pipeline_step_seconds_count{{endpoint="{churn["endpoint"]}",'
            f'step="{step}",variant="a"}}'
        ) in text or (
            f'sluiceway_pipeline_step_seconds_count{{endpoint="{churn["endpoint"]}",'
            f'variant="a",step="{step}"}}'
        ) in text, text[-3000:]


def test_direct_mode_runs_one_step_alone_and_an_unknown_step_is_404(
    pstack: Stack, churn: dict[str, str], model_files: dict[str, Path]
) -> None:
    rows = models.random_rows(3, seed=42)
    ensure_served(pstack, churn["endpoint"])
    with pstack.client() as client:
        url = f"/v1/endpoints/{churn['endpoint']}/invocations"
        xgb = client.post(url, json={"instances": rows}, headers={"X-Target-Container": "xgb"})
        assert xgb.status_code == 200, xgb.text
        models.assert_close(
            xgb.json()["predictions"], models.predict_xgboost(model_files["xgb"], rows)
        )
        first = client.post(url, json={"instances": rows}, headers={"X-Target-Container": "prep"})
        assert first.status_code == 200, first.text
        models.assert_close(first.json()["predictions"], prep(rows))
        unknown = client.post(
            url, json={"instances": rows}, headers={"X-Target-Container": "scale"}
        )
        assert unknown.status_code == 404, unknown.text
        assert "'prep', 'xgb', 'post'" in unknown.json()["detail"]


def test_an_async_job_runs_the_whole_pipeline(
    pstack: Stack, churn: dict[str, str], model_files: dict[str, Path]
) -> None:
    rows = models.random_rows(4, seed=7)
    ensure_served(pstack, churn["endpoint"])
    with pstack.client() as client:
        accepted = client.post(
            f"/v1/endpoints/{churn['endpoint']}/async-invocations", json={"instances": rows}
        )
        assert accepted.status_code == 202, accepted.text
        job = wait_job(client, accepted.json()["job_id"])
        assert job["status"] == "succeeded", job
        output = client.get(f"/v1/jobs/{job['job_id']}/output")
    expected = post(models.predict_xgboost(model_files["xgb"], prep(rows)))
    got = orjson.loads(output.content)["scored"]
    models.assert_close([p for p, _ in got], [p for p, _ in expected])


def test_an_async_job_in_direct_mode_runs_its_step_alone(
    pstack: Stack, churn: dict[str, str], model_files: dict[str, Path]
) -> None:
    rows = models.random_rows(2, seed=8)
    ensure_served(pstack, churn["endpoint"])
    url = f"/v1/endpoints/{churn['endpoint']}/async-invocations"
    with pstack.client() as client:
        unknown = client.post(
            url, json={"instances": rows}, headers={"X-Target-Container": "scale"}
        )
        assert unknown.status_code == 404, unknown.text
        accepted = client.post(url, json={"instances": rows}, headers={"X-Target-Container": "xgb"})
        assert accepted.status_code == 202, accepted.text
        job = wait_job(client, accepted.json()["job_id"])
        assert job["status"] == "succeeded", job
        output = client.get(f"/v1/jobs/{job['job_id']}/output")
    models.assert_close(
        orjson.loads(output.content)["predictions"],
        models.predict_xgboost(model_files["xgb"], rows),
    )


def test_bad_pipelines_are_422(pstack: Stack, churn: dict[str, str]) -> None:
    def attempt(steps: list[dict[str, Any]]) -> httpx.Response:
        with pstack.client() as client:
            return client.post(
                "/v1/models",
                json={"name": unique("bad"), "framework": "pipeline", "steps": steps},
            )

    unknown = attempt([{"name": "a", "model": churn["xgb"]}, {"name": "b", "model": "nope"}])
    assert unknown.status_code == 422 and "step 'b'" in unknown.json()["detail"], unknown.text
    sixteen = attempt([{"name": f"s{i}", "model": churn["xgb"]} for i in range(16)])
    assert sixteen.status_code == 422 and "2 to 15 steps" in sixteen.json()["detail"]
    nested = attempt(
        [{"name": "a", "model": churn["xgb"]}, {"name": "inner", "model": churn["pipeline"]}]
    )
    assert nested.status_code == 422 and "itself a pipeline" in nested.json()["detail"]
    twice = attempt([{"name": "a", "model": churn["xgb"]}, {"name": "a", "model": churn["xgb"]}])
    assert twice.status_code == 422 and "two steps are named 'a'" in twice.json()["detail"]


def test_a_batch_transform_runs_the_pipeline_and_a_bad_record_fails_alone(
    pstack: Stack, churn: dict[str, str], s3: SeaweedServer, model_files: dict[str, Path]
) -> None:
    ensure_served(pstack, churn["endpoint"])
    rows = models.random_rows(40, seed=11)
    rows[17] = [-5000.0, 0.0, 0.0, 0.0]  # prep raises for this record alone
    source, target = unique("in"), unique("out")
    put(s3, source, "data/a.csv", csv_text(rows).encode())
    accepted = submit(
        pstack,
        {
            "endpoint": churn["endpoint"],
            "input_prefix": f"s3://{source}/data/",
            "output_prefix": f"s3://{target}/results/",
            "content_type": "text/csv",
            "max_failed_records_percent": 5,
        },
    )
    done = wait_status(pstack, accepted["job_id"])
    assert done["processed_records"] == 40 and done["failed_records"] == 1
    out = lines(get(s3, target, "results/a.csv.out"))
    assert len(out) == 40 and out[17] == ""
    good = [row for index, row in enumerate(rows) if index != 17]
    expected = post(models.predict_xgboost(model_files["xgb"], prep(good)))
    got = [[float(v) for v in line.split(",")] for index, line in enumerate(out) if index != 17]
    models.assert_close(got, expected)
    errors = lines(get(s3, target, "results/a.csv.err"))
    assert len(errors) == 1 and errors[0].startswith("18\t"), errors
    assert "pipeline step 'prep'" in errors[0] and "feature below -1000" in errors[0]


INFERENCE_PY = """
import json

import numpy as np


def input_fn(body, content_type):
    return np.asarray(json.loads(body)["instances"], dtype=np.float32)


def output_fn(prediction, accept):
    return json.dumps({"scores": np.asarray(prediction).tolist()}), "application/json"
"""


def test_sagemaker_model_tar_gz_artifacts_register_and_serve(
    pstack: Stack, model_files: dict[str, Path], tmp_path: Path
) -> None:
    """An XGBoost `xgboost-model` and a TorchScript model with `code/inference.py`, as a
    SageMaker training job packs them; a pickled `xgboost-model` is refused."""
    xgb_tar = tarball(tmp_path / "xgb.tar.gz", {"xgboost-model": model_files["xgb"].read_bytes()})
    torch_tar = tarball(
        tmp_path / "torch.tar.gz",
        {
            "model.pth": model_files["torch"].read_bytes(),
            "code/inference.py": INFERENCE_PY.encode(),
        },
    )
    pickled = tarball(tmp_path / "pickled.tar.gz", {"xgboost-model": b"\x80\x04\x95fake"})
    endpoints = {"xgb": unique("smx"), "torch": unique("smt")}
    with pstack.client() as client:
        for label, framework, path in (("xgb", "xgboost", xgb_tar), ("torch", "torch", torch_tar)):
            model = register(client, unique(label), framework, path)
            create_endpoint(
                client,
                {"name": endpoints[label], "variants": [{"name": "a", "model": model["name"]}]},
            )
        with pickled.open("rb") as f:
            refused = client.post(
                "/v1/models",
                data={"name": unique("pk"), "framework": "xgboost"},
                files={"file": ("model.tar.gz", f, "application/octet-stream")},
            )
        assert refused.status_code == 422, refused.text
        assert "is a Python pickle" in refused.json()["detail"]

    pstack.start_worker(
        "--variant", f"{endpoints['xgb']}/a", "--variant", f"{endpoints['torch']}/a"
    )
    for endpoint in endpoints.values():
        wait_for(
            lambda endpoint=endpoint: variant(pstack, endpoint)["workers"]["current"] >= 1,
            timeout_s=60,
            what=f"a worker serving {endpoint}",
        )
    rows = models.random_rows(3, seed=21)
    with pstack.client() as client:
        xgb = client.post(f"/v1/endpoints/{endpoints['xgb']}/invocations", json={"instances": rows})
        assert xgb.status_code == 200, xgb.text
        models.assert_close(
            xgb.json()["predictions"], models.predict_xgboost(model_files["xgb"], rows)
        )
        scored = client.post(
            f"/v1/endpoints/{endpoints['torch']}/invocations", json={"instances": rows}
        )
        assert scored.status_code == 200, scored.text
        models.assert_close(
            scored.json()["scores"], models.predict_torch(model_files["torch"], rows)
        )
