"""The one place where `sluice` talks HTTP: a small client of the API and its error rules.

Every client command opens a `session()`, which turns failures into the CLI's
contract: an HTTP error prints its problem+json as one line
(`error: 404 Not found: no endpoint named 'churn'`) and exits 1; an API that
cannot be reached prints one line naming the URL and exits 2. The demo uses
`connect()` instead, which raises `ApiError` / `ApiUnreachable` so it can record
a failed step and go on to its summary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import httpx
import typer

from core.codecs import JSON
from core.config import get_settings
from core.states import JOB_FINISHED

ApiUrlOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        help="Base URL of the API (default: SLUICEWAY_API_URL, else http://127.0.0.1:8000).",
        show_default=False,
    ),
]

FINAL_JOB_STATUSES = frozenset(JOB_FINISHED)

# A realtime call may legitimately wait as long as the server's own realtime
# timeout (60 s by default) before the API answers 504; the client waits a
# margin longer so the user sees the API's 504 problem, not a client timeout.
_READ_MARGIN_S = 30.0


class ApiError(Exception):
    """The API answered with an HTTP error; carries the problem+json fields."""

    def __init__(self, *, status: int, title: str, detail: str) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail

    def one_line(self) -> str:
        return f"error: {self}"


class ApiUnreachable(Exception):
    """No HTTP answer at all: connection refused, DNS failure, or a timeout."""

    def one_line(self) -> str:
        return f"error: {self}"


class JobWaitTimeout(Exception):
    """A job did not reach succeeded/failed before the caller's deadline."""

    def __init__(self, *, job_id: str, status: str, timeout_s: float) -> None:
        super().__init__(f"job {job_id} is still {status} after {timeout_s:g} s")
        self.job_id = job_id
        self.status = status


def _single_line(text: str) -> str:
    """Collapse whitespace runs (newlines included) so an error stays one line."""
    return " ".join(text.split())


def problem_from_response(response: httpx.Response) -> ApiError:
    """An ApiError from a problem+json body, or from whatever else a proxy sent back."""
    title = response.reason_phrase or "HTTP error"
    detail = response.text
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = str(body.get("title") or title)
        raw = body.get("detail", "")
        # FastAPI's own validation errors put a list here; keep it readable, on one line.
        detail = raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"))
    return ApiError(
        status=response.status_code, title=_single_line(title), detail=_single_line(detail)
    )


def path(template: str, *names: str) -> str:
    """`path("/v1/jobs/{}", job_id)` with each name escaped, so 'a/b' cannot change the route."""
    return template.format(*(quote(name, safe="") for name in names))


def make_client(base_url: str) -> httpx.Client:
    """The httpx client every command uses (tests replace this to inject a MockTransport)."""
    read_s = get_settings().realtime_timeout_ms / 1000 + _READ_MARGIN_S
    timeout = httpx.Timeout(connect=5.0, read=read_s, write=300.0, pool=5.0)
    key = get_settings().api_key
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return httpx.Client(base_url=base_url, timeout=timeout, headers=headers)


class Api:
    """A thin wrapper of httpx.Client that raises ApiError / ApiUnreachable."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    @property
    def base_url(self) -> str:
        return str(self._client.base_url).rstrip("/")

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx.ConnectError as exc:
            raise ApiUnreachable(
                f"cannot reach the Sluiceway API at {self.base_url} (is `sluice up` running?)"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ApiUnreachable(
                f"no answer from the Sluiceway API at {self.base_url} in time ({exc})"
            ) from exc
        except httpx.TransportError as exc:
            raise ApiUnreachable(
                f"talking to the Sluiceway API at {self.base_url} failed: {exc}"
            ) from exc
        if response.is_error:
            raise problem_from_response(response)
        return response

    def get_json(self, url: str) -> Any:
        return self.request("GET", url).json()

    def wait_for_job(
        self,
        job_id: str,
        *,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        """Poll GET /v1/jobs/{id} until it succeeds or fails; JobWaitTimeout past the deadline.

        The pause doubles from 50 ms up to 1 s, so a fast job is seen within
        ~50 ms and a slow one costs one request a second.
        """
        deadline = clock() + timeout_s
        pause_s = 0.05
        while True:
            job: dict[str, Any] = self.get_json(path("/v1/jobs/{}", job_id))
            status = str(job.get("status"))
            if status in FINAL_JOB_STATUSES:
                return job
            if clock() >= deadline:
                raise JobWaitTimeout(job_id=job_id, status=status, timeout_s=timeout_s)
            sleep(min(pause_s, max(deadline - clock(), 0.0)))
            pause_s = min(pause_s * 2, 1.0)


@contextmanager
def connect(api_url: str | None) -> Iterator[Api]:
    """An Api on `api_url`, or on the configured SLUICEWAY_API_URL when None."""
    base_url = (api_url or get_settings().api_url).rstrip("/")
    with make_client(base_url) as client:
        yield Api(client)


@contextmanager
def session(api_url: str | None) -> Iterator[Api]:
    """`connect()` plus the CLI's error contract: one line on stderr, exit 1 or 2."""
    try:
        with connect(api_url) as api:
            yield api
    except ApiError as exc:
        fail(str(exc), code=1)
    except ApiUnreachable as exc:
        fail(str(exc), code=2)
    except JobWaitTimeout as exc:
        fail(str(exc), code=1)


def describe_job_error(error: Any) -> str:
    """A job's `error` field as text, whether the API sends a string or an object."""
    if isinstance(error, dict):
        parts = [str(error[key]) for key in ("title", "kind", "detail") if error.get(key)]
        return ": ".join(parts) if parts else json.dumps(error)
    return str(error) if error else "no error message recorded"


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print `error: <message>` as one line on stderr and exit with `code`."""
    typer.echo(f"error: {_single_line(message)}", err=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def print_body(response: httpx.Response) -> None:
    """A response body on stdout: JSON pretty-printed, anything else (CSV) as it came."""
    if response.headers.get("content-type", "").split(";")[0].strip() == JSON:
        print_json(response.json())
    else:
        typer.echo(response.text, nl=not response.text.endswith("\n"))
