"""Problem responses the app gives before any service runs (no network, no lifespan)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from api.main import create_app

APP = create_app()


async def _request(method: str, path: str) -> httpx.Response:
    # ASGITransport never runs the lifespan, so nothing connects to Redis.
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return await client.request(method, path)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/endpoints/churn/invocations", "POST"),
        ("PUT", "/v1/models", "GET, HEAD, POST"),
        ("DELETE", "/v1/jobs", "GET, HEAD"),
    ],
)
def test_a_405_names_every_method_the_path_serves(method: str, path: str, allow: str) -> None:
    """Regression: FastAPI nests included routers, and the Allow header came out empty."""
    response = asyncio.run(_request(method, path))
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["allow"] == allow


@pytest.mark.parametrize(
    ("method", "path", "status", "title"),
    [
        ("GET", "/v1/no-such-route", 404, "Not found"),
        ("PUT", "/v1/models", 405, "Method not allowed"),
        ("POST", "/v1/topics", 422, "Invalid input"),
    ],
)
def test_one_title_per_status_whoever_answers(
    method: str, path: str, status: int, title: str
) -> None:
    """Regression: Starlette's own 404 said "Not Found" where ours say "Not found"."""
    response = asyncio.run(_request(method, path))
    assert response.status_code == status
    assert response.json()["title"] == title


def test_a_write_that_raced_a_delete_is_a_409_not_a_500() -> None:
    """Regression (schemathesis, 2 workers): a subscription inserted while another request
    deleted its topic broke the foreign key and answered 500."""
    from sqlalchemy.exc import IntegrityError
    from starlette.requests import Request

    from api.problems import respond

    violation = IntegrityError("INSERT INTO subscriptions ...", {}, Exception("fkey"))
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": []})
    response = asyncio.run(respond(request, violation))
    assert response.status_code == 409
