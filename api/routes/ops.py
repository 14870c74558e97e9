"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from api import metrics
from api.problems import problem, problem_responses
from core.broker import get_redis
from core.db import get_engine
from core.storage import get_store

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _check_dependencies() -> dict[str, str]:
    checks: dict[str, str] = {}
    for name, check in (
        ("database", lambda: get_engine().connect().close()),
        ("redis", lambda: get_redis().ping()),
        ("object_store", lambda: get_store().ping()),
    ):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}: {exc}"[:300]
    return checks


@router.get("/readyz", response_model=None, responses=problem_responses(503))
async def readyz() -> Response | dict[str, object]:
    checks = await run_in_threadpool(_check_dependencies)
    failing = {k: v for k, v in checks.items() if v != "ok"}
    if failing:
        detail = "; ".join(f"{k} {v}" for k, v in failing.items())
        return problem(503, detail, "Not ready")
    return {"status": "ready", "checks": checks}


@router.get("/metrics", response_class=Response)
async def prometheus_metrics() -> Response:
    body, content_type = await run_in_threadpool(metrics.render)
    return Response(body, media_type=content_type)
