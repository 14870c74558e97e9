"""Rebuilding an async job's queue message from its database row.

Used when the message is gone although the job is not finished (the
reconciler) and when a person retries a failed job (the API).
"""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.pipeline import TARGET_CONTAINER
from core.protocol import Invocation, ModelRef
from core.tables import Endpoint, Job, ModelVersion, Variant


def async_invocation(session: Session, job: Job) -> Invocation | None:
    """The message for `job` on its variant's current model, or None if the variant is gone."""
    row = session.execute(
        select(ModelVersion)
        .join(Variant, Variant.model_version_id == ModelVersion.id)
        .join(Endpoint, Variant.endpoint_id == Endpoint.id)
        .where(Endpoint.name == job.endpoint, Variant.name == job.variant)
    ).scalar_one_or_none()
    if row is None:
        return None
    invocation = Invocation(
        job_id=job.id,
        mode="async",
        endpoint=job.endpoint,
        variant=job.variant,
        model=ModelRef(
            name=row.model.name,
            version=row.version,
            framework=row.framework,
            artifact_uri=row.artifact_uri,
        ),
        content_type=job.content_type,
        accept=job.accept,
        input_location=job.input_location,
        output_location=job.output_location,
        enqueued_ms=int(time.time() * 1000),
    )
    if job.target_container:
        invocation.extra[TARGET_CONTAINER] = job.target_container
    return invocation
