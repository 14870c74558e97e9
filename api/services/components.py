"""Inference components of a live endpoint: create, list, get, patch, delete (no deployment).

A component is one model with its own compute per copy, copies and scaling; its
queue is a variant queue labelled `ic.<name>` (core/broker/keys.py), published in
`variants_key` on create so workers pick it up within seconds, as for a variant.
The scaler reads the table every tick, so a PATCH reaches it within a second or two.

Delete drains first: the component goes `deleting`, new calls to it are refused
(404), and the scaler deletes the row once its queue holds nothing queued or
reserved (scheduler/scaling/components.py), keeping copies to serve what is left.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from api.schemas import ComponentCreate, ComponentPatch, ComponentPublic
from api.services.component_views import component_queue, public_components
from api.services.endpoints import load_endpoint
from api.services.registry import resolve_version
from core.broker import get_redis, variants_key
from core.config import get_settings
from core.errors import Conflict, InvalidInput, NotFound
from core.states import ComponentStatus
from core.tables import Endpoint, InferenceComponent, ModelVersion


def load_components(session: Session, endpoint: str) -> list[InferenceComponent]:
    """An endpoint's components with their models loaded; NotFound without the endpoint."""
    load_endpoint(session, endpoint)
    return list(
        session.scalars(
            select(InferenceComponent)
            .join(Endpoint, Endpoint.id == InferenceComponent.endpoint_id)
            .where(Endpoint.name == endpoint)
            .order_by(InferenceComponent.name)
            .options(
                selectinload(InferenceComponent.model_version).selectinload(ModelVersion.model),
                selectinload(InferenceComponent.endpoint),
            )
        )
    )


def load_component(session: Session, endpoint: str, name: str) -> InferenceComponent:
    for component in load_components(session, endpoint):
        if component.name == name:
            return component
    raise NotFound(f"endpoint {endpoint!r} has no inference component {name!r}")


def create_component(
    session: Session, endpoint_name: str, spec: ComponentCreate
) -> ComponentPublic:
    endpoint = load_endpoint(session, endpoint_name)
    version = resolve_version(session, spec.model, spec.model_version)
    session.add(
        InferenceComponent(
            endpoint_id=endpoint.id,
            name=spec.name,
            model_version_id=version.id,
            status=ComponentStatus.IN_SERVICE,
            cpu_cores=spec.compute.cpu_cores,
            memory_mb=spec.compute.memory_mb,
            gpus=spec.compute.gpus,
            gpu_memory_mb=spec.compute.gpu_memory_mb,
            min_copies=spec.copies.min,
            max_copies=spec.copies.max,
            scaling_metric=spec.scaling.metric,
            scaling_target=spec.scaling.target,
            scale_in_cooldown_s=spec.scaling.scale_in_cooldown_s,
            scale_to_zero_idle_s=spec.scaling.scale_to_zero_idle_s,
            priority=spec.priority,
            max_batch_size=spec.batching.max_batch_size,
            max_delay_ms=spec.batching.max_delay_ms,
        )
    )
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            f"endpoint {endpoint_name!r} already has an inference component {spec.name!r}"
        ) from exc
    get_redis().sadd(
        variants_key(get_settings().namespace), component_queue(endpoint_name, spec.name)
    )
    return get_component(session, endpoint_name, spec.name)


def list_components(session: Session, endpoint: str) -> list[ComponentPublic]:
    return public_components(load_components(session, endpoint))


def get_component(session: Session, endpoint: str, name: str) -> ComponentPublic:
    return public_components([load_component(session, endpoint, name)])[0]


def update_component(
    session: Session, endpoint: str, name: str, patch: ComponentPatch
) -> ComponentPublic:
    """Apply the fields sent; the others keep their values. InvalidInput on crossed bounds."""
    component = load_component(session, endpoint, name)
    if component.status == ComponentStatus.DELETING:
        raise Conflict(f"inference component {name!r} is being deleted")
    if patch.compute is not None:
        for field in ("cpu_cores", "memory_mb", "gpus", "gpu_memory_mb"):
            value = getattr(patch.compute, field)
            if value is not None:
                setattr(component, field, value)
    if patch.copies is not None:
        low = patch.copies.min if patch.copies.min is not None else component.min_copies
        high = patch.copies.max if patch.copies.max is not None else component.max_copies
        if high < low:
            raise InvalidInput(f"copies.max {high} is below copies.min {low}")
        component.min_copies, component.max_copies = low, high
    if patch.scaling is not None:
        sent = patch.scaling.model_fields_set
        if patch.scaling.metric is not None:
            component.scaling_metric = patch.scaling.metric
        if patch.scaling.target is not None:
            component.scaling_target = patch.scaling.target
        # Sent as null: back to the scheduler's setting.
        if "scale_in_cooldown_s" in sent:
            component.scale_in_cooldown_s = patch.scaling.scale_in_cooldown_s
        if "scale_to_zero_idle_s" in sent:
            component.scale_to_zero_idle_s = patch.scaling.scale_to_zero_idle_s
    if patch.batching is not None:
        if patch.batching.max_batch_size is not None:
            component.max_batch_size = patch.batching.max_batch_size
        if patch.batching.max_delay_ms is not None:
            component.max_delay_ms = patch.batching.max_delay_ms
    if patch.priority is not None:
        component.priority = patch.priority
    session.commit()
    return get_component(session, endpoint, name)


def delete_component(session: Session, endpoint: str, name: str) -> ComponentPublic:
    """Start draining: `deleting` now, gone once its queue is empty (the scaler removes it)."""
    component = load_component(session, endpoint, name)
    component.status = ComponentStatus.DELETING
    session.commit()
    return get_component(session, endpoint, name)
