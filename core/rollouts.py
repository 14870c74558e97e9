"""The transitions of an endpoint's lifecycle that both the API and the scheduler make.

An endpoint serves config `config_version`; during a deployment its traffic is
split with `next_config_version` (`next_traffic_percent` of it goes to the new
config's variants). These functions change those columns and the deployment
row together, in the caller's session (the caller commits): one transaction
moves the traffic and records why, so a process killed in between changed
nothing. Variants of a config that is neither serving nor next are *draining*:
they get no traffic and are deleted by the scheduler once their queued work is
done (scheduler/deployments/runner.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from core.states import DeploymentState, EndpointStatus
from core.tables import Deployment, Endpoint, EndpointConfig, utcnow


def finish_step(deployment: Deployment, *, outcome: str, now: dt.datetime, window: Any) -> None:
    """Close the current step's entry in `steps` with its outcome and window counts."""
    if deployment.step_index < 0 or not deployment.steps:
        return
    steps = [dict(step) for step in deployment.steps]
    current = steps[-1]
    if current.get("finished_at") is None:
        current["finished_at"] = now.isoformat()
        current["outcome"] = outcome
        if window is not None:
            current["requests"] = window.requests
            current["errors"] = window.errors
            current["p99_ms"] = window.p99_ms
    deployment.steps = steps


def route_back(
    session: Session,
    endpoint: Endpoint,
    deployment: Deployment,
    *,
    state: DeploymentState,
    reason: str,
    window: Any = None,
    now: dt.datetime | None = None,
) -> None:
    """All traffic back on the serving config; the new variants drain and stop.

    `state` is `rolled_back` (a threshold or a person), `failed` (its workers never
    started) or `stopped`. The endpoint is `rolling_back` until the new variants'
    queued work is done, then `in_service` (the scheduler's drain).
    """
    now = now or utcnow()
    finish_step(deployment, outcome=str(state), now=now, window=window)
    deployment.state = state
    deployment.reason = reason
    deployment.new_traffic_percent = 0.0
    deployment.finished_at = now
    endpoint.next_config_version = None
    endpoint.next_traffic_percent = None
    endpoint.deployment_id = None
    endpoint.status = EndpointStatus.ROLLING_BACK


def complete(
    session: Session,
    endpoint: Endpoint,
    deployment: Deployment,
    *,
    window: Any = None,
    now: dt.datetime | None = None,
) -> None:
    """The new config serves all traffic; the old config's variants drain and stop.

    Endpoint-wide settings of the new config (the async block) apply now.
    """
    now = now or utcnow()
    finish_step(deployment, outcome="passed", now=now, window=window)
    deployment.state = DeploymentState.SUCCEEDED
    deployment.new_traffic_percent = 100.0
    deployment.finished_at = now
    config = (
        session.query(EndpointConfig)
        .filter_by(endpoint_id=endpoint.id, version=deployment.to_version)
        .one()
    )
    apply_async_block(endpoint, config.spec.get("async") or {})
    endpoint.config_version = deployment.to_version
    endpoint.next_config_version = None
    endpoint.next_traffic_percent = None
    endpoint.deployment_id = None
    endpoint.status = EndpointStatus.IN_SERVICE


def apply_async_block(endpoint: Endpoint, block: dict[str, Any]) -> None:
    """Set the endpoint's async columns from a stored config's (already normalized) block."""
    if "output_prefix" in block:
        endpoint.output_prefix = block["output_prefix"]
    endpoint.success_topic = block.get("success_topic")
    endpoint.error_topic = block.get("error_topic")
    endpoint.failure_prefix = block.get("failure_prefix")
    if block.get("invocation_timeout_s") is not None:
        endpoint.invocation_timeout_s = block["invocation_timeout_s"]
    endpoint.max_concurrent_invocations_per_worker = block.get(
        "max_concurrent_invocations_per_worker"
    )


def traffic_shares(endpoint: Endpoint) -> dict[int, float]:
    """Config version → its share of traffic (0-1): `{3: 0.9, 4: 0.1}` during a 10 % canary."""
    new_share = (endpoint.next_traffic_percent or 0.0) / 100.0
    if endpoint.next_config_version is None:
        return {endpoint.config_version: 1.0}
    return {endpoint.config_version: 1.0 - new_share, endpoint.next_config_version: new_share}
