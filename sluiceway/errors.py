"""The SDK's exceptions: every HTTP error is an `ApiError` carrying the problem's fields.

The API answers every error as problem+json (RFC 9457): `{"type", "title",
"status", "detail"}`. `ApiError` keeps those four fields as attributes, and its
subclass is picked by status, so callers can catch what they mean:

    try:
        client.endpoints.get("churn")
    except NotFound as exc:       # exc.status == 404, exc.detail == "no endpoint named 'churn'"
        ...

A proxy that answers with HTML instead still gives an `ApiError` (title from
the status line, detail from the body, on one line).
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class SluicewayError(Exception):
    """Base class of every exception the SDK raises on purpose."""


class ApiError(SluicewayError):
    """The API answered with an HTTP error; `type`, `title`, `status`, `detail` as it sent them."""

    def __init__(self, *, status: int, title: str, detail: str, type: str = "about:blank") -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type

    def one_line(self) -> str:
        return f"error: {self}"


class BadRequest(ApiError):
    """400: malformed request (not JSON, a header the API cannot read)."""


class Unauthorized(ApiError):
    """401: no API key, or one the server does not know (auth is on)."""


class Forbidden(ApiError):
    """403: the key's scope or endpoints do not allow this route."""


class NotFound(ApiError):
    """404: no such model, endpoint, job, ...; or a job's output before it succeeded."""


class MethodNotAllowed(ApiError):
    """405: the server has the path but not this method (an older server, for instance)."""


class Conflict(ApiError):
    """409: the name exists already, or the resource is in the wrong state (retry a queued job)."""


class PayloadTooLarge(ApiError):
    """413: the body is above the server's limit."""


class UnsupportedMediaType(ApiError):
    """415: a content type the route does not take."""


class InvalidInput(ApiError):
    """422: well-formed but unacceptable (wrong feature count, bad field value)."""


class ModelError(ApiError):
    """424: the model itself raised on this input."""


class BacklogFull(ApiError):
    """429: the variant's backlog is full; retry after `Retry-After` seconds."""


class NotReady(ApiError):
    """503: the database, Redis or object store is unavailable; retry shortly."""


class RealtimeTimeout(ApiError):
    """504: no answer within the realtime timeout (the job may still run)."""


BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
    424: ModelError,
    429: BacklogFull,
    503: NotReady,
    504: RealtimeTimeout,
}


class ApiUnreachable(SluicewayError):
    """No HTTP answer at all: connection refused, DNS failure, or a timeout."""

    def one_line(self) -> str:
        return f"error: {self}"


class UnexpectedAnswer(SluicewayError):
    """A 2xx answer whose body is not what the route returns (a proxy, another server)."""


class NotSupported(SluicewayError):
    """The server lacks a route this SDK method needs (it is older than the SDK)."""


class JobWaitTimeout(SluicewayError):
    """A job did not reach a final status before the caller's deadline."""

    def __init__(self, *, job_id: str, status: str, timeout_s: float) -> None:
        super().__init__(f"job {job_id} is still {status} after {timeout_s:g} s")
        self.job_id = job_id
        self.status = status


class JobFailed(SluicewayError):
    """`.result()` of a job that ended `failed`; `error` is the job's error text."""

    def __init__(self, *, job_id: str, error: str) -> None:
        super().__init__(f"job {job_id} failed: {error}")
        self.job_id = job_id
        self.error = error


class EndpointFailed(SluicewayError):
    """`wait=True` on an endpoint that ended in status `failed`."""


def _single_line(text: str) -> str:
    """Collapse whitespace runs (newlines included) so an error stays one line."""
    return " ".join(text.split())


def from_response(response: httpx.Response) -> ApiError:
    """The ApiError subclass for an error response, from its problem+json body if it has one."""
    title = response.reason_phrase or "HTTP error"
    detail = response.text
    kind = "about:blank"
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = str(body.get("title") or title)
        raw = body.get("detail", "")
        # FastAPI's own validation errors put a list here; keep it readable, on one line.
        detail = raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"))
        kind = str(body.get("type") or kind)
    cls = BY_STATUS.get(response.status_code, ApiError)
    return cls(
        status=response.status_code,
        title=_single_line(title),
        detail=_single_line(detail),
        type=kind,
    )
