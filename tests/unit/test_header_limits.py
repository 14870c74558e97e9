"""Header limits answer before the application sees the request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.header_limits import MAX_HEADER_BYTES, HeaderLimits


def call(headers: list[tuple[bytes, bytes]]) -> tuple[int, bool]:
    reached: list[bool] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    asyncio.run(HeaderLimits(app)(scope, receive, send))
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), 0)
    return status, bool(reached)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"x-big", b"x" * (MAX_HEADER_BYTES + 1))], 431),
        ([(f"x-{i}".encode(), b"1") for i in range(101)], 431),
        ([(b"bad name", b"1")], 400),
        ([(b"x-bad:", b"1")], 400),
    ],
)
def test_refused_before_the_app(headers: list[tuple[bytes, bytes]], status: int) -> None:
    assert call(headers) == (status, False)


def test_ordinary_headers_pass_through() -> None:
    assert call([(b"content-type", b"application/json"), (b"x-target-variant", b"a")]) == (
        0,
        True,
    )
