"""The one Celery task: decode an invocation, hand it to the executor, record the outcome.

Infrastructure failures of async jobs are retried with backoff; after the last
retry the job fails with the reason, so it never stays `running` forever.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import Task

from core.config import get_settings
from core.protocol import TASK_NAME, Invocation
from core.queue import get_redis
from core.storage import get_store
from workers.celery_app import app
from workers.execution import Executor, TransientError
from workers.model_cache import ModelCache

logger = logging.getLogger(__name__)

MAX_RETRIES = 10


@functools.cache
def executor() -> Executor:
    settings = get_settings()
    cache = ModelCache(
        store=get_store(),
        cache_dir=settings.model_cache_path,
        device=settings.worker_device,
        capacity=settings.model_cache_size,
    )
    return Executor(cache=cache, store=get_store(), redis=get_redis())


@app.task(name=TASK_NAME, bind=True, max_retries=MAX_RETRIES)
def invoke(self: Task, wire: dict[str, Any]) -> None:
    invocation = Invocation.from_wire(wire)
    try:
        executor().handle(invocation)
    except TransientError as exc:
        retries = self.request.retries
        if retries >= MAX_RETRIES:
            logger.error("job %s: giving up after %d retries: %s", invocation.job_id, retries, exc)
            executor().finish(
                invocation.job_id, status="failed", error=f"gave up after {retries} retries: {exc}"
            )
            return
        delay = min(2**retries, 30)
        logger.warning("job %s: %s; retrying in %d s", invocation.job_id, exc, delay)
        raise self.retry(exc=exc, countdown=delay) from exc
