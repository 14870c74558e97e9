"""The worker's Celery app, with a consumer step that follows the live variant queues.

Endpoints are created at run time, so a worker cannot be told its queues once at
start. `VariantQueues` reads the set of live variant queues from Redis every
`queue_refresh_s` (2 s by default), starts consuming new ones and stops consuming
deleted ones, and publishes the worker's heartbeat (device, queues) for the API
and the scheduler.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import bootsteps

from core import queue_state
from core.config import get_settings
from core.protocol import worker_key
from core.queue import get_redis, make_celery, pack

logger = logging.getLogger(__name__)

app = make_celery(get_settings())
app.conf.include = ["workers.tasks"]


def wanted_queues(live: list[str], namespace: str, only: str) -> set[str]:
    """The live queues this worker serves: all of them, or those named `ENDPOINT/VARIANT`."""
    if not only.strip():
        return set(live)
    allowed = {
        f"{namespace}.{item.strip().replace('/', '.')}" for item in only.split(",") if item.strip()
    }
    return {q for q in live if q in allowed}


class VariantQueues(bootsteps.StartStopStep):
    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timer: Any = None

    def start(self, consumer: Any) -> None:
        settings = get_settings()
        self.refresh(consumer)
        self._timer = consumer.timer.call_repeatedly(
            settings.queue_refresh_s, self.refresh, (consumer,), priority=10
        )

    def stop(self, consumer: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            get_redis().delete(worker_key(get_settings().namespace, consumer.hostname))
        except Exception:  # shutting down: Redis may already be gone
            logger.debug("could not remove the heartbeat", exc_info=True)

    def refresh(self, consumer: Any) -> None:
        settings = get_settings()
        try:
            redis = get_redis()
            live = queue_state.live_queues(redis, settings.namespace)
            wanted = wanted_queues(live, settings.namespace, settings.worker_variants)
            current = {q.name for q in consumer.task_consumer.queues}
            for queue in sorted(wanted - current):
                logger.info("consuming %s", queue)
                consumer.add_task_queue(queue)
            default = app.conf.task_default_queue
            for queue in sorted(current - wanted - {default}):
                logger.info("no longer consuming %s (variant deleted)", queue)
                consumer.cancel_task_queue(queue)
            heartbeat = {
                "device": settings.worker_device,
                "pid": os.getpid(),
                "queues": sorted(wanted),
            }
            redis.set(
                worker_key(settings.namespace, consumer.hostname),
                pack(heartbeat),
                ex=max(10, int(settings.queue_refresh_s * 5)),
            )
        except Exception:
            # Redis blips must not kill the consumer; the next tick tries again.
            logger.warning("refreshing variant queues failed", exc_info=True)


app.steps["consumer"].add(VariantQueues)
