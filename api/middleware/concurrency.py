"""The bound on requests one API process holds at once: past it, 503 problem+json at once.

uvicorn's own `limit_concurrency` answers a plain-text 503 that clients
expecting problem+json cannot parse; this does the same counting as the
outermost middleware and answers like every other error, with `Retry-After`.
Counting is one integer in the event loop (no lock: one loop per process).
`/healthz` and `/readyz` are never refused, so a busy API is not restarted by
its orchestrator for being busy.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import problem

ALWAYS_ANSWERED = frozenset({"/healthz", "/readyz"})


class ConcurrencyLimit:
    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ALWAYS_ANSWERED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            detail = (
                f"this API process holds {self.in_flight} requests, its limit "
                "(SLUICEWAY_API_MAX_CONCURRENCY); retry shortly"
            )
            response = problem(503, detail, "Overloaded", headers={"Retry-After": "1"})
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
