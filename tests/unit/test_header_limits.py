"""Header limits answer before the application sees the request."""

from __future__ import annotations

import pytest

from api.middleware.header_limits import MAX_HEADER_BYTES, HeaderLimits
from tests.unit.asgi import drive


def call(headers: list[tuple[bytes, bytes]]) -> tuple[int, bool]:
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    exchange = drive(HeaderLimits, scope)
    return exchange.status, exchange.reached


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
