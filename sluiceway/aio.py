"""`AsyncClient`: the same operations as `Client`, awaited (httpx.AsyncClient, asyncio.sleep).

    async with AsyncClient("http://127.0.0.1:8000") as client:
        predictions = await client.endpoint("churn").predict(rows)
        job = await client.endpoint("churn").predict_async(rows)
        predictions = await job.result(timeout=60)

Every operation is the plan `Client` runs (sluiceway/_plans.py); only the I/O differs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx
from rich.console import Console

from sluiceway import _plans as plans
from sluiceway import errors
from sluiceway._plans import JSON, Call, Pause, Plan
from sluiceway.client import DEFAULT_TIMEOUT, DEFAULT_WAIT_S, settings_from_env, unreachable
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


class AsyncClient:
    """The asynchronous twin of `sluiceway.Client`; same arguments, same methods, awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if http_client is None:
            url, key = settings_from_env(base_url, api_key)
            headers = {"Authorization": f"Bearer {key}"} if key else None
            http_client = httpx.AsyncClient(base_url=url, timeout=timeout, headers=headers)
        self.http = http_client
        self.clock = clock or time.monotonic
        self.sleep = sleep or asyncio.sleep
        self.models = AsyncModels(self)
        self.endpoints = AsyncEndpoints(self)
        self.jobs = AsyncJobs(self)
        self.transform_jobs = AsyncTransformJobs(self)

    @property
    def base_url(self) -> str:
        return str(self.http.base_url).rstrip("/")

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; ApiError for an error status, ApiUnreachable when no answer came."""
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        if response.is_error:
            raise errors.from_response(response)
        return response

    async def get_json(self, url: str) -> Any:
        return (await self.request("GET", url)).json()

    async def run(self, plan: Plan[T]) -> T:
        """Carry out a plan (sluiceway/_plans.py): its requests, its pauses; return its result."""
        try:
            step = next(plan)
            while True:
                if isinstance(step, Pause):
                    await self.sleep(step.seconds)
                    step = plan.send(None)
                    continue
                assert isinstance(step, Call)
                try:
                    response = await self.request(step.method, step.url, **step.kwargs)
                except errors.SluicewayError as exc:
                    step = plan.throw(exc)
                    continue
                step = plan.send(response)
        except StopIteration as done:
            result: T = done.value
            return result

    def endpoint(self, name: str) -> AsyncEndpointHandle:
        return AsyncEndpointHandle(self, name)

    def job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, job_id)

    async def transform(
        self,
        endpoint: str | None = None,
        *,
        model: str | None = None,
        input_prefix: str,
        output_prefix: str,
        **options: Any,
    ) -> AsyncTransformJob:
        spec = plans.transform_spec(
            endpoint=endpoint,
            model=model,
            input_prefix=input_prefix,
            output_prefix=output_prefix,
            options=options,
        )
        return await self.transform_jobs.submit(spec)


class AsyncModels:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def register(
        self,
        name: str,
        *,
        framework: str,
        file: str | Path | bytes | IO[bytes] | None = None,
        artifact_uri: str | None = None,
        filename: str | None = None,
    ) -> ModelVersion:
        return await self._client.run(
            plans.register_model(
                name=name,
                framework=framework,
                file=file,
                artifact_uri=artifact_uri,
                filename=filename,
            )
        )

    async def get(self, name: str) -> Model:
        return await self._client.run(plans.get_model(name))

    async def list(self) -> list[Model]:
        return await self._client.run(plans.list_models())

    async def delete(self, name: str) -> None:
        await self._client.run(plans.delete_model(name))


class AsyncEndpoints:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        spec: Mapping[str, Any] | None = None,
        *,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_S,
        **fields: Any,
    ) -> Endpoint:
        body = {**(spec or {}), **fields}
        return await self._client.run(
            plans.create_endpoint(body, wait=wait, timeout_s=timeout, clock=self._client.clock)
        )

    async def update(
        self,
        name: str,
        spec: Mapping[str, Any] | None = None,
        *,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_S,
        **fields: Any,
    ) -> Endpoint:
        body = {**(spec or {}), **fields}
        return await self._client.run(
            plans.update_endpoint(
                name, body, wait=wait, timeout_s=timeout, clock=self._client.clock
            )
        )

    async def get(self, name: str) -> Endpoint:
        return await self._client.run(plans.get_endpoint(name))

    async def list(self) -> list[Endpoint]:
        return await self._client.run(plans.list_endpoints())

    async def delete(
        self, name: str, *, wait: bool = True, timeout: float = DEFAULT_WAIT_S
    ) -> None:
        await self._client.run(
            plans.delete_endpoint(name, wait=wait, timeout_s=timeout, clock=self._client.clock)
        )

    async def set_weights(self, name: str, weights: Mapping[str, float]) -> Endpoint:
        return await self._client.run(plans.set_weights(name, weights))


class AsyncJobs:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, job_id: str) -> JobInfo:
        return await self._client.run(plans.get_job(job_id))

    async def list(
        self,
        *,
        endpoint: str | None = None,
        status: str | None = None,
        dead_letter: bool | None = None,
        limit: int = 50,
    ) -> list[JobInfo]:
        return await self._client.run(
            plans.list_jobs(endpoint=endpoint, status=status, dead_letter=dead_letter, limit=limit)
        )

    async def retry(self, job_id: str) -> JobInfo:
        return await self._client.run(plans.retry_job(job_id))

    async def output(self, job_id: str) -> Invoked:
        return await self._client.run(plans.job_output(job_id))

    async def wait(self, job_id: str, *, timeout: float = DEFAULT_WAIT_S) -> JobInfo:
        return await self._client.run(
            plans.wait_job(job_id, timeout_s=timeout, clock=self._client.clock)
        )


class AsyncTransformJobs:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, job: str) -> TransformJobInfo:
        return await self._client.run(plans.get_transform(job))

    async def stop(self, job: str) -> TransformJobInfo:
        return await self._client.run(plans.stop_transform(job))

    async def submit(self, spec: Mapping[str, Any]) -> AsyncTransformJob:
        """Start (or, with the name of a stopped or failed one, resume) a transform from a
        whole spec (docs/api.md, Batch transform)."""
        return AsyncTransformJob(self._client, await self._client.run(plans.submit_transform(spec)))


class AsyncEndpointHandle:
    def __init__(self, client: AsyncClient, name: str) -> None:
        self._client = client
        self.name = name

    async def predict(
        self,
        rows: Any,
        *,
        variant: str | None = None,
        timeout_ms: int | None = None,
        component: str | None = None,
        target_model: str | None = None,
    ) -> list[Any]:
        headers = plans.invocation_headers(
            content_type=JSON,
            accept=JSON,
            variant=variant,
            timeout_ms=timeout_ms,
            component=component,
            target_model=target_model,
        )
        answer = await self.invoke(plans.rows_body(rows), headers=headers)
        return plans.predictions(answer.body)

    async def predict_async(
        self,
        rows: Any,
        *,
        variant: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        component: str | None = None,
        target_model: str | None = None,
    ) -> AsyncJob:
        headers = plans.invocation_headers(
            content_type=JSON,
            variant=variant,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            component=component,
            target_model=target_model,
        )
        return await self.invoke_async(plans.rows_body(rows), headers=headers)

    async def models(self, *, variant: str | None = None) -> list[LoadedModel]:
        """A multi-model endpoint's models and where they are loaded (every page)."""
        return await self._client.run(plans.endpoint_models(self.name, variant=variant))

    async def invoke(self, body: bytes, *, headers: Mapping[str, str]) -> Invoked:
        return await self._client.run(plans.invoke(self.name, body=body, headers=headers))

    async def invoke_async(self, body: bytes, *, headers: Mapping[str, str]) -> AsyncJob:
        accepted = await self._client.run(plans.invoke_async(self.name, body=body, headers=headers))
        return AsyncJob(self._client, accepted.job_id, accepted)


class AsyncJob:
    def __init__(self, client: AsyncClient, job_id: str, info: JobInfo | None = None) -> None:
        self._client = client
        self.id = job_id
        self.info = info

    def __repr__(self) -> str:
        return f"<AsyncJob {self.id} {self.info.status if self.info else '?'}>"

    async def refresh(self) -> JobInfo:
        self.info = await self._client.jobs.get(self.id)
        return self.info

    async def wait(self, timeout: float = DEFAULT_WAIT_S) -> JobInfo:
        self.info = await self._client.jobs.wait(self.id, timeout=timeout)
        return self.info

    async def result(self, timeout: float = DEFAULT_WAIT_S) -> list[Any]:
        return await self._client.run(
            plans.job_result(self.id, timeout_s=timeout, clock=self._client.clock)
        )

    async def output(self) -> Invoked:
        return await self._client.jobs.output(self.id)

    async def retry(self) -> JobInfo:
        self.info = await self._client.jobs.retry(self.id)
        return self.info


class AsyncTransformJob:
    def __init__(self, client: AsyncClient, info: TransformJobInfo) -> None:
        self._client = client
        self.info = info
        self.id = info.job_id

    def __repr__(self) -> str:
        return f"<AsyncTransformJob {self.info.name or self.id} {self.info.status}>"

    async def refresh(self) -> TransformJobInfo:
        self.info = await self._client.transform_jobs.get(self.id)
        return self.info

    async def stop(self) -> TransformJobInfo:
        self.info = await self._client.transform_jobs.stop(self.id)
        return self.info

    async def wait(
        self,
        timeout: float | None = None,
        *,
        progress: bool = False,
        poll_s: float = 0.5,
        console: Console | None = None,
    ) -> TransformJobInfo:
        bar = TransformProgress(self.info.name or self.id, console=console) if progress else None

        def update(job: TransformJobInfo) -> None:
            self.info = job
            if bar is not None:
                bar.update(job)

        plan = plans.wait_transform(
            self.info, timeout_s=timeout, poll_s=poll_s, clock=self._client.clock, on_update=update
        )
        if bar is None:
            return await self._client.run(plan)
        with bar:
            return await self._client.run(plan)
