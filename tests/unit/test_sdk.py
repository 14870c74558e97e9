"""The Python SDK (sluiceway/) against a stand-in API (httpx.MockTransport), sync and async."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from sluiceway import AsyncClient, Client, errors
from sluiceway._plans import rows_body

Handler = Callable[[httpx.Request], httpx.Response]
CREATED = "2026-11-29T21:16:51Z"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def client_for(handler: Handler, clock: FakeClock | None = None) -> Client:
    clock = clock or FakeClock()
    http = httpx.Client(base_url="http://api.test", transport=httpx.MockTransport(handler))
    return Client(http_client=http, clock=clock, sleep=clock.sleep)


def async_client_for(handler: Handler, clock: FakeClock | None = None) -> AsyncClient:
    clock = clock or FakeClock()
    http = httpx.AsyncClient(base_url="http://api.test", transport=httpx.MockTransport(handler))
    return AsyncClient(http_client=http, clock=clock, sleep=clock.asleep)


class FakeApi:
    """Realtime doubles each row's first feature; async jobs run after two polls."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []
        self.polls = 0
        self.body = b""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.seen.append(request)
        path = request.url.path
        if path.endswith("/async-invocations"):
            self.body = request.content
            return httpx.Response(202, json={"job_id": "j1", "status": "queued"})
        if path.endswith("/invocations"):
            rows = json.loads(request.content)["instances"]
            return httpx.Response(
                200,
                json={"predictions": [row[0] * 2 for row in rows]},
                headers={"X-Invoked-Variant": "a", "X-Job-Id": "rt1"},
            )
        if path == "/v1/jobs/j1":
            self.polls += 1
            return httpx.Response(
                200, json={"job_id": "j1", "status": "succeeded" if self.polls > 2 else "running"}
            )
        if path == "/v1/jobs/j1/output":
            rows = json.loads(self.body)["instances"]
            return httpx.Response(200, json={"predictions": [row[0] * 2 for row in rows]})
        return httpx.Response(404, json={"title": "Not found", "status": 404, "detail": path})


@pytest.mark.parametrize(
    "rows", [[[1.0, 2.0], [3.0, 4.0]], ((1.0, 2.0), (3.0, 4.0)), np.array([[1.0, 2.0], [3.0, 4.0]])]
)
def test_rows_go_as_instances(rows: object) -> None:
    assert json.loads(rows_body(rows)) == {"instances": [[1.0, 2.0], [3.0, 4.0]]}


def test_a_dataframe_goes_as_its_rows() -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"a": [1.0, 3.0], "b": [2.0, 4.0]})
    assert json.loads(rows_body(frame)) == {"instances": [[1.0, 2.0], [3.0, 4.0]]}


def test_rows_of_another_kind_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="not str"):
        rows_body("1,2,3")


def test_predict_and_predict_async_give_one_prediction_per_row() -> None:
    api = FakeApi()
    clock = FakeClock()
    client = client_for(api, clock)
    churn = client.endpoint("churn")
    assert churn.predict([[1, 0], [2, 0]], variant="a") == [2, 4]
    assert api.seen[0].headers["X-Target-Variant"] == "a"
    job = churn.predict_async(np.array([[5.0, 0.0]]))
    assert job.id == "j1" and job.info is not None and job.info.status == "queued"
    assert job.result(timeout=10) == [10.0]
    assert clock.sleeps == [0.05, 0.1]  # two polls of a running job, then it succeeded


def test_predict_reaches_an_inference_component() -> None:
    api = FakeApi()
    churn = client_for(api, FakeClock()).endpoint("churn")
    assert churn.predict([[1, 0]], component="small") == [2]
    assert api.seen[0].headers["X-Target-Component"] == "small"
    assert "X-Target-Variant" not in api.seen[0].headers


def test_async_client_mirrors_the_sync_one() -> None:
    api = FakeApi()

    async def main() -> tuple[list[object], list[object]]:
        async with async_client_for(api) as client:
            churn = client.endpoint("churn")
            now = await churn.predict([[1, 0]])
            job = await churn.predict_async([[3, 0]])
            return now, await job.result(timeout=10)

    assert asyncio.run(main()) == ([2], [6])


def test_errors_carry_the_problem_fields() -> None:
    body = {"type": "about:blank", "title": "Invalid input", "status": 422, "detail": "3 != 4"}
    client = client_for(lambda _r: httpx.Response(422, json=body))
    with pytest.raises(errors.InvalidInput) as raised:
        client.endpoint("churn").predict([[1, 2, 3]])
    assert (raised.value.type, raised.value.title, raised.value.status, raised.value.detail) == (
        "about:blank",
        "Invalid input",
        422,
        "3 != 4",
    )
    assert isinstance(raised.value, errors.ApiError)


def test_a_failed_job_raises_job_failed_with_its_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"job_id": "j9", "status": "queued"})
        return httpx.Response(200, json={"job_id": "j9", "status": "failed", "error": "boom"})

    job = client_for(handler).endpoint("churn").predict_async([[1]])
    with pytest.raises(errors.JobFailed, match="job j9 failed: boom"):
        job.result(timeout=5)


def test_update_against_a_server_without_put_is_not_supported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"title": "Method Not Allowed", "status": 405, "detail": "Method Not Allowed"}
        return httpx.Response(405, json=body, headers={"Allow": "DELETE, GET"})

    with pytest.raises(errors.NotSupported, match=r"no PUT /v1/endpoints/\{name\}"):
        client_for(handler).endpoints.update("churn", {"variants": []})


def test_create_waits_while_the_endpoint_is_creating() -> None:
    statuses = iter(["creating", "creating", "in_service"])

    def handler(request: httpx.Request) -> httpx.Response:
        status = "creating" if request.method == "POST" else next(statuses)
        return httpx.Response(200, json={"name": "churn", "status": status})

    clock = FakeClock()
    endpoint = client_for(handler, clock).endpoints.create(name="churn", variants=[])
    assert endpoint.status == "in_service"
    assert clock.sleeps == [0.05, 0.1]


def test_delete_with_wait_returns_once_the_endpoint_is_gone() -> None:
    answers = iter(
        [
            httpx.Response(204),
            httpx.Response(200, json={"name": "churn", "status": "deleting"}),
            httpx.Response(404, json={"title": "Not found", "status": 404, "detail": "gone"}),
        ]
    )
    clock = FakeClock()
    client_for(lambda _r: next(answers), clock).endpoints.delete("churn")
    assert clock.sleeps == [0.05]


def test_an_answer_of_the_wrong_shape_is_unexpected_not_a_crash() -> None:
    client = client_for(lambda _r: httpx.Response(200, json={"nothing": "here"}))
    with pytest.raises(errors.UnexpectedAnswer, match="not a Endpoint: name: Field required"):
        client.endpoints.get("churn")


def test_unreachable_names_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(errors.ApiUnreachable, match=r"http://api\.test"):
        client_for(refuse).models.list()


def test_transform_waits_and_reports_each_state() -> None:
    states = iter(["running", "succeeded"])

    def handler(request: httpx.Request) -> httpx.Response:
        status = "queued" if request.method == "POST" else next(states)
        body = {"job_id": "t1", "name": "nightly", "status": status, "processed_records": 4}
        return httpx.Response(202 if request.method == "POST" else 200, json=body)

    clock = FakeClock()
    client = client_for(handler, clock)
    job = client.transform("churn", input_prefix="s3://d/in/", output_prefix="s3://d/out/")
    assert job.wait(timeout=60).status == "succeeded"
    assert job.info.status == "succeeded" and clock.sleeps == [0.5, 0.5]
    with pytest.raises(ValueError, match="exactly one of endpoint or model"):
        client.transform(input_prefix="s3://d/in/", output_prefix="s3://d/out/")


def test_base_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICEWAY_API_URL", "http://elsewhere:9000/")
    monkeypatch.setenv("SLUICEWAY_API_KEY", "sw_abc_def")
    with Client() as client:
        assert client.base_url == "http://elsewhere:9000"
        assert client.http.headers["Authorization"] == "Bearer sw_abc_def"
