"""Realtime invocation — the platform's hot path — served as a plain ASGI handler.

Under load the API process bounds the whole platform (bench/batching.py: at 64
concurrent callers a worker batching 20+ requests per model call needs ~0.2 ms
of CPU per request, the API process needed 0.4). FastAPI's own layers — matching
the path against every route, solving the handler's dependencies, its exception
and exit-stack middlewares — were a third of that. `RealtimeLane` sits inside the
header-limit and auth middlewares and serves `POST /v1/endpoints/{name}/invocations`
itself; everything else goes on to FastAPI. The FastAPI route at that path calls
the same `invoke`, so the operation is documented in OpenAPI and behaves the same
if the lane is not installed.

`invoke` needs no SQL: routes come from the per-process `RouteCache`, the message
goes out through the coalescing `Producer`, the answer comes back on this
process's reply list (`ReplyWaiter`).
"""

from __future__ import annotations

import random
import re
import time
from urllib.parse import quote

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from api import metrics, payloads, problems
from api.headers import header_text
from api.realtime import shadow
from api.realtime.routing import EndpointRoute, VariantRoute
from core import codecs
from core.config import get_settings
from core.errors import (
    ERROR_KINDS,
    BadRequest,
    InvalidInput,
    QueueUnavailable,
    RealtimeTimeout,
    SluicewayError,
)
from core.protocol import Invocation, ModelRef
from core.tables import new_id

INVOKE_PATH = re.compile(r"^/v1/endpoints/(?P<name>[^/]+)/invocations$")
_rng = random.Random()


class RealtimeLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            INVOKE_PATH.match(get_route_path(scope))
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await invoke(request, match["name"])
        except Exception as exc:  # mapped exactly as FastAPI's handlers map it
            response = await problems.respond(request, exc)
        await response(scope, receive, send)


async def invoke(request: Request, name: str) -> Response:
    """Run the model and wait for its answer (default 60 s; `X-Timeout-Ms` lowers it)."""
    settings = get_settings()
    state = request.app.state
    headers = request.headers
    route = await state.routes.route(name)
    variant = route.choose(
        header_text("X-Target-Variant", headers.get("x-target-variant")),
        _rng,
        header_text("X-Target-Component", headers.get("x-target-component")),
    )
    model = variant.target(header_text("X-Target-Model", headers.get("x-target-model")))
    await state.backlog.admit(variant.queue, endpoint=name, variant=variant.name)
    timeout_ms = timeout_from(headers.get("x-timeout-ms"), settings.realtime_timeout_ms)
    sent_inference_id = headers.get("x-inference-id")
    # A malformed one is a 400, as for async; the decoded text is what capture stores.
    caller_inference_id = header_text("X-Inference-Id", sent_inference_id)
    content_type = codecs.media_type(headers.get("content-type"))
    body = await payloads.read_body(request, settings.max_inline_body_bytes)
    payloads.validate_payload(body, content_type, variant.model.framework)

    replies = state.replies
    job_id = new_id()
    # The caller's id joins ground truth to captured records later; without one the
    # job id serves (no extra work on the hot path).
    inference_id = inference_id_from(caller_inference_id, job_id)
    invocation = realtime_invocation(
        route=route,
        variant=variant,
        body=body,
        content_type=content_type,
        accept=headers.get("accept"),
        reply_to=replies.key,
        timeout_ms=timeout_ms,
        job_id=job_id,
        inference_id=inference_id,
        model=model,
    )
    future = replies.expect(job_id, timeout_s=timeout_ms / 1000)
    started = time.perf_counter()
    copies = (
        shadow.send_copies(
            state,
            route=route,
            body=body,
            content_type=content_type,
            accept=headers.get("accept"),
            namespace=settings.namespace,
            rng=_rng,
        )
        # Shadows mirror the production variants; a call to a component has none.
        if route.shadows and variant.component is None
        else None
    )
    try:
        try:
            await state.producer.send(invocation)
        except (RedisError, ConnectionError) as exc:
            raise QueueUnavailable(f"could not queue the request: {exc}") from exc
        reply = await future
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
        replies.forget(job_id)
    answer_headers = {
        "X-Config-Version": str(variant.config_version),
        "X-Job-Id": job_id,
        # The caller's own id echoed byte for byte, else the generated one.
        "X-Inference-Id": sent_inference_id or inference_id,
    }
    if variant.component is None:
        answer_headers["X-Invoked-Variant"] = variant.shown
    else:
        answer_headers["X-Invoked-Component"] = variant.component
    if variant.multi_model_prefix is not None:
        answer_headers["X-Invoked-Model"] = quote(model.name, safe="/")
        if reply.model_cache:  # "hit", or "miss": this call waited for its model to load
            answer_headers["X-Model-Cache"] = reply.model_cache
    total_s = time.perf_counter() - started
    metrics.observe_realtime(
        endpoint=name,
        variant=variant.name,
        outcome="ok" if reply.ok else reply.error_kind or "error",
        total_s=total_s,
        model_s=reply.model_ms / 1000,
    )
    if copies:
        shadow.record_production(
            state,
            copies=copies,
            endpoint=name,
            reply=reply,
            total_ms=total_s * 1000,
            namespace=settings.namespace,
        )
    if not reply.ok:
        error = reply_error(reply.error_kind, reply.detail)
        return problems.problem(error.status, error.detail, error.title, headers=answer_headers)
    return Response(reply.body, media_type=reply.content_type, headers=answer_headers)


def timeout_from(header: str | None, default_ms: int) -> int:
    """X-Timeout-Ms, capped at the platform's realtime timeout."""
    if header is None:
        return default_ms
    try:
        value = int(header)
    except ValueError as exc:
        raise BadRequest(f"X-Timeout-Ms {header!r} is not a whole number") from exc
    if value <= 0:
        raise InvalidInput(f"X-Timeout-Ms must be positive, got {value}")
    return min(value, default_ms)


MAX_INFERENCE_ID = 255


def inference_id_from(header: str | None, job_id: str) -> str:
    """X-Inference-Id as sent (1 to 255 characters), or the job id when there is none."""
    if header is None or header == "":
        return job_id
    if len(header) > MAX_INFERENCE_ID:
        raise InvalidInput(
            f"X-Inference-Id is {len(header)} characters; the limit is {MAX_INFERENCE_ID}"
        )
    return header


def realtime_invocation(
    *,
    route: EndpointRoute,
    variant: VariantRoute,
    body: bytes,
    content_type: str,
    accept: str | None,
    reply_to: str,
    timeout_ms: int,
    job_id: str,
    inference_id: str | None = None,
    model: ModelRef | None = None,
) -> Invocation:
    now_ms = int(time.time() * 1000)
    return Invocation(
        job_id=job_id,
        mode="realtime",
        endpoint=route.name,
        variant=variant.name,
        model=model or variant.model,
        content_type=content_type,
        accept=accept,
        body=body,
        reply_to=reply_to,
        deadline_ms=now_ms + timeout_ms,
        enqueued_ms=now_ms,
        inference_id=inference_id,
    )


def reply_error(kind: str | None, detail: str | None) -> SluicewayError:
    cls = ERROR_KINDS.get(kind or "internal", SluicewayError)
    return cls(detail or "the worker reported an error without detail")
