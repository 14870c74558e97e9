"""Endpoints and their weighted variants: create, read, delete, re-weight, re-tune.

Each variant owns one Redis queue; the set of live queues is published in Redis
(`variants_key`) so workers start consuming a new variant within seconds. The
scaler reads `min_workers`, `max_workers` and `target_backlog_per_worker` from
SQL every tick, so a PATCH reaches it within a second or two.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from api.schemas import (
    AsyncPublic,
    Batching,
    DataCapture,
    EndpointCreate,
    EndpointPublic,
    MultiModel,
    ScalingEventPublic,
    VariantCreate,
    VariantPatch,
    VariantPublic,
    WeightsPatch,
    WorkersPublic,
)
from api.services import capture as capture_service
from api.services import component_views
from api.services.registry import resolve_version
from api.services.topics import require_topics
from core import scaling_state
from core.broker import (
    forget_models,
    get_redis,
    queue_loads,
    queue_name,
    variants_key,
    workers_per_queue,
)
from core.config import get_settings
from core.errors import Conflict, InvalidInput, NotFound
from core.storage import S3Location
from core.tables import Endpoint, InferenceComponent, ModelVersion, Variant


def load_endpoint(session: Session, name: str) -> Endpoint:
    """An endpoint with its variants and their models loaded; NotFound if there is none."""
    endpoint = session.scalar(
        select(Endpoint)
        .where(Endpoint.name == name)
        .options(
            selectinload(Endpoint.variants)
            .selectinload(Variant.model_version)
            .selectinload(ModelVersion.model),
            selectinload(Endpoint.components)
            .selectinload(InferenceComponent.model_version)
            .selectinload(ModelVersion.model),
        )
    )
    if endpoint is None:
        raise NotFound(f"no endpoint named {name!r}")
    return endpoint


def _queues(endpoint: Endpoint) -> list[str]:
    ns = get_settings().namespace
    return [queue_name(ns, endpoint.name, v.name) for v in endpoint.variants]


def _public(endpoints: list[Endpoint]) -> list[EndpointPublic]:
    """Config plus live state (backlog, workers, scaling) read from Redis in a few round trips."""
    settings = get_settings()
    redis = get_redis()
    queues = [q for e in endpoints for q in _queues(e)]
    loads = queue_loads(redis, settings.namespace, queues)
    current = workers_per_queue(redis, settings.namespace)
    desired = scaling_state.desired_workers(redis, settings.namespace)
    events = scaling_state.scaling_events(redis, settings.namespace, queues)
    result = []
    for endpoint in endpoints:
        variants = []
        for variant, queue in zip(endpoint.variants, _queues(endpoint), strict=True):
            version = variant.model_version
            variants.append(
                VariantPublic(
                    name=variant.name,
                    model=version.model.name if version is not None else None,
                    model_version=version.version if version is not None else None,
                    framework=variant.framework,
                    multi_model=multi_model_public(variant),
                    model_memory_mb=variant.model_memory_mb,
                    weight=variant.weight,
                    accelerator=variant.accelerator,
                    min_workers=variant.min_workers,
                    max_workers=variant.max_workers,
                    target_backlog_per_worker=variant.target_backlog_per_worker,
                    batching=Batching(
                        max_batch_size=variant.max_batch_size, max_delay_ms=variant.max_delay_ms
                    ),
                    backlog=loads[queue].backlog,
                    reserved=loads[queue].reserved,
                    workers=WorkersPublic(
                        current=current.get(queue, 0),
                        desired=desired.get(queue, current.get(queue, 0)),
                    ),
                    scaling_events=[
                        ScalingEventPublic(
                            at=dt.datetime.fromtimestamp(event.at, dt.UTC),
                            from_=event.from_workers,
                            to=event.to_workers,
                            reason=event.reason,
                        )
                        for event in events.get(queue, [])
                    ],
                )
            )
        result.append(
            EndpointPublic(
                name=endpoint.name,
                status=endpoint.status,
                variants=variants,
                async_=AsyncPublic(
                    output_prefix=endpoint.output_prefix,
                    success_topic=endpoint.success_topic,
                    error_topic=endpoint.error_topic,
                    failure_prefix=endpoint.failure_prefix,
                    invocation_timeout_s=endpoint.invocation_timeout_s,
                    max_concurrent_invocations_per_worker=(
                        endpoint.max_concurrent_invocations_per_worker
                    ),
                ),
                data_capture=capture_service.public(endpoint.data_capture),
                components=component_views.public_components(list(endpoint.components)),
                hosts=component_views.public_hosts() if endpoint.components else [],
                created_at=endpoint.created_at,
                updated_at=endpoint.updated_at,
            )
        )
    return result


def _prefix(uri: str) -> str:
    """An s3:// prefix ending in `/` (added when missing); InvalidInput if it is not one."""
    prefix = uri if uri.endswith("/") else uri + "/"
    S3Location.parse(prefix)
    return prefix


def multi_model_public(variant: Variant) -> MultiModel | None:
    """A multi-model variant's `multi_model` block, or None for a one-model variant."""
    if variant.multi_model_prefix is None or variant.multi_model_framework is None:
        return None
    return MultiModel.model_validate(
        {"prefix": variant.multi_model_prefix, "framework": variant.multi_model_framework}
    )


def _served_model(session: Session, spec: VariantCreate) -> dict[str, object]:
    """The Variant columns of what it serves: a registered version, or a multi-model prefix.

    InvalidInput (422) for an unknown model, or a prefix the platform may not read.
    """
    if spec.multi_model is None:
        assert spec.model is not None  # the schema requires one of the two
        return {"model_version_id": resolve_version(session, spec.model, spec.model_version).id}
    prefix = _prefix(spec.multi_model.prefix)
    bucket = S3Location.parse(prefix).bucket
    if not get_settings().may_read_bucket(bucket):
        raise InvalidInput(
            f"multi_model.prefix {prefix!r}: bucket {bucket!r} is not one the platform may "
            "read (SLUICEWAY_READABLE_BUCKETS)"
        )
    return {
        "model_version_id": None,
        "multi_model_prefix": prefix,
        "multi_model_framework": spec.multi_model.framework,
        "model_memory_mb": spec.model_memory_mb,
    }


def create_endpoint(session: Session, spec: EndpointCreate) -> EndpointPublic:
    settings = get_settings()
    output_prefix = _prefix(
        spec.async_.output_prefix or f"{settings.default_output_prefix}{spec.name}/"
    )
    failure_prefix = _prefix(spec.async_.failure_prefix) if spec.async_.failure_prefix else None
    require_topics(
        session,
        {
            "async.success_topic": spec.async_.success_topic,
            "async.error_topic": spec.async_.error_topic,
        },
    )
    if spec.data_capture is not None:
        capture_service.check_destination(spec.data_capture)
    endpoint = Endpoint(
        name=spec.name,
        output_prefix=output_prefix,
        success_topic=spec.async_.success_topic,
        error_topic=spec.async_.error_topic,
        data_capture=capture_service.stored(spec.data_capture),
        failure_prefix=failure_prefix,
        invocation_timeout_s=spec.async_.invocation_timeout_s,
        max_concurrent_invocations_per_worker=spec.async_.max_concurrent_invocations_per_worker,
    )
    for v in spec.variants:
        served = _served_model(session, v)
        endpoint.variants.append(
            Variant(
                name=v.name,
                **served,
                weight=v.weight,
                accelerator=v.accelerator,
                min_workers=v.min_workers,
                max_workers=v.max_workers,
                target_backlog_per_worker=v.target_backlog_per_worker,
                max_batch_size=v.batching.max_batch_size,
                max_delay_ms=v.batching.max_delay_ms,
            )
        )
    session.add(endpoint)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"an endpoint named {spec.name!r} already exists") from exc
    endpoint = load_endpoint(session, spec.name)
    if endpoint.variants:  # none: components only, added later
        get_redis().sadd(variants_key(settings.namespace), *_queues(endpoint))
    return _public([endpoint])[0]


def list_endpoints(session: Session) -> list[EndpointPublic]:
    endpoints = session.scalars(
        select(Endpoint)
        .order_by(Endpoint.name)
        .options(
            selectinload(Endpoint.variants)
            .selectinload(Variant.model_version)
            .selectinload(ModelVersion.model),
            selectinload(Endpoint.components)
            .selectinload(InferenceComponent.model_version)
            .selectinload(ModelVersion.model),
        )
    )
    return _public(list(endpoints))


def get_endpoint(session: Session, name: str) -> EndpointPublic:
    return _public([load_endpoint(session, name)])[0]


def delete_endpoint(session: Session, name: str) -> None:
    endpoint = load_endpoint(session, name)
    queues = _queues(endpoint)
    multi_model = [
        queue
        for queue, v in zip(queues, endpoint.variants, strict=True)
        if v.multi_model_prefix is not None
    ]
    queues += [component_views.component_queue(endpoint.name, c.name) for c in endpoint.components]
    session.delete(endpoint)
    session.commit()
    redis = get_redis()
    if queues:
        redis.srem(variants_key(get_settings().namespace), *queues)
    for queue in multi_model:  # a re-created endpoint of the same name starts counting anew
        forget_models(redis, get_settings().namespace, queue)


def set_weights(session: Session, name: str, patch: WeightsPatch) -> EndpointPublic:
    endpoint = load_endpoint(session, name)
    by_name = {v.name: v for v in endpoint.variants}
    unknown = [w.name for w in patch.variants if w.name not in by_name]
    if unknown:
        raise NotFound(f"endpoint {name!r} has no variant(s) {unknown}")
    new_weights = {v.name: v.weight for v in endpoint.variants}
    new_weights.update({w.name: w.weight for w in patch.variants})
    if sum(new_weights.values()) <= 0:
        raise InvalidInput("at least one variant needs a weight above 0")
    for variant_name, weight in new_weights.items():
        by_name[variant_name].weight = weight
    session.commit()
    return get_endpoint(session, name)


def update_variant(
    session: Session, name: str, variant_name: str, patch: VariantPatch
) -> EndpointPublic:
    endpoint = load_endpoint(session, name)
    variant = next((v for v in endpoint.variants if v.name == variant_name), None)
    if variant is None:
        raise NotFound(f"endpoint {name!r} has no variant {variant_name!r}")
    if patch.batching is not None:
        if patch.batching.max_batch_size is not None:
            variant.max_batch_size = patch.batching.max_batch_size
        if patch.batching.max_delay_ms is not None:
            variant.max_delay_ms = patch.batching.max_delay_ms
    min_workers = patch.min_workers if patch.min_workers is not None else variant.min_workers
    max_workers = patch.max_workers if patch.max_workers is not None else variant.max_workers
    if max_workers < min_workers:
        raise InvalidInput(f"max_workers {max_workers} is below min_workers {min_workers}")
    variant.min_workers, variant.max_workers = min_workers, max_workers
    if patch.target_backlog_per_worker is not None:
        variant.target_backlog_per_worker = patch.target_backlog_per_worker
    session.commit()
    return get_endpoint(session, name)


def set_data_capture(session: Session, name: str, capture: DataCapture | None) -> EndpointPublic:
    """Replace an endpoint's data capture settings (None turns capture off).

    Applies without a deployment: workers pick the change up within
    SLUICEWAY_CAPTURE_FLUSH_S. The destination is checked by a real write first.
    """
    endpoint = load_endpoint(session, name)
    if capture is not None:
        capture_service.check_destination(capture)
    endpoint.data_capture = capture_service.stored(capture)
    session.commit()
    return get_endpoint(session, name)
