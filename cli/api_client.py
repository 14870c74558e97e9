"""The CLI's side of the Python SDK: one `sluiceway.Client` per command, and the CLI's error rules.

Every client command opens a `session()`, which turns the SDK's exceptions
into the CLI's contract: an HTTP error prints its problem+json as one line
(`error: 404 Not found: no endpoint named 'churn'`) and exits 1; an API that
cannot be reached prints one line naming the URL and exits 2. The demo uses
`connect()` instead, which lets `ApiError` / `ApiUnreachable` through so it can
record a failed step and go on to its summary. There is no second HTTP client:
requests, errors and waits are the SDK's (sluiceway/).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import httpx
import typer

from core.codecs import JSON
from core.config import get_settings
from sluiceway import Client
from sluiceway._plans import describe_job_error, path
from sluiceway.errors import (
    ApiError,
    ApiUnreachable,
    JobWaitTimeout,
    SluicewayError,
    from_response,
)

__all__ = [
    "Api",
    "ApiError",
    "ApiUnreachable",
    "ApiUrlOption",
    "JobWaitTimeout",
    "connect",
    "describe_job_error",
    "fail",
    "make_client",
    "path",
    "print_body",
    "print_json",
    "problem_from_response",
    "session",
]

ApiUrlOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        help="Base URL of the API (default: SLUICEWAY_API_URL, else http://127.0.0.1:8000).",
        show_default=False,
    ),
]

# The SDK client, under the name the commands have always used for it.
Api = Client
problem_from_response = from_response

# A realtime call may legitimately wait as long as the server's own realtime
# timeout (60 s by default) before the API answers 504; the client waits a
# margin longer so the user sees the API's 504 problem, not a client timeout.
_READ_MARGIN_S = 30.0


def make_client(base_url: str) -> httpx.Client:
    """The httpx client under the SDK client (tests replace this to inject a MockTransport)."""
    settings = get_settings()
    read_s = settings.realtime_timeout_ms / 1000 + _READ_MARGIN_S
    timeout = httpx.Timeout(connect=5.0, read=read_s, write=300.0, pool=5.0)
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else None
    return httpx.Client(base_url=base_url, timeout=timeout, headers=headers)


@contextmanager
def connect(api_url: str | None) -> Iterator[Client]:
    """An SDK client on `api_url`, or on the configured SLUICEWAY_API_URL when None."""
    base_url = (api_url or get_settings().api_url).rstrip("/")
    with Client(http_client=make_client(base_url)) as client:
        yield client


@contextmanager
def session(api_url: str | None) -> Iterator[Client]:
    """`connect()` plus the CLI's error contract: one line on stderr, exit 1 or 2."""
    try:
        with connect(api_url) as client:
            yield client
    except ApiUnreachable as exc:
        fail(str(exc), code=2)
    except SluicewayError as exc:  # an HTTP error, a job not done in time, an odd answer
        fail(str(exc), code=1)


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print `error: <message>` as one line on stderr and exit with `code`."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def print_body(body: bytes, content_type: str) -> None:
    """An answer on stdout: JSON pretty-printed, anything else (CSV) as it came."""
    if content_type == JSON:
        print_json(json.loads(body))
    else:
        text = body.decode()
        typer.echo(text, nl=not text.endswith("\n"))
