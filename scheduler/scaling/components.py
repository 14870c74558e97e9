"""The scaler's SQL and Redis for inference components: their configs, and removing drained ones.

A component scales like a variant (its queue is a variant queue, `ic.<name>`)
with its own bounds (`copies.min/max`), target (backlog or invocations per copy),
cooldown and idle time, and declares the compute of one copy for placement
(scheduler/scaling/placement.py). No decisions here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import redis
from sqlalchemy import delete, select

from core.broker import component_variant, metrics_key, queue_name, variants_key
from core.db import session_scope
from core.states import ComponentStatus
from core.tables import Endpoint, InferenceComponent, ModelVersion
from scheduler.scaling.placement import Compute
from scheduler.scaling.policy import Bounds, Timings

logger = logging.getLogger(__name__)

INVOCATIONS_METRIC = "invocations_per_copy_per_minute"


@dataclass(frozen=True, slots=True)
class ComponentConfig:
    endpoint: str
    component: str
    queue: str
    framework: str
    bounds: Bounds
    compute: Compute
    priority: int
    deleting: bool
    scale_in_cooldown_s: float | None = None
    scale_to_zero_idle_s: float | None = None

    @property
    def variant(self) -> str:
        """The variant label of its queue (`ic.<name>`), as workers and actuators know it."""
        return component_variant(self.component)

    @property
    def key(self) -> str:
        return f"{self.endpoint}/{self.variant}"

    def timings(self, default: Timings) -> Timings:
        """The scheduler's timings with this component's own cooldown and idle time."""
        return replace(
            default,
            scale_in_cooldown_s=(
                default.scale_in_cooldown_s
                if self.scale_in_cooldown_s is None
                else self.scale_in_cooldown_s
            ),
            scale_to_zero_idle_s=(
                default.scale_to_zero_idle_s
                if self.scale_to_zero_idle_s is None
                else self.scale_to_zero_idle_s
            ),
        )


def read_components(namespace: str) -> list[ComponentConfig]:
    """Every inference component (deleting ones too: they drain), in a stable order."""
    with session_scope() as session:
        rows = session.execute(
            select(Endpoint.name, InferenceComponent, ModelVersion.framework)
            .join(InferenceComponent, InferenceComponent.endpoint_id == Endpoint.id)
            .join(ModelVersion, ModelVersion.id == InferenceComponent.model_version_id)
            .order_by(Endpoint.name, InferenceComponent.name)
        ).all()
        return [
            ComponentConfig(
                endpoint=endpoint,
                component=c.name,
                queue=queue_name(namespace, endpoint, component_variant(c.name)),
                framework=framework,
                bounds=Bounds(
                    min_workers=0 if c.status == ComponentStatus.DELETING else c.min_copies,
                    max_workers=c.max_copies,
                    target_backlog_per_worker=max(round(c.scaling_target), 1),
                    target_invocations_per_minute=(
                        c.scaling_target if c.scaling_metric == INVOCATIONS_METRIC else 0.0
                    ),
                ),
                compute=Compute(
                    cpu_cores=c.cpu_cores,
                    memory_mb=c.memory_mb,
                    gpus=c.gpus,
                    gpu_memory_mb=c.gpu_memory_mb,
                ),
                priority=c.priority,
                deleting=c.status == ComponentStatus.DELETING,
                scale_in_cooldown_s=c.scale_in_cooldown_s,
                scale_to_zero_idle_s=c.scale_to_zero_idle_s,
            )
            for endpoint, c, framework in rows
        ]


def answered(client: redis.Redis, namespace: str, queues: list[str]) -> dict[str, float]:
    """Requests answered ever per queue (the workers' `requests` counter)."""
    if not queues:
        return {}
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.hget(metrics_key(namespace, queue), "requests")
    return {q: float(v or 0) for q, v in zip(queues, pipe.execute(), strict=True)}


def remove_drained(client: redis.Redis, namespace: str, config: ComponentConfig) -> None:
    """Delete a `deleting` component whose queue is empty, and stop publishing its queue."""
    with session_scope() as session:
        endpoint_id = select(Endpoint.id).where(Endpoint.name == config.endpoint)
        session.execute(
            delete(InferenceComponent).where(
                InferenceComponent.endpoint_id.in_(endpoint_id),
                InferenceComponent.name == config.component,
                InferenceComponent.status == ComponentStatus.DELETING,
            )
        )
    client.srem(variants_key(namespace), config.queue)
    logger.info("%s: drained and deleted", config.key)
