"""Drive one ASGI middleware once, in-process, with a stub inner app."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp


@dataclass
class Exchange:
    sent: list[dict[str, Any]]  # the ASGI messages the middleware sent
    reached: bool  # whether it passed the request on to the inner app

    @property
    def start(self) -> dict[str, Any] | None:
        return next((m for m in self.sent if m["type"] == "http.response.start"), None)

    @property
    def status(self) -> int:
        """The response status; 0 when the middleware answered nothing itself."""
        return self.start["status"] if self.start else 0

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def drive(
    middleware: Callable[[ASGIApp], ASGIApp], scope: dict[str, Any], body: bytes = b""
) -> Exchange:
    exchange = Exchange(sent=[], reached=False)

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        exchange.reached = True

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body}

    async def send(message: dict[str, Any]) -> None:
        exchange.sent.append(message)

    asyncio.run(middleware(inner)(scope, receive, send))
    return exchange
