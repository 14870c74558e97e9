"""AWS's error shape, so botocore raises its own exceptions.

Both protocols carry the code in `x-amzn-ErrorType` and the body; botocore reads
`__type`/`message` (AWS JSON 1.1) or the header (REST-JSON), and fills a
modelled exception's members from the body: a `ModelError` answer
`{"Message", "OriginalStatusCode", "OriginalMessage"}` becomes
`client.exceptions.ModelError` with those fields.

Native errors (core/errors.py) map by status: 400/413/415/422 are AWS's
`ValidationException` (control plane) or `ValidationError` (runtime), 403
`AccessDeniedException`, 409 `ResourceInUse`, 429 `ThrottlingException`,
503/504 `ServiceUnavailable`, anything else `InternalFailure`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.responses import Response

from core.errors import SluicewayError

JSON_11 = "application/x-amz-json-1.1"
REST_JSON = "application/json"


@dataclass
class AwsError(Exception):
    """An answer in AWS's error shape: `code` is the exception name botocore knows."""

    code: str
    message: str
    status: int = 400
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def validation(message: str) -> AwsError:
    """The control plane's answer to anything it refuses (AWS answers the same)."""
    return AwsError("ValidationException", message)


def unsupported(what: list[str], where: str) -> AwsError:
    """A ValidationException naming every field or value Sluiceway does not take (yet)."""
    return validation(
        f"Sluiceway does not support {', '.join(what)} in {where} "
        "(see docs/sagemaker.md for what it supports)"
    )


def from_native(exc: SluicewayError, *, runtime: bool) -> AwsError:
    """A native error as the AWS error botocore expects for its status."""
    status = exc.status
    if status in (400, 404, 413, 415, 422):
        code = "ValidationError" if runtime else "ValidationException"
        return AwsError(code, exc.detail, 400 if status in (404, 422) else status)
    if status == 403:
        return AwsError("AccessDeniedException", exc.detail, 403)
    if status == 409:
        return AwsError("ResourceInUse", exc.detail, 400)
    if status == 429:
        return AwsError("ThrottlingException", exc.detail, 429)
    if status in (503, 504):
        return AwsError("ServiceUnavailable", exc.detail, 503)
    return AwsError("InternalFailure", exc.detail, 500)


def model_error(status: int, message: str) -> AwsError:
    """botocore's `ModelError` (424): the model could not answer this input.

    `OriginalStatusCode` is the status Sluiceway's native API gives the same call
    (422: input the model cannot take; 424: the model raised; 504: no answer in time).
    """
    return AwsError(
        "ModelError",
        f'Received client error ({status}) from primary with message "{message}"',
        424,
        {"OriginalStatusCode": status, "OriginalMessage": message},
    )


def response(error: AwsError, *, runtime: bool) -> Response:
    body: dict[str, Any] = {"__type": error.code, "message": error.message}
    if runtime:
        body = {"ErrorCode": error.code, "Message": error.message, "message": error.message}
    body.update(error.extra)
    return Response(
        orjson.dumps(body),
        status_code=error.status,
        media_type=REST_JSON if runtime else JSON_11,
        headers={"x-amzn-ErrorType": error.code, "x-amzn-RequestId": _request_id()},
    )


def _request_id() -> str:
    import uuid

    return str(uuid.uuid4())
