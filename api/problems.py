"""Every error the API returns is RFC 9457 problem+json, never a stack trace."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import redis.exceptions
import sqlalchemy.exc
import sqlalchemy.orm.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.schemas import Problem
from core.errors import SluicewayError

logger = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"


def problem(
    status: int, detail: str, title: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    title = title or HTTPStatus(status).phrase
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


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _scope = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods - {"HEAD"} | ({"HEAD"} if "GET" in methods else set()))


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses, all answered as problem+json."""
    schema = Problem.model_json_schema()
    return {
        status: {
            "description": HTTPStatus(status).phrase,
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


async def _on_redis_down(_request: Request, exc: Exception) -> JSONResponse:
    logger.warning("Redis unavailable: %s", exc)
    return problem(
        503,
        "the queue (Redis) is unavailable; retry shortly",
        "Queue unavailable",
        headers={"Retry-After": "2"},
    )


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error")
    return problem(500, "internal error; see the API log", "Internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(SluicewayError, _on_sluiceway_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    # Connection-level database failures (server down, connection lost) are 503s;
    # anything else the database raises stays a 500 that someone must look at.
    app.add_exception_handler(sqlalchemy.exc.OperationalError, _on_database_down)
    app.add_exception_handler(sqlalchemy.exc.InterfaceError, _on_database_down)
    app.add_exception_handler(sqlalchemy.orm.exc.StaleDataError, _on_concurrent_change)
    app.add_exception_handler(sqlalchemy.exc.DataError, _on_unstorable_value)
    app.add_exception_handler(redis.exceptions.ConnectionError, _on_redis_down)
    app.add_exception_handler(redis.exceptions.TimeoutError, _on_redis_down)
    app.add_exception_handler(Exception, _on_unexpected)
