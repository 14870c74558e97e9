"""`/console`: the web console, server-side pages over the same services as the HTTP API.

Thin like every route: read the key the auth middleware verified, call the
service (api/services/), render a template (api/console/templates). Pages:
endpoints (live table), an endpoint (panels from api/console/panels.py, with
plots fed by the scheduler's history), jobs (filter, detail, retry), transform
jobs (progress), topics and deliveries (redrive), models and versions; a login
form when auth is on. Not in the OpenAPI document (`include_in_schema=False`):
these are pages, not API. Actions are plain HTML forms that POST and redirect
(303) back to the page, so they work without JavaScript.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from api.console import history, panels
from api.console.render import STATIC_DIR, templates
from api.deps import SessionDep
from api.middleware.auth import SESSION_COOKIE
from api.routes.jobs import get_job_output
from api.schemas import EndpointPublic
from api.services import endpoints as endpoint_service
from api.services import jobs as job_service
from api.services import registry
from api.services import topics as topic_service
from api.services import transforms as transform_service
from core import apikeys
from core.apikeys import KeyInfo
from core.config import get_settings
from core.db import session_scope
from core.errors import NotFound, SluicewayError
from core.states import DeliveryStatus, JobStatus, TransformStatus
from core.tables import ApiKey

router = APIRouter(prefix="/console", include_in_schema=False)
static = StaticFiles(directory=STATIC_DIR)
SESSION_MAX_AGE_S = 8 * 3600
REFRESH_MS = 5000


def _key(request: Request) -> KeyInfo | None:
    key: KeyInfo | None = getattr(request.state, "api_key", None)
    return key


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    key = _key(request)
    context.update(
        key=key,
        is_admin=key is None or key.scope == "admin",
        auth_on=get_settings().auth == "on",
        refresh_ms=REFRESH_MS,
    )
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def _missing(request: Request, exc: SluicewayError) -> Response:
    return _page(request, "error.html", status_code=exc.status, title=exc.title, detail=exc.detail)


def _visible_endpoint(session: SessionDep, name: str, key: KeyInfo | None) -> EndpointPublic:
    # A key limited to some endpoints must not learn of the others: to it they do not exist.
    if key is not None and not key.allows_endpoint(name):
        raise NotFound(f"no endpoint named {name!r}")
    return endpoint_service.get_endpoint(session, name)


def _visible_endpoints(session: SessionDep, key: KeyInfo | None) -> list[EndpointPublic]:
    return [
        e
        for e in endpoint_service.list_endpoints(session)
        if key is None or key.allows_endpoint(e.name)
    ]


# --- sign in ------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, next: str = "/console") -> Response:
    if get_settings().auth != "on":
        return RedirectResponse(_safe_next(next), 303)
    return _page(request, "login.html", next=_safe_next(next), error=None)


@router.post("/login")
async def login(request: Request, key: str = Form(""), next: str = Form("/console")) -> Response:
    """Check the key and keep it in the session cookie: HttpOnly (no script reads it),
    SameSite=Strict (no other site's form can use it), Secure, scoped to /console."""
    info = await run_in_threadpool(_verify, key.strip())
    if info is None:
        return _page(
            request,
            "login.html",
            status_code=401,
            next=_safe_next(next),
            error="That key is not valid (or was revoked).",
        )
    response = RedirectResponse(_safe_next(next), 303)
    response.set_cookie(
        SESSION_COOKIE,
        key.strip(),
        max_age=SESSION_MAX_AGE_S,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=True,
    )
    return response


@router.get("/logout")
def logout() -> Response:
    response = RedirectResponse("/console/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/console", httponly=True, samesite="strict")
    return response


def _verify(token: str) -> KeyInfo | None:
    parts = apikeys.split_key(token)
    if parts is None:
        return None
    with session_scope() as session:
        return apikeys.verify(session.get(ApiKey, parts[0]), parts[1])


def _safe_next(target: str) -> str:
    """Only a console path: a login link must not send the browser to another site."""
    return target if target.startswith("/console") and "//" not in target else "/console"


# --- endpoints ----------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def endpoints_page(request: Request, session: SessionDep) -> Response:
    endpoints = _visible_endpoints(session, _key(request))
    return _page(request, "endpoints.html", endpoints=endpoints)


@router.get("/endpoints-table", response_class=HTMLResponse)
def endpoints_table(request: Request, session: SessionDep) -> Response:
    """The endpoints table alone; the page swaps it in every few seconds (htmx)."""
    endpoints = _visible_endpoints(session, _key(request))
    return _page(request, "partials/endpoints_table.html", endpoints=endpoints)


@router.get("/endpoints/{name}", response_class=HTMLResponse)
def endpoint_page(name: str, request: Request, session: SessionDep) -> Response:
    key = _key(request)
    try:
        endpoint = _visible_endpoint(session, name, key)
    except NotFound as exc:
        return _missing(request, exc)
    shown = panels.render_context(session, endpoint, key)
    return _page(request, "endpoint.html", endpoint=endpoint, panels=shown)


@router.get("/endpoints/{name}/variants", response_class=HTMLResponse)
def endpoint_variants(name: str, request: Request, session: SessionDep) -> Response:
    """The variants table alone (weights, backlog, workers), swapped in every few seconds."""
    try:
        endpoint = _visible_endpoint(session, name, _key(request))
    except NotFound as exc:
        return _missing(request, exc)
    return _page(request, "panels/variants.html", endpoint=endpoint)


@router.get("/endpoints/{name}/components", response_class=HTMLResponse)
def endpoint_components(name: str, request: Request, session: SessionDep) -> Response:
    """The components table alone (copies, placements, hosts' room), swapped in live."""
    try:
        endpoint = _visible_endpoint(session, name, _key(request))
    except NotFound as exc:
        return _missing(request, exc)
    return _page(request, "panels/components.html", endpoint=endpoint)


@router.get("/endpoints/{name}/deployments", response_class=HTMLResponse)
def endpoint_deployments(name: str, request: Request, session: SessionDep) -> Response:
    """The deployments timeline alone, swapped in every few seconds while steps advance."""
    key = _key(request)
    try:
        endpoint = _visible_endpoint(session, name, key)
    except NotFound as exc:
        return _missing(request, exc)
    context = panels.deployments(session, endpoint, key)
    if context is None:
        return HTMLResponse('<div id="deployments"></div>')
    return _page(request, "panels/deployments.html", ctx=context)


@router.get("/endpoints/{name}/history.json")
def endpoint_history(
    name: str, request: Request, session: SessionDep, since: float = Query(default=0.0, ge=0)
) -> JSONResponse:
    """The plots' points newer than `since` (epoch seconds); the page appends them."""
    endpoint = _visible_endpoint(session, name, _key(request))
    since = max(since, time.time() - panels.HISTORY_WINDOW_S)
    points = history.read_points(endpoint, since=since)
    return JSONResponse(
        {"charts": history.charts(points), "last": history.last_time(points, since)}
    )


# --- jobs ---------------------------------------------------------------------------


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    session: SessionDep,
    endpoint: str | None = None,
    status: str | None = None,
    dead_letter: bool | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> Response:
    key = _key(request)
    chosen = JobStatus(status) if status in set(JobStatus) else None
    jobs = job_service.list_jobs(
        session,
        endpoint=endpoint or None,
        status=chosen,
        dead_letter=dead_letter,
        limit=limit,
        key=key,
    )
    return _page(
        request,
        "jobs.html",
        jobs=jobs,
        endpoints=[e.name for e in _visible_endpoints(session, key)],
        statuses=list(JobStatus),
        chosen_endpoint=endpoint or "",
        chosen_status=chosen or "",
        dead_letter=dead_letter,
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    job_id: str, request: Request, session: SessionDep, notice: str | None = None
) -> Response:
    try:
        job = job_service.get_job(session, job_id, _key(request))
    except NotFound as exc:
        return _missing(request, exc)
    return _page(request, "job.html", job=job, notice=notice)


@router.get("/jobs/{job_id}/output")
def job_output(job_id: str, request: Request, session: SessionDep) -> Response:
    """The output bytes, as GET /v1/jobs/{id}/output serves them (the same function)."""
    return get_job_output(job_id, request, session)


@router.post("/jobs/{job_id}/retry")
def retry_job(job_id: str, request: Request, session: SessionDep) -> Response:
    try:
        job_service.retry_job(session, job_id, _key(request))
        notice = "Queued again: the job runs from its stored input."
    except SluicewayError as exc:
        notice = f"Not retried: {exc.detail}"
    return RedirectResponse(f"/console/jobs/{job_id}?{urlencode({'notice': notice})}", 303)


# --- transform jobs -----------------------------------------------------------------


@router.get("/transform-jobs", response_class=HTMLResponse)
def transform_jobs_page(request: Request, session: SessionDep) -> Response:
    jobs = transform_service.list_jobs(session, limit=100)
    return _page(request, "transform_jobs.html", jobs=jobs)


@router.get("/transform-jobs/{job_id}", response_class=HTMLResponse)
def transform_job_page(job_id: str, request: Request, session: SessionDep) -> Response:
    try:
        job = transform_service.get(session, job_id)
    except NotFound as exc:
        return _missing(request, exc)
    active = job.status not in (
        TransformStatus.SUCCEEDED,
        TransformStatus.FAILED,
        TransformStatus.STOPPED,
    )
    return _page(request, "transform_job.html", job=job, active=active)


# --- topics and deliveries ----------------------------------------------------------


@router.get("/topics", response_class=HTMLResponse)
def topics_page(request: Request, session: SessionDep) -> Response:
    topics = topic_service.list_topics(session)
    dead = topic_service.list_deliveries(
        session, topic=None, job_id=None, status=DeliveryStatus.DEAD, limit=50
    )
    return _page(request, "topics.html", topics=topics, dead=dead)


@router.get("/topics/{name}", response_class=HTMLResponse)
def topic_page(
    name: str,
    request: Request,
    session: SessionDep,
    status: str | None = None,
    notice: str | None = None,
) -> Response:
    chosen = DeliveryStatus(status) if status in set(DeliveryStatus) else None
    try:
        topic = topic_service.get_topic(session, name)
    except NotFound as exc:
        return _missing(request, exc)
    deliveries = topic_service.list_deliveries(
        session, topic=name, job_id=None, status=chosen, limit=200
    )
    return _page(
        request,
        "topic.html",
        topic=topic,
        deliveries=deliveries,
        statuses=list(DeliveryStatus),
        chosen_status=chosen or "",
        notice=notice,
    )


@router.post("/deliveries/{delivery_id}/redrive")
def redrive(delivery_id: str, request: Request, session: SessionDep) -> Response:
    """Send a dead delivery again, then back to the page the form was on."""
    try:
        delivery = topic_service.redrive(session, delivery_id, topic=None)
        notice = f"Delivery {delivery_id} redriven: {delivery.status}, sent again shortly."
        topic = delivery.topic
    except SluicewayError as exc:
        notice, topic = f"Not redriven: {exc.detail}", None
    back = f"/console/topics/{topic}" if topic else "/console/topics"
    return RedirectResponse(f"{back}?{urlencode({'notice': notice})}", 303)


# --- models -------------------------------------------------------------------------


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, session: SessionDep) -> Response:
    return _page(request, "models.html", models=registry.list_models(session))


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(name: str, request: Request, session: SessionDep) -> Response:
    try:
        model = registry.get_model(session, name)
    except NotFound as exc:
        return _missing(request, exc)
    return _page(request, "model.html", model=model)
