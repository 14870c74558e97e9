"""Request payloads: reading a body within its limit and checking it before it is queued.

Shared by the realtime lane and the async route: a payload a model cannot take
is refused with a 4xx here, never queued.
"""

from __future__ import annotations

from starlette.requests import Request

from core import codecs
from core.config import get_settings
from core.errors import BadRequest, InvalidInput, PayloadTooLarge

# What the xgboost and torch runners feed their models (workers/runners/base.py,
# NumericRunner.input_dtype); a unit test keeps the two equal.
BUILTIN_INPUT_DTYPE = "float32"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise BadRequest(f"Content-Length {declared!r} is not a number") from exc
        if size > limit:
            raise PayloadTooLarge(f"body is {size} bytes; the limit is {limit}")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def validate_payload(body: bytes, content_type: str, framework: str) -> None:
    """Reject malformed or unusable payloads before they are queued.

    Custom python handlers accept any content type and parse it themselves; the
    built-in runners take JSON or CSV rows of finite numbers that fit their input
    type, float32 (`BUILTIN_INPUT_DTYPE`; the worker checks the same).
    """
    if framework == "python":
        if not body:
            raise InvalidInput("the request body is empty")
        return
    instances = codecs.decode_numeric(body, content_type, dtype=BUILTIN_INPUT_DTYPE)
    limit = get_settings().max_instances
    if len(instances) > limit:
        raise PayloadTooLarge(
            f"the request carries {len(instances)} instances; the limit is {limit} "
            "(send larger inputs as an async job from S3 or a batch transform)"
        )
