"""Batch transform jobs: submit (or resume by name), read, stop.

The API only records the job; the coordinator in the scheduler
(scheduler/transform/coordinator.py) lists, splits, dispatches and assembles. A submission
is checked here so mistakes are a clear 4xx at once: the endpoint or model
exists, the input prefix holds objects, the output prefix is not inside the
input prefix. A missing output bucket is created (as the async output path
does). A name already used resumes that job when it stopped or failed, with
the same settings but for `max_failed_records_percent`, which the resumed run
is judged by (so a job that failed on its threshold can be accepted with a
higher one); done chunks and written objects are kept.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.schemas import TransformJobCreate, TransformJobPublic
from api.services.registry import resolve_version
from core.broker import get_redis, wake_transform_coordinator
from core.config import get_settings
from core.errors import Conflict, InvalidInput, NotFound
from core.multi_model import check_target_model
from core.states import TRANSFORM_ACTIVE, ChunkStatus, ComponentStatus, TransformStatus
from core.storage import S3Location, get_store
from core.tables import Endpoint, InferenceComponent, TransformChunk, TransformJob, Variant

logger = logging.getLogger(__name__)

# Settings a resumed job must share with the one it resumes.
SAME_SETTINGS = (
    "endpoint",
    "component",
    "model",
    "input_prefix",
    "output_prefix",
    "content_type",
    "split_type",
    "batch_strategy",
    "max_payload_mb",
    "assemble_with",
    "join_source",
)


def public(job: TransformJob) -> TransformJobPublic:
    return TransformJobPublic(
        job_id=job.id,
        name=job.name,
        status=job.status,
        endpoint=job.endpoint,
        component=job.component,
        model=job.model,
        model_version=job.model_version,
        target_model=job.target_model,
        input_prefix=job.input_prefix,
        output_prefix=job.output_prefix,
        content_type=job.content_type,
        split_type=job.split_type,
        batch_strategy=job.batch_strategy,
        max_payload_mb=job.max_payload_mb,
        assemble_with=job.assemble_with,
        join_source=job.join_source,
        max_failed_records_percent=job.max_failed_records_percent,
        total_records=job.total_records,
        processed_records=job.processed_records,
        failed_records=job.failed_records,
        input_objects=job.input_objects,
        completed_objects=job.completed_objects,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def submit(session: Session, spec: TransformJobCreate) -> TransformJobPublic:
    """Record a new job, or resume the stopped/failed one of the same name."""
    output_prefix = (
        spec.output_prefix if spec.output_prefix.endswith("/") else spec.output_prefix + "/"
    )
    _check_prefixes(spec.input_prefix, output_prefix)
    model_version = _check_target(session, spec)
    if spec.name is not None:
        existing = session.scalar(select(TransformJob).where(TransformJob.name == spec.name))
        if existing is not None:
            return public(_resume(session, existing, spec, output_prefix))
    _check_input(spec.input_prefix)
    get_store().ensure_bucket(S3Location.parse(output_prefix).bucket)
    job = TransformJob(
        name=spec.name or f"transform-{uuid.uuid4().hex[:12]}",
        endpoint=spec.endpoint,
        component=spec.component,
        model=spec.model,
        model_version=model_version,
        target_model=spec.target_model,
        input_prefix=spec.input_prefix,
        output_prefix=output_prefix,
        content_type=spec.content_type,
        split_type=spec.split_type,
        batch_strategy=spec.batch_strategy,
        max_payload_mb=spec.max_payload_mb,
        assemble_with=spec.assemble_with,
        join_source=spec.join_source,
        max_failed_records_percent=spec.max_failed_records_percent,
        status=TransformStatus.QUEUED,
    )
    session.add(job)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"a transform job named {spec.name!r} is being created right now") from exc
    logger.info("job %s: transform %s queued (%s)", job.id, job.name, spec.input_prefix)
    _wake_coordinator()
    return public(job)


def _check_prefixes(input_prefix: str, output_prefix: str) -> None:
    source, target = S3Location.parse(input_prefix), S3Location.parse(output_prefix)
    if source.bucket == target.bucket and target.key.startswith(source.key):
        raise InvalidInput(
            f"output_prefix {output_prefix!r} is inside input_prefix {input_prefix!r}: "
            "outputs would be read as inputs"
        )


def _check_target(session: Session, spec: TransformJobCreate) -> int | None:
    """The model version a model job runs (None for an endpoint job); 404 if unknown."""
    if spec.endpoint is not None:
        endpoint = session.scalar(select(Endpoint).where(Endpoint.name == spec.endpoint))
        if endpoint is None:
            raise NotFound(f"no endpoint named {spec.endpoint!r}")
        if spec.component is not None:
            component = session.scalar(
                select(InferenceComponent)
                .join(Endpoint, Endpoint.id == InferenceComponent.endpoint_id)
                .where(Endpoint.name == spec.endpoint, InferenceComponent.name == spec.component)
            )
            if component is None or component.status != ComponentStatus.IN_SERVICE:
                raise NotFound(
                    f"endpoint {spec.endpoint!r} has no inference component {spec.component!r}"
                )
        elif (
            session.scalar(
                select(Variant.id)
                .join(Endpoint, Endpoint.id == Variant.endpoint_id)
                .where(Endpoint.name == spec.endpoint)
                .limit(1)
            )
            is None
        ):
            raise InvalidInput(
                f"endpoint {spec.endpoint!r} holds inference components only: "
                "name one in component (or X-Target-Component)"
            )
        else:
            _check_target_model(endpoint, spec.target_model)
        return None
    assert spec.model is not None
    try:
        return resolve_version(session, spec.model, spec.model_version).version
    except InvalidInput as exc:
        raise NotFound(exc.detail) from exc


def _check_target_model(endpoint: Endpoint, target_model: str | None) -> None:
    """A multi-model endpoint's job names an existing model: 400 without one, 404 unknown."""
    for variant in endpoint.variants:
        if variant.multi_model_prefix is None:
            continue
        key = check_target_model(target_model, prefix=variant.multi_model_prefix)
        location = S3Location.parse_object(variant.multi_model_prefix + key)
        try:
            get_store().stat(location)
        except NotFound as exc:
            raise NotFound(
                f"no model {key!r}: there is no object {variant.multi_model_prefix}{key}"
            ) from exc


def _check_input(input_prefix: str) -> None:
    location = S3Location.parse(input_prefix)
    if next(get_store().iter_objects(location), None) is None:
        raise NotFound(
            f"no objects under input_prefix {input_prefix!r} "
            f"(bucket {location.bucket!r}, key prefix {location.key!r})"
        )


def _resume(
    session: Session, job: TransformJob, spec: TransformJobCreate, output_prefix: str
) -> TransformJob:
    wanted = spec.model_dump() | {"output_prefix": output_prefix}
    different = [f for f in SAME_SETTINGS if getattr(job, f) != wanted[f]]
    if spec.model_version is not None and spec.model_version != job.model_version:
        different.append("model_version")
    if spec.target_model != job.target_model:
        different.append("target_model")
    if different:
        raise Conflict(
            f"a transform job named {job.name!r} exists with other settings "
            f"({', '.join(different)}); resubmit it unchanged to resume it, or pick a new name"
        )
    if job.status in TRANSFORM_ACTIVE:
        raise Conflict(f"transform job {job.name!r} is {job.status}; stop it before resubmitting")
    if job.status == TransformStatus.SUCCEEDED:
        return job  # nothing left to do: every object is complete
    # Stopped or failed: keep done chunks and written objects, retry the rest afresh.
    session.execute(
        update(TransformChunk)
        .where(
            TransformChunk.job_id == job.id,
            TransformChunk.status.in_((ChunkStatus.PENDING, ChunkStatus.FAILED)),
        )
        .values(
            status=ChunkStatus.PENDING,
            token=None,
            sent_at=None,
            claimed_at=None,
            attempts=0,
            error=None,
        )
    )
    job.status, job.error, job.finished_at = TransformStatus.QUEUED, None, None
    job.max_failed_records_percent = spec.max_failed_records_percent
    session.commit()
    logger.info("job %s: transform %s resumed", job.id, job.name)
    _wake_coordinator()
    return job


def list_jobs(
    session: Session, *, status: TransformStatus | None = None, limit: int = 50
) -> list[TransformJobPublic]:
    """Newest first, optionally of one status."""
    query = select(TransformJob).order_by(TransformJob.created_at.desc()).limit(limit)
    if status is not None:
        query = query.where(TransformJob.status == status)
    return [public(job) for job in session.scalars(query)]


def get(session: Session, job_id: str) -> TransformJobPublic:
    return public(_load(session, job_id))


def _load(session: Session, job_id: str) -> TransformJob:
    """By id, or by name."""
    job = session.get(TransformJob, job_id) or session.scalar(
        select(TransformJob).where(TransformJob.name == job_id)
    )
    if job is None:
        raise NotFound(f"no transform job with id or name {job_id!r}")
    return job


def stop(session: Session, job_id: str) -> TransformJobPublic:
    """Ask a job to stop: nothing more is sent and workers skip its queued chunks."""
    job = _load(session, job_id)
    if job.status in (TransformStatus.SUCCEEDED, TransformStatus.FAILED):
        raise Conflict(f"transform job {job.name!r} has already {job.status}")
    if job.status in (TransformStatus.QUEUED, TransformStatus.RUNNING):
        session.execute(
            update(TransformJob)
            .where(
                TransformJob.id == job.id,
                TransformJob.status.in_((TransformStatus.QUEUED, TransformStatus.RUNNING)),
            )
            .values(status=TransformStatus.STOPPING)
        )
        session.commit()
        session.refresh(job)
        logger.info("job %s: stopping", job.id)
        _wake_coordinator()
    return public(job)


def _wake_coordinator() -> None:
    """The coordinator starts (or stops) the job now, not at its next poll."""
    wake_transform_coordinator(get_redis(), get_settings().namespace)
