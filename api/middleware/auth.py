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

The console (`/console...`, api/routes/console.py) takes the key from its
session cookie as well (set by its login form: HttpOnly, SameSite=Strict,
Secure). Its pages need `invoke` (they show only the endpoints and jobs the
key may see); models, topics, deliveries, transform jobs and every console
POST (retry, redrive) need `admin`, as the API routes they mirror do. Without
a valid key a console page redirects to the login form; beyond its scope it
is a 403 page.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import problem
from core import apikeys
from core.apikeys import KeyInfo
from core.db import session_scope
from core.tables import ApiKey

KEY_CACHE_S = 5.0
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
INVOKE_PATH = re.compile(r"^/v1/endpoints/(?P<endpoint>[^/]+)/(?:async-)?invocations$")
CONSOLE = "/console"
CONSOLE_PUBLIC_PREFIXES = ("/console/static/", "/console/login", "/console/logout")
CONSOLE_ADMIN_PREFIXES = (
    "/console/models",
    "/console/topics",
    "/console/deliveries",
    "/console/transform-jobs",
)
SESSION_COOKIE = "sluiceway_session"


def required_scope(method: str, path: str) -> tuple[str | None, str | None]:
    """(scope, endpoint) a request needs: scope None for public paths."""
    if path in PUBLIC_PATHS:
        return None, None
    if path == CONSOLE or path.startswith(CONSOLE + "/"):
        return _console_scope(method, path), None
    match = INVOKE_PATH.match(path)
    if match and method == "POST":
        return "invoke", match["endpoint"]
    if path.startswith("/v1/jobs/") and method in ("GET", "HEAD"):
        return "invoke", None
    return "admin", None


def _console_scope(method: str, path: str) -> str | None:
    if path.startswith(CONSOLE_PUBLIC_PREFIXES):
        return None
    if method not in ("GET", "HEAD") or path.startswith(CONSOLE_ADMIN_PREFIXES):
        return "admin"
    return "invoke"


def is_console(path: str) -> bool:
    return path == CONSOLE or path.startswith(CONSOLE + "/")


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
        console = is_console(scope["path"])
        token = _bearer(scope) or (_cookie(scope, SESSION_COOKIE) if console else None)
        info = await self.verify(token) if token else None
        if console and (info is None or (needed == "admin" and info.scope != "admin")):
            await _console_refusal(scope, signed_in=info is not None)(scope, receive, send)
            return
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

    async def verify(self, token: str) -> KeyInfo | None:
        """The grants of a key (`sw_<id>_<secret>`), or None if it is malformed, unknown,
        wrong or revoked."""
        parts = apikeys.split_key(token)
        return apikeys.verify(await self._row(parts[0]), parts[1]) if parts else None

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


def _console_refusal(scope: Scope, *, signed_in: bool) -> Response:
    """A console page for a visitor without a valid key goes to the login form; a key
    beyond its scope gets a 403 page (console pages are for browsers, not problem+json)."""
    if not signed_in:
        if scope["method"] in ("GET", "HEAD"):
            target = scope["path"] + (
                "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""
            )
            return RedirectResponse(f"/console/login?{urlencode({'next': target})}", 303)
        return problem(401, "sign in to the console first", "Unauthorized")
    page = (
        "<!doctype html><title>Forbidden</title><h1>403: not for this key</h1>"
        "<p>This console page needs an <code>admin</code> key. "
        '<a href="/console">Back to the console</a> or <a href="/console/logout">sign out</a>.</p>'
    )
    return HTMLResponse(page, status_code=403)


def _cookie(scope: Scope, name: str) -> str | None:
    for header, value in scope["headers"]:
        if header == b"cookie":
            cookies = SimpleCookie()
            cookies.load(value.decode("latin-1"))
            if name in cookies:
                return cookies[name].value or None
    return None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
    return None
