"""Rebuilding an async job's queue message from its database row.

Used when the message is gone although the job is not finished (the
reconciler) and when a person retries a failed job (the API).
"""

from __future__ import annotations

import time

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.orm import Session

from core.broker.keys import component_of
from core.multi_model import target_ref
from core.protocol import Invocation, ModelRef
from core.tables import Endpoint, InferenceComponent, Job, ModelVersion, Variant


def _model_of(session: Session, job: Job) -> ModelRef | None:
    """The model `job` runs now: its component's, its variant's, or (multi-model) the
    job's `target_model` under the variant's prefix; None if that is gone.

    An endpoint re-created under the same name is another endpoint: its model never
    runs an old endpoint's job.
    """
    accepted_by: ColumnElement[bool] = true()  # a row not stored yet: any endpoint of the name
    if job.endpoint_created_at is not None:
        accepted_by = Endpoint.created_at == job.endpoint_created_at
    elif job.created_at is not None:
        accepted_by = Endpoint.created_at <= job.created_at
    component = component_of(job.variant)
    if component is not None:  # the variant label `ic.<name>` of a component's queue
        row = session.execute(
            select(ModelVersion)
            .join(InferenceComponent, InferenceComponent.model_version_id == ModelVersion.id)
            .join(Endpoint, InferenceComponent.endpoint_id == Endpoint.id)
            .where(Endpoint.name == job.endpoint, InferenceComponent.name == component, accepted_by)
        ).scalar_one_or_none()
    else:
        variant = session.execute(
            select(Variant)
            .join(Endpoint, Variant.endpoint_id == Endpoint.id)
            .where(Endpoint.name == job.endpoint, Variant.name == job.variant, accepted_by)
        ).scalar_one_or_none()
        if variant is None:
            return None
        row = variant.model_version
        if row is None:
            if variant.multi_model_prefix is None or job.target_model is None:
                return None
            return target_ref(
                prefix=variant.multi_model_prefix, framework=variant.framework, key=job.target_model
            )
    if row is None:
        return None
    return ModelRef(
        name=row.model.name,
        version=row.version,
        framework=row.framework,
        artifact_uri=row.artifact_uri,
    )


def async_invocation(session: Session, job: Job) -> Invocation | None:
    """The message for `job` on its variant's (or inference component's) current model, or
    None if that is gone."""
    model = _model_of(session, job)
    if model is None:
        return None
    return Invocation(
        job_id=job.id,
        mode="async",
        endpoint=job.endpoint,
        variant=job.variant,
        model=model,
        content_type=job.content_type,
        accept=job.accept,
        input_location=job.input_location,
        output_location=job.output_location,
        enqueued_ms=int(time.time() * 1000),
    )


def same_endpoint() -> ColumnElement[bool]:
    """SQL: the `Endpoint` row is the one that accepted the `Job` row.

    Jobs carry their endpoint's `created_at` as stored (exact, whatever the API
    hosts' clocks); jobs from before that column fall back to "created before the job".
    """
    return or_(
        Endpoint.created_at == Job.endpoint_created_at,
        Job.endpoint_created_at.is_(None) & (Endpoint.created_at <= Job.created_at),
    )
