"""The Celery task every invocation is: `sluiceway.invoke`, one message at a time.

Sluiceway's own workers consume variant queues through the batching consumer
(workers/consumer.py), which runs the same executor on many messages at once.
This task is the plain-Celery path for the same messages — a stock
`celery worker` pointed at a variant queue runs them correctly, one by one.
"""

from __future__ import annotations

import functools
from typing import Any

from core.config import get_settings
from core.protocol import TASK_NAME, Invocation
from core.queue import get_redis
from core.storage import get_store
from workers.batching import BatchSettings
from workers.celery_app import app
from workers.execution import Executor
from workers.model_cache import ModelCache

ONE_AT_A_TIME = BatchSettings(max_batch_size=1, max_delay_ms=0)


@functools.cache
def executor() -> Executor:
    settings = get_settings()
    cache = ModelCache(
        store=get_store(),
        cache_dir=settings.model_cache_path,
        device=settings.worker_device,
        capacity=settings.model_cache_size,
    )
    return Executor(cache=cache, store=get_store(), redis=get_redis(), namespace=settings.namespace)


@app.task(name=TASK_NAME, acks_late=True)
def invoke(wire: dict[str, Any]) -> None:
    run = executor()
    requests = run.prepare([(Invocation.from_wire(wire), None)])
    stats = run.run(requests, ONE_AT_A_TIME)
    run.complete(requests, model_ms=stats.model_s * 1000)
    if any(r.transient for r in requests):
        # Not acknowledged: kombu redelivers it after the visibility timeout.
        raise RuntimeError("transient infrastructure failure; the message will be redelivered")
