"""Turning HTTP requests into jobs on variant queues: realtime and async.

Realtime: validate, enqueue with a reply address and a deadline, await the
worker's answer (no SQL on this path). Async: validate, store the input in the
object store, record a `queued` job row, enqueue, answer 202.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request

from api.routing import EndpointRoute, VariantRoute
from core import codecs
from core.config import get_settings
from core.db import session_scope
from core.errors import (
    ERROR_KINDS,
    BadRequest,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    QueueUnavailable,
    SluicewayError,
)
from core.protocol import Invocation
from core.queue import enqueue
from core.storage import S3Location, get_store
from core.tables import Job, new_id, utcnow

logger = logging.getLogger(__name__)


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
    built-in runners take JSON or CSV rows of numbers.
    """
    if framework == "python":
        if not body:
            raise InvalidInput("the request body is empty")
        return
    codecs.check_supported(content_type)
    instances = codecs.decode_instances(body, content_type)
    limit = get_settings().max_instances
    if len(instances) > limit:
        raise PayloadTooLarge(
            f"the request carries {len(instances)} instances; the limit is {limit} "
            "(send larger inputs as an async job from S3 or a batch transform)"
        )
    codecs.numeric_rows(instances)


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
) -> Invocation:
    now_ms = int(time.time() * 1000)
    return Invocation(
        job_id=job_id,
        mode="realtime",
        endpoint=route.name,
        variant=variant.name,
        model=variant.model,
        content_type=content_type,
        accept=accept,
        body=body,
        reply_to=reply_to,
        deadline_ms=now_ms + timeout_ms,
        enqueued_ms=now_ms,
    )


def submit_async(
    *,
    route: EndpointRoute,
    variant: VariantRoute,
    body: bytes,
    input_location: str | None,
    content_type: str,
    accept: str | None,
    idempotency_key: str | None,
    callback_url: str | None,
    inference_id: str | None,
) -> Job:
    """Record and enqueue one async job; with a known Idempotency-Key, return the first one.

    Blocking (SQL, S3, Redis): the route runs it in a worker thread.
    """
    settings = get_settings()
    if idempotency_key:
        existing = _find_idempotent(route.name, idempotency_key)
        if existing is not None:
            return existing
    job_id = new_id()
    store = get_store()
    if input_location:
        location = S3Location.parse_object(input_location)
        if not settings.may_read_bucket(location.bucket):
            raise Forbidden(
                f"bucket {location.bucket!r} is not one the platform may read "
                "(SLUICEWAY_READABLE_BUCKETS)"
            )
        try:
            info = store.stat(location)
        except NotFound as exc:
            raise InvalidInput(f"X-Input-Location {input_location!r} does not exist") from exc
        if info.size > settings.max_input_object_bytes:
            raise PayloadTooLarge(
                f"input object is {info.size} bytes; the limit is {settings.max_input_object_bytes}"
            )
    else:
        location = S3Location(settings.s3_bucket, f"inputs/{route.name}/{job_id}")
        store.put_bytes(location, body, content_type)
    output = S3Location.parse(route.output_prefix).child(f"{job_id}.out")
    job = Job(
        id=job_id,
        endpoint=route.name,
        variant=variant.name,
        status="queued",
        input_location=str(location),
        content_type=content_type,
        accept=accept,
        output_location=str(output),
        idempotency_key=idempotency_key,
        callback_url=callback_url,
        inference_id=inference_id,
    )
    try:
        with session_scope() as session:
            session.add(job)
    except IntegrityError:
        # Another request with the same Idempotency-Key won the race: answer with its job.
        existing = _find_idempotent(route.name, idempotency_key or "")
        if existing is None:
            raise
        return existing
    invocation = Invocation(
        job_id=job_id,
        mode="async",
        endpoint=route.name,
        variant=variant.name,
        model=variant.model,
        content_type=content_type,
        accept=accept,
        input_location=str(location),
        output_location=str(output),
        enqueued_ms=int(time.time() * 1000),
    )
    try:
        enqueue(invocation)
    except Exception as exc:
        # Not accepted after all: remove the row so no job waits for a message
        # that was never sent, and tell the caller to retry.
        with session_scope() as session:
            session.query(Job).filter(Job.id == job_id).delete()
        raise QueueUnavailable(f"could not queue the job (broker unavailable): {exc}") from exc
    logger.info("job %s: queued for %s/%s", job_id, route.name, variant.name)
    return job


def _find_idempotent(endpoint: str, key: str) -> Job | None:
    ttl = dt.timedelta(hours=get_settings().idempotency_ttl_h)
    with session_scope() as session:
        job = session.scalar(
            select(Job).where(Job.endpoint == endpoint, Job.idempotency_key == key)
        )
        if job is None:
            return None
        created = job.created_at if job.created_at.tzinfo else job.created_at.replace(tzinfo=dt.UTC)
        if utcnow() - created <= ttl:
            return job
        # Expired: free the key for a new job.
        job.idempotency_key = None
        return None


def reply_error(kind: str | None, detail: str | None) -> SluicewayError:
    cls = ERROR_KINDS.get(kind or "internal", SluicewayError)
    return cls(detail or "the worker reported an error without detail")
