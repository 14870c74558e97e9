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
step takes the worker's lease before it reserves anything, keeps it renewed
(workers/heartbeat.py), and gives it back at a warm shutdown.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from typing import Any

import redis
from celery import bootsteps
from sqlalchemy import select

from core import process_stats
from core.broker import (
    WorkerLease,
    component_variant,
    get_redis,
    make_celery,
    queue_name,
    transform_pool_queue,
)
from core.config import get_settings
from core.db import session_scope
from core.states import TRANSFORM_ACTIVE
from core.storage import get_store
from core.tables import Endpoint, InferenceComponent, TransformJob, Variant
from workers.batching import BatchSettings
from workers.execution import Executor
from workers.model_cache import ModelCache
from workers.multi_model import MultiModelCache
from workers.runners.host import HandlerHost

logger = logging.getLogger(__name__)

app = make_celery(get_settings())


@functools.cache
def executor() -> Executor:
    """The process's executor: its model cache, object store and Redis client."""
    settings = get_settings()
    cache = ModelCache(
        store=get_store(),
        cache_dir=settings.model_cache_path,
        device=settings.worker_device,
        capacity=settings.model_cache_size,
        # Python handlers run in a child process, where a stuck one can be stopped.
        handler_host=HandlerHost(device=settings.worker_device),
    )
    multi = MultiModelCache(
        store=get_store(),
        cache_dir=settings.model_cache_path,
        device=settings.worker_device,
        disk_budget_bytes=settings.model_disk_mb * 1_048_576,
    )
    return Executor(
        cache=cache,
        store=get_store(),
        redis=get_redis(),
        namespace=settings.namespace,
        multi=multi,
    )


def wanted_queues(live: list[str], namespace: str, only: str) -> set[str]:
    """The live queues this worker serves: all of them, or those named `ENDPOINT/VARIANT`.

    `churn/a` also serves a deployment's new variant `a~2` (queue `ns.churn.a~2`):
    a worker dedicated to a variant keeps serving it across updates.
    """
    if not only.strip():
        return set(live)
    allowed = {
        f"{namespace}.{item.strip().replace('/', '.')}" for item in only.split(",") if item.strip()
    }
    return {q for q in live if q in allowed or q.split("~", 1)[0] in allowed}


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
                        Endpoint.name,
                        Variant.name,
                        Variant.max_batch_size,
                        Variant.max_delay_ms,
                        Endpoint.max_concurrent_invocations_per_worker,
                        Variant.model_memory_mb,
                    ).join(Variant, Variant.endpoint_id == Endpoint.id)
                ).all()
                # Inference components: variant queues labelled `ic.<name>`; a deleting
                # one is still served until the scaler removes it (its queue drains).
                component_rows = session.execute(
                    select(
                        Endpoint.name,
                        InferenceComponent.name,
                        InferenceComponent.max_batch_size,
                        InferenceComponent.max_delay_ms,
                        Endpoint.max_concurrent_invocations_per_worker,
                    ).join(InferenceComponent, InferenceComponent.endpoint_id == Endpoint.id)
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
            queue_name(settings.namespace, endpoint, variant): BatchSettings(size, delay, cap)
            for endpoint, variant, size, delay, cap, _ in rows
        }
        every.update(
            {
                queue_name(settings.namespace, endpoint, component_variant(name)): BatchSettings(
                    size, delay, cap
                )
                for endpoint, name, size, delay, cap in component_rows
            }
        )
        multi = executor().multi
        if multi is not None:
            multi_queues = {
                queue_name(settings.namespace, endpoint, variant): memory_mb
                for endpoint, variant, _, _, _, memory_mb in rows
                if memory_mb is not None
            }
            multi.retain(set(multi_queues))
            for queue, memory_mb in multi_queues.items():
                multi.set_budget(queue, memory_mb)
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
    """Runs the batching consumer and the lease heartbeat inside the Celery worker."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._consumer: Any = None
        self._heartbeat: Any = None
        self._lease: WorkerLease | None = None

    def start(self, consumer: Any) -> None:
        from workers.consumer import BatchingConsumer
        from workers.heartbeat import Heartbeat

        settings = get_settings()
        # The Celery hostname is the worker's id (workers/main.py: `<name>-<random>@<host>`).
        self._lease = WorkerLease(
            get_redis(),
            settings.namespace,
            worker_id=consumer.hostname,
            lease_s=settings.worker_lease_s,
            info=self._info,
        )
        try:
            self._lease.register()
        except redis.RedisError as exc:
            # The heartbeat takes the lease once Redis answers; nothing is reserved before.
            logger.warning("cannot take the worker's lease yet (%s); retrying", exc)
        self._consumer = BatchingConsumer(
            executor=executor(),
            client=get_redis(),
            namespace=settings.namespace,
            lease=self._lease,
            variants=VariantCatalog(),
            refresh_s=settings.queue_refresh_s,
        )
        self._consumer.start()
        self._heartbeat = Heartbeat(self._lease)
        self._heartbeat.start()

    def stop(self, consumer: Any) -> None:
        if self._consumer is not None:
            self._consumer.stop()
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._lease is not None:
            try:
                self._lease.leave()
            except Exception:  # shutting down: Redis may already be gone; the lease ends anyway
                logger.debug("could not give the lease back", exc_info=True)

    def _info(self) -> dict[str, Any]:
        settings = get_settings()
        return {
            "device": settings.worker_device,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "queues": sorted(self._consumer.queues) if self._consumer else [],
            # CPU, memory and GPU figures ride along; the API's /metrics shows them per worker.
            "stats": process_stats.sample(settings.worker_device),
        }


app.steps["consumer"].add(BatchingStep)
