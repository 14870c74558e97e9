"""All SQL of the deployments room: read what is in motion, make each transition.

Every transition is one transaction guarded by the state it expects (the
deployment still active and at the step the runner saw), so a second scheduler
or a person's rollback racing the runner changes nothing twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core import rollouts
from core.broker import component_variant, queue_name
from core.db import session_scope
from core.states import (
    DEPLOYMENT_ACTIVE,
    JOB_UNFINISHED,
    DeploymentState,
    EndpointStatus,
    JobStatus,
)
from core.tables import Deployment, Endpoint, Job, Variant, utcnow
from scheduler.deployments.decisions import Window


@dataclass(frozen=True, slots=True)
class NewVariant:
    queue: str
    min_workers: int


@dataclass(frozen=True, slots=True)
class ActiveDeployment:
    id: str
    endpoint: str
    params: dict[str, Any]
    state: str
    step_index: int
    step_started_at: dt.datetime
    baseline: dict[str, float]
    new_variants: tuple[NewVariant, ...]


@dataclass(frozen=True, slots=True)
class DrainingVariant:
    endpoint: str
    key: str
    queue: str
    runnable: bool = True  # it may have a worker (max_workers ≥ 1)


@dataclass(frozen=True, slots=True)
class DeletingEndpoint:
    name: str
    requested_at: dt.datetime
    queues: tuple[str, ...]
    runnable: bool  # some variant may have a worker (max_workers ≥ 1)


def active_deployments(namespace: str) -> list[ActiveDeployment]:
    """Every deployment in progress or baking, with its new variants' queues."""
    with session_scope() as session:
        rows = session.scalars(
            select(Deployment).where(Deployment.state.in_(DEPLOYMENT_ACTIVE))
        ).all()
        result = []
        for row in rows:
            variants = session.execute(
                select(Variant.name, Variant.min_workers).where(
                    Variant.endpoint_id == row.endpoint_id,
                    Variant.config_version == row.to_version,
                )
            ).all()
            result.append(
                ActiveDeployment(
                    id=row.id,
                    endpoint=row.endpoint,
                    params=dict(row.params),
                    state=row.state,
                    step_index=row.step_index,
                    step_started_at=row.step_started_at or row.created_at,
                    baseline=dict(row.baseline or {}),
                    new_variants=tuple(
                        NewVariant(queue_name(namespace, row.endpoint, key), minimum)
                        for key, minimum in variants
                    ),
                )
            )
        return result


def _locked(
    session: Session, deployment_id: str, step_index: int
) -> tuple[Deployment, Endpoint] | None:
    deployment = session.get(Deployment, deployment_id, with_for_update=True)
    if (
        deployment is None
        or deployment.state not in DEPLOYMENT_ACTIVE
        or deployment.step_index != step_index
    ):
        return None
    endpoint = session.get(Endpoint, deployment.endpoint_id, with_for_update=True)
    if endpoint is None or endpoint.deployment_id != deployment.id:
        return None
    return deployment, endpoint


def advance(
    deployment_id: str,
    *,
    step_index: int,
    next_index: int,
    percent: float,
    last: bool,
    baseline: dict[str, float],
    window: Window | None,
) -> bool:
    """Move `percent` of the traffic to the new config (step `next_index`); False if the
    deployment moved on meanwhile (another scheduler, a person's rollback)."""
    now = utcnow()
    with session_scope() as session:
        locked = _locked(session, deployment_id, step_index)
        if locked is None:
            return False
        deployment, endpoint = locked
        rollouts.finish_step(deployment, outcome="passed", now=now, window=window)
        deployment.steps = [
            *deployment.steps,
            {
                "percent": percent,
                "started_at": now.isoformat(),
                "finished_at": None,
                "outcome": "in_progress",
            },
        ]
        deployment.step_index = next_index
        deployment.step_started_at = now
        deployment.baseline = baseline
        deployment.new_traffic_percent = percent
        if last:
            deployment.state = DeploymentState.BAKING
        endpoint.next_traffic_percent = percent
        return True


def succeed(deployment_id: str, *, step_index: int, window: Window | None) -> bool:
    with session_scope() as session:
        locked = _locked(session, deployment_id, step_index)
        if locked is None:
            return False
        deployment, endpoint = locked
        rollouts.complete(session, endpoint, deployment, window=window)
        return True


def roll_back(
    deployment_id: str,
    *,
    step_index: int,
    state: DeploymentState,
    reason: str,
    window: Window | None,
) -> bool:
    with session_scope() as session:
        locked = _locked(session, deployment_id, step_index)
        if locked is None:
            return False
        deployment, endpoint = locked
        rollouts.route_back(
            session, endpoint, deployment, state=state, reason=reason, window=window
        )
        return True


def draining_variants(namespace: str) -> list[DrainingVariant]:
    """Variants of a config neither serving nor next (replaced or rolled back)."""
    with session_scope() as session:
        rows = session.execute(
            select(Endpoint.name, Variant.name, Variant.max_workers)
            .join(Variant, Variant.endpoint_id == Endpoint.id)
            .where(
                Endpoint.delete_requested_at.is_(None),
                Variant.config_version != Endpoint.config_version,
                (Endpoint.next_config_version.is_(None))
                | (Variant.config_version != Endpoint.next_config_version),
            )
        ).all()
    return [
        DrainingVariant(e, k, queue_name(namespace, e, k), runnable=most > 0) for e, k, most in rows
    ]


def unfinished_jobs(endpoint: str, keys: list[str] | None = None) -> int:
    """Async jobs of the endpoint (of these variant keys) still queued or running."""
    with session_scope() as session:
        query = (
            select(func.count())
            .select_from(Job)
            .where(Job.endpoint == endpoint, Job.status.in_(JOB_UNFINISHED))
        )
        if keys is not None:
            query = query.where(Job.variant.in_(keys))
        return int(session.scalar(query) or 0)


def remove_variant(endpoint: str, key: str) -> bool:
    """Delete a drained variant row (its workers stop at the scaler's next tick)."""
    with session_scope() as session:
        row = session.scalar(
            select(Variant)
            .join(Endpoint, Variant.endpoint_id == Endpoint.id)
            .where(Endpoint.name == endpoint, Variant.name == key)
        )
        if row is None:
            return False
        owner = row.endpoint
        live = {owner.config_version, owner.next_config_version}
        if row.config_version in live:
            return False  # it serves again (another PUT); keep it
        session.delete(row)
        return True


def settle_rolled_back() -> list[str]:
    """Endpoints `rolling_back` with nothing left draining: `in_service` again."""
    with session_scope() as session:
        endpoints = session.scalars(
            select(Endpoint).where(Endpoint.status == EndpointStatus.ROLLING_BACK)
        ).all()
        settled = []
        for endpoint in endpoints:
            live = {endpoint.config_version, endpoint.next_config_version}
            if all(v.config_version in live for v in endpoint.variants):
                endpoint.status = EndpointStatus.IN_SERVICE
                settled.append(endpoint.name)
        return settled


@dataclass(frozen=True, slots=True)
class Creation:
    """An endpoint still `creating` (or `failed` to): since when, and its variants."""

    status: str
    created_at: dt.datetime
    variants: list[NewVariant]
    names: dict[str, str]  # queue → the variant's public name


def creating_endpoints(namespace: str) -> dict[str, Creation]:
    """Endpoints `creating` or `failed`, with their production variants' queues and
    `min_workers` (components have no creation of their own: they place copies)."""
    with session_scope() as session:
        rows = session.execute(
            select(
                Endpoint.name,
                Endpoint.status,
                Endpoint.created_at,
                Variant.name,
                Variant.public_name,
                Variant.min_workers,
            )
            .join(Variant, Variant.endpoint_id == Endpoint.id)
            .where(
                Endpoint.status.in_((EndpointStatus.CREATING, EndpointStatus.FAILED)),
                Endpoint.deployment_id.is_(None),
                Endpoint.delete_requested_at.is_(None),
                Variant.config_version == Endpoint.config_version,
                Variant.shadow_sampling_percent.is_(None),  # production variants only
            )
        ).all()
    result: dict[str, Creation] = {}
    for name, status, created_at, key, public_name, minimum in rows:
        creation = result.setdefault(name, Creation(status, created_at, [], {}))
        queue = queue_name(namespace, name, key)
        creation.variants.append(NewVariant(queue, minimum))
        creation.names[queue] = public_name or key
    return result


def mark_in_service(name: str) -> None:
    """`creating` or `failed` → `in_service` (the guard: a deployment or DELETE since wins)."""
    with session_scope() as session:
        endpoint = session.scalar(select(Endpoint).where(Endpoint.name == name))
        if endpoint is not None and endpoint.status in (
            EndpointStatus.CREATING,
            EndpointStatus.FAILED,
        ):
            endpoint.status = EndpointStatus.IN_SERVICE


def mark_failed(name: str, reason: str) -> bool:
    """`creating` → `failed` with its reason; False if it is no longer creating."""
    with session_scope() as session:
        endpoint = session.scalar(select(Endpoint).where(Endpoint.name == name))
        if endpoint is None or endpoint.status != EndpointStatus.CREATING:
            return False
        endpoint.status = EndpointStatus.FAILED
        endpoint.failure_reason = reason
        return True


def deleting_endpoints(namespace: str) -> list[DeletingEndpoint]:
    with session_scope() as session:
        endpoints = session.scalars(
            select(Endpoint).where(Endpoint.delete_requested_at.is_not(None))
        ).all()
        return [
            DeletingEndpoint(
                name=e.name,
                requested_at=e.delete_requested_at or utcnow(),
                queues=tuple(queue_name(namespace, e.name, v.name) for v in e.variants)
                + tuple(
                    queue_name(namespace, e.name, component_variant(c.name)) for c in e.components
                ),
                runnable=any(v.max_workers > 0 for v in e.variants)
                or any(c.max_copies > 0 for c in e.components),
            )
            for e in endpoints
        ]


def queued_job_ids(endpoint: str, keys: list[str] | None = None) -> list[tuple[str, str | None]]:
    """The endpoint's jobs (of these variant keys) no worker has started: (id, failure_location)."""
    with session_scope() as session:
        query = select(Job.id, Job.failure_location).where(
            Job.endpoint == endpoint, Job.status == JobStatus.QUEUED
        )
        if keys is not None:
            query = query.where(Job.variant.in_(keys))
        rows = session.execute(query).all()
    return [(row.id, row.failure_location) for row in rows]


def remove_endpoint(name: str) -> bool:
    """Delete a drained endpoint (variants, configs and deployments go with it)."""
    with session_scope() as session:
        deleted = session.execute(
            delete(Endpoint).where(Endpoint.name == name, Endpoint.delete_requested_at.is_not(None))
        )
        return bool(deleted.rowcount)  # type: ignore[attr-defined]


def fail_queued_job(job_id: str, *, error: str, finished_at: dt.datetime) -> bool:
    """Fail a job no worker started, with its InferenceFailed event, in one transaction."""
    from sqlalchemy import update

    from core.outbox import record_job_event

    with session_scope() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .values(status=JobStatus.FAILED, error=error, finished_at=finished_at)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            record_job_event(session, job_id)
            return True
        return False
