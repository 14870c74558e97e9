"""Async invocations: store the input, record a `queued` job row, enqueue, answer 202.

The job row carries its own limits, fixed here: `invocation_timeout_s` (the
endpoint's, or X-Invocation-Timeout-S), `expires_at` (now + X-Request-Ttl-S:
accepted at 12:00:00 with a TTL of 30 → it fails "expired" unless a worker
starts it by 12:00:30) and `failure_location` (the endpoint's failure prefix +
`<job_id>.error.json`). The realtime path (no SQL, answers on a reply list) is
api/realtime/lane.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.realtime.routing import EndpointRoute, VariantRoute
from core.broker import enqueue
from core.config import get_settings
from core.db import session_scope
from core.errors import (
    BadRequest,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    QueueUnavailable,
)
from core.failures import failure_location
from core.multi_model import is_multi_model
from core.protocol import Invocation, ModelRef
from core.states import JobStatus
from core.storage import S3Location, get_store
from core.tables import Job, new_id, utcnow

logger = logging.getLogger(__name__)


def header_seconds(header: str, value: str | None, *, maximum: int) -> int | None:
    """A whole number of seconds from 1 to `maximum`, or None without the header.

    BadRequest (400) when it is not a whole number, InvalidInput (422) out of
    range; both name the header and the value.
    """
    if value is None:
        return None
    try:
        seconds = int(value.strip())
    except ValueError as exc:
        raise BadRequest(f"{header} {value!r} is not a whole number of seconds") from exc
    if not 1 <= seconds <= maximum:
        raise InvalidInput(f"{header} must be 1 to {maximum} seconds, got {seconds}")
    return seconds


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
    invocation_timeout_s: int | None = None,
    request_ttl_s: int | None = None,
    model: ModelRef | None = None,
) -> Job:
    """Record and enqueue one async job; with a known Idempotency-Key, return the first one.

    `invocation_timeout_s` overrides the endpoint's; `request_ttl_s` sets the
    job's expiry. Blocking (SQL, S3, Redis): the route runs it in a worker thread.
    """
    settings = get_settings()
    if idempotency_key:
        existing = _find_idempotent(route.name, idempotency_key)
        if existing is not None:
            return existing
    job_id = new_id()
    inference_id = inference_id or job_id
    store = get_store()
    model = model or variant.model
    if is_multi_model(model):
        _check_model_object(model)
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
    now = utcnow()
    job = Job(
        id=job_id,
        created_at=now,
        invocation_timeout_s=invocation_timeout_s or route.invocation_timeout_s,
        expires_at=now + dt.timedelta(seconds=request_ttl_s) if request_ttl_s else None,
        failure_location=failure_location(route.failure_prefix, job_id),
        endpoint=route.name,
        endpoint_created_at=route.created_at,
        variant=variant.name,
        status=JobStatus.QUEUED,
        input_location=str(location),
        content_type=content_type,
        accept=accept,
        output_location=str(output),
        idempotency_key=idempotency_key,
        callback_url=callback_url,
        inference_id=inference_id,
        target_model=model.name if is_multi_model(model) else None,
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
        model=model,
        content_type=content_type,
        accept=accept,
        input_location=str(location),
        output_location=str(output),
        enqueued_ms=int(time.time() * 1000),
        inference_id=inference_id,
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


def _check_model_object(model: ModelRef) -> None:
    """NotFound (404) when a multi-model variant's target names no object under its prefix."""
    try:
        get_store().stat(S3Location.parse_object(model.artifact_uri))
    except (NotFound, InvalidInput) as exc:
        raise NotFound(f"no model {model.name!r}: there is no object {model.artifact_uri}") from exc


def _find_idempotent(endpoint: str, key: str) -> Job | None:
    ttl = dt.timedelta(hours=get_settings().idempotency_ttl_h)
    with session_scope() as session:
        job = session.scalar(
            select(Job).where(Job.endpoint == endpoint, Job.idempotency_key == key)
        )
        if job is None:
            return None
        if utcnow() - job.created_at <= ttl:
            return job
        # Expired: free the key for a new job.
        job.idempotency_key = None
        return None
