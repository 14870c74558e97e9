"""The panels of a console endpoint page: one template partial each, fed by a service.

A panel is a title, a template under templates/panels/ and a loader: the
loader gets the request's database session, the endpoint (as GET
/v1/endpoints/{name} shows it) and the caller's key, and returns the
template's context, or None when the panel has nothing to show (so it is left
out). The endpoint page renders every panel of `PANELS` in order.

Adding a panel when a capability lands (deployment timeline, shadow report,
models loaded, components, monitoring violations) is a loader over that
capability's service, a partial, and one line here; no page changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from api.console import history
from api.schemas import EndpointPublic, ModelLoadPublic
from api.services import deployments as deployment_service
from api.services import jobs as job_service
from api.services import monitoring as monitoring_service
from api.services import multi_models
from api.services import shadows as shadow_service
from core.apikeys import KeyInfo

Loader = Callable[[Session, EndpointPublic, KeyInfo | None], dict[str, Any] | None]
HISTORY_WINDOW_S = 3600.0
RECENT_JOBS = 10
MODELS_LISTED = 500  # the first models of the prefixes, in key order (one S3 listing page)
MODELS_SHOWN = 50
DEPLOYMENTS_SHOWN = 5
SHADOW_TOLERANCE = 1e-6  # GET /v1/endpoints/{name}/shadow-report's default


@dataclass(frozen=True, slots=True)
class Panel:
    id: str
    title: str
    template: str
    load: Loader


def _variants(_s: Session, endpoint: EndpointPublic, _k: KeyInfo | None) -> dict[str, Any] | None:
    if not endpoint.variants and endpoint.components:
        return None  # an endpoint of components only: no empty variants table
    return {"endpoint": endpoint}


def _components(_s: Session, endpoint: EndpointPublic, _k: KeyInfo | None) -> dict[str, Any] | None:
    """Each inference component's copies and placements, and the hosts' room."""
    if not endpoint.components:
        return None
    return {"endpoint": endpoint}


def _plots(_s: Session, endpoint: EndpointPublic, _k: KeyInfo | None) -> dict[str, Any]:
    since = time.time() - HISTORY_WINDOW_S
    points = history.read_points(endpoint, since=since)
    return {
        "endpoint": endpoint,
        "charts": history.charts(points),
        "last": history.last_time(points, since),
        "window_s": HISTORY_WINDOW_S,
    }


def _scaling(_s: Session, endpoint: EndpointPublic, _k: KeyInfo | None) -> dict[str, Any] | None:
    events = [(v.name, e) for v in endpoint.variants for e in v.scaling_events]
    if not events:
        return None
    events.sort(key=lambda pair: pair[1].at, reverse=True)
    return {"events": events}


def _jobs(session: Session, endpoint: EndpointPublic, key: KeyInfo | None) -> dict[str, Any]:
    jobs = job_service.list_jobs(session, endpoint=endpoint.name, limit=RECENT_JOBS, key=key)
    return {"endpoint": endpoint, "jobs": jobs}


def _monitoring(
    session: Session, endpoint: EndpointPublic, _k: KeyInfo | None
) -> dict[str, Any] | None:
    """Data capture and the endpoint's monitoring schedules with their last run's violations."""
    schedules = [
        s for s in monitoring_service.list_schedules(session) if s.endpoint == endpoint.name
    ]
    capture = endpoint.data_capture
    if not schedules and (capture is None or not capture.enabled):
        return None
    return {"capture": capture, "schedules": schedules}


def deployments(
    session: Session, endpoint: EndpointPublic, _k: KeyInfo | None
) -> dict[str, Any] | None:
    """The newest deployments, each with its steps (traffic %, requests, errors, p99) and
    why it rolled back; None before the endpoint's first deployment."""
    deployments = deployment_service.list_deployments(session, endpoint.name)
    if not deployments:
        return None
    return {
        "endpoint": endpoint,
        "deployments": deployments[:DEPLOYMENTS_SHOWN],
        "more": max(len(deployments) - DEPLOYMENTS_SHOWN, 0),
    }


def _shadow(
    session: Session, endpoint: EndpointPublic, _k: KeyInfo | None
) -> dict[str, Any] | None:
    """Each shadow variant against production (the shadow report at its default tolerance);
    None without a shadow variant."""
    if not endpoint.shadow_variants:
        return None
    report = shadow_service.shadow_report(session, endpoint.name, SHADOW_TOLERANCE)
    sampling = {v.name: v.sampling_percent for v in endpoint.shadow_variants}
    return {"report": report, "sampling": sampling}


def loaded_first(models: list[ModelLoadPublic]) -> list[ModelLoadPublic]:
    """Loaded models first, most recently used first; then the others in key order."""
    loaded = sorted(
        (m for m in models if m.loaded_on),
        key=lambda m: (m.last_used_at is not None, m.last_used_at),
        reverse=True,
    )
    return loaded + [m for m in models if not m.loaded_on]


def _models_loaded(
    session: Session, endpoint: EndpointPublic, _k: KeyInfo | None
) -> dict[str, Any] | None:
    """A multi-model endpoint's models (GET /v1/endpoints/{name}/models): where each is
    loaded, its size, last use and invocations; None without a multi-model variant."""
    prefixes = [v.multi_model.prefix for v in endpoint.variants if v.multi_model is not None]
    if not prefixes:
        return None
    listed, next_after = multi_models.list_models(
        session, endpoint.name, variant=None, after=None, limit=MODELS_LISTED
    )
    return {
        "endpoint": endpoint,
        "prefixes": prefixes,
        "models": loaded_first(listed)[:MODELS_SHOWN],
        "listed": len(listed),
        "truncated": next_after is not None,  # more objects than MODELS_LISTED
    }


PANELS: list[Panel] = [
    Panel("variants", "Variants", "panels/variants.html", _variants),
    Panel("components", "Inference components", "panels/components.html", _components),
    Panel("deployments", "Deployments", "panels/deployments.html", deployments),
    Panel("shadow", "Shadow report", "panels/shadow.html", _shadow),
    Panel("models-loaded", "Models loaded", "panels/models_loaded.html", _models_loaded),
    Panel("plots", "Last hour", "panels/plots.html", _plots),
    Panel("scaling", "Scaling events", "panels/scaling.html", _scaling),
    Panel("monitoring", "Data capture and monitoring", "panels/monitoring.html", _monitoring),
    Panel("jobs", "Recent async jobs", "panels/jobs.html", _jobs),
]


def render_context(
    session: Session, endpoint: EndpointPublic, key: KeyInfo | None
) -> list[tuple[Panel, dict[str, Any]]]:
    """Each panel with its context, leaving out those with nothing to show."""
    shown = []
    for panel in PANELS:
        context = panel.load(session, endpoint, key)
        if context is not None:
            shown.append((panel, context))
    return shown
