"""Realtime and async invocation of an endpoint."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from api import invocations, metrics
from api.problems import problem, problem_responses
from api.routing import EndpointRoute, RouteCache
from api.schemas import AsyncAccepted
from core import codecs
from core.config import get_settings
from core.errors import BadRequest, InvalidInput, QueueUnavailable, RealtimeTimeout
from core.tables import new_id
from core.url_safety import check_webhook_url

router = APIRouter(
    prefix="/v1/endpoints",
    tags=["invocations"],
    responses=problem_responses(400, 403, 404, 413, 415, 422, 424, 429, 503, 504),
)
_rng = random.Random()

PAYLOAD_BODY: dict[str, Any] = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"instances": {"type": "array", "items": {}}},
                "required": ["instances"],
            }
        },
        "text/csv": {"schema": {"type": "string"}},
    }
}


async def _route(request: Request, name: str) -> EndpointRoute:
    cache: RouteCache = request.app.state.routes
    return await cache.route(name)


@router.post(
    "/{name}/invocations",
    openapi_extra={"requestBody": {**PAYLOAD_BODY, "required": True}},
    responses={200: {"description": "The model's output", "content": {"application/json": {}}}},
)
async def invoke_realtime(
    name: str,
    request: Request,
    x_target_variant: str | None = Header(default=None),
    x_timeout_ms: str | None = Header(default=None),
    x_inference_id: str | None = Header(default=None),
) -> Response:
    """Run the model and wait for its answer (default 60 s; `X-Timeout-Ms` lowers it)."""
    settings = get_settings()
    route = await _route(request, name)
    variant = route.choose(x_target_variant, _rng)
    await request.app.state.backlog.admit(variant.queue, endpoint=name, variant=variant.name)
    timeout_ms = _timeout_ms(x_timeout_ms, settings.realtime_timeout_ms)
    content_type = codecs.media_type(request.headers.get("content-type"))
    body = await invocations.read_body(request, settings.max_inline_body_bytes)
    invocations.validate_payload(body, content_type, variant.model.framework)

    waiter = request.app.state.replies
    job_id = new_id()
    invocation = invocations.realtime_invocation(
        route=route,
        variant=variant,
        body=body,
        content_type=content_type,
        accept=request.headers.get("accept"),
        reply_to=waiter.key,
        timeout_ms=timeout_ms,
        job_id=job_id,
    )
    future = waiter.expect(job_id)
    started = time.perf_counter()
    try:
        try:
            await request.app.state.producer.send(invocation)
        except (RedisError, ConnectionError) as exc:
            raise QueueUnavailable(f"could not queue the request: {exc}") from exc
        reply = await asyncio.wait_for(future, timeout_ms / 1000)
    except TimeoutError as exc:
        metrics.observe_realtime(
            endpoint=name,
            variant=variant.name,
            outcome="timeout",
            total_s=time.perf_counter() - started,
            model_s=0.0,
        )
        raise RealtimeTimeout(
            f"no answer from variant {variant.name!r} within {timeout_ms} ms"
        ) from exc
    finally:
        waiter.forget(job_id)
    headers = {"X-Invoked-Variant": variant.name, "X-Job-Id": job_id}
    if x_inference_id:
        headers["X-Inference-Id"] = x_inference_id
    metrics.observe_realtime(
        endpoint=name,
        variant=variant.name,
        outcome="ok" if reply.ok else reply.error_kind or "error",
        total_s=time.perf_counter() - started,
        model_s=reply.model_ms / 1000,
    )
    if not reply.ok:
        error = invocations.reply_error(reply.error_kind, reply.detail)
        return problem(error.status, error.detail, error.title, headers=headers)
    return Response(reply.body, media_type=reply.content_type, headers=headers)


def _timeout_ms(header: str | None, default: int) -> int:
    if header is None:
        return default
    try:
        value = int(header)
    except ValueError as exc:
        raise BadRequest(f"X-Timeout-Ms {header!r} is not a whole number") from exc
    if value <= 0:
        raise InvalidInput(f"X-Timeout-Ms must be positive, got {value}")
    return min(value, default)


@router.post(
    "/{name}/async-invocations",
    status_code=202,
    response_model=AsyncAccepted,
    openapi_extra={"requestBody": PAYLOAD_BODY},
)
async def invoke_async(
    name: str,
    request: Request,
    x_target_variant: str | None = Header(default=None),
    x_input_location: str | None = Header(default=None),
    x_callback_url: str | None = Header(default=None),
    x_inference_id: str | None = Header(default=None),
    idempotency_key: str | None = Header(default=None),
) -> JSONResponse:
    """Queue a job; its output lands at `output_location`. Poll `/v1/jobs/{job_id}`."""
    settings = get_settings()
    route = await _route(request, name)
    variant = route.choose(x_target_variant, _rng)
    await request.app.state.backlog.admit(variant.queue, endpoint=name, variant=variant.name)
    content_type = codecs.media_type(request.headers.get("content-type"))
    body = await invocations.read_body(request, settings.max_inline_body_bytes)
    if x_input_location:
        if body:
            raise BadRequest("send either a body or X-Input-Location, not both")
        if variant.model.framework != "python":
            codecs.check_supported(content_type)
    else:
        invocations.validate_payload(body, content_type, variant.model.framework)
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
        raise InvalidInput("Idempotency-Key must be 1 to 255 characters")
    if x_callback_url is not None:
        x_callback_url = check_webhook_url(x_callback_url, allowed=settings.webhook_networks)
    job = await run_in_threadpool(
        lambda: invocations.submit_async(
            route=route,
            variant=variant,
            body=body,
            input_location=x_input_location,
            content_type=content_type,
            accept=request.headers.get("accept"),
            idempotency_key=idempotency_key,
            callback_url=x_callback_url,
            inference_id=x_inference_id,
        )
    )
    metrics.count_async(endpoint=name, variant=job.variant, outcome="accepted")
    accepted = AsyncAccepted(job_id=job.id, status=job.status, output_location=job.output_location)
    return JSONResponse(
        accepted.model_dump(),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.id}", "X-Invoked-Variant": job.variant},
    )
