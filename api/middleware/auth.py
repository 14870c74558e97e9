"""API-key authentication and scopes, as a plain ASGI middleware (it runs on every request).

When `SLUICEWAY_AUTH=on`, every route but the public ones (health, readiness,
metrics, the OpenAPI document) needs `Authorization: Bearer <key>`:
- data plane — POST .../invocations, POST .../async-invocations, GET /v1/jobs/... —
  needs scope `invoke` (or `admin`), and a key limited to named endpoints may
  only invoke those (its jobs' routes check the same);
- everything else (models, endpoints, topics, transform jobs) needs `admin`.
Missing or wrong keys get 401, insufficient ones 403, both as problem+json.
Keys are looked up by id and cached for `KEY_CACHE_S`, so a revocation takes
effect within that time; the key itself is never logged.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import problem
from core import apikeys
from core.db import session_scope
from core.tables import ApiKey

KEY_CACHE_S = 5.0
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
INVOKE_PATH = re.compile(r"^/v1/endpoints/(?P<endpoint>[^/]+)/(?:async-)?invocations$")


def required_scope(method: str, path: str) -> tuple[str | None, str | None]:
    """(scope, endpoint) a request needs: scope None for public paths."""
    if path in PUBLIC_PATHS:
        return None, None
    match = INVOKE_PATH.match(path)
    if match and method == "POST":
        return "invoke", match["endpoint"]
    if path.startswith("/v1/jobs/") and method in ("GET", "HEAD"):
        return "invoke", None
    return "admin", None


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What verification needs of a key row, detached from its session."""

    row: ApiKey | None
    read_at: float


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, enabled: bool) -> None:
        self.app = app
        self.enabled = enabled
        self._keys: dict[str, _Snapshot] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed, endpoint = required_scope(scope["method"], scope["path"])
        if needed is None:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        parts = apikeys.split_key(token) if token else None
        info = apikeys.verify(await self._row(parts[0]), parts[1]) if parts else None
        if info is None:
            detail = "a valid API key is required: Authorization: Bearer <key>"
            response = problem(401, detail, "Unauthorized", headers={"WWW-Authenticate": "Bearer"})
        elif needed == "admin" and info.scope != "admin":
            response = problem(403, f"this key's scope is {info.scope!r}; this route needs 'admin'")
        elif endpoint is not None and not info.allows_endpoint(endpoint):
            response = problem(403, f"this key may not invoke endpoint {endpoint!r}")
        else:
            scope.setdefault("state", {})["api_key"] = info
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    async def _row(self, key_id: str) -> ApiKey | None:
        cached = self._keys.get(key_id)
        if cached is not None and time.monotonic() - cached.read_at < KEY_CACHE_S:
            return cached.row
        row = await run_in_threadpool(_load_key, key_id)
        if len(self._keys) > 10_000:  # unknown ids are cached too; keep a flood bounded
            self._keys.clear()
        self._keys[key_id] = _Snapshot(row=row, read_at=time.monotonic())
        return row


def _load_key(key_id: str) -> ApiKey | None:
    with session_scope() as session:
        return _get(session, key_id)


def _get(session: Session, key_id: str) -> ApiKey | None:
    row = session.get(ApiKey, key_id)
    if row is not None:
        session.expunge(row)
    return row


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
    return None
