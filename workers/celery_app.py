"""The worker's Celery app, with a consumer step that runs the batching consumer.

Celery provides the worker runtime: process lifecycle, signals and warm
shutdown, remote control, and kombu's periodic restore of messages whose
worker died. The variant queues themselves are read by `BatchingConsumer`
(workers/consumer.py), many messages per round trip; kombu's own consumer
only listens on the namespace's default queue.

Endpoints are created at run time, so the set of variants a worker serves is
re-read from SQL every `queue_refresh_s` (2 s by default) together with each
variant's batching settings: a PATCH of `max_batch_size` reaches running
workers within seconds. Batch-transform jobs for a model (rather than an
endpoint) add their model version's transform-pool queue while they run,
served by every generic worker with `transform_batch_rows` rows per call. The
step also publishes the worker's heartbeat (device, queues) for the API and the
scheduler.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import bootsteps
from sqlalchemy import select

from core import process_stats
from core.config import get_settings
from core.db import session_scope
from core.protocol import queue_name, transform_pool_queue, worker_key
from core.queue import get_redis, make_celery, pack
from core.states import TRANSFORM_ACTIVE
from core.tables import Endpoint, TransformJob, Variant
from workers.batching import BatchSettings

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


class VariantCatalog:
    """Which variant queues this worker serves, and their batching settings (from SQL)."""

    def __init__(self) -> None:
        self.known: dict[str, BatchSettings] = {}

    def __call__(self) -> dict[str, BatchSettings]:
        settings = get_settings()
        try:
            with session_scope() as session:
                rows = session.execute(
                    select(
                        Endpoint.name, Variant.name, Variant.max_batch_size, Variant.max_delay_ms
                    ).join(Variant, Variant.endpoint_id == Endpoint.id)
                ).all()
                pool = session.execute(
                    select(TransformJob.model, TransformJob.model_version)
                    .where(
                        TransformJob.model.is_not(None),
                        TransformJob.status.in_(TRANSFORM_ACTIVE),
                    )
                    .distinct()
                ).all()
        except Exception as exc:
            # The database blinked: keep serving what we knew.
            logger.warning("cannot read variants (%s); keeping %d known", exc, len(self.known))
            return self.known
        every = {
            queue_name(settings.namespace, endpoint, variant): BatchSettings(size, delay)
            for endpoint, variant, size, delay in rows
        }
        for model, version in pool:
            if model is None or version is None:
                continue
            every[transform_pool_queue(settings.namespace, model, version)] = BatchSettings(
                settings.transform_batch_rows, 0.0
            )
        wanted = wanted_queues(list(every), settings.namespace, settings.worker_variants)
        current = {q: every[q] for q in sorted(wanted)}
        for queue in current.keys() - self.known.keys():
            logger.info("serving %s with %s", queue, current[queue])
        for queue in self.known.keys() - current.keys():
            logger.info("no longer serving %s (variant deleted or transform done)", queue)
        for queue in current.keys() & self.known.keys():
            if current[queue] != self.known[queue]:
                logger.info("%s batching is now %s", queue, current[queue])
        self.known = current
        return current


class BatchingStep(bootsteps.StartStopStep):
    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timer: Any = None
        self._consumer: Any = None

    def start(self, consumer: Any) -> None:
        from workers.consumer import BatchingConsumer
        from workers.tasks import executor

        settings = get_settings()
        self._consumer = BatchingConsumer(
            executor=executor(),
            client=get_redis(),
            namespace=settings.namespace,
            variants=VariantCatalog(),
            refresh_s=settings.queue_refresh_s,
        )
        self._consumer.start()
        self.heartbeat(consumer)
        self._timer = consumer.timer.call_repeatedly(
            settings.queue_refresh_s, self.heartbeat, (consumer,), priority=10
        )

    def stop(self, consumer: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._consumer is not None:
            self._consumer.stop()
        try:
            get_redis().delete(worker_key(get_settings().namespace, consumer.hostname))
        except Exception:  # shutting down: Redis may already be gone
            logger.debug("could not remove the heartbeat", exc_info=True)

    def heartbeat(self, consumer: Any) -> None:
        settings = get_settings()
        queues = sorted(self._consumer.queues) if self._consumer else []
        beat = {"device": settings.worker_device, "pid": os.getpid(), "queues": queues}
        # CPU, memory and GPU figures ride along; the API's /metrics shows them per worker.
        beat["stats"] = process_stats.sample(settings.worker_device)
        try:
            get_redis().set(
                worker_key(settings.namespace, consumer.hostname),
                pack(beat),
                ex=max(10, int(settings.queue_refresh_s * 5)),
            )
        except Exception:
            logger.warning("heartbeat failed", exc_info=True)


app.steps["consumer"].add(BatchingStep)
