"""The API's bound on requests in flight (api/middleware/concurrency.py)."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp

from api.middleware.concurrency import ConcurrencyLimit
from tests.unit.asgi import drive


def _busy(limit: int, in_flight: int) -> Any:
    def make(app: ASGIApp) -> ConcurrencyLimit:
        middleware = ConcurrencyLimit(app, limit=limit)
        middleware.in_flight = in_flight
        return middleware

    return make


def _scope(path: str) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "headers": []}


def test_past_the_limit_the_answer_is_a_503_problem_with_retry_after() -> None:
    """Regression: uvicorn's own limit answered a plain-text 503 no client could parse."""
    exchange = drive(_busy(limit=2, in_flight=2), _scope("/v1/endpoints/e/invocations"))
    assert exchange.status == 503
    assert not exchange.reached
    headers = dict(exchange.start["headers"]) if exchange.start else {}
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"retry-after"] == b"1"
    assert json.loads(exchange.body)["title"] == "Overloaded"


def test_below_the_limit_and_for_probes_the_request_goes_on() -> None:
    assert drive(_busy(limit=2, in_flight=1), _scope("/v1/models")).reached
    assert drive(_busy(limit=2, in_flight=2), _scope("/readyz")).reached
    assert drive(_busy(limit=2, in_flight=2), _scope("/healthz")).reached


def test_a_finished_request_frees_its_place() -> None:
    made: list[ConcurrencyLimit] = []

    def make(app: ASGIApp) -> ConcurrencyLimit:
        made.append(ConcurrencyLimit(app, limit=1))
        return made[-1]

    assert drive(make, _scope("/v1/models")).reached
    assert made[0].in_flight == 0
