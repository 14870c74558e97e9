"""Realtime and async invocation of an endpoint."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api import metrics, payloads
from api.headers import header_text
from api.problems import problem_responses
from api.realtime import lane, shadow
from api.realtime.routing import RouteCache
from api.schemas import AsyncAccepted
from api.services import invocations
from core import codecs
from core.config import get_settings
from core.errors import BadRequest, InvalidInput
from core.tables import public_variant_name
from core.timeouts import MAX_INVOCATION_TIMEOUT_S, MAX_REQUEST_TTL_S
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
        # Any text is a CSV body as far as HTTP goes; the API checks the rows
        # (422 naming the line). A `type: string` here let fuzzers send the number
        # 42 as "negative" data, which on the wire is the valid one-row CSV "42".
        "text/csv": {"schema": {"description": "One instance per line: numbers, comma-separated"}},
    }
}


@router.post(
    "/{name}/invocations",
    openapi_extra={
        "requestBody": {**PAYLOAD_BODY, "required": True},
        "parameters": [
            {"name": header, "in": "header", "required": False, "schema": {"type": "string"}}
            for header in (
                "X-Target-Variant",
                "X-Target-Component",
                "X-Target-Model",
                "X-Timeout-Ms",
                "X-Inference-Id",
            )
        ],
    },
    responses={200: {"description": "The model's output", "content": {"application/json": {}}}},
)
async def invoke_realtime(name: str, request: Request) -> Response:
    """Run the model and wait for its answer (default 60 s; `X-Timeout-Ms` lowers it).

    Served by `api.realtime.lane.RealtimeLane` before FastAPI's routing (the hot path);
    declared here for the OpenAPI document.
    """
    return await lane.invoke(request, name)


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
    x_target_component: str | None = Header(
        default=None,
        description="The inference component to run (required on an endpoint of components only).",
    ),
    x_target_model: str | None = Header(
        default=None,
        description="On a multi-model variant (required there): the model's key under its "
        "prefix, e.g. `chicago.json`.",
    ),
    x_input_location: str | None = Header(default=None),
    x_callback_url: str | None = Header(default=None),
    x_inference_id: str | None = Header(default=None),
    idempotency_key: str | None = Header(default=None),
    x_request_ttl_s: str | None = Header(
        default=None,
        description="Seconds (1 to 21600) within which a worker must start the job; "
        "after that it fails with an error starting `expired`, without running.",
    ),
    x_invocation_timeout_s: str | None = Header(
        default=None,
        description="Seconds (1 to 3600) the job may run, instead of the endpoint's "
        "`async.invocation_timeout_s`; past it the job fails with an error starting `timeout`.",
    ),
) -> JSONResponse:
    """Queue a job; its output lands at `output_location`. Poll `/v1/jobs/{job_id}`.

    X-Input-Location, X-Target-Variant and X-Inference-Id are read as UTF-8, then
    percent-decoded (api/headers.py): `s3://data/in/donn%C3%A9es.json` names `données.json`.
    """
    settings = get_settings()
    x_target_variant = header_text("X-Target-Variant", x_target_variant)
    x_input_location = header_text("X-Input-Location", x_input_location)
    x_inference_id = header_text("X-Inference-Id", x_inference_id)
    request_ttl_s = invocations.header_seconds(
        "X-Request-Ttl-S", x_request_ttl_s, maximum=MAX_REQUEST_TTL_S
    )
    invocation_timeout_s = invocations.header_seconds(
        "X-Invocation-Timeout-S", x_invocation_timeout_s, maximum=MAX_INVOCATION_TIMEOUT_S
    )
    routes: RouteCache = request.app.state.routes
    route = await routes.route(name)
    variant = route.choose(
        x_target_variant, _rng, header_text("X-Target-Component", x_target_component)
    )
    model = variant.target(header_text("X-Target-Model", x_target_model))
    await request.app.state.backlog.admit(variant.queue, endpoint=name, variant=variant.name)
    content_type = codecs.media_type(request.headers.get("content-type"))
    body = await payloads.read_body(request, settings.max_inline_body_bytes)
    if x_input_location:
        if body:
            raise BadRequest("send either a body or X-Input-Location, not both")
        if variant.model.framework != "python":
            codecs.check_supported(content_type)
    else:
        payloads.validate_payload(body, content_type, variant.model.framework)
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
        raise InvalidInput("Idempotency-Key must be 1 to 255 characters")
    if x_inference_id is not None:
        x_inference_id = lane.inference_id_from(x_inference_id, "") or None
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
            invocation_timeout_s=invocation_timeout_s,
            request_ttl_s=request_ttl_s,
            model=model,
        )
    )
    if route.shadows and body and job.attempts == 0:
        shadow.send_async_copies(
            request.app.state,
            route=route,
            body=body,
            content_type=content_type,
            accept=request.headers.get("accept"),
            namespace=settings.namespace,
            rng=_rng,
            job_id=job.id,
        )
    metrics.count_async(endpoint=name, variant=job.variant, outcome="accepted")
    inference_id = job.inference_id or job.id
    accepted = AsyncAccepted(
        job_id=job.id,
        status=job.status,
        output_location=job.output_location,
        inference_id=inference_id,
        failure_location=job.failure_location,
    )
    headers = {
        "Location": f"/v1/jobs/{job.id}",
        "X-Config-Version": str(variant.config_version),
        "X-Inference-Id": inference_id,
    }
    if variant.component is None:
        headers["X-Invoked-Variant"] = public_variant_name(job.variant)
    else:
        headers["X-Invoked-Component"] = variant.component
    if variant.multi_model_prefix is not None:
        headers["X-Invoked-Model"] = quote(model.name, safe="/")
    return JSONResponse(accepted.model_dump(), status_code=202, headers=headers)
