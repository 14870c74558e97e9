"""Every SDK operation written once, as a plan that both clients run (sans-I/O).

A plan is a generator: it yields a `Call` (one HTTP request) or a `Pause` (a
wait between two polls) and gets back the `httpx.Response` (or None after a
pause); what it returns is the operation's result. `Client` runs plans with
httpx.Client and `time.sleep`, `AsyncClient` with httpx.AsyncClient and
`asyncio.sleep`, so the request rules, the parsing and the polling rules exist
once. Polls back off: the pause doubles from 50 ms up to 1 s, so a fast job is
seen within ~50 ms and a slow one costs one request a second.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote, unquote

import httpx
import orjson
from pydantic import BaseModel, ValidationError

from sluiceway import errors
from sluiceway.types import (
    ENDPOINT_MOVING,
    Endpoint,
    Invoked,
    JobInfo,
    LoadedModel,
    Model,
    ModelVersion,
    TransformJobInfo,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
JSON = "application/json"
FIRST_PAUSE_S = 0.05
LONGEST_PAUSE_S = 1.0


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request; `kwargs` go to httpx's `request` (json, content, files, params...)."""

    method: str
    url: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


Step = Call | Pause
Plan = Generator[Step, httpx.Response | None, T]
Clock = Callable[[], float]


def path(template: str, *names: str) -> str:
    """`path("/v1/jobs/{}", job_id)` with each name escaped, so 'a/b' cannot change the route."""
    return template.format(*(quote(name, safe="") for name in names))


def call(method: str, url: str, **kwargs: Any) -> Plan[httpx.Response]:
    """The response of one request (raising the SDK's errors for an error status)."""
    response = yield Call(method, url, kwargs)
    assert response is not None
    return response


def parse(model: type[M], data: Any) -> M:
    """`data` as a `model`; UnexpectedAnswer (naming the fields) when it does not fit."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise errors.UnexpectedAnswer(
            f"the API's answer is not a {model.__name__}: {problems}"
        ) from None


def get_json(url: str) -> Plan[Any]:
    response = yield from call("GET", url)
    return response.json()


# --- payloads -------------------------------------------------------------------


def rows_body(rows: Any) -> bytes:
    """`{"instances": rows}` as JSON bytes; rows a list of rows, a numpy array or a DataFrame.

    A DataFrame is recognised only when pandas is already imported (it cannot be
    one otherwise), so pandas is never a dependency: `df.to_numpy()` rows go as
    lists, column names are not sent (the models take positional features).
    """
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(rows, pandas.DataFrame):
        rows = rows.to_numpy()
    if hasattr(rows, "tolist") and hasattr(rows, "ndim"):  # numpy arrays, without importing numpy
        rows = rows.tolist()
    if not isinstance(rows, list | tuple):
        raise TypeError(
            f"rows must be a list of rows, a numpy array or a pandas DataFrame, "
            f"not {type(rows).__name__}"
        )
    return orjson.dumps({"instances": list(rows)})


def predictions(body: bytes) -> list[Any]:
    """The `predictions` list of a JSON answer (one per row, in order)."""
    data = orjson.loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("predictions"), list):
        raise errors.SluicewayError(f"expected {{'predictions': [...]}}, got {body[:200]!r}")
    return list(data["predictions"])


def invocation_headers(
    *,
    content_type: str,
    accept: str | None = None,
    variant: str | None = None,
    timeout_ms: int | None = None,
    input_location: str | None = None,
    idempotency_key: str | None = None,
    callback_url: str | None = None,
    component: str | None = None,
    target_model: str | None = None,
) -> dict[str, str]:
    """The API's invocation headers for the options given (docs/api.md, Invocations).

    `target_model` (a multi-model variant's model key) is percent-encoded: any key,
    `eu/paris.json` or `données.json`, reaches the API as written.
    """
    optional = {
        "Accept": accept,
        "X-Target-Variant": variant,
        "X-Target-Component": component,
        "X-Target-Model": None if target_model is None else quote(target_model, safe="/"),
        "X-Timeout-Ms": None if timeout_ms is None else str(timeout_ms),
        "X-Input-Location": input_location,
        "Idempotency-Key": idempotency_key,
        "X-Callback-Url": callback_url,
    }
    headers = {"Content-Type": content_type}
    headers.update({name: value for name, value in optional.items() if value is not None})
    return headers


def invoked(response: httpx.Response) -> Invoked:
    return Invoked(
        body=response.content,
        content_type=response.headers.get("content-type", JSON).split(";")[0].strip(),
        variant=response.headers.get("X-Invoked-Variant"),
        job_id=response.headers.get("X-Job-Id"),
        model=_unquoted(response.headers.get("X-Invoked-Model")),
    )


def _unquoted(value: str | None) -> str | None:
    return None if value is None else unquote(value)


def endpoint_models(
    name: str, *, variant: str | None = None, limit: int = 1000
) -> Plan[list[LoadedModel]]:
    """Every model under the endpoint's multi-model variants, following the pages."""
    found: list[LoadedModel] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if variant is not None:
            params["variant"] = variant
        if after is not None:
            params["after"] = after
        url = path("/v1/endpoints/{}/models", name)
        response = yield from call("GET", url, params=params)
        found += [parse(LoadedModel, entry) for entry in response.json()]
        following = response.headers.get("X-Next-After")
        if following is None:
            return found
        after = unquote(following)


def invoke(endpoint: str, *, body: bytes, headers: Mapping[str, str]) -> Plan[Invoked]:
    url = path("/v1/endpoints/{}/invocations", endpoint)
    response = yield from call("POST", url, content=body, headers=dict(headers))
    return invoked(response)


def invoke_async(endpoint: str, *, body: bytes, headers: Mapping[str, str]) -> Plan[JobInfo]:
    url = path("/v1/endpoints/{}/async-invocations", endpoint)
    response = yield from call("POST", url, content=body, headers=dict(headers))
    return parse(JobInfo, response.json())


# --- models ---------------------------------------------------------------------


def register_model(
    *,
    name: str,
    framework: str,
    file: str | Path | bytes | IO[bytes] | None,
    artifact_uri: str | None,
    filename: str | None = None,
) -> Plan[ModelVersion]:
    """Upload `file` (a path, bytes or an open binary file) or register an `artifact_uri`."""
    if (file is None) == (artifact_uri is None):
        raise ValueError("give exactly one of file or artifact_uri")
    if artifact_uri is not None:
        body = {"name": name, "framework": framework, "artifact_uri": artifact_uri}
        response = yield from call("POST", "/v1/models", json=body)
        return parse(ModelVersion, response.json())
    fields = {"name": name, "framework": framework}
    upload: dict[str, tuple[str, Any, str]]
    if isinstance(file, str | Path):
        # httpx streams the open file, so a multi-GB artifact is never held in memory.
        with Path(file).open("rb") as handle:
            upload = {"file": (filename or Path(file).name, handle, "application/octet-stream")}
            response = yield from call("POST", "/v1/models", data=fields, files=upload)
    else:
        upload = {"file": (filename or "artifact", file, "application/octet-stream")}
        response = yield from call("POST", "/v1/models", data=fields, files=upload)
    return parse(ModelVersion, response.json())


def get_model(name: str) -> Plan[Model]:
    return parse(Model, (yield from get_json(path("/v1/models/{}", name))))


def list_models() -> Plan[list[Model]]:
    return [parse(Model, m) for m in (yield from get_json("/v1/models"))]


def delete_model(name: str) -> Plan[None]:
    yield from call("DELETE", path("/v1/models/{}", name))


# --- endpoints ------------------------------------------------------------------


def get_endpoint(name: str) -> Plan[Endpoint]:
    return parse(Endpoint, (yield from get_json(path("/v1/endpoints/{}", name))))


def list_endpoints() -> Plan[list[Endpoint]]:
    return [parse(Endpoint, e) for e in (yield from get_json("/v1/endpoints"))]


def wait_endpoint(name: str, *, timeout_s: float, clock: Clock) -> Plan[Endpoint]:
    """Poll until the endpoint is no longer creating/updating/rolling back; EndpointFailed
    if it ends `failed`, JobWaitTimeout-like `TimeoutError` past the deadline."""
    deadline = clock() + timeout_s
    pause_s = FIRST_PAUSE_S
    while True:
        endpoint = yield from get_endpoint(name)
        if endpoint.status == "failed":
            raise errors.EndpointFailed(f"endpoint {name} failed: {endpoint.model_extra}")
        if endpoint.status not in ENDPOINT_MOVING:
            return endpoint
        if clock() >= deadline:
            raise TimeoutError(f"endpoint {name} is still {endpoint.status} after {timeout_s:g} s")
        yield Pause(min(pause_s, max(deadline - clock(), 0.0)))
        pause_s = min(pause_s * 2, LONGEST_PAUSE_S)


def create_endpoint(
    spec: Mapping[str, Any], *, wait: bool, timeout_s: float, clock: Clock
) -> Plan[Endpoint]:
    response = yield from call("POST", "/v1/endpoints", json=dict(spec))
    endpoint = parse(Endpoint, response.json())
    if wait:
        endpoint = yield from wait_endpoint(endpoint.name, timeout_s=timeout_s, clock=clock)
    return endpoint


def update_endpoint(
    name: str, spec: Mapping[str, Any], *, wait: bool, timeout_s: float, clock: Clock
) -> Plan[Endpoint]:
    """PUT /v1/endpoints/{name}: a whole new spec (a deployment when the server has them).

    A server without endpoint updates answers 405 for PUT on that path: that
    becomes `NotSupported`, naming the route, rather than a bare HTTP error.
    """
    body = {"name": name, **dict(spec)}
    try:
        yield from call("PUT", path("/v1/endpoints/{}", name), json=body)
    except errors.MethodNotAllowed as exc:
        raise errors.NotSupported(
            f"this server has no PUT /v1/endpoints/{{name}} (endpoint updates); "
            f"it answered {exc.status} {exc.title}"
        ) from exc
    if wait:
        return (yield from wait_endpoint(name, timeout_s=timeout_s, clock=clock))
    return (yield from get_endpoint(name))


def delete_endpoint(name: str, *, wait: bool, timeout_s: float, clock: Clock) -> Plan[None]:
    """DELETE, then (with wait) poll until GET says 404: its queued jobs may finish first."""
    yield from call("DELETE", path("/v1/endpoints/{}", name))
    if not wait:
        return
    deadline = clock() + timeout_s
    pause_s = FIRST_PAUSE_S
    while True:
        try:
            endpoint = yield from get_endpoint(name)
        except errors.NotFound:
            return
        if clock() >= deadline:
            raise TimeoutError(f"endpoint {name} is still {endpoint.status} after {timeout_s:g} s")
        yield Pause(min(pause_s, max(deadline - clock(), 0.0)))
        pause_s = min(pause_s * 2, LONGEST_PAUSE_S)


def set_weights(name: str, weights: Mapping[str, float]) -> Plan[Endpoint]:
    body = {"variants": [{"name": v, "weight": w} for v, w in weights.items()]}
    response = yield from call("PATCH", path("/v1/endpoints/{}/weights", name), json=body)
    return parse(Endpoint, response.json())


# --- jobs -----------------------------------------------------------------------


def get_job(job_id: str) -> Plan[JobInfo]:
    return parse(JobInfo, (yield from get_json(path("/v1/jobs/{}", job_id))))


def list_jobs(
    *, endpoint: str | None, status: str | None, dead_letter: bool | None, limit: int
) -> Plan[list[JobInfo]]:
    params: dict[str, Any] = {"limit": limit}
    params.update(
        {
            k: v
            for k, v in (("endpoint", endpoint), ("status", status), ("dead_letter", dead_letter))
            if v is not None
        }
    )
    response = yield from call("GET", "/v1/jobs", params=params)
    return [parse(JobInfo, j) for j in response.json()]


def retry_job(job_id: str) -> Plan[JobInfo]:
    response = yield from call("POST", path("/v1/jobs/{}/retry", job_id))
    return parse(JobInfo, response.json())


def job_output(job_id: str) -> Plan[Invoked]:
    return invoked((yield from call("GET", path("/v1/jobs/{}/output", job_id))))


def wait_job(job_id: str, *, timeout_s: float, clock: Clock) -> Plan[JobInfo]:
    """Poll GET /v1/jobs/{id} until it succeeds or fails; JobWaitTimeout past the deadline."""
    deadline = clock() + timeout_s
    pause_s = FIRST_PAUSE_S
    while True:
        job = yield from get_job(job_id)
        if job.finished:
            return job
        if clock() >= deadline:
            raise errors.JobWaitTimeout(job_id=job_id, status=job.status, timeout_s=timeout_s)
        yield Pause(min(pause_s, max(deadline - clock(), 0.0)))
        pause_s = min(pause_s * 2, LONGEST_PAUSE_S)


def describe_job_error(error: Any) -> str:
    """A job's `error` field as text, whether the API sends a string or an object."""
    if isinstance(error, dict):
        parts = [str(error[key]) for key in ("title", "kind", "detail") if error.get(key)]
        return ": ".join(parts) if parts else orjson.dumps(error).decode()
    return str(error) if error else "no error message recorded"


def job_result(job_id: str, *, timeout_s: float, clock: Clock) -> Plan[list[Any]]:
    """Wait for the job, then its output's predictions; JobFailed if it failed."""
    job = yield from wait_job(job_id, timeout_s=timeout_s, clock=clock)
    if job.status == "failed":
        raise errors.JobFailed(job_id=job_id, error=describe_job_error(job.error))
    output = yield from job_output(job_id)
    return predictions(output.body)


# --- batch transform ------------------------------------------------------------


def submit_transform(spec: Mapping[str, Any]) -> Plan[TransformJobInfo]:
    response = yield from call("POST", "/v1/transform-jobs", json=dict(spec))
    return parse(TransformJobInfo, response.json())


def get_transform(job_id: str) -> Plan[TransformJobInfo]:
    url = path("/v1/transform-jobs/{}", job_id)
    return parse(TransformJobInfo, (yield from get_json(url)))


def stop_transform(job_id: str) -> Plan[TransformJobInfo]:
    response = yield from call("POST", path("/v1/transform-jobs/{}/stop", job_id))
    return parse(TransformJobInfo, response.json())


def wait_transform(
    job: TransformJobInfo,
    *,
    timeout_s: float | None,
    poll_s: float,
    clock: Clock,
    on_update: Callable[[TransformJobInfo], None] | None,
) -> Plan[TransformJobInfo]:
    """Poll the job every `poll_s` until it ends, telling `on_update` each state seen;
    JobWaitTimeout past `timeout_s` (None: wait as long as it takes)."""
    deadline = None if timeout_s is None else clock() + timeout_s
    while True:
        if on_update is not None:
            on_update(job)
        if job.finished:
            return job
        if deadline is not None and clock() >= deadline:
            raise errors.JobWaitTimeout(
                job_id=job.job_id, status=job.status, timeout_s=timeout_s or 0.0
            )
        yield Pause(poll_s)
        job = yield from get_transform(job.job_id)


def transform_spec(
    *,
    endpoint: str | None,
    model: str | None,
    input_prefix: str,
    output_prefix: str,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """The body of POST /v1/transform-jobs: exactly one of endpoint or model, then options."""
    if (endpoint is None) == (model is None):
        raise ValueError("give exactly one of endpoint or model")
    spec: dict[str, Any] = {"endpoint": endpoint} if endpoint else {"model": model}
    spec.update(input_prefix=input_prefix, output_prefix=output_prefix)
    spec.update({k: v for k, v in options.items() if v is not None})
    return spec
