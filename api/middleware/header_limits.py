"""Header limits, checked before anything else reads a request: 431 past a total size
or a count, 400 for a header name that is not an HTTP token.

The HTTP parser accepts very large header blocks; a client must not be able to
make the API hold megabytes per request in headers it never needed.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import problem

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100
TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class HeaderLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            size = sum(len(name) + len(value) for name, value in headers)
            if len(headers) > MAX_HEADERS or size > MAX_HEADER_BYTES:
                detail = (
                    f"{len(headers)} headers of {size} bytes; the limits are "
                    f"{MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes"
                )
                await problem(431, detail, "Request header fields too large")(scope, receive, send)
                return
            bad = next((name for name, _ in headers if not TOKEN.match(name)), None)
            if bad is not None:
                detail = f"header name {bad[:40]!r} is not a valid HTTP token"
                await problem(400, detail)(scope, receive, send)
                return
        await self.app(scope, receive, send)
