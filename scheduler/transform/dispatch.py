"""Where a transform job's chunks go, and the message that carries one.

An endpoint job sends each chunk to one of the endpoint's variants, drawn by
weight (re-read each dispatch, so a weight change applies to the chunks not
yet sent); a model job sends them to its model version's transform-pool queue,
which every generic worker serves. The message is an ordinary `Invocation` in
mode `transform` (priority 6): the chunk's object, byte range, first line
number and token travel in `extra`, and `output_location` is where the worker
writes the chunk's part.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.broker import TRANSFORM_POOL, transform_pool_variant
from core.protocol import Invocation, ModelRef
from core.storage import S3Location
from core.tables import Endpoint, Model, ModelVersion, TransformChunk, TransformJob, Variant
from scheduler.transform.output import parts_prefix


class JobFailed(Exception):
    """The job cannot go on (its endpoint or model is gone, its input is gone)."""


@dataclass(frozen=True, slots=True)
class Target:
    endpoint: str
    variant: str
    weight: float
    model: ModelRef


def load_targets(session: Session, job: TransformJob) -> list[Target]:
    """The queues a job's chunks may go to, with their weights (never all zero)."""
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
    rows = session.execute(
        select(Variant.name, Variant.weight, ModelVersion, Model.name)
        .join(Endpoint, Endpoint.id == Variant.endpoint_id)
        .join(ModelVersion, ModelVersion.id == Variant.model_version_id)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(Endpoint.name == job.endpoint)
        .order_by(Variant.id)
    ).all()
    if not rows:
        raise JobFailed(f"endpoint {job.endpoint!r} was deleted")
    targets = [
        Target(
            str(job.endpoint), name, weight, ModelRef(model, v.version, v.framework, v.artifact_uri)
        )
        for name, weight, v, model in rows
    ]
    if not any(t.weight > 0 for t in targets):
        # Every variant drained of realtime traffic: a batch job still has to run.
        targets = [Target(t.endpoint, t.variant, 1, t.model) for t in targets]
    return targets


def chunk_invocation(
    job: TransformJob, chunk: TransformChunk, key: str, target: Target, parts_bucket: str
) -> Invocation:
    bucket = S3Location.parse(job.input_prefix).bucket
    return Invocation(
        job_id=job.id,
        mode="transform",
        endpoint=target.endpoint,
        variant=target.variant,
        model=target.model,
        content_type=job.content_type,
        input_location=str(S3Location(bucket, key)),
        output_location=str(S3Location(parts_bucket, f"{parts_prefix(job.id)}{chunk.id}")),
        enqueued_ms=int(time.time() * 1000),
        extra={
            "chunk_id": chunk.id,
            "token": chunk.token,
            "start": chunk.start_byte,
            "end": chunk.end_byte,
            "first_line": chunk.first_line,
            "lines": chunk.lines,
            "join_source": job.join_source,
            "batch_strategy": job.batch_strategy,
        },
    )
