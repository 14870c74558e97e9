"""Project exceptions. Each carries the HTTP status the API answers with.

Third-party errors are mapped to these at the boundary (`raise X(...) from exc`),
and every message names the offending value.
"""

from __future__ import annotations


class SluicewayError(Exception):
    status = 500
    title = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(SluicewayError):
    status = 400
    title = "Malformed request"


class Forbidden(SluicewayError):
    status = 403
    title = "Forbidden"


class NotFound(SluicewayError):
    status = 404
    title = "Not found"


class Conflict(SluicewayError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(SluicewayError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(SluicewayError):
    status = 415
    title = "Unsupported media type"


class InvalidInput(SluicewayError):
    """Well-formed but unacceptable: wrong feature count, bad field value, bad artifact."""

    status = 422
    title = "Invalid input"


class ModelError(SluicewayError):
    """The model itself raised on this input (SageMaker answers such calls with 424 too)."""

    status = 424
    title = "Model error"


class NotReady(SluicewayError):
    status = 503
    title = "Not ready"


class BacklogFull(SluicewayError):
    status = 429
    title = "Backlog full"
    retry_after_s = 1


class QueueUnavailable(SluicewayError):
    status = 503
    title = "Queue unavailable"


class WorkerLost(SluicewayError):
    """The worker running a realtime call stopped, and no other could answer it in time."""

    status = 503
    title = "Worker failed"


class RealtimeTimeout(SluicewayError):
    status = 504
    title = "Timed out waiting for the model"


class StorageError(SluicewayError):
    status = 503
    title = "Object store unavailable"


class InvocationTimeout(SluicewayError):
    """An invocation ran past its limit (`invocation_timeout_s`, or a realtime caller's wait).

    The title is the word a failed job's `error` starts with: "timeout: ...".
    """

    status = 504
    title = "timeout"


class RequestExpired(SluicewayError):
    """An async job was not started within its `X-Request-Ttl-S`; it never ran.

    The title is the word a failed job's `error` starts with: "expired: ...".
    """

    status = 504
    title = "expired"

    @classmethod
    def not_started_within(cls, ttl_s: float) -> RequestExpired:
        return cls(f"not started within {ttl_s:g} s (X-Request-Ttl-S)")


def job_error(exc: SluicewayError) -> str:
    """The `error` a failed job shows: `<title>: <detail>` (`timeout: the invocation ...`)."""
    return f"{exc.title}: {exc.detail}"


def describe(exc: BaseException, limit: int = 300) -> str:
    """`ValueError: feature below -1000` — an exception in one line, without tracebacks.

    TorchScript errors embed the interpreter's whole traceback (with server file
    paths) in their message; callers get only its last line, the actual reason.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else ""
    name = type(exc).__name__
    if not reason.startswith(name) and ":" not in reason[: len(name) + 20]:
        reason = f"{name}: {reason}" if reason else name
    return reason[:limit]


# Worker-side failures travel back to the API as (kind, detail); this maps the kind.
ERROR_KINDS: dict[str, type[SluicewayError]] = {
    "input": InvalidInput,
    "model": ModelError,
    "storage": StorageError,
    "timeout": InvocationTimeout,
    "internal": SluicewayError,
    "worker_lost": WorkerLost,
    "not_found": NotFound,  # a multi-model variant's X-Target-Model names no object
}


def error_kind(exc: BaseException) -> str:
    """The wire name of an exception's class, for worker → API replies."""
    for kind, cls in ERROR_KINDS.items():
        if type(exc) is cls:
            return kind
    if isinstance(exc, InvalidInput):
        return "input"
    if isinstance(exc, ModelError):
        return "model"
    return "internal"
