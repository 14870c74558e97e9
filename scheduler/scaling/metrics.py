"""The scaler's reads: endpoint variants and their bounds from SQL, queue state from Redis.

No decisions here (scheduler/scaling/policy.py) and no side effects (scheduler/scaling/actuators/).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import redis
from sqlalchemy import func, select

from core.broker import (
    TRANSFORM_POOL,
    QueueLoad,
    last_arrivals,
    queue_loads,
    queue_name,
    transform_pool_queue,
    transform_pool_variant,
    workers_per_queue,
)
from core.db import session_scope
from core.states import TRANSFORM_ACTIVE
from core.tables import Endpoint, Model, ModelVersion, TransformJob, Variant
from scheduler.scaling.policy import Bounds


@dataclass(frozen=True, slots=True)
class VariantConfig:
    endpoint: str
    variant: str
    queue: str
    accelerator: str
    framework: str
    bounds: Bounds


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    loads: dict[str, QueueLoad]
    workers: Counter[str]  # live workers (leases) per queue
    arrivals: dict[str, float]  # epoch seconds of the last enqueue per queue


def read_variants(namespace: str) -> list[VariantConfig]:
    """Every endpoint variant with its scaling bounds, in a stable order."""
    with session_scope() as session:
        rows = session.execute(
            select(
                Endpoint.name,
                Variant.name,
                Variant.accelerator,
                func.coalesce(ModelVersion.framework, Variant.multi_model_framework),
                Variant.min_workers,
                Variant.max_workers,
                Variant.target_backlog_per_worker,
                Variant.config_version,
                Endpoint.config_version,
                Endpoint.next_config_version,
                Endpoint.delete_requested_at,
            )
            .join(Variant, Variant.endpoint_id == Endpoint.id)
            .outerjoin(ModelVersion, ModelVersion.id == Variant.model_version_id)
            .order_by(Endpoint.name, Variant.name)
        ).all()
    return [
        VariantConfig(
            endpoint=endpoint,
            variant=variant,
            queue=queue_name(namespace, endpoint, variant),
            accelerator=accelerator,
            framework=framework,
            bounds=Bounds(
                # A variant draining (replaced by a deployment, or its endpoint being
                # deleted) keeps workers only while it has work: it may scale to zero.
                min_workers=min_workers if deleting is None and own in (serving, upcoming) else 0,
                max_workers=max_workers,
                target_backlog_per_worker=target,
            ),
        )
        for (
            endpoint,
            variant,
            accelerator,
            framework,
            min_workers,
            max_workers,
            target,
            own,
            serving,
            upcoming,
            deleting,
        ) in rows
    ] + _transform_pools(namespace)


def _transform_pools(namespace: str) -> list[VariantConfig]:
    """The transform-pool queue of every model with an active transform job (no endpoint).

    They scale like variants (to zero once the job is over), so a model's batch
    transform gets a worker even where no generic worker runs, as under `sluice up`.
    """
    with session_scope() as session:
        rows = session.execute(
            select(TransformJob.model, TransformJob.model_version, ModelVersion.framework)
            .join(Model, Model.name == TransformJob.model)
            .join(
                ModelVersion,
                (ModelVersion.model_id == Model.id)
                & (ModelVersion.version == TransformJob.model_version),
            )
            .where(TransformJob.status.in_(TRANSFORM_ACTIVE))
            .distinct()
        ).all()
    return [
        VariantConfig(
            endpoint=TRANSFORM_POOL,
            variant=transform_pool_variant(model, version),
            queue=transform_pool_queue(namespace, model, version),
            accelerator="cpu",
            framework=framework,
            bounds=Bounds(min_workers=0, max_workers=2, target_backlog_per_worker=4),
        )
        for model, version, framework in rows
        if model is not None and version is not None
    ]


def read_queues(client: redis.Redis, namespace: str, queues: list[str]) -> QueueSnapshot:
    return QueueSnapshot(
        loads=queue_loads(client, namespace, queues),
        workers=workers_per_queue(client, namespace),
        arrivals=last_arrivals(client, namespace),
    )
