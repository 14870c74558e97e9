"""Every error the API returns is RFC 9457 problem+json, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import redis.exceptions
import sqlalchemy.exc
import sqlalchemy.orm.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from api.schemas import Problem
from core.errors import (
    BacklogFull,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidInput,
    ModelError,
    NotFound,
    PayloadTooLarge,
    SluicewayError,
    UnsupportedMediaType,
)

logger = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"


# One title per status wherever an answer comes from (our errors, FastAPI's
# validation, Starlette's 404/405): "Not found", never also "Not Found".
_TITLED: tuple[type[SluicewayError], ...] = (
    BadRequest,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidInput,
    ModelError,
    BacklogFull,
)
TITLES: dict[int, str] = {cls.status: cls.title for cls in _TITLED}


def default_title(status: int) -> str:
    """The project's title for `status`, else HTTP's phrase in sentence case."""
    return TITLES.get(status) or HTTPStatus(status).phrase.capitalize()


def problem(
    status: int, detail: str, title: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    title = title or default_title(status)
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def _validation_detail(errors: list[Any]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


async def _on_sluiceway_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SluicewayError)
    if exc.status >= 500:
        logger.warning("request failed: %s", exc.detail)
    retry_after = getattr(exc, "retry_after_s", None)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return problem(exc.status, exc.detail, exc.title, headers=headers)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    # A body that is not JSON at all is malformed (400), not merely invalid (422).
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem(400, "malformed JSON body: " + _validation_detail(errors))
    return problem(422, _validation_detail(errors), "Invalid input")


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem(exc.status_code, str(exc.detail), headers=headers)


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's).

    Asked by trying each method against the app's routes: FastAPI nests included
    routers in objects that do not expose their routes' methods, but every route
    answers whether it fully matches a scope.
    """
    methods = [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.routes
        )
    ]
    return sorted([*methods, "HEAD"] if "GET" in methods else methods)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses, all answered as problem+json."""
    schema = Problem.model_json_schema()
    return {
        status: {
            "description": default_title(status),
            "content": {PROBLEM_TYPE: {"schema": schema}},
        }
        for status in statuses
    }


async def _on_database_down(_request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable: %s", str(exc).splitlines()[0][:200])
    return problem(
        503,
        "the metadata database is unavailable; retry shortly",
        "Not ready",
        headers={"Retry-After": "2"},
    )


async def _on_unstorable_value(_request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value as data (a NUL byte in text, a number out of
    # range): the caller's input, not our fault.
    reason = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
    return problem(422, f"a value cannot be stored: {reason}", "Invalid input")


async def _on_concurrent_change(_request: Request, _exc: Exception) -> JSONResponse:
    # Another request changed or deleted the same rows between our read and our
    # write (e.g. a PATCH racing a DELETE of the endpoint).
    return problem(409, "the resource changed or was deleted meanwhile; read it again", "Conflict")


async def _on_integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    # Services turn the conflicts they expect (a duplicate name) into their own 409s;
    # what reaches here raced another request: e.g. a subscription inserted while a
    # concurrent DELETE removed its topic (a foreign key), found by schemathesis.
    reason = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
    logger.info("write refused by the database: %s", reason)
    return problem(409, "the resource changed or was deleted meanwhile; read it again", "Conflict")


async def _on_redis_down(_request: Request, exc: Exception) -> JSONResponse:
    logger.warning("Redis unavailable: %s", exc)
    return problem(
        503,
        "the queue (Redis) is unavailable; retry shortly",
        "Queue unavailable",
        headers={"Retry-After": "2"},
    )


async def _on_client_gone(_request: Request, _exc: Exception) -> JSONResponse:
    # The caller hung up before its whole body arrived: nothing was accepted and
    # no one will read this answer. Not a server error worth a traceback.
    logger.info("client disconnected before sending its whole request")
    return problem(400, "the client disconnected before sending the whole request body")


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error")
    return problem(500, "internal error; see the API log", "Internal error")


Handler = Callable[[Request, Exception], Awaitable[Response]]

HANDLERS: dict[type[Exception], Handler] = {
    SluicewayError: _on_sluiceway_error,
    RequestValidationError: _on_validation_error,
    StarletteHTTPException: _on_http_error,
    # Connection-level database failures (server down, connection lost) are 503s;
    # anything else the database raises stays a 500 that someone must look at.
    sqlalchemy.exc.OperationalError: _on_database_down,
    sqlalchemy.exc.InterfaceError: _on_database_down,
    sqlalchemy.orm.exc.StaleDataError: _on_concurrent_change,
    sqlalchemy.exc.DataError: _on_unstorable_value,
    sqlalchemy.exc.IntegrityError: _on_integrity_error,
    redis.exceptions.ConnectionError: _on_redis_down,
    redis.exceptions.TimeoutError: _on_redis_down,
    ClientDisconnect: _on_client_gone,
    Exception: _on_unexpected,
}


def install(app: FastAPI) -> None:
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)


async def respond(request: Request, exc: Exception) -> Response:
    """The problem response FastAPI's handlers would give for `exc` (nearest class wins)."""
    handler = next(HANDLERS[cls] for cls in type(exc).__mro__ if cls in HANDLERS)
    return await handler(request, exc)
