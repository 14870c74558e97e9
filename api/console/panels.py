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
from api.schemas import EndpointPublic
from api.services import jobs as job_service
from api.services import monitoring as monitoring_service
from core.apikeys import KeyInfo

Loader = Callable[[Session, EndpointPublic, KeyInfo | None], dict[str, Any] | None]
HISTORY_WINDOW_S = 3600.0
RECENT_JOBS = 10


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


PANELS: list[Panel] = [
    Panel("variants", "Variants", "panels/variants.html", _variants),
    Panel("components", "Inference components", "panels/components.html", _components),
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
