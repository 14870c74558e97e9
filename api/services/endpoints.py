"""Endpoints and their weighted variants: create, read, delete, re-weight, re-tune.

Each variant owns one Redis queue; the set of live queues is published in Redis
(`variants_key`) so workers start consuming a new variant within seconds. The
scaler reads `min_workers`, `max_workers` and `target_backlog_per_worker` from
SQL every tick, so a PATCH reaches it within a second or two.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session, selectinload

from api.schemas import (
    AsyncPublic,
    Batching,
    DataCapture,
    DeploymentPublic,
    DeploymentStep,
    EndpointCreate,
    EndpointPublic,
    MultiModel,
    ScalingEventPublic,
    ShadowVariantCreate,
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
from core.rollouts import route_back, traffic_shares
from core.states import JOB_UNFINISHED, DeploymentState, EndpointStatus
from core.storage import S3Location
from core.tables import (
    Deployment,
    Endpoint,
    EndpointConfig,
    InferenceComponent,
    Job,
    ModelVersion,
    Variant,
    utcnow,
)


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
    latest = latest_deployments(endpoints)
    result = []
    for endpoint in endpoints:
        variants: list[VariantPublic] = []
        shares = traffic_shares(endpoint)
        shadows: list[VariantPublic] = []
        totals: dict[int, float] = {}
        for v in endpoint.variants:
            if not v.is_shadow:
                totals[v.config_version] = totals.get(v.config_version, 0.0) + v.weight
        for variant, queue in zip(endpoint.variants, _queues(endpoint), strict=True):
            version = variant.model_version
            share = None if variant.is_shadow else shares.get(variant.config_version)
            total = totals.get(variant.config_version, 0.0)
            (shadows if variant.is_shadow else variants).append(
                VariantPublic(
                    sampling_percent=variant.shadow_sampling_percent,
                    name=variant.display_name,
                    key=variant.name,
                    config_version=variant.config_version,
                    role=_role(endpoint, variant),
                    traffic_percent=(
                        round(100.0 * share * variant.weight / total, 6)
                        if share is not None and total > 0
                        else 0.0
                    ),
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
        status = endpoint.status
        if status in (EndpointStatus.CREATING, EndpointStatus.FAILED) and all(
            current.get(queue, 0) >= 1
            for variant, queue in zip(endpoint.variants, _queues(endpoint), strict=True)
            if variant.min_workers >= 1 and not variant.is_shadow
        ):
            # Its workers consume already; the scheduler records it within a tick.
            status = EndpointStatus.IN_SERVICE
        result.append(
            EndpointPublic(
                name=endpoint.name,
                status=status,
                failure_reason=endpoint.failure_reason if status == EndpointStatus.FAILED else None,
                config_version=endpoint.config_version,
                deployment=latest.get(endpoint.id),
                variants=variants,
                shadow_variants=shadows,
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


def _role(endpoint: Endpoint, variant: Variant) -> Literal["serving", "new", "draining"]:
    if variant.config_version == endpoint.config_version:
        return "serving"
    if variant.config_version == endpoint.next_config_version:
        return "new"
    return "draining"


def latest_deployments(endpoints: list[Endpoint]) -> dict[int, DeploymentPublic]:
    """Each endpoint's current or last deployment (one query for all of them)."""
    if not endpoints:
        return {}
    session = object_session(endpoints[0])
    if session is None:
        return {}
    rows = session.scalars(
        select(Deployment)
        .where(Deployment.endpoint_id.in_([e.id for e in endpoints]))
        .order_by(Deployment.created_at)
    ).all()
    return {row.endpoint_id: deployment_public(row) for row in rows}


def deployment_public(row: Deployment) -> DeploymentPublic:
    return DeploymentPublic(
        deployment_id=row.id,
        endpoint=row.endpoint,
        strategy=row.strategy,
        state=row.state,
        from_config_version=row.from_version,
        to_config_version=row.to_version,
        new_traffic_percent=row.new_traffic_percent,
        steps=[DeploymentStep(**step) for step in row.steps],
        reason=row.reason,
        deployment={k: v for k, v in row.params.items() if k != "percents"},
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def serving_variants(endpoint: Endpoint) -> list[Variant]:
    """The production variants of the config serving now (not a deployment's new or
    draining ones, not shadows)."""
    return [
        v
        for v in endpoint.variants
        if v.config_version == endpoint.config_version and not v.is_shadow
    ]


def serving_shadows(endpoint: Endpoint) -> list[Variant]:
    """The shadow variants of the config serving now."""
    return [
        v for v in endpoint.variants if v.config_version == endpoint.config_version and v.is_shadow
    ]


def require_settled(endpoint: Endpoint) -> None:
    """Conflict while the endpoint is being deleted or a deployment runs on it."""
    if endpoint.delete_requested_at is not None:
        raise Conflict(f"endpoint {endpoint.name!r} is being deleted")
    if endpoint.deployment_id is not None:
        raise Conflict(
            f"deployment {endpoint.deployment_id} of endpoint {endpoint.name!r} is in progress; "
            "wait for it to finish or roll it back"
        )


def spec_record(
    spec: EndpointCreate,
    versions: Sequence[ModelVersion | None],
    *,
    output_prefix: str,
    failure_prefix: str | None,
    shadow_versions: list[ModelVersion] | None = None,
) -> dict[str, Any]:
    """The spec as stored in a config: versions resolved, prefixes normalized (JSON)."""
    record: dict[str, Any] = spec.model_dump(by_alias=True, mode="json", exclude={"deployment"})
    for variant, version in zip(record["variants"], versions, strict=True):
        if version is not None:  # None: a multi-model variant (its prefix is recorded)
            variant["model_version"] = version.version
    for shadow, version in zip(record["shadow_variants"], shadow_versions or [], strict=True):
        shadow["model_version"] = version.version
    record["async"]["output_prefix"] = output_prefix
    record["async"]["failure_prefix"] = failure_prefix
    return record


def variant_row(
    spec: VariantCreate, *, key: str, config_version: int, model: dict[str, Any]
) -> Variant:
    """A production variant's row from its spec, keyed `key` (the spec's name, or
    `name~<version>` beside a draining namesake); `model` holds the columns naming what
    it serves (`model_version_id`, or a multi-model variant's prefix columns)."""
    return Variant(
        name=key,
        public_name=None if key == spec.name else spec.name,
        config_version=config_version,
        **model,
        weight=spec.weight,
        accelerator=spec.accelerator,
        min_workers=spec.min_workers,
        max_workers=spec.max_workers,
        target_backlog_per_worker=spec.target_backlog_per_worker,
        max_batch_size=spec.batching.max_batch_size,
        max_delay_ms=spec.batching.max_delay_ms,
    )


def shadow_row(
    spec: ShadowVariantCreate, version: ModelVersion, *, key: str, config_version: int
) -> Variant:
    """A shadow variant's row: weight 0 (never chosen for a caller), its sampling share set."""
    return Variant(
        name=key,
        public_name=None if key == spec.name else spec.name,
        config_version=config_version,
        model_version_id=version.id,
        weight=0.0,
        shadow_sampling_percent=spec.sampling_percent,
        accelerator=spec.accelerator,
        min_workers=spec.min_workers,
        max_workers=spec.max_workers,
        max_batch_size=spec.batching.max_batch_size,
        max_delay_ms=spec.batching.max_delay_ms,
    )


def prefix_of(uri: str) -> str:
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


def _served_model(
    session: Session, spec: VariantCreate
) -> tuple[dict[str, object], ModelVersion | None]:
    """The Variant columns of what it serves (a registered version, or a multi-model
    prefix) and that version (None for a prefix).

    InvalidInput (422) for an unknown model, or a prefix the platform may not read.
    """
    if spec.multi_model is None:
        assert spec.model is not None  # the schema requires one of the two
        version = resolve_version(session, spec.model, spec.model_version)
        return {"model_version_id": version.id}, version
    prefix = prefix_of(spec.multi_model.prefix)
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
    }, None


def checked_prefixes(session: Session, spec: EndpointCreate) -> tuple[str, str | None]:
    """The spec's async output and failure prefixes, normalized, after checking its topics
    and data capture destination (InvalidInput / NotFound naming the field)."""
    output_prefix = prefix_of(
        spec.async_.output_prefix or f"{get_settings().default_output_prefix}{spec.name}/"
    )
    failure_prefix = prefix_of(spec.async_.failure_prefix) if spec.async_.failure_prefix else None
    require_topics(
        session,
        {
            "async.success_topic": spec.async_.success_topic,
            "async.error_topic": spec.async_.error_topic,
        },
    )
    if spec.data_capture is not None:
        capture_service.check_destination(spec.data_capture)
    return output_prefix, failure_prefix


def create_endpoint(session: Session, spec: EndpointCreate) -> EndpointPublic:
    output_prefix, failure_prefix = checked_prefixes(session, spec)
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
    served = [_served_model(session, v) for v in spec.variants]
    versions = [version for _, version in served]
    # `creating` until a worker of each variant that wants one consumes (the scheduler).
    if any(v.min_workers >= 1 for v in spec.variants):
        endpoint.status = EndpointStatus.CREATING
    else:
        endpoint.status = EndpointStatus.IN_SERVICE
    shadow_versions = [
        resolve_version(session, v.model, v.model_version) for v in spec.shadow_variants
    ]
    for shadow, version in zip(spec.shadow_variants, shadow_versions, strict=True):
        endpoint.variants.append(shadow_row(shadow, version, key=shadow.name, config_version=1))
    for v, (columns, _) in zip(spec.variants, served, strict=True):
        endpoint.variants.append(variant_row(v, key=v.name, config_version=1, model=columns))
    session.add(endpoint)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"an endpoint named {spec.name!r} already exists") from exc
    session.add(
        EndpointConfig(
            endpoint_id=endpoint.id,
            version=1,
            spec=spec_record(
                spec,
                versions,
                output_prefix=output_prefix,
                failure_prefix=failure_prefix,
                shadow_versions=shadow_versions,
            ),
        )
    )
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"an endpoint named {spec.name!r} already exists") from exc
    endpoint = load_endpoint(session, spec.name)
    if endpoint.variants:  # none: components only, added later
        get_redis().sadd(variants_key(get_settings().namespace), *_queues(endpoint))
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
    """Mark the endpoint `deleting`: it takes no new requests, and the scheduler removes
    it once its queued work is done (or failed "endpoint deleted" when it cannot run).

    A deployment in progress is stopped (all traffic was still partly on the old config).
    """
    endpoint = load_endpoint(session, name)
    if endpoint.delete_requested_at is not None:
        return
    if endpoint.deployment_id is not None:
        deployment = session.get(Deployment, endpoint.deployment_id)
        if deployment is not None:
            route_back(
                session,
                endpoint,
                deployment,
                state=DeploymentState.STOPPED,
                reason="stopped: the endpoint was deleted",
            )
    endpoint.delete_requested_at = utcnow()
    endpoint.status = EndpointStatus.DELETING
    session.commit()
    # Nothing outstanding (the usual case): gone at once, as before. Otherwise the
    # scheduler removes it once its queued work is done (scheduler/deployments/runner.py).
    queues = _queues(endpoint)
    queues += [component_views.component_queue(endpoint.name, c.name) for c in endpoint.components]
    multi_model = [
        queue_name(get_settings().namespace, endpoint.name, v.name)
        for v in endpoint.variants
        if v.multi_model_prefix is not None
    ]
    redis = get_redis()
    loads = queue_loads(redis, get_settings().namespace, queues)
    unfinished = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.endpoint == name, Job.status.in_(JOB_UNFINISHED))
    )
    if unfinished or any(load.backlog for load in loads.values()):
        return
    session.delete(endpoint)
    session.commit()
    if queues:
        redis.srem(variants_key(get_settings().namespace), *queues)
    for queue in multi_model:  # a re-created endpoint of the same name starts counting anew
        forget_models(redis, get_settings().namespace, queue)


def set_weights(session: Session, name: str, patch: WeightsPatch) -> EndpointPublic:
    """Set the named production variants' weights at once; the others keep theirs.

    NotFound for an unknown endpoint; InvalidInput when the body names a variant the
    endpoint does not have (the path exists: the body is what is wrong) or every weight
    would be 0; Conflict during a deployment or deletion.
    """
    endpoint = load_endpoint(session, name)
    require_settled(endpoint)
    by_name = {v.display_name: v for v in serving_variants(endpoint)}
    unknown = [w.name for w in patch.variants if w.name not in by_name]
    if unknown:
        raise InvalidInput(
            f"endpoint {name!r} has no variant(s) {unknown}; it has {sorted(by_name)}"
        )
    new_weights = {name: v.weight for name, v in by_name.items()}
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
    require_settled(endpoint)
    variant = next((v for v in serving_variants(endpoint) if v.display_name == variant_name), None)
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
