"""Endpoint updates (`PUT /v1/endpoints/{name}`), config versions, deployments and rollback.

Every accepted PUT records a new immutable config (`endpoint_configs`). What it
changes decides how it applies (`classify_update`, pure):

- only weights, batching, worker bounds or data capture → **in place**: the
  serving variants' rows change and the new config serves at once (200);
- anything else — a model or model version, an accelerator, variants added or
  removed, the async block → a **deployment** (202): the new config's variants
  are added beside the old ones on queues of their own (`a~2`), with no traffic;
  the scheduler (scheduler/deployments/runner.py) starts their workers, moves
  traffic step by step and completes or rolls back.

One deployment per endpoint at a time: the endpoint row's `deployment_id` is
claimed by a conditional UPDATE, so of two PUTs racing one wins and the other
is a 409, on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from api.schemas import (
    DeploymentPublic,
    EndpointConfigPublic,
    EndpointPublic,
    EndpointUpdate,
    UpdateAccepted,
    VariantCreate,
)
from api.services import capture as capture_service
from api.services.endpoints import (
    checked_prefixes,
    deployment_public,
    get_endpoint,
    load_endpoint,
    require_settled,
    serving_shadows,
    serving_variants,
    shadow_row,
    spec_record,
    variant_row,
)
from api.services.registry import resolve_version
from core.broker import get_redis, queue_name, variants_key
from core.config import get_settings
from core.errors import Conflict, InvalidInput, NotFound
from core.rollouts import apply_async_block, route_back
from core.states import DEPLOYMENT_ACTIVE, DeploymentState, EndpointStatus
from core.tables import (
    VARIANT_KEY_SEPARATOR,
    Deployment,
    Endpoint,
    EndpointConfig,
    ModelVersion,
    Variant,
    new_id,
    utcnow,
)

UpdateKind = Literal["in_place", "deployment"]

MAX_VARIANTS = 16

# The fields of a variant that need new workers when they change.
_VARIANT_IDENTITY = ("model", "model_version", "accelerator")


def identity(record: dict[str, Any]) -> dict[str, Any]:
    """What of a stored spec needs new workers or changes where results go if it differs:
    each variant's model, version and accelerator, and the async block."""
    return {
        "variants": {
            v["name"]: {field: v.get(field) for field in _VARIANT_IDENTITY}
            for v in record["variants"]
        },
        "shadow_variants": {
            v["name"]: {field: v.get(field) for field in (*_VARIANT_IDENTITY, "sampling_percent")}
            for v in record.get("shadow_variants") or []
        },
        "async": dict(record.get("async") or {}),
    }


def classify_update(current: dict[str, Any], new: dict[str, Any]) -> UpdateKind:
    """`in_place` when only weights, batching, worker bounds or capture differ, else
    `deployment` (both arguments are `identity` views).

    Variant `a` on model churn v3 → v4: deployment. Weights 1:1 → 1:3: in place.
    A variant added or removed: deployment.
    """
    return "in_place" if current == new else "deployment"


def _current_identity(endpoint: Endpoint) -> dict[str, Any]:
    """The serving config's identity, read from the rows (endpoints from before
    config versions have no stored spec)."""
    return {
        "variants": {
            v.display_name: {
                "model": _version_of(v).model.name,
                "model_version": _version_of(v).version,
                "accelerator": v.accelerator,
            }
            for v in serving_variants(endpoint)
        },
        "shadow_variants": {
            v.display_name: {
                "model": _version_of(v).model.name,
                "model_version": _version_of(v).version,
                "accelerator": v.accelerator,
                "sampling_percent": v.shadow_sampling_percent,
            }
            for v in serving_shadows(endpoint)
        },
        "async": {
            "output_prefix": endpoint.output_prefix,
            "success_topic": endpoint.success_topic,
            "error_topic": endpoint.error_topic,
            "failure_prefix": endpoint.failure_prefix,
            "invocation_timeout_s": endpoint.invocation_timeout_s,
            "max_concurrent_invocations_per_worker": endpoint.max_concurrent_invocations_per_worker,
        },
    }


def _next_version(session: Session, endpoint: Endpoint) -> int:
    stored = session.scalar(
        select(func.max(EndpointConfig.version)).where(EndpointConfig.endpoint_id == endpoint.id)
    )
    return max(stored or 0, endpoint.config_version, endpoint.next_config_version or 0) + 1


def _version_of(variant: Variant) -> ModelVersion:
    """A one-model variant's version; configs never hold multi-model ones (refuse_multi_model)."""
    if variant.model_version is None:
        raise InvalidInput(f"variant {variant.display_name!r} is a multi-model variant")
    return variant.model_version


def _resolve(session: Session, spec: VariantCreate) -> ModelVersion:
    """The version a one-model variant spec names (refuse_multi_model ran first)."""
    if spec.model is None:
        raise InvalidInput(f"variant {spec.name!r} names no model")
    return resolve_version(session, spec.model, spec.model_version)


def refuse_multi_model(endpoint: Endpoint, variants: Sequence[VariantCreate], what: str) -> None:
    """InvalidInput (422): configs and deployments do not hold multi-model variants yet.

    A multi-model variant is created with its endpoint and changed with PATCH (weights,
    batching, workers); docs/multi-model.md says so.
    """
    if any(v.multi_model is not None for v in variants) or any(
        v.multi_model_prefix is not None for v in endpoint.variants
    ):
        raise InvalidInput(
            f"{what} is not available for multi-model variants yet: create the endpoint with "
            "them and change weights, batching or workers with PATCH"
        )


def update_endpoint(
    session: Session, name: str, spec: EndpointUpdate
) -> tuple[UpdateAccepted, int]:
    """Apply a whole new spec: in place (200) or as a deployment (202).

    InvalidInput when the body names another endpoint or a model/topic is unknown;
    Conflict while the endpoint is deleting or another deployment runs.
    """
    if spec.name != name:
        raise InvalidInput(f"the spec names endpoint {spec.name!r}, the path {name!r}")
    endpoint = load_endpoint(session, name)
    require_settled(endpoint)
    if not spec.variants and serving_variants(endpoint):
        # As with removing the last variant: there would be nothing to shift traffic to.
        raise InvalidInput(
            f"the spec has no production variant; endpoint {name!r} serves "
            f"{sorted(v.display_name for v in serving_variants(endpoint))}: name at least one, "
            "or delete the endpoint"
        )
    refuse_multi_model(endpoint, spec.variants, "PUT")
    output_prefix, failure_prefix = checked_prefixes(session, spec)
    versions = [_resolve(session, v) for v in spec.variants]
    shadow_versions = [
        resolve_version(session, v.model, v.model_version) for v in spec.shadow_variants
    ]
    record = spec_record(
        spec,
        versions,
        output_prefix=output_prefix,
        failure_prefix=failure_prefix,
        shadow_versions=shadow_versions,
    )
    version = _next_version(session, endpoint)
    kind = classify_update(_current_identity(endpoint), identity(record))
    config = EndpointConfig(endpoint_id=endpoint.id, version=version, spec=record)
    # An endpoint of components only has no variant workers to replace: its async
    # block (read per accepted job) applies at once, as weights do.
    if kind == "in_place" or not spec.variants:
        by_name = {v.display_name: v for v in serving_variants(endpoint)}
        for wanted in spec.variants:
            row = by_name[wanted.name]
            row.weight = wanted.weight
            row.min_workers, row.max_workers = wanted.min_workers, wanted.max_workers
            row.target_backlog_per_worker = wanted.target_backlog_per_worker
            row.max_batch_size = wanted.batching.max_batch_size
            row.max_delay_ms = wanted.batching.max_delay_ms
            row.config_version = version
        for shadow in serving_shadows(endpoint):  # unchanged (else it is a deployment)
            shadow.config_version = version
        endpoint.config_version = version
        endpoint.data_capture = capture_service.stored(spec.data_capture)
        apply_async_block(endpoint, record.get("async") or {})
        session.add(config)
        _commit(session, name)
        return (
            UpdateAccepted(
                applied="in_place",
                config_version=version,
                deployment_id=None,
                deployment=None,
                endpoint=get_endpoint(session, name),
            ),
            200,
        )

    deployment_id = new_id()
    claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Endpoint)
        .where(
            Endpoint.id == endpoint.id,
            Endpoint.deployment_id.is_(None),
            Endpoint.delete_requested_at.is_(None),
        )
        .values(
            deployment_id=deployment_id,
            next_config_version=version,
            next_traffic_percent=0.0,
            status=EndpointStatus.UPDATING,
            data_capture=capture_service.stored(spec.data_capture),
        )
    )
    if not claimed.rowcount:
        session.rollback()
        raise Conflict(f"another deployment of endpoint {name!r} started first")
    plan = (
        spec.deployment.model_dump(mode="json")
        if spec.deployment
        else {"strategy": "all_at_once", "step_interval_s": 0.0, "baking_s": 0.0}
    )
    if spec.deployment is None:
        plan.update({"canary_percent": None, "linear_step_percent": None, "rollback_on": None})
    now = utcnow()
    session.add(config)
    new_variants = [
        variant_row(
            v,
            key=f"{v.name}{VARIANT_KEY_SEPARATOR}{version}",
            config_version=version,
            model={"model_version_id": model_version.id},
        )
        for v, model_version in zip(spec.variants, versions, strict=True)
    ]
    new_variants += [
        shadow_row(
            shadow,
            model_version,
            key=f"{shadow.name}{VARIANT_KEY_SEPARATOR}{version}",
            config_version=version,
        )
        for shadow, model_version in zip(spec.shadow_variants, shadow_versions, strict=True)
    ]
    for row in new_variants:
        row.endpoint_id = endpoint.id
    session.add_all(new_variants)
    session.add(
        Deployment(
            id=deployment_id,
            endpoint_id=endpoint.id,
            endpoint=name,
            from_version=endpoint.config_version,
            to_version=version,
            strategy=plan["strategy"],
            params=plan,
            state=DeploymentState.IN_PROGRESS,
            step_index=-1,
            step_started_at=now,
            steps=[],
            new_traffic_percent=0.0,
            created_at=now,
        )
    )
    _commit(session, name)
    namespace = get_settings().namespace
    get_redis().sadd(
        variants_key(namespace), *[queue_name(namespace, name, v.name) for v in new_variants]
    )
    session.expire_all()
    started = session.get(Deployment, deployment_id)
    assert started is not None
    return (
        UpdateAccepted(
            applied="deployment",
            config_version=version,
            deployment_id=deployment_id,
            deployment=deployment_public(started),
            endpoint=get_endpoint(session, name),
        ),
        202,
    )


def _commit(session: Session, name: str) -> None:
    from sqlalchemy.exc import IntegrityError

    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"endpoint {name!r} changed meanwhile (a concurrent update); retry") from exc


def list_configs(session: Session, name: str) -> list[EndpointConfigPublic]:
    endpoint = load_endpoint(session, name)
    rows = session.scalars(
        select(EndpointConfig)
        .where(EndpointConfig.endpoint_id == endpoint.id)
        .order_by(EndpointConfig.version)
    ).all()
    return [_config_public(endpoint, row) for row in rows]


def get_config(session: Session, name: str, version: int) -> EndpointConfigPublic:
    endpoint = load_endpoint(session, name)
    row = session.scalar(
        select(EndpointConfig).where(
            EndpointConfig.endpoint_id == endpoint.id, EndpointConfig.version == version
        )
    )
    if row is None:
        raise NotFound(f"endpoint {name!r} has no config version {version}")
    return _config_public(endpoint, row)


def _config_public(endpoint: Endpoint, row: EndpointConfig) -> EndpointConfigPublic:
    return EndpointConfigPublic(
        version=row.version,
        serving=row.version == endpoint.config_version,
        spec=row.spec,
        created_at=row.created_at,
    )


def list_deployments(session: Session, name: str) -> list[DeploymentPublic]:
    endpoint = load_endpoint(session, name)
    rows = session.scalars(
        select(Deployment)
        .where(Deployment.endpoint_id == endpoint.id)
        .order_by(Deployment.created_at.desc())
    ).all()
    return [deployment_public(row) for row in rows]


def _load_deployment(
    session: Session, name: str, deployment_id: str
) -> tuple[Endpoint, Deployment]:
    endpoint = load_endpoint(session, name)
    row = session.get(Deployment, deployment_id)
    if row is None or row.endpoint_id != endpoint.id:
        raise NotFound(f"endpoint {name!r} has no deployment {deployment_id!r}")
    return endpoint, row


def get_deployment(session: Session, name: str, deployment_id: str) -> DeploymentPublic:
    return deployment_public(_load_deployment(session, name, deployment_id)[1])


def roll_back(session: Session, name: str, deployment_id: str) -> DeploymentPublic:
    """Send all traffic back to the old config now; Conflict unless the deployment is active."""
    endpoint, row = _load_deployment(session, name, deployment_id)
    if row.state not in DEPLOYMENT_ACTIVE or endpoint.deployment_id != row.id:
        raise Conflict(f"deployment {deployment_id} is {row.state}; only an active one rolls back")
    route_back(
        session,
        endpoint,
        row,
        state=DeploymentState.ROLLED_BACK,
        reason="rolled back by hand (POST .../rollback)",
    )
    session.commit()
    return deployment_public(row)


# --- live variants: added and removed in place --------------------------------------


def _record_from_rows(endpoint: Endpoint, variants: list[Variant]) -> dict[str, Any]:
    """A config spec (as stored) for `variants`, the serving shadows and the endpoint's
    current settings."""
    return {
        "shadow_variants": [
            {
                "name": v.display_name,
                "model": _version_of(v).model.name,
                "model_version": _version_of(v).version,
                "sampling_percent": v.shadow_sampling_percent,
                "accelerator": v.accelerator,
                "min_workers": v.min_workers,
                "max_workers": v.max_workers,
                "batching": {"max_batch_size": v.max_batch_size, "max_delay_ms": v.max_delay_ms},
            }
            for v in serving_shadows(endpoint)
        ],
        "name": endpoint.name,
        "variants": [
            {
                "name": v.display_name,
                "model": _version_of(v).model.name,
                "model_version": _version_of(v).version,
                "weight": v.weight,
                "accelerator": v.accelerator,
                "min_workers": v.min_workers,
                "max_workers": v.max_workers,
                "target_backlog_per_worker": v.target_backlog_per_worker,
                "batching": {"max_batch_size": v.max_batch_size, "max_delay_ms": v.max_delay_ms},
            }
            for v in variants
        ],
        "async": _current_identity(endpoint)["async"],
        "data_capture": endpoint.data_capture,
    }


def add_variant(session: Session, name: str, spec: VariantCreate) -> EndpointPublic:
    """Add a production variant in place: a new config with it, serving at once.

    Conflict when a serving variant has that name, or during a deployment or deletion.
    """
    endpoint = load_endpoint(session, name)
    require_settled(endpoint)
    refuse_multi_model(endpoint, [spec], "adding a variant")
    serving = serving_variants(endpoint)
    if any(v.display_name == spec.name for v in [*serving, *serving_shadows(endpoint)]):
        raise Conflict(f"endpoint {name!r} already has a variant {spec.name!r}")
    if len(serving) >= MAX_VARIANTS:
        raise InvalidInput(f"endpoint {name!r} has {len(serving)} variants; the most is 16")
    model_version = _resolve(session, spec)
    version = _next_version(session, endpoint)
    # A draining variant of the same name still holds the plain key: key the new one apart.
    taken = {v.name for v in endpoint.variants}
    key = spec.name if spec.name not in taken else f"{spec.name}{VARIANT_KEY_SEPARATOR}{version}"
    row = variant_row(
        spec, key=key, config_version=version, model={"model_version_id": model_version.id}
    )
    endpoint.variants.append(row)
    session.flush()
    session.refresh(row, ["model_version"])
    record = _record_from_rows(endpoint, [*serving, row])
    for variant in [*serving, *serving_shadows(endpoint)]:
        variant.config_version = version
    endpoint.config_version = version
    session.add(EndpointConfig(endpoint_id=endpoint.id, version=version, spec=record))
    _commit(session, name)
    namespace = get_settings().namespace
    get_redis().sadd(variants_key(namespace), queue_name(namespace, name, key))
    return get_endpoint(session, name)


def remove_variant(session: Session, name: str, variant_name: str) -> EndpointPublic:
    """Take a production variant out of service in place: it gets no new traffic at once,
    its queued work finishes on its workers, then the scheduler removes it.

    NotFound for an unknown variant; Conflict for the last production variant (or
    one whose removal leaves no weight above 0), during a deployment or deletion.
    """
    endpoint = load_endpoint(session, name)
    require_settled(endpoint)
    serving = serving_variants(endpoint)
    gone = next((v for v in serving if v.display_name == variant_name), None)
    if gone is None:
        raise NotFound(f"endpoint {name!r} has no variant {variant_name!r}")
    rest = [v for v in serving if v is not gone]
    if not rest:
        raise Conflict(
            f"variant {variant_name!r} is endpoint {name!r}'s last production variant; "
            "delete the endpoint instead"
        )
    if sum(v.weight for v in rest) <= 0:
        raise Conflict(
            f"removing variant {variant_name!r} would leave no variant with a weight above 0; "
            "give another variant a weight first"
        )
    version = _next_version(session, endpoint)
    record = _record_from_rows(endpoint, rest)
    for variant in [*rest, *serving_shadows(endpoint)]:
        variant.config_version = version
    endpoint.config_version = version  # `gone` keeps its old config: it is draining now
    session.add(EndpointConfig(endpoint_id=endpoint.id, version=version, spec=record))
    _commit(session, name)
    return get_endpoint(session, name)
