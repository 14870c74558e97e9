"""The Celery application shared by producers (api/, scheduler/) and consumers (workers/).

Celery here is a Redis-backed transport with at-least-once delivery:
`acks_late` keeps a message in Redis's unacked set until its task has stored
its result, and a message whose worker died is restored to its queue once
`visibility_timeout_s` has passed. No result backend: realtime answers travel
on a per-API-process Redis list (see core/protocol.py), async results in S3 and SQL.
"""

from __future__ import annotations

import functools
from typing import Any

import msgpack
import redis
from celery import Celery

from core.arrivals import note_arrival
from core.config import Settings, get_settings
from core.protocol import (
    PRIORITY,
    TASK_NAME,
    Invocation,
    queue_name,
    unacked_index_key,
    unacked_key,
    unacked_mutex_key,
)


def make_celery(settings: Settings) -> Celery:
    ns = settings.namespace
    app = Celery("sluiceway", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="msgpack",
        accept_content=["msgpack"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message reserved at a time: a dying worker strands at most one.
        worker_prefetch_multiplier=1,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        task_default_queue=f"{ns}.default",
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            # Sweep for messages of dead workers every fifth of the visibility
            # timeout (1-10 s). kombu's default sweep is 10 s x a throttle of
            # 10, so a stranded message could wait 100 s past its timeout.
            "unacked_restore_interval": min(10, max(1, settings.visibility_timeout_s // 5)),
            "unacked_restore_throttle": 1,
            # Strict priority lists per queue: realtime (0) > async (3) > transform (6).
            "queue_order_strategy": "priority",
            "priority_steps": sorted(set(PRIORITY.values()) | {9}),
            # Keep each stack's bookkeeping apart when several share one Redis.
            "unacked_key": unacked_key(ns),
            "unacked_index_key": unacked_index_key(ns),
            "unacked_mutex_key": unacked_mutex_key(ns),
        },
    )
    return app


@functools.cache
def get_celery() -> Celery:
    return make_celery(get_settings())


@functools.cache
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url)


def enqueue(invocation: Invocation, *, celery: Celery | None = None) -> None:
    """Put one invocation on its variant's queue at its mode's priority."""
    settings = get_settings()
    app = celery or get_celery()
    queue = queue_name(settings.namespace, invocation.endpoint, invocation.variant)
    app.send_task(
        TASK_NAME,
        args=(invocation.to_wire(),),
        queue=queue,
        priority=PRIORITY[invocation.mode],
    )
    # For the scaler's idle clock; a dict write here, the Redis write comes later.
    note_arrival(settings.redis_url, settings.namespace, queue)


def pack(value: dict[str, Any]) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = msgpack.unpackb(data, raw=False)
    return result
