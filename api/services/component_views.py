"""Inference components as the API shows them: config from SQL, live state from Redis.

Copies `current` are the live workers (leases) serving the component's queue;
`desired`, the placements and `pending_reason` are what the scaler last
published (core/component_state.py); the hosts' free room likewise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from api.schemas import (
    Batching,
    ComponentPublic,
    ComponentScaling,
    ComputeSpec,
    CopiesPublic,
    GpuPublic,
    HostPublic,
    PlacementPublic,
    ScalingEventPublic,
)
from core import component_state, scaling_state
from core.broker import component_variant, get_redis, queue_loads, queue_name, workers_per_queue
from core.config import get_settings
from core.tables import InferenceComponent


def component_queue(endpoint: str, component: str) -> str:
    """The Redis queue of one component, e.g. `sluiceway.churn.ic.small`."""
    return queue_name(get_settings().namespace, endpoint, component_variant(component))


def public_components(components: list[InferenceComponent]) -> list[ComponentPublic]:
    """Config plus live state, in a few Redis round trips for all of them."""
    if not components:
        return []
    namespace = get_settings().namespace
    redis = get_redis()
    queues = [component_queue(c.endpoint.name, c.name) for c in components]
    loads = queue_loads(redis, namespace, queues)
    current = workers_per_queue(redis, namespace)
    published = component_state.read_placements(redis, namespace)
    events = scaling_state.scaling_events(redis, namespace, queues)
    result = []
    for component, queue in zip(components, queues, strict=True):
        version = component.model_version
        state = published.get(queue)
        live = current.get(queue, 0)
        result.append(
            ComponentPublic(
                name=component.name,
                endpoint=component.endpoint.name,
                model=version.model.name,
                model_version=version.version,
                framework=version.framework,
                status=component.status,
                compute=ComputeSpec(
                    cpu_cores=component.cpu_cores,
                    memory_mb=component.memory_mb,
                    gpus=component.gpus,
                    gpu_memory_mb=component.gpu_memory_mb,
                ),
                copies=CopiesPublic(
                    min=component.min_copies,
                    max=component.max_copies,
                    current=live,
                    desired=state.desired if state is not None else live,
                ),
                scaling=ComponentScaling(
                    metric=component.scaling_metric,
                    target=component.scaling_target,
                    scale_in_cooldown_s=component.scale_in_cooldown_s,
                    scale_to_zero_idle_s=component.scale_to_zero_idle_s,
                ),
                batching=Batching(
                    max_batch_size=component.max_batch_size, max_delay_ms=component.max_delay_ms
                ),
                priority=component.priority,
                placements=[_placement(p) for p in (state.placements if state else [])],
                pending_reason=state.pending_reason if state is not None else None,
                backlog=loads[queue].backlog,
                reserved=loads[queue].reserved,
                scaling_events=[
                    ScalingEventPublic(
                        at=dt.datetime.fromtimestamp(event.at, dt.UTC),
                        from_=event.from_workers,
                        to=event.to_workers,
                        reason=event.reason,
                    )
                    for event in events.get(queue, [])
                ],
                created_at=component.created_at,
                updated_at=component.updated_at,
            )
        )
    return result


def public_hosts() -> list[HostPublic]:
    """The hosts the scaler places copies on and their free room (none before its first tick)."""
    hosts = component_state.read_hosts(get_redis(), get_settings().namespace)
    return [
        HostPublic(
            name=h["name"],
            cpu_cores=h["cpu_cores"],
            memory_mb=h["memory_mb"],
            gpus=[GpuPublic(**g) for g in h.get("gpus", [])],
            free_cpu_cores=h["free_cpu_cores"],
            free_memory_mb=h["free_memory_mb"],
        )
        for h in hosts
    ]


def _placement(raw: dict[str, Any]) -> PlacementPublic:
    gpus = [int(g) for g in raw.get("gpus", [])]
    return PlacementPublic(
        host=raw["host"],
        cpu_cores=raw["cpu_cores"],
        memory_mb=raw["memory_mb"],
        gpu=gpus[0] if gpus else None,
        gpus=gpus,
        gpu_memory_mb=raw.get("gpu_memory_mb", 0),
    )
