"""Async options on real processes: timeouts, request TTLs, error documents, the per-worker cap,
and one prediction per instance for python handlers in every mode.

This module runs its own stack: an API, a `sluice scheduler` (no scaler backend;
its reconciler every second) and ONE worker, scoped with `--variant` to the
endpoints it serves, so "the same worker serves the next job" is observable
and an endpoint left out of its list has no worker at all. The python handler
gets stuck in a busy loop for a first value of -1 and sleeps 3 s for 5 (a
blocker that keeps the worker busy while the test queues work behind it).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from devstack.servers import SeaweedServer
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    private_stack,
    register,
    unique,
    wait_for,
    wait_job,
)
from tests.integration.models import handler_bundle as bundle

pytestmark = pytest.mark.integration

TRICKY = """
import time

import numpy as np


def predict_fn(data, model):
    first = float(data[0][0])
    if first == -1:
        while True:  # stuck: never returns
            pass
    if first == 5:
        time.sleep(3)
    return (np.asarray(data, dtype=float)[:, 0] * 2).tolist()
"""

ONE_TOO_FEW = """
def predict_fn(data, model):
    return [float(row[0]) * 2 for row in data][:-1]
"""

BLOCKER = 5.0
STUCK = -1.0


@pytest.fixture(scope="module")
def names() -> dict[str, str]:
    return {
        label: unique(label)
        for label in ("stuck", "lenient", "capped", "uncapped", "counted", "nobody")
    }


@pytest.fixture(scope="module")
def ostack(
    s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory, names: dict[str, str]
) -> Iterator[Stack]:
    with private_stack(
        s3,
        tmp_path_factory.mktemp("async-options"),
        SLUICEWAY_SCALER_BACKEND="none",  # the one worker is this module's own
        SLUICEWAY_RECONCILE_INTERVAL_S="1",
        SLUICEWAY_TRANSFORM_INTERVAL_S="0.2",
    ) as running:
        running.workers.append(running._spawn(["scheduler"], "scheduler.log"))
        served = [f"{names[label]}/a" for label in names if label != "nobody"]
        worker = running.start_worker(*(arg for v in served for arg in ("--variant", v)))
        wait_for(lambda: worker.pid in running.heartbeat_pids(), timeout_s=60, what="the worker")
        yield running


@pytest.fixture(scope="module")
def endpoints(
    ostack: Stack, names: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("handlers")
    errors = f"s3://{unique('errors')}/"
    with ostack.client() as client:
        tricky = register(client, unique("tricky"), "python", bundle(folder / "t.tar.gz", TRICKY))
        few = register(client, unique("few"), "python", bundle(folder / "f.tar.gz", ONE_TOO_FEW))
        specs = {
            "stuck": ({"invocation_timeout_s": 2}, {}),
            "lenient": ({}, {}),
            "capped": ({"max_concurrent_invocations_per_worker": 2}, {"max_batch_size": 8}),
            "uncapped": ({}, {"max_batch_size": 8}),
            "counted": ({}, {"max_batch_size": 8}),
            "nobody": ({}, {}),
        }
        created = {}
        for label, (options, batching) in specs.items():
            model = few if label == "counted" else tricky
            created[label] = create_endpoint(
                client,
                {
                    "name": names[label],
                    "variants": [{"name": "a", "model": model["name"], "batching": batching}],
                    "async": {"failure_prefix": f"{errors}{label}/", **options},
                },
            )
    return created


def submit(
    client: httpx.Client, endpoint: str, *firsts: float, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = client.post(
        f"/v1/endpoints/{endpoint}/async-invocations",
        json={"instances": [[v, 0.0] for v in firsts]},
        headers=headers or {},
    )
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    result: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    return result


def wait_running(client: httpx.Client, job_id: str) -> None:
    wait_for(
        lambda: job(client, job_id)["status"] == "running", timeout_s=60, what=f"{job_id} to run"
    )


def read_object(s3: SeaweedServer, uri: str) -> bytes:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    response = s3.client().get_object(bucket, key)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


def worker_pid(stack: Stack) -> int:
    (worker,) = [w for w in stack.workers if "worker" in stack.worker_logs.get(w.pid, "")]
    assert worker.poll() is None, stack.worker_log(worker)
    return worker.pid


# --- timeouts ------------------------------------------------------------------------


def test_a_handler_that_never_returns_fails_at_its_timeout_and_the_worker_serves_the_next_job(
    ostack: Stack, s3: SeaweedServer, endpoints: dict[str, Any], names: dict[str, str]
) -> None:
    pid = worker_pid(ostack)
    with ostack.client() as client:
        stuck = submit(client, names["stuck"], STUCK)
        after = submit(client, names["stuck"], 1.5)
        failed = wait_job(client, stuck["job_id"])
        assert failed["status"] == "failed", failed
        assert failed["error"] == "timeout: the invocation ran longer than its limit of 2 s"
        assert (failed["attempts"], failed["invocation_timeout_s"]) == (1, 2)
        succeeded = wait_job(client, after["job_id"])
        assert succeeded["status"] == "succeeded", succeeded
        assert client.get(f"/v1/jobs/{after['job_id']}/output").json() == {"predictions": [3.0]}
    assert worker_pid(ostack) == pid  # the same worker, still alive
    # The error document, announced in the 202 answer and on the job.
    assert stuck["failure_location"] == failed["failure_location"]
    assert failed["failure_location"].endswith(f"/stuck/{stuck['job_id']}.error.json")
    document = orjson.loads(read_object(s3, failed["failure_location"]))
    assert document["job_id"] == stuck["job_id"] and document["error"] == failed["error"]
    finished = dt.datetime.fromisoformat(failed["finished_at"])
    assert dt.datetime.fromisoformat(document["finished_at"]) == finished.replace(
        microsecond=finished.microsecond // 1000 * 1000
    )


def test_x_invocation_timeout_s_overrides_the_endpoints_timeout(
    ostack: Stack, endpoints: dict[str, Any], names: dict[str, str]
) -> None:
    assert endpoints["lenient"]["async"]["invocation_timeout_s"] == 900
    with ostack.client() as client:
        stuck = submit(client, names["lenient"], STUCK, headers={"X-Invocation-Timeout-S": "2"})
        failed = wait_job(client, stuck["job_id"])
        assert failed["invocation_timeout_s"] == 2
        assert failed["error"] == "timeout: the invocation ran longer than its limit of 2 s"


# --- request TTL -----------------------------------------------------------------------


def test_a_job_taken_after_its_ttl_fails_expired_without_running(
    ostack: Stack, endpoints: dict[str, Any], names: dict[str, str], s3: SeaweedServer
) -> None:
    with ostack.client() as client:
        blocker = submit(client, names["lenient"], BLOCKER)
        wait_running(client, blocker["job_id"])  # the worker is busy for 3 s
        late = submit(client, names["capped"], 1.0, headers={"X-Request-Ttl-S": "1"})
        expired = wait_job(client, late["job_id"])
        assert expired["status"] == "failed"
        assert expired["error"] == "expired: not started within 1 s (X-Request-Ttl-S)"
        assert (expired["attempts"], expired["started_at"]) == (0, None)  # never ran
        assert expired["expires_at"] is not None
        assert wait_job(client, blocker["job_id"])["status"] == "succeeded"
    assert orjson.loads(read_object(s3, expired["failure_location"]))["error"] == expired["error"]


def test_a_job_no_worker_takes_within_its_ttl_is_failed_by_the_reconciler(
    ostack: Stack, endpoints: dict[str, Any], names: dict[str, str], s3: SeaweedServer
) -> None:
    with ostack.client() as client:
        orphan = submit(client, names["nobody"], 1.0, headers={"X-Request-Ttl-S": "1"})
        expired = wait_job(client, orphan["job_id"], timeout_s=60)
    assert expired["error"] == "expired: not started within 1 s (X-Request-Ttl-S)"
    assert expired["attempts"] == 0
    assert orjson.loads(read_object(s3, expired["failure_location"]))["error"] == expired["error"]


# --- the per-worker cap ----------------------------------------------------------------


def most_at_once(jobs: list[dict[str, Any]]) -> int:
    """The most jobs running at the same moment, from their started/finished times."""
    spans = [
        (dt.datetime.fromisoformat(j["started_at"]), dt.datetime.fromisoformat(j["finished_at"]))
        for j in jobs
    ]
    return max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans)


def test_max_concurrent_invocations_per_worker_caps_what_one_worker_holds(
    ostack: Stack, endpoints: dict[str, Any], names: dict[str, str]
) -> None:
    """Eight jobs queued behind a blocker on each of two endpoints with batches of 8: the
    uncapped one's worker takes all eight at once, the capped one's never more than two."""
    assert endpoints["capped"]["async"]["max_concurrent_invocations_per_worker"] == 2
    with ostack.client() as client:
        blocker = submit(client, names["lenient"], BLOCKER)
        wait_running(client, blocker["job_id"])
        queued = {
            label: [submit(client, names[label], float(n)) for n in range(1, 9)]
            for label in ("capped", "uncapped")
        }
        finished = {
            label: [wait_job(client, j["job_id"]) for j in jobs] for label, jobs in queued.items()
        }
    for jobs in finished.values():
        assert {j["status"] for j in jobs} == {"succeeded"}
    assert most_at_once(finished["capped"]) == 2
    assert most_at_once(finished["uncapped"]) == 8


# --- one prediction per instance -------------------------------------------------------


def test_a_handler_answering_one_prediction_too_few_fails_in_every_mode(
    ostack: Stack, s3: SeaweedServer, endpoints: dict[str, Any], names: dict[str, str]
) -> None:
    """Regression: a handler whose predict_fn returned one value too few answered realtime
    with 3 rows 200 and 2 predictions (async likewise succeeded); only batch transform
    (and the built-in runners) counted."""
    name = names["counted"]
    with ostack.client() as client:
        for rows in (3, 1):
            response = client.post(
                f"/v1/endpoints/{name}/invocations",
                json={"instances": [[float(n), 0.0] for n in range(rows)]},
            )
            assert response.status_code == 424, response.text
            expected = f"the model returned {rows - 1} predictions for {rows} instances"
            assert response.json()["detail"] == expected
        failed = wait_job(client, submit(client, name, 1.0, 2.0, 3.0)["job_id"])
        assert failed["error"] == "Model error: the model returned 2 predictions for 3 instances"

        source, target = unique("in"), unique("out")
        minio = s3.client()
        minio.make_bucket(source)
        records = b"1,0\n2,0\n3,0\n"
        minio.put_object(source, "x.csv", io.BytesIO(records), len(records))
        response = client.post(
            "/v1/transform-jobs",
            json={
                "endpoint": name,
                "input_prefix": f"s3://{source}/",
                "output_prefix": f"s3://{target}/",
            },
        )
        assert response.status_code == 202, response.text
        transform_id = response.json()["job_id"]

        def done() -> dict[str, Any] | None:
            current: dict[str, Any] = client.get(f"/v1/transform-jobs/{transform_id}").json()
            return current if current["status"] in ("succeeded", "failed") else None

        transform = wait_for(done, timeout_s=60, what="the transform job")
    assert (transform["processed_records"], transform["failed_records"]) == (3, 3)
    errors = read_object(s3, f"s3://{target}/x.csv.err").decode().splitlines()
    assert errors == [
        f"{line}\tthe model returned 0 predictions for 1 instances" for line in (1, 2, 3)
    ]


# --- refused options -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({"X-Request-Ttl-S": "soon"}, 400, "X-Request-Ttl-S 'soon' is not a whole number"),
        ({"X-Request-Ttl-S": "0"}, 422, "X-Request-Ttl-S must be 1 to 21600 seconds, got 0"),
        ({"X-Invocation-Timeout-S": "7200"}, 422, "must be 1 to 3600 seconds, got 7200"),
    ],
)
def test_bad_async_option_headers_are_refused_naming_the_value(
    ostack: Stack,
    endpoints: dict[str, Any],
    names: dict[str, str],
    headers: dict[str, str],
    status: int,
    detail: str,
) -> None:
    with ostack.client() as client:
        response = client.post(
            f"/v1/endpoints/{names['lenient']}/async-invocations",
            json={"instances": [[1.0, 0.0]]},
            headers=headers,
        )
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]


def test_an_invocation_timeout_above_an_hour_is_refused(
    ostack: Stack, endpoints: dict[str, Any]
) -> None:
    model = endpoints["lenient"]["variants"][0]["model"]
    with ostack.client() as client:
        response = client.post(
            "/v1/endpoints",
            json={
                "name": unique("long"),
                "variants": [{"name": "a", "model": model}],
                "async": {"invocation_timeout_s": 3601},
            },
        )
    assert response.status_code == 422, response.text
    assert "invocation_timeout_s" in response.json()["detail"]
