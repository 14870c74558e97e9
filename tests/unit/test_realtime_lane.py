"""The realtime lane: which requests it takes, how its errors look, and its reply timers."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import redis.exceptions
from starlette.requests import ClientDisconnect

from api.main import create_app
from api.realtime.lane import RealtimeLane, reply_error, timeout_from
from api.realtime.replies import ReplyWaiter
from core.errors import BadRequest, InvalidInput, NotFound
from core.protocol import Reply, pack
from tests.unit.asgi import drive


class FailingRoutes:
    """A route cache whose lookup raises: the first thing `invoke` does."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def route(self, name: str) -> Any:
        raise self.exc


def call(
    method: str, path: str, *, routes: Any = None
) -> tuple[int, dict[bytes, bytes], dict[str, Any] | None, bool]:
    """(status, headers, problem body, whether the inner app was reached)."""
    app = SimpleNamespace(state=SimpleNamespace(routes=routes))
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
        "app": app,
    }
    exchange = drive(RealtimeLane, scope, b'{"instances": [[1, 2]]}')
    if exchange.start is None:
        return 0, {}, None, exchange.reached
    headers = dict(exchange.start["headers"])
    return exchange.status, headers, orjson.loads(exchange.body), exchange.reached


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/endpoints/churn/invocations"),
        ("POST", "/v1/endpoints/churn/async-invocations"),
        ("POST", "/v1/endpoints/churn/invocations/extra"),
        ("POST", "/v1/endpoints/a/b/invocations"),
        ("POST", "/v1/endpoints"),
    ],
)
def test_other_requests_go_on_to_fastapi(method: str, path: str) -> None:
    assert call(method, path) == (0, {}, None, True)


@pytest.mark.parametrize(
    ("exc", "status", "retry_after"),
    [
        (NotFound("no endpoint 'churn'"), 404, None),
        (redis.exceptions.ConnectionError("refused"), 503, b"2"),
        (RuntimeError("a bug"), 500, None),
        (ClientDisconnect(), 400, None),  # quietly: the caller is gone
    ],
)
def test_errors_are_problems_as_fastapi_would_answer(
    exc: Exception, status: int, retry_after: bytes | None
) -> None:
    got, headers, body, reached = call(
        "POST", "/v1/endpoints/churn/invocations", routes=FailingRoutes(exc)
    )
    assert (got, reached) == (status, False)
    assert headers[b"content-type"] == b"application/problem+json"
    assert body is not None and body["status"] == status
    assert headers.get(b"retry-after") == retry_after
    if status == 500:
        assert "a bug" not in body["detail"]  # no internals leak


def test_timeout_header_is_capped_and_checked() -> None:
    assert timeout_from(None, 60_000) == 60_000
    assert timeout_from("250", 60_000) == 250
    assert timeout_from("999999", 60_000) == 60_000
    with pytest.raises(BadRequest, match="'soon' is not a whole number"):
        timeout_from("soon", 60_000)
    with pytest.raises(InvalidInput, match="must be positive, got 0"):
        timeout_from("0", 60_000)


def test_openapi_documents_the_realtime_operation_and_its_headers() -> None:
    operation = create_app().openapi()["paths"]["/v1/endpoints/{name}/invocations"]["post"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {
        "X-Target-Variant",
        "X-Target-Component",
        "X-Target-Model",
        "X-Timeout-Ms",
        "X-Inference-Id",
    }
    assert operation["requestBody"]["required"] is True
    assert {"404", "422", "503", "504"} <= set(operation["responses"])


def test_reply_waiter_times_out_and_forgets_its_timer() -> None:
    async def scenario() -> None:
        waiter = ReplyWaiter(redis_url="redis://127.0.0.1:1/0", namespace="t")
        late = waiter.expect("job-late", timeout_s=0.01)
        with pytest.raises(TimeoutError):
            await late
        waiter.forget("job-late")

        answered = waiter.expect("job-ok", timeout_s=30)
        timer = waiter._pending["job-ok"][1]
        waiter._deliver(pack(Reply(job_id="job-ok", ok=True, body=b"{}").to_wire()))
        assert (await answered).body == b"{}"
        waiter.forget("job-ok")
        # A 30 s timer per answered request would pile up in the loop's heap.
        assert timer.cancelled() and not waiter._pending
        # An answer for a caller that gave up is dropped quietly.
        waiter._deliver(pack(Reply(job_id="job-late", ok=True).to_wire()))

    asyncio.run(scenario())


def test_a_worker_lost_reply_is_a_503_naming_the_worker() -> None:
    """The sweep answers a realtime caller whose worker died with kind `worker_lost`."""
    error = reply_error("worker_lost", "worker w-1@h stopped while running this request")
    assert (error.status, error.title) == (503, "Worker failed")
    assert "w-1@h" in error.detail
