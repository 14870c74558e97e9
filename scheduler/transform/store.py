"""All the transform coordinator's SQL: jobs, their objects and chunks, and their ending.

Each function is one short transaction (or a read) and hands back detached rows
or plain values, so the coordinator (scheduler/transform/coordinator.py) holds
no session while it streams objects or talks to Redis. Every state change is
guarded by the row's current state, so two coordinators, or one restarted
mid-pass, never move a job, an object or a chunk twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.orm import Session

from core.broker import TRANSFORM_POOL, component_variant, transform_pool_variant
from core.db import session_scope
from core.multi_model import target_ref
from core.outbox import record_transform_event
from core.protocol import ModelRef
from core.states import (
    TRANSFORM_ACTIVE,
    ChunkStatus,
    ComponentStatus,
    ObjectStatus,
    TransformStatus,
)
from core.tables import (
    Endpoint,
    InferenceComponent,
    Model,
    ModelVersion,
    TransformChunk,
    TransformJob,
    TransformObject,
    Variant,
    utcnow,
)


class JobFailed(Exception):
    """The job cannot go on (its endpoint or model is gone, an input vanished)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a job's chunks may go: an endpoint variant (or a model's transform pool)."""

    endpoint: str
    variant: str
    weight: float
    model: ModelRef


def _rowcount(result: Any) -> int:
    """Rows an UPDATE matched (a CursorResult's count; Result's type does not show it)."""
    return int(result.rowcount)


# --- jobs ---------------------------------------------------------------------------------


def active_job_ids() -> list[str]:
    """Jobs queued, running or stopping, oldest first."""
    with session_scope() as session:
        return list(
            session.scalars(
                select(TransformJob.id)
                .where(TransformJob.status.in_(TRANSFORM_ACTIVE))
                .order_by(TransformJob.created_at)
            ).all()
        )


def load_job(job_id: str) -> TransformJob:
    """The job's row, detached (its counts as of now)."""
    with session_scope() as session:
        job = session.get(TransformJob, job_id)
        assert job is not None
        session.expunge(job)
        return job


def mark_running(job_id: str) -> None:
    """`queued` → `running`, counting the run."""
    with session_scope() as session:
        session.execute(
            update(TransformJob)
            .where(TransformJob.id == job_id, TransformJob.status == TransformStatus.QUEUED)
            .values(
                status=TransformStatus.RUNNING,
                started_at=utcnow(),
                runs=TransformJob.runs + 1,
                updated_at=utcnow(),
            )
        )


def finish_job(job_id: str, status: TransformStatus, error: str | None) -> bool:
    """End an active job and record its outbox event in the same transaction.

    False when it had ended already (another pass, or a stop, got there first).
    """
    with session_scope() as session:
        moved = session.execute(
            update(TransformJob)
            .where(TransformJob.id == job_id, TransformJob.status.in_(TRANSFORM_ACTIVE))
            .values(status=status, error=error, finished_at=utcnow(), updated_at=utcnow())
        )
        if _rowcount(moved) != 1:
            return False
        record_finished_job(session, job_id, status)
    return True


def record_finished_job(session: Session, job_id: str, status: str) -> None:
    """The one place a transform job's end is published, in the transaction that ends it:
    its outbox event (the endpoint's success or error topic) commits with it.
    A stopped job has not finished and publishes nothing.
    """
    job: Any = session.get(TransformJob, job_id)
    if status not in (TransformStatus.SUCCEEDED, TransformStatus.FAILED):
        return
    record_transform_event(
        session,
        job_id=job_id,
        endpoint=job.endpoint,
        succeeded=status == TransformStatus.SUCCEEDED,
        output_prefix=job.output_prefix,
        error=job.error,
        details={
            "name": job.name,
            "total_records": job.total_records,
            "processed_records": job.processed_records,
            "failed_records": job.failed_records,
            "input_objects": job.input_objects,
            "completed_objects": job.completed_objects,
        },
    )


# --- listing and planning --------------------------------------------------------------------


def record_listing(job_id: str, objects: Sequence[tuple[str, int]]) -> None:
    """The job's input objects (key, size), recorded once: a resumed job keeps its list."""
    rows = [
        {"job_id": job_id, "key": key, "size": size, "status": ObjectStatus.LISTED}
        for key, size in objects
    ]
    with session_scope() as session:
        session.execute(insert(TransformObject), rows)
        session.execute(
            update(TransformJob)
            .where(TransformJob.id == job_id)
            .values(input_objects=len(rows), updated_at=utcnow())
        )


def listed_objects(job_id: str) -> list[tuple[int, str]]:
    """(object id, key) of the objects not yet cut into chunks, in listing order."""
    with session_scope() as session:
        return [
            (object_id, key)
            for object_id, key in session.execute(
                select(TransformObject.id, TransformObject.key)
                .where(
                    TransformObject.job_id == job_id, TransformObject.status == ObjectStatus.LISTED
                )
                .order_by(TransformObject.id)
            ).all()
        ]


def record_plan(
    job_id: str, object_id: int, chunks: list[dict[str, Any]], *, records: int, failed: int
) -> None:
    """One object's chunks (rows for `transform_chunks`), its record count, and the
    records that failed at planning (oversized) counted into the job at once."""
    with session_scope() as session:
        if chunks:
            session.execute(insert(TransformChunk), chunks)
        session.execute(
            update(TransformObject)
            .where(TransformObject.id == object_id)
            .values(status=ObjectStatus.PLANNED, records=records, chunks=len(chunks))
        )
        if failed:
            session.execute(
                update(TransformJob)
                .where(TransformJob.id == job_id)
                .values(
                    processed_records=TransformJob.processed_records + failed,
                    failed_records=TransformJob.failed_records + failed,
                )
            )


def record_total_records(job_id: str) -> int:
    """Once every object is planned: the job's `total_records`, the sum of its objects'."""
    with session_scope() as session:
        total = int(
            session.scalar(
                select(func.sum(TransformObject.records)).where(TransformObject.job_id == job_id)
            )
            or 0
        )
        session.execute(
            update(TransformJob)
            .where(TransformJob.id == job_id)
            .values(total_records=total, updated_at=utcnow())
        )
    return total


def first_failed_chunk(job_id: str) -> tuple[int, str | None, str] | None:
    """(chunk id, its error, its object's key) of a chunk no worker could process, if any."""
    with session_scope() as session:
        row = session.execute(
            select(TransformChunk.id, TransformChunk.error, TransformObject.key)
            .join(TransformObject, TransformObject.id == TransformChunk.object_id)
            .where(TransformChunk.job_id == job_id, TransformChunk.status == ChunkStatus.FAILED)
            .limit(1)
        ).first()
    return None if row is None else (row[0], row[1], row[2])


# --- dispatch ---------------------------------------------------------------------------------


def _variant_ref(variant: Variant, job: TransformJob) -> ModelRef:
    """What a variant runs for `job`: its model, or the job's target_model under its prefix."""
    version = variant.model_version
    if version is not None:
        return ModelRef(
            version.model.name, version.version, version.framework, version.artifact_uri
        )
    if variant.multi_model_prefix is None or not job.target_model:
        raise JobFailed(
            f"variant {variant.name!r} of endpoint {job.endpoint!r} serves many models: "
            "the job needs a target_model"
        )
    return target_ref(
        prefix=variant.multi_model_prefix, framework=variant.framework, key=job.target_model
    )


def load_targets(session: Session, job: TransformJob) -> list[Target]:
    """The queues a job's chunks may go to, with their weights (never all zero).

    Raises JobFailed when the job's model version or endpoint is gone.
    """
    if job.model is not None:
        version = session.execute(
            select(ModelVersion)
            .join(Model)
            .where(Model.name == job.model, ModelVersion.version == job.model_version)
        ).scalar_one_or_none()
        if version is None:
            raise JobFailed(f"version {job.model_version} of model {job.model!r} was deleted")
        ref = ModelRef(job.model, version.version, version.framework, version.artifact_uri)
        return [Target(TRANSFORM_POOL, transform_pool_variant(job.model, version.version), 1, ref)]
    if job.component is not None:
        return [_component_target(session, job)]
    variants = session.scalars(
        select(Variant)
        .join(Endpoint, Endpoint.id == Variant.endpoint_id)
        .where(Endpoint.name == job.endpoint)
        .order_by(Variant.id)
    ).all()
    if not variants:
        raise JobFailed(f"endpoint {job.endpoint!r} was deleted")
    targets = [
        Target(str(job.endpoint), variant.name, variant.weight, _variant_ref(variant, job))
        for variant in variants
    ]
    if not any(t.weight > 0 for t in targets):
        # Every variant drained of realtime traffic: a batch job still has to run.
        targets = [Target(t.endpoint, t.variant, 1, t.model) for t in targets]
    return targets


def _component_target(session: Session, job: TransformJob) -> Target:
    """The one queue of a job on an inference component; JobFailed once it is gone."""
    row = session.execute(
        select(ModelVersion, Model.name)
        .join(Model, Model.id == ModelVersion.model_id)
        .join(InferenceComponent, InferenceComponent.model_version_id == ModelVersion.id)
        .join(Endpoint, Endpoint.id == InferenceComponent.endpoint_id)
        .where(
            Endpoint.name == job.endpoint,
            InferenceComponent.name == job.component,
            InferenceComponent.status == ComponentStatus.IN_SERVICE,
        )
    ).first()
    if row is None:
        raise JobFailed(
            f"inference component {job.component!r} of endpoint {job.endpoint!r} was deleted"
        )
    v, model = row
    ref = ModelRef(model, v.version, v.framework, v.artifact_uri)
    return Target(str(job.endpoint), component_variant(str(job.component)), 1, ref)


@dataclass(frozen=True, slots=True)
class Send:
    """A chunk marked sent (with its new token), its object's key and where it goes."""

    chunk: TransformChunk
    key: str
    target: Target
    resent: bool


def take_chunks_to_send(
    job: TransformJob,
    *,
    max_in_flight: int,
    resend_after_s: float,
    choose: Callable[[list[Target]], Target],
) -> list[Send]:
    """Mark up to `max_in_flight` minus those out pending chunks as sent, each under a new
    token, and return them (detached). A chunk sent over `resend_after_s` ago and still
    pending is taken again (its message was lost). Marked first, sent after: a worker
    never sees a token the database lacks."""
    now = utcnow()
    stale = now - dt.timedelta(seconds=resend_after_s)
    pending = (
        TransformChunk.job_id == job.id,
        TransformChunk.status == ChunkStatus.PENDING,
        TransformChunk.oversized.is_(False),
    )
    with session_scope() as session:
        in_flight = session.scalar(
            select(func.count())
            .select_from(TransformChunk)
            .where(*pending, TransformChunk.sent_at > stale)
        )
        room = max_in_flight - int(in_flight or 0)
        if room <= 0:
            return []
        rows = session.execute(
            select(TransformChunk, TransformObject.key)
            .join(TransformObject, TransformObject.id == TransformChunk.object_id)
            .where(*pending, (TransformChunk.sent_at.is_(None)) | (TransformChunk.sent_at <= stale))
            .order_by(TransformChunk.object_id, TransformChunk.seq)
            .limit(room)
        ).all()
        if not rows:
            return []
        targets = load_targets(session, job)
        sends = []
        for chunk, key in rows:
            resent = chunk.sent_at is not None
            chunk.token, chunk.sent_at = uuid.uuid4().hex, now
            sends.append(Send(chunk=chunk, key=key, target=choose(targets), resent=resent))
        session.flush()
        session.expunge_all()
    return sends


def unsend(tokens: Sequence[str]) -> None:
    """Chunks whose messages never left (Redis refused them) are pending again at once."""
    with session_scope() as session:
        session.execute(
            update(TransformChunk)
            .where(TransformChunk.token.in_(list(tokens)))
            .values(token=None, sent_at=None)
        )


def chunks_being_worked(job_id: str, *, claimed_since: dt.datetime) -> int:
    """Pending chunks a worker claimed after `claimed_since` (so probably still running)."""
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(TransformChunk)
                .where(
                    TransformChunk.job_id == job_id,
                    TransformChunk.status == ChunkStatus.PENDING,
                    TransformChunk.claimed_at > claimed_since,
                )
            )
            or 0
        )


# --- assembly ---------------------------------------------------------------------------------


def objects_ready(job_id: str) -> list[TransformObject]:
    """Planned objects whose every chunk is done (detached), in listing order."""
    unfinished = exists().where(
        TransformChunk.object_id == TransformObject.id,
        TransformChunk.status != ChunkStatus.DONE,
    )
    with session_scope() as session:
        ready = list(
            session.scalars(
                select(TransformObject)
                .where(
                    TransformObject.job_id == job_id,
                    TransformObject.status == ObjectStatus.PLANNED,
                    ~unfinished,
                )
                .order_by(TransformObject.id)
            ).all()
        )
        session.expunge_all()
    return ready


def chunks_of(object_id: int) -> list[TransformChunk]:
    """An object's chunks in order (detached)."""
    with session_scope() as session:
        chunks = list(
            session.scalars(
                select(TransformChunk)
                .where(TransformChunk.object_id == object_id)
                .order_by(TransformChunk.seq)
            ).all()
        )
        session.expunge_all()
    return chunks


def mark_assembled(job_id: str, object_id: int) -> None:
    """`planned` → `assembled`, counted into the job once."""
    with session_scope() as session:
        marked = session.execute(
            update(TransformObject)
            .where(TransformObject.id == object_id, TransformObject.status == ObjectStatus.PLANNED)
            .values(status=ObjectStatus.ASSEMBLED)
        )
        if _rowcount(marked) == 1:
            session.execute(
                update(TransformJob)
                .where(TransformJob.id == job_id)
                .values(completed_objects=TransformJob.completed_objects + 1, updated_at=utcnow())
            )


def objects_left(job_id: str) -> int:
    """Objects of the job whose output is not written yet."""
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(TransformObject)
                .where(
                    TransformObject.job_id == job_id,
                    TransformObject.status != ObjectStatus.ASSEMBLED,
                )
            )
            or 0
        )
