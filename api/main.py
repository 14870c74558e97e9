"""The FastAPI application: routers, problem+json errors, and the reply listener's lifespan."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import problems
from api.middleware.auth import AuthMiddleware
from api.middleware.concurrency import ConcurrencyLimit
from api.middleware.header_limits import HeaderLimits
from api.realtime.backpressure import BacklogGate
from api.realtime.lane import RealtimeLane
from api.realtime.producer import Producer
from api.realtime.replies import ReplyWaiter
from api.realtime.routing import RouteCache
from api.routes import (
    components,
    console,
    deliveries,
    endpoints,
    invocations,
    jobs,
    models,
    monitoring,
    ops,
    topics,
    transform_jobs,
)
from api.sagemaker.wire import SageMakerWire
from core.config import get_settings

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.routes = RouteCache(settings.endpoint_cache_s)
    app.state.replies = ReplyWaiter(redis_url=settings.redis_url, namespace=settings.namespace)
    await app.state.replies.start()
    app.state.producer = Producer(app.state.replies.redis)
    app.state.backlog = BacklogGate(
        app.state.replies.redis,
        max_backlog=settings.max_backlog,
        check_ms=settings.backlog_check_ms,
    )
    await app.state.producer.start()
    # Everything alive now (imports, the app, its routes) lives as long as the
    # process: take it out of the collector's sight. A full collection of it
    # took ~48 ms, every second or two under load, stalling every request in
    # flight (a p99 spike); after the freeze it takes ~4 ms.
    gc.freeze()
    logger.info("API ready; realtime answers arrive on %s", app.state.replies.key)
    try:
        yield
    finally:
        await app.state.producer.stop()
        await app.state.replies.stop()


def create_app() -> FastAPI:
    app = FastAPI(
        title="Sluiceway",
        version="1",
        summary="Self-hosted job-queue inference: realtime, async and batch transform.",
        lifespan=lifespan,
    )
    problems.install(app)
    app.add_middleware(RealtimeLane)  # added first: runs last, after auth and header limits
    app.add_middleware(AuthMiddleware, enabled=get_settings().auth == "on")
    # boto3's SageMaker clients (SigV4, AWS error shapes): before the native auth.
    app.add_middleware(SageMakerWire, auth=get_settings().auth == "on")
    app.add_middleware(HeaderLimits)
    # Added last: runs first, so a request refused for load costs nothing more.
    app.add_middleware(ConcurrencyLimit, limit=get_settings().api_max_concurrency)
    for module in (
        models,
        endpoints,
        components,
        invocations,
        jobs,
        transform_jobs,
        topics,
        deliveries,
        monitoring,
        ops,
    ):
        app.include_router(module.router)
    # The web console: pages over the same services, and its assets (no CDN).
    app.include_router(console.router)
    app.mount("/console/static", console.static, name="console-static")
    return app


app = create_app()


def serve(host: str, port: int, *, processes: int = 1) -> None:
    """Run the API with uvicorn: one process, or `processes` sharing the port.

    Several processes share their Prometheus counters through files in a fresh
    folder under `home` (prometheus_client's multi-process mode, see
    api/metrics.py), so /metrics answers with the totals whichever process the
    scrape reaches.
    """
    import shutil

    import uvicorn

    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    target: FastAPI | str = app
    if processes > 1:
        shared = settings.home / "prometheus" / f"api-{port}"
        shutil.rmtree(shared, ignore_errors=True)  # a previous run's counts are not ours
        shared.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
        target = "api.main:app"  # each process imports the app itself
    uvicorn.run(
        target,
        host=host,
        port=port,
        workers=processes if processes > 1 else None,
        log_level=settings.log_level.lower(),
        access_log=False,
        # uvicorn's default is 5 s: a client or balancer that reuses a connection
        # idle for about that long races the close and gets a reset, not an answer.
        timeout_keep_alive=settings.api_keep_alive_s,
        http="httptools",
        loop="uvloop",
    )
