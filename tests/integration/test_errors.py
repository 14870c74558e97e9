"""Every error path of invocation and jobs answers RFC 9457 problem+json, never a 500.

Real API, Redis, S3 and worker processes. A response hook fails any test whose
client sees a 5xx other than 503 (not ready) and 504 (realtime timeout).
"""

from __future__ import annotations

import gzip
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from tests.integration import models
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    private_stack,
    register,
    unique,
    wait_job,
)

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
MODES = ["invocations", "async-invocations"]
MAX_INLINE = 6 * 1024 * 1024  # SLUICEWAY_MAX_INLINE_BODY_MB's default, 6 MiB


def _no_server_errors(response: httpx.Response) -> None:
    if response.status_code >= 500 and response.status_code not in (503, 504):
        response.read()
        raise AssertionError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code}: {response.text}"
        )


def checked(client: httpx.Client) -> httpx.Client:
    client.event_hooks["response"].append(_no_server_errors)
    return client


def assert_problem(response: httpx.Response, status: int, *named: str) -> dict[str, Any]:
    """A problem+json answer with this status whose detail names each of `named`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    assert body["title"]
    for text in named:
        assert text in body["detail"], body
    assert "Traceback" not in response.text
    return body


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with checked(stack.client()) as client:
        yield client


@pytest.fixture(scope="module")
def endpoint(stack: Stack, model_files: dict[str, Path]) -> str:
    """Variants `t` (torch MLP), `x` (XGBoost) and `p` (torch that raises on x < -1000)."""
    with checked(stack.client()) as client:
        mlp = register(client, unique("mlp"), "torch", model_files["torch"])
        xgb = register(client, unique("xgb"), "xgboost", model_files["xgb"])
        picky = register(client, unique("picky"), "torch", model_files["picky"])
        spec = {
            "name": unique("err"),
            "variants": [
                {"name": "t", "model": mlp["name"], "weight": 1},
                {"name": "x", "model": xgb["name"], "weight": 1},
                {"name": "p", "model": picky["name"], "weight": 0},
            ],
        }
        name: str = create_endpoint(client, spec)["name"]
    return name


def _post(
    client: httpx.Client,
    endpoint: str,
    mode: str,
    *,
    variant: str | None = "t",
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    sent = dict(headers or {})
    if variant is not None:
        sent["X-Target-Variant"] = variant
    return client.post(f"/v1/endpoints/{endpoint}/{mode}", headers=sent, **kwargs)


def _rows(n: int = 2, width: int = models.FEATURES) -> list[list[float]]:
    return [[0.5] * width for _ in range(n)]


# --- malformed, unsupported, unknown --------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "body", [b'{"instances": [[1, 2, 3, 4]', b"instances=1", b"", b'{"instances": [[1e999]]}']
)
def test_malformed_json_is_400(client: httpx.Client, endpoint: str, mode: str, body: bytes) -> None:
    response = _post(
        client, endpoint, mode, content=body, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "malformed JSON")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", ["t", "x"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "image/png"])
def test_unsupported_content_type_is_415(
    client: httpx.Client, endpoint: str, mode: str, variant: str, content_type: str
) -> None:
    response = _post(
        client,
        endpoint,
        mode,
        variant=variant,
        content=b"0.5 0.5 0.5 0.5",
        headers={"Content-Type": content_type},
    )
    assert_problem(response, 415, repr(content_type))


@pytest.mark.parametrize("mode", MODES)
def test_unknown_endpoint_is_404(client: httpx.Client, mode: str) -> None:
    name = unique("nope")
    response = _post(client, name, mode, variant=None, json={"instances": _rows()})
    assert_problem(response, 404, repr(name))


@pytest.mark.parametrize("mode", MODES)
def test_unknown_target_variant_is_404_naming_it_and_the_known_ones(
    client: httpx.Client, endpoint: str, mode: str
) -> None:
    response = _post(client, endpoint, mode, variant="zz", json={"instances": _rows()})
    assert_problem(response, 404, "'zz'", "['p', 't', 'x']")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("body", "content_type", "named"),
    [
        (b'{"instances": []}', "application/json", "no instances"),
        (b"\n\n", "text/csv", "no instances"),
        (b"[[1, 2, 3, 4]]", "application/json", '{"instances"'),
        (b'{"instances": "0.5,0.5"}', "application/json", "must be a list"),
        (b'{"instances": [[1, 2, 3, 4], [1, 2]]}', "application/json", "instance 1 has 2"),
        (b'{"instances": [[1, 2, "3", 4]]}', "application/json", "instance 0 is not a list"),
        (b"1,2,3,4\n1,2,x,4\n", "text/csv", "CSV line 2"),
    ],
    ids=["empty-list", "empty-csv", "bare-list", "not-a-list", "ragged", "string", "csv-word"],
)
def test_unusable_payloads_are_422_before_queueing(
    client: httpx.Client, endpoint: str, mode: str, body: bytes, content_type: str, named: str
) -> None:
    response = _post(client, endpoint, mode, content=body, headers={"Content-Type": content_type})
    assert_problem(response, 422, named)


# --- what only the model knows: feature count, model failures ---------------------------


@pytest.mark.parametrize("variant", ["t", "x"])
@pytest.mark.parametrize("width", [3, 6])
def test_wrong_feature_count_realtime_is_422_naming_both_counts(
    client: httpx.Client, endpoint: str, variant: str, width: int
) -> None:
    response = _post(
        client, endpoint, "invocations", variant=variant, json={"instances": _rows(2, width)}
    )
    assert_problem(response, 422, f"expects {models.FEATURES} features", f"got {width}")
    assert response.headers["X-Invoked-Variant"] == variant


@pytest.mark.parametrize("variant", ["t", "x"])
def test_wrong_feature_count_async_fails_the_job_with_a_readable_error(
    client: httpx.Client, endpoint: str, variant: str
) -> None:
    response = _post(
        client, endpoint, "async-invocations", variant=variant, json={"instances": _rows(2, 3)}
    )
    assert response.status_code == 202, response.text
    job = wait_job(client, response.json()["job_id"])
    assert job["status"] == "failed", job
    assert f"expects {models.FEATURES} features" in job["error"]
    assert "got 3" in job["error"]
    assert job["finished_at"]
    output = client.get(f"/v1/jobs/{job['job_id']}/output")
    assert_problem(output, 404, "failed", "got 3")


def test_a_model_that_raises_is_424_realtime(client: httpx.Client, endpoint: str) -> None:
    """Regression: the detail carried TorchScript's whole interpreter traceback (with
    the server's source paths), where the contract says never a stack trace."""
    fine = _post(client, endpoint, "invocations", variant="p", json={"instances": _rows()})
    assert fine.status_code == 200, fine.text
    rows = _rows(3)
    rows[1][0] = -5000.0
    response = _post(client, endpoint, "invocations", variant="p", json={"instances": rows})
    assert_problem(response, 424, "feature below -1000")


def test_a_model_that_raises_fails_the_async_job_with_the_reason(
    client: httpx.Client, endpoint: str
) -> None:
    rows = _rows(3)
    rows[2][3] = -5000.0
    response = _post(client, endpoint, "async-invocations", variant="p", json={"instances": rows})
    assert response.status_code == 202, response.text
    job = wait_job(client, response.json()["job_id"])
    assert job["status"] == "failed", job
    assert "feature below -1000" in job["error"]
    assert "Traceback" not in job["error"]


# --- size limits -----------------------------------------------------------------------


def _oversize_json() -> bytes:
    """A well-formed JSON body just over 6 MiB."""
    row = "[" + ",".join(["0.123456"] * models.FEATURES) + "]"
    count = MAX_INLINE // (len(row) + 1) + 100
    body = ('{"instances": [' + ",".join([row] * count) + "]}").encode()
    assert MAX_INLINE < len(body) < MAX_INLINE + 64 * 1024
    return body


@pytest.mark.parametrize("mode", MODES)
def test_body_over_the_inline_limit_is_413(client: httpx.Client, endpoint: str, mode: str) -> None:
    body = _oversize_json()
    response = _post(
        client, endpoint, mode, content=body, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413, str(len(body)), str(MAX_INLINE))


def test_chunked_body_over_the_limit_is_413(client: httpx.Client, endpoint: str) -> None:
    """No Content-Length: the limit is enforced while the body streams in."""
    body = _oversize_json()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    response = _post(
        client,
        endpoint,
        "invocations",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 413, str(MAX_INLINE))


def test_body_of_exactly_the_limit_is_accepted(
    client: httpx.Client, endpoint: str, model_files: dict[str, Path]
) -> None:
    rows = models.random_rows(3, seed=7)
    body = orjson.dumps({"instances": rows})
    body += b" " * (MAX_INLINE - len(body))  # JSON allows trailing whitespace
    assert len(body) == MAX_INLINE
    response = _post(client, endpoint, "invocations", variant="x", content=body)
    assert response.status_code == 200, response.text
    expected = models.predict_xgboost(model_files["xgb"], rows)
    models.assert_close(response.json()["predictions"], expected)


# --- headers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status"),
    [("abc", 400), ("1.5", 400), ("", 400), ("0", 422), ("-5", 422)],
)
def test_invalid_x_timeout_ms_is_refused(
    client: httpx.Client, endpoint: str, value: str, status: int
) -> None:
    response = _post(
        client,
        endpoint,
        "invocations",
        json={"instances": _rows()},
        headers={"X-Timeout-Ms": value},
    )
    assert_problem(response, status, "X-Timeout-Ms")


def test_idempotency_key_over_255_characters_is_422(client: httpx.Client, endpoint: str) -> None:
    response = _post(
        client,
        endpoint,
        "async-invocations",
        json={"instances": _rows()},
        headers={"Idempotency-Key": "k" * 256},
    )
    assert_problem(response, 422, "Idempotency-Key")


# --- X-Input-Location --------------------------------------------------------------------


@pytest.fixture(scope="module")
def input_bucket(s3: Any) -> str:
    bucket = unique("errin")
    s3.client().make_bucket(bucket)
    return bucket


def _put(s3: Any, bucket: str, key: str, data: bytes) -> str:
    s3.client().put_object(bucket, key, io.BytesIO(data), len(data))
    return f"s3://{bucket}/{key}"


def test_body_and_input_location_together_is_400(
    client: httpx.Client, endpoint: str, s3: Any, input_bucket: str
) -> None:
    location = _put(s3, input_bucket, "both.json", orjson.dumps({"instances": _rows()}))
    response = _post(
        client,
        endpoint,
        "async-invocations",
        json={"instances": _rows()},
        headers={"X-Input-Location": location},
    )
    assert_problem(response, 400, "X-Input-Location")


@pytest.mark.parametrize(
    "location",
    [
        "s3://{bucket}/no/such/key.json",
        "s3://no-such-bucket-{uid}/key.json",
        "https://example.com/key.json",
        "s3://",
    ],
    ids=["missing-key", "missing-bucket", "not-s3", "no-bucket"],
)
def test_input_location_that_is_not_there_is_422(
    client: httpx.Client, endpoint: str, input_bucket: str, location: str
) -> None:
    location = location.format(bucket=input_bucket, uid=uuid.uuid4().hex[:8])
    response = _post(
        client,
        endpoint,
        "async-invocations",
        headers={"X-Input-Location": location, "Content-Type": "application/json"},
    )
    assert_problem(response, 422, repr(location))


@pytest.mark.parametrize("location", ["s3://ab/key.json", "s3://a..b/key.json"])
def test_input_location_with_an_impossible_bucket_name_is_422(
    client: httpx.Client, endpoint: str, location: str
) -> None:
    """Regression: the minio SDK refuses such names with a ValueError before any request,
    and the API did not map it, so the caller got a 500."""
    response = _post(
        client,
        endpoint,
        "async-invocations",
        headers={"X-Input-Location": location, "Content-Type": "application/json"},
    )
    assert_problem(response, 422, location)


def test_input_location_with_an_unsupported_type_is_415(
    client: httpx.Client, endpoint: str, s3: Any, input_bucket: str
) -> None:
    location = _put(s3, input_bucket, "plain.txt", b"0.5 0.5 0.5 0.5")
    response = _post(
        client,
        endpoint,
        "async-invocations",
        headers={"X-Input-Location": location, "Content-Type": "text/plain"},
    )
    assert_problem(response, 415, "'text/plain'")


@pytest.mark.parametrize(
    ("data", "content_type", "reason"),
    [
        (b'{"instances": [[1, 2, 3, 4]', "application/json", "malformed JSON"),
        (b"1,2,3,4\n\xff\xfe,1,1,1\n", "text/csv", "not UTF-8"),
        (b'{"instances": []}', "application/json", "no instances"),
    ],
    ids=["malformed-json", "csv-not-utf8", "no-instances"],
)
def test_bad_input_object_fails_the_job_promptly(
    client: httpx.Client,
    endpoint: str,
    s3: Any,
    input_bucket: str,
    data: bytes,
    content_type: str,
    reason: str,
) -> None:
    """The API cannot see inside an input object, so the worker must fail the job on
    the first delivery. (An earlier worker took the codec's 400 BadRequest for an
    infrastructure error and retried such jobs for minutes.)"""
    location = _put(s3, input_bucket, f"{uuid.uuid4().hex}.in", data)
    response = _post(
        client,
        endpoint,
        "async-invocations",
        headers={"X-Input-Location": location, "Content-Type": content_type},
    )
    assert response.status_code == 202, response.text
    job = wait_job(client, response.json()["job_id"], timeout_s=20)
    assert job["status"] == "failed", job
    assert reason in job["error"]
    assert job["attempts"] == 1, job


# --- jobs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/output"])
@pytest.mark.parametrize(
    "job_id",
    [str(uuid.uuid4()), "not-a-uuid", "x" * 300],
    ids=["unknown-uuid", "not-a-uuid", "300-chars"],
)
def test_unknown_job_is_404(client: httpx.Client, job_id: str, suffix: str) -> None:
    response = client.get(f"/v1/jobs/{job_id}{suffix}")
    assert_problem(response, 404, "no job")


# --- a broken artifact ----------------------------------------------------------------------


TRUNCATED_BUNDLE = gzip.compress(b"handler.py" + b"\0" * 2000)[:20]


def test_registering_an_artifact_that_does_not_load_is_422(
    client: httpx.Client, tmp_path: Path
) -> None:
    """A cut-short .tar.gz passes the magic-byte sniff; loading it at registration fails."""
    path = tmp_path / "truncated.tar.gz"
    path.write_bytes(TRUNCATED_BUNDLE)
    with path.open("rb") as f:
        response = client.post(
            "/v1/models",
            data={"name": unique("cut"), "framework": "python"},
            files={"file": (path.name, f, "application/octet-stream")},
        )
    assert_problem(response, 422, "does not load as python")


@pytest.fixture(scope="module")
def broken_endpoint(stack: Stack, s3: Any, model_files: dict[str, Path]) -> str:
    """A `python` model whose artifact is corrupted in the object store after it was
    registered (an artifact_uri is not owned by the platform): only a worker sees it."""
    bucket = unique("artifacts")
    s3.client().make_bucket(bucket)
    good = model_files["slow"].read_bytes()
    s3.client().put_object(bucket, "bundle.tar.gz", io.BytesIO(good), len(good))
    with checked(stack.client()) as client:
        response = client.post(
            "/v1/models",
            json={
                "name": unique("cut"),
                "framework": "python",
                "artifact_uri": f"s3://{bucket}/bundle.tar.gz",
            },
        )
        assert response.status_code == 201, response.text
        s3.client().put_object(
            bucket, "bundle.tar.gz", io.BytesIO(TRUNCATED_BUNDLE), len(TRUNCATED_BUNDLE)
        )
        spec = {
            "name": unique("cut"),
            "variants": [{"name": "a", "model": response.json()["name"]}],
        }
        name: str = create_endpoint(client, spec)["name"]
    return name


def test_a_model_that_cannot_load_is_a_problem_not_a_500(
    client: httpx.Client, broken_endpoint: str
) -> None:
    """Regression: the truncated bundle's EOFError escaped the runner and the worker's
    batch, so the caller got nothing back at all (a 504 after the full 60 s)."""
    response = client.post(
        f"/v1/endpoints/{broken_endpoint}/invocations",
        json={"instances": _rows()},
        headers={"X-Timeout-Ms": "10000"},
    )
    assert_problem(response, 424, "cannot load model")


def test_an_async_job_on_a_model_that_cannot_load_ends_failed(
    client: httpx.Client, broken_endpoint: str
) -> None:
    """Regression: the load error escaped the worker's batch, so the job stayed `running`
    and was redelivered until it ran out of attempts, instead of failing at once."""
    response = client.post(
        f"/v1/endpoints/{broken_endpoint}/async-invocations", json={"instances": _rows()}
    )
    assert response.status_code == 202, response.text
    job = wait_job(client, response.json()["job_id"], timeout_s=20)
    assert job["status"] == "failed", job
    assert "cannot load model" in job["error"]
    assert job["attempts"] == 1, job


# --- no worker at all: timeouts and jobs that have not run -----------------------------------


@pytest.fixture(scope="module")
def idle(
    s3: Any, model_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, str]]:
    """A second stack with an API and no worker: nothing ever consumes its queues."""
    with private_stack(s3, tmp_path_factory.mktemp("idle")) as idle_stack:
        try:
            with checked(idle_stack.client()) as client:
                model = register(client, unique("mlp"), "torch", model_files["torch"])
                spec = {"name": unique("idle"), "variants": [{"name": "a", "model": model["name"]}]}
                name: str = create_endpoint(client, spec)["name"]
            yield idle_stack, name
        finally:
            leftovers = redis.Redis.from_url(idle_stack.env["SLUICEWAY_REDIS_URL"])
            keys = list(leftovers.scan_iter(match=f"{idle_stack.namespace}*"))
            if keys:
                leftovers.delete(*keys)


@pytest.mark.parametrize("timeout_ms", [1, 300])
def test_realtime_call_nobody_answers_is_504(idle: tuple[Stack, str], timeout_ms: int) -> None:
    idle_stack, name = idle
    with checked(idle_stack.client()) as client:
        response = client.post(
            f"/v1/endpoints/{name}/invocations",
            json={"instances": _rows()},
            headers={"X-Timeout-Ms": str(timeout_ms)},
        )
    assert_problem(response, 504, "'a'", f"{timeout_ms} ms")


def test_output_of_a_job_that_has_not_run_is_404(idle: tuple[Stack, str]) -> None:
    idle_stack, name = idle
    with checked(idle_stack.client()) as client:
        accepted = client.post(
            f"/v1/endpoints/{name}/async-invocations", json={"instances": _rows()}
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "queued", job
        assert job["error"] is None and job["started_at"] is None
        output = client.get(f"/v1/jobs/{job_id}/output")
    assert_problem(output, 404, job_id, "queued")


# --- the rest of the surface ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/no-such-thing", 404),
        ("DELETE", "/v1/jobs/abc", 405),
        ("PUT", "/v1/models", 405),
        ("GET", "/v1/endpoints/{endpoint}/invocations", 405),
    ],
)
def test_unknown_routes_and_methods_are_problems(
    client: httpx.Client, endpoint: str, method: str, path: str, status: int
) -> None:
    response = client.request(method, path.format(endpoint=endpoint))
    assert_problem(response, status)
