"""`Client`: the synchronous Python client of a Sluiceway API (docs/python.md).

    from sluiceway import Client

    client = Client("http://127.0.0.1:8000", api_key=None)
    client.endpoint("churn").predict([[0.1, 0.2, 0.3, 0.4]])      # -> [0.73]
    job = client.endpoint("churn").predict_async(rows)            # -> Job, queued
    job.result(timeout=60)                                        # -> the predictions

Every call raises `sluiceway.errors.ApiError` (a subclass per status, with the
problem's `type`, `title`, `status` and `detail`) for an HTTP error, and
`ApiUnreachable` when no answer came at all. The operations themselves live in
sluiceway/_plans.py, shared with `AsyncClient`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx
from rich.console import Console

from sluiceway import _plans as plans
from sluiceway import errors
from sluiceway._plans import JSON, Call, Pause, Plan
from sluiceway.progress import TransformProgress
from sluiceway.types import (
    Endpoint,
    Invoked,
    JobInfo,
    LoadedModel,
    Model,
    ModelVersion,
    TransformJobInfo,
)

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
# A realtime call may wait as long as the server's realtime timeout (60 s by
# default) before the API answers 504; read a margin longer so the caller gets
# the API's 504 problem, not a client timeout.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=90.0, write=300.0, pool=5.0)
DEFAULT_WAIT_S = 300.0


def settings_from_env(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The base URL and key to use: the arguments, else SLUICEWAY_API_URL / SLUICEWAY_API_KEY."""
    url = base_url or os.environ.get("SLUICEWAY_API_URL") or DEFAULT_URL
    key = api_key if api_key is not None else os.environ.get("SLUICEWAY_API_KEY") or None
    return url.rstrip("/"), key


def unreachable(base_url: str, exc: httpx.TransportError) -> errors.ApiUnreachable:
    """The one-line reason no HTTP answer came, naming the URL."""
    if isinstance(exc, httpx.ConnectError):
        return errors.ApiUnreachable(
            f"cannot reach the Sluiceway API at {base_url} (is `sluice up` running?)"
        )
    if isinstance(exc, httpx.TimeoutException):
        return errors.ApiUnreachable(
            f"no answer from the Sluiceway API at {base_url} in time ({exc})"
        )
    return errors.ApiUnreachable(f"talking to the Sluiceway API at {base_url} failed: {exc}")


class Client:
    """A Sluiceway API client: `models`, `endpoints`, `jobs`, `transform_jobs`, `endpoint(name)`.

    `base_url` defaults to SLUICEWAY_API_URL (else http://127.0.0.1:8000) and
    `api_key` to SLUICEWAY_API_KEY; `http_client` replaces the httpx.Client the
    client builds (its base URL and headers are then the caller's). Use it as a
    context manager, or call `close()`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        http_client: httpx.Client | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if http_client is None:
            url, key = settings_from_env(base_url, api_key)
            headers = {"Authorization": f"Bearer {key}"} if key else None
            http_client = httpx.Client(base_url=url, timeout=timeout, headers=headers)
        self.http = http_client
        # Looked up now, not at import, so a test's patched time.sleep applies.
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.models = Models(self)
        self.endpoints = Endpoints(self)
        self.jobs = Jobs(self)
        self.transform_jobs = TransformJobs(self)

    @property
    def base_url(self) -> str:
        return str(self.http.base_url).rstrip("/")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the raw layer ---------------------------------------------------------------

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; ApiError for an error status, ApiUnreachable when no answer came."""
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        if response.is_error:
            raise errors.from_response(response)
        return response

    def get_json(self, url: str) -> Any:
        return self.request("GET", url).json()

    def run(self, plan: Plan[T]) -> T:
        """Carry out a plan (sluiceway/_plans.py): its requests, its pauses; return its result."""
        try:
            step = next(plan)
            while True:
                if isinstance(step, Pause):
                    self.sleep(step.seconds)
                    step = plan.send(None)
                    continue
                assert isinstance(step, Call)
                try:
                    response = self.request(step.method, step.url, **step.kwargs)
                except errors.SluicewayError as exc:
                    step = plan.throw(exc)  # the plan may handle it (a 404 it waits for)
                    continue
                step = plan.send(response)
        except StopIteration as done:
            result: T = done.value
            return result

    # --- shortcuts -------------------------------------------------------------------

    def endpoint(self, name: str) -> EndpointHandle:
        """A handle to call one endpoint: `predict`, `predict_async`, `invoke`, `invoke_async`."""
        return EndpointHandle(self, name)

    def job(self, job_id: str) -> Job:
        """A handle on an existing async job."""
        return Job(self, job_id)

    def transform(
        self,
        endpoint: str | None = None,
        *,
        model: str | None = None,
        input_prefix: str,
        output_prefix: str,
        **options: Any,
    ) -> TransformJob:
        """Start a batch transform over an S3 prefix (options: docs/api.md, Batch transform);
        returns a job whose `.wait(progress=True)` shows a live progress bar."""
        spec = plans.transform_spec(
            endpoint=endpoint,
            model=model,
            input_prefix=input_prefix,
            output_prefix=output_prefix,
            options=options,
        )
        return self.transform_jobs.submit(spec)


class Models:
    """The model registry: `register`, `get`, `list`, `delete`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def register(
        self,
        name: str,
        *,
        framework: str,
        file: str | Path | bytes | IO[bytes] | None = None,
        artifact_uri: str | None = None,
        filename: str | None = None,
    ) -> ModelVersion:
        """Add a version of `name` from a local file (uploaded) or an s3:// `artifact_uri`."""
        return self._client.run(
            plans.register_model(
                name=name,
                framework=framework,
                file=file,
                artifact_uri=artifact_uri,
                filename=filename,
            )
        )

    def get(self, name: str) -> Model:
        return self._client.run(plans.get_model(name))

    def list(self) -> list[Model]:
        return self._client.run(plans.list_models())

    def delete(self, name: str) -> None:
        self._client.run(plans.delete_model(name))


class Endpoints:
    """Endpoints: `create`, `update`, `get`, `list`, `delete`, `set_weights`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        spec: Mapping[str, Any] | None = None,
        *,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_S,
        **fields: Any,
    ) -> Endpoint:
        """Create an endpoint from a spec dict (or its fields as keywords); with `wait`,
        return once it is no longer `creating` (EndpointFailed if it ends `failed`)."""
        body = {**(spec or {}), **fields}
        return self._client.run(
            plans.create_endpoint(body, wait=wait, timeout_s=timeout, clock=self._client.clock)
        )

    def update(
        self,
        name: str,
        spec: Mapping[str, Any] | None = None,
        *,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_S,
        **fields: Any,
    ) -> Endpoint:
        """Replace the endpoint's spec (PUT); with `wait`, return once the deployment is over.
        NotSupported against a server without endpoint updates."""
        body = {**(spec or {}), **fields}
        return self._client.run(
            plans.update_endpoint(
                name, body, wait=wait, timeout_s=timeout, clock=self._client.clock
            )
        )

    def get(self, name: str) -> Endpoint:
        return self._client.run(plans.get_endpoint(name))

    def list(self) -> list[Endpoint]:
        return self._client.run(plans.list_endpoints())

    def delete(self, name: str, *, wait: bool = True, timeout: float = DEFAULT_WAIT_S) -> None:
        """Delete; with `wait`, return once the endpoint is gone (its queued jobs done)."""
        self._client.run(
            plans.delete_endpoint(name, wait=wait, timeout_s=timeout, clock=self._client.clock)
        )

    def set_weights(self, name: str, weights: Mapping[str, float]) -> Endpoint:
        """Shift traffic between variants, e.g. `{"a": 1, "b": 3}`; new requests follow at once."""
        return self._client.run(plans.set_weights(name, weights))


class Jobs:
    """Async jobs: `get`, `list`, `retry`, `output`, `wait`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, job_id: str) -> JobInfo:
        return self._client.run(plans.get_job(job_id))

    def list(
        self,
        *,
        endpoint: str | None = None,
        status: str | None = None,
        dead_letter: bool | None = None,
        limit: int = 50,
    ) -> list[JobInfo]:
        """Newest first, optionally of one endpoint or status."""
        return self._client.run(
            plans.list_jobs(endpoint=endpoint, status=status, dead_letter=dead_letter, limit=limit)
        )

    def retry(self, job_id: str) -> JobInfo:
        """Run a failed job again from its stored input (Conflict unless it failed)."""
        return self._client.run(plans.retry_job(job_id))

    def output(self, job_id: str) -> Invoked:
        """The output bytes of a succeeded job (NotFound before that)."""
        return self._client.run(plans.job_output(job_id))

    def wait(self, job_id: str, *, timeout: float = DEFAULT_WAIT_S) -> JobInfo:
        """Poll until the job succeeds or fails; JobWaitTimeout past `timeout` seconds."""
        return self._client.run(plans.wait_job(job_id, timeout_s=timeout, clock=self._client.clock))


class TransformJobs:
    """Batch transform jobs by id or name: `get`, `stop` (start one with `client.transform`)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, job: str) -> TransformJobInfo:
        return self._client.run(plans.get_transform(job))

    def stop(self, job: str) -> TransformJobInfo:
        return self._client.run(plans.stop_transform(job))

    def submit(self, spec: Mapping[str, Any]) -> TransformJob:
        """Start (or, with the name of a stopped or failed one, resume) a transform from a
        whole spec (docs/api.md, Batch transform)."""
        return TransformJob(self._client, self._client.run(plans.submit_transform(spec)))


class EndpointHandle:
    """Calls to one endpoint. Rows are a list of rows, a numpy array or a pandas DataFrame."""

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self.name = name

    def predict(
        self,
        rows: Any,
        *,
        variant: str | None = None,
        timeout_ms: int | None = None,
        component: str | None = None,
        target_model: str | None = None,
    ) -> list[Any]:
        """A realtime call: the predictions, one per row, in order."""
        headers = plans.invocation_headers(
            content_type=JSON,
            accept=JSON,
            variant=variant,
            timeout_ms=timeout_ms,
            component=component,
            target_model=target_model,
        )
        answer = self.invoke(plans.rows_body(rows), headers=headers)
        return plans.predictions(answer.body)

    def predict_async(
        self,
        rows: Any,
        *,
        variant: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        component: str | None = None,
        target_model: str | None = None,
    ) -> Job:
        """Queue the rows as an async job; `.result(timeout)` gives the predictions."""
        headers = plans.invocation_headers(
            content_type=JSON,
            variant=variant,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            component=component,
            target_model=target_model,
        )
        return self.invoke_async(plans.rows_body(rows), headers=headers)

    def models(self, *, variant: str | None = None) -> list[LoadedModel]:
        """A multi-model endpoint's models and where they are loaded (every page)."""
        return self._client.run(plans.endpoint_models(self.name, variant=variant))

    def invoke(self, body: bytes, *, headers: Mapping[str, str]) -> Invoked:
        """A realtime call with any payload (JSON or CSV) and the API's headers; the raw answer."""
        return self._client.run(plans.invoke(self.name, body=body, headers=headers))

    def invoke_async(self, body: bytes, *, headers: Mapping[str, str]) -> Job:
        """An async call with any payload (or none, with X-Input-Location); the queued job."""
        accepted = self._client.run(plans.invoke_async(self.name, body=body, headers=headers))
        return Job(self._client, accepted.job_id, accepted)


class Job:
    """An async job: `refresh()`, `wait(timeout)`, `result(timeout)`, `output()`, `retry()`."""

    def __init__(self, client: Client, job_id: str, info: JobInfo | None = None) -> None:
        self._client = client
        self.id = job_id
        self.info = info

    def __repr__(self) -> str:
        status = self.info.status if self.info else "?"
        return f"<Job {self.id} {status}>"

    def refresh(self) -> JobInfo:
        self.info = self._client.jobs.get(self.id)
        return self.info

    def wait(self, timeout: float = DEFAULT_WAIT_S) -> JobInfo:
        """The job once it succeeded or failed; JobWaitTimeout past `timeout` seconds."""
        self.info = self._client.jobs.wait(self.id, timeout=timeout)
        return self.info

    def result(self, timeout: float = DEFAULT_WAIT_S) -> list[Any]:
        """Its predictions once it succeeded; JobFailed if it failed, JobWaitTimeout if late."""
        return self._client.run(
            plans.job_result(self.id, timeout_s=timeout, clock=self._client.clock)
        )

    def output(self) -> Invoked:
        return self._client.jobs.output(self.id)

    def retry(self) -> JobInfo:
        self.info = self._client.jobs.retry(self.id)
        return self.info


class TransformJob:
    """A batch transform: `refresh()`, `wait(timeout, progress)`, `stop()`; `info` is the last
    state seen."""

    def __init__(self, client: Client, info: TransformJobInfo) -> None:
        self._client = client
        self.info = info
        self.id = info.job_id

    def __repr__(self) -> str:
        return f"<TransformJob {self.info.name or self.id} {self.info.status}>"

    def refresh(self) -> TransformJobInfo:
        self.info = self._client.transform_jobs.get(self.id)
        return self.info

    def stop(self) -> TransformJobInfo:
        self.info = self._client.transform_jobs.stop(self.id)
        return self.info

    def wait(
        self,
        timeout: float | None = None,
        *,
        progress: bool = False,
        poll_s: float = 0.5,
        console: Console | None = None,
    ) -> TransformJobInfo:
        """Poll until the job succeeds, fails or stops (JobWaitTimeout past `timeout`);
        `progress=True` draws a live bar (records, rate, time left) on stderr."""

        def record(job: TransformJobInfo) -> None:
            self.info = job

        def wait(on_update: Callable[[TransformJobInfo], None]) -> TransformJobInfo:
            return self._client.run(
                plans.wait_transform(
                    self.info,
                    timeout_s=timeout,
                    poll_s=poll_s,
                    clock=self._client.clock,
                    on_update=on_update,
                )
            )

        if not progress:
            return wait(record)
        with TransformProgress(self.info.name or self.id, console=console) as bar:

            def draw(job: TransformJobInfo) -> None:
                record(job)
                bar.update(job)

            return wait(draw)
