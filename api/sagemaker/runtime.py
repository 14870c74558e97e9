"""The runtime (`boto3.client("sagemaker-runtime")`): InvokeEndpoint and InvokeEndpointAsync.

Each call is the native invocation with SageMaker's headers translated: the
realtime one goes through the realtime lane (`api.realtime.lane.invoke`), the
async one through the native async route (`api.routes.invocations.invoke_async`),
so batching, back-pressure, capture, limits and metrics are the native ones.

| SageMaker header                                | native                  |
| ----------------------------------------------- | ----------------------- |
| X-Amzn-SageMaker-Target-Variant                 | X-Target-Variant        |
| X-Amzn-SageMaker-Inference-Id                   | X-Inference-Id          |
| X-Amzn-SageMaker-Inference-Component            | X-Target-Component      |
| X-Amzn-SageMaker-Target-Model                   | X-Target-Model          |
| X-Amzn-SageMaker-Target-Container-Hostname      | X-Target-Container      |
| X-Amzn-SageMaker-Content-Type / -Accept (async) | Content-Type / Accept   |
| X-Amzn-SageMaker-InputLocation                  | X-Input-Location        |
| X-Amzn-SageMaker-RequestTTLSeconds              | X-Request-Ttl-S         |
| X-Amzn-SageMaker-InvocationTimeoutSeconds       | X-Invocation-Timeout-S  |
| answer X-Invoked-Variant                        | x-Amzn-Invoked-Production-Variant |

Headers Sluiceway cannot honour (custom attributes, sessions, explanations) are
a ValidationError naming them.
"""

from __future__ import annotations

import inspect
from typing import Any

import orjson
from fastapi import params
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from api import problems
from api.realtime import lane
from api.routes import invocations as native_async
from api.sagemaker.errors import AwsError, from_native, model_error
from core.errors import SluicewayError

PREFIX = "x-amzn-sagemaker-"
RENAMED = {
    "x-amzn-sagemaker-target-variant": "x-target-variant",
    "x-amzn-sagemaker-inference-id": "x-inference-id",
    "x-amzn-sagemaker-inference-component": "x-target-component",
    "x-amzn-sagemaker-target-model": "x-target-model",
    # A pipeline model's step, by its container's ContainerHostname (its step name).
    "x-amzn-sagemaker-target-container-hostname": "x-target-container",
}
ASYNC_ONLY = {
    "x-amzn-sagemaker-content-type",
    "x-amzn-sagemaker-accept",
    "x-amzn-sagemaker-inputlocation",
    "x-amzn-sagemaker-requestttlseconds",
    "x-amzn-sagemaker-invocationtimeoutseconds",
}
# Header → why it is refused.
REFUSED = {
    "x-amzn-sagemaker-custom-attributes": "CustomAttributes (models are not passed them)",
    "x-amzn-sagemaker-enable-explanations": "EnableExplanations",
    "x-amzn-sagemaker-session-id": "SessionId (stateful sessions)",
    "x-amzn-sagemaker-prefix-aware-id": "PrefixAwareId",
    "x-amzn-sagemaker-s3outputpathextension": "S3OutputPathExtension",
    "x-amzn-sagemaker-filename": "Filename",
}
# Payload problems are the model's answer in SageMaker (the container refuses the input):
# 415 a content type it cannot read, 422 rows it cannot take, 424 it raised, 504 no answer.
MODEL_STATUSES = frozenset({415, 422, 424, 504})


def translate_headers(
    headers: list[tuple[bytes, bytes]], *, asynchronous: bool
) -> list[tuple[bytes, bytes]]:
    """The native request's headers: SageMaker's renamed, the rest kept as they are.

    Raises AwsError `ValidationError` naming every SageMaker header it cannot honour.
    """
    refused = sorted(
        REFUSED[name.decode("latin-1").lower()]
        for name, _ in headers
        if name.decode("latin-1").lower() in REFUSED
    )
    if not asynchronous:
        refused += sorted(
            name.decode("latin-1") for name, _ in headers if name.decode("latin-1") in ASYNC_ONLY
        )
    if refused:
        raise AwsError(
            "ValidationError",
            f"Sluiceway does not support {', '.join(refused)} (see docs/sagemaker.md)",
        )
    translated = []
    for name, value in headers:
        lower = name.decode("latin-1").lower()
        if asynchronous and lower in ("content-type", "accept"):
            continue  # an async call's own are X-Amzn-SageMaker-Content-Type and -Accept
        if lower in RENAMED:
            translated.append((RENAMED[lower].encode(), value))
        elif asynchronous and lower == "x-amzn-sagemaker-content-type":
            translated.append((b"content-type", value))
        elif asynchronous and lower == "x-amzn-sagemaker-accept":
            translated.append((b"accept", value))
        elif not lower.startswith(PREFIX):
            translated.append((name, value))
    if asynchronous:
        # The body is empty (the input is at InputLocation): its type is the input's.
        translated = [(n, v) for n, v in translated if n.lower() != b"content-length"]
    return translated


def _header(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    wanted = name.encode()
    return next((value.decode("latin-1") for key, value in headers if key.lower() == wanted), None)


def problem_to_aws(response: Response) -> AwsError:
    """A native problem+json answer as the runtime's AWS error."""
    try:
        detail = str(orjson.loads(bytes(response.body)).get("detail", ""))
    except orjson.JSONDecodeError:
        detail = bytes(response.body).decode(errors="replace")
    if response.status_code in MODEL_STATUSES:
        return model_error(response.status_code, detail)
    return from_native(_Native(response.status_code, detail), runtime=True)


class _Native(SluicewayError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


async def invoke(scope: Scope, body: bytes, name: str, *, asynchronous: bool) -> Response:
    """Serve one runtime call; raises AwsError for every refusal."""
    raw_headers = list(scope["headers"])
    headers = translate_headers(raw_headers, asynchronous=asynchronous)
    native_scope = {**scope, "headers": headers}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    request = Request(native_scope, receive)
    try:
        if asynchronous:
            response = await _invoke_async(request, name, raw_headers, body)
        else:
            response = await lane.invoke(request, name)
    except SluicewayError as exc:
        if exc.status in MODEL_STATUSES and not asynchronous:
            raise model_error(exc.status, exc.detail) from None
        raise from_native(exc, runtime=True) from None
    except Exception as exc:
        native = await problems.respond(request, exc)
        raise problem_to_aws(native) from None
    if response.status_code >= 400:
        raise problem_to_aws(response)
    if asynchronous:
        return response
    variant = response.headers.get("x-invoked-variant")
    if variant is not None:
        response.headers["x-Amzn-Invoked-Production-Variant"] = variant
    return response


# Called as a function, the native route's header parameters default to FastAPI's
# `Header()` markers, not values: every one is None unless passed below, so a header the
# native route gains later never reaches it as a marker.
NATIVE_ASYNC_HEADERS_UNSET: dict[str, None] = {
    name: None
    for name, parameter in inspect.signature(native_async.invoke_async).parameters.items()
    if isinstance(parameter.default, params.Header)
}


async def _invoke_async(
    request: Request, name: str, raw_headers: list[tuple[bytes, bytes]], body: bytes
) -> Response:
    location = _header(raw_headers, "x-amzn-sagemaker-inputlocation")
    if not location:
        raise AwsError("ValidationError", "InvokeEndpointAsync needs an InputLocation")
    if body:
        raise AwsError("ValidationError", "InvokeEndpointAsync takes its input from InputLocation")
    given = {
        "x_target_variant": _header(raw_headers, "x-amzn-sagemaker-target-variant"),
        "x_target_component": _header(raw_headers, "x-amzn-sagemaker-inference-component"),
        "x_target_model": _header(raw_headers, "x-amzn-sagemaker-target-model"),
        "x_target_container": _header(raw_headers, "x-amzn-sagemaker-target-container-hostname"),
        "x_input_location": location,
        "x_inference_id": _header(raw_headers, "x-amzn-sagemaker-inference-id"),
        "x_request_ttl_s": _header(raw_headers, "x-amzn-sagemaker-requestttlseconds"),
        "x_invocation_timeout_s": _header(raw_headers, "x-amzn-sagemaker-invocationtimeoutseconds"),
    }
    answer = await native_async.invoke_async(name, request, **(NATIVE_ASYNC_HEADERS_UNSET | given))
    accepted = orjson.loads(bytes(answer.body))
    headers = {"X-Amzn-SageMaker-OutputLocation": accepted["output_location"]}
    if accepted.get("failure_location"):
        headers["X-Amzn-SageMaker-FailureLocation"] = accepted["failure_location"]
    return Response(
        orjson.dumps({"InferenceId": accepted["inference_id"]}),
        status_code=202,
        media_type="application/json",
        headers=headers,
    )
