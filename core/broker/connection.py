"""The Redis client and the Celery app, configured for Sluiceway's layout.

Celery here is the worker runtime (processes, signals, warm shutdown) on a
Redis transport with at-least-once delivery; it has no result backend and its
own consumer only listens on the namespace's default queue. The variant
queues are read by the batching consumer (workers/consumer.py) through this
package. kombu is told the same names and steps we use (core/broker/keys.py,
core/broker/priorities.py), so its restore of unacknowledged messages — the
last resort for a reservation no live worker renews, after
`visibility_timeout_s` — puts them back where our consumer reads.
"""

from __future__ import annotations

import functools

import redis
from celery import Celery

from core.broker.keys import unacked_index_key, unacked_key, unacked_mutex_key
from core.broker.priorities import PRIORITY_STEPS
from core.config import Settings, get_settings


def make_celery(settings: Settings) -> Celery:
    ns = settings.namespace
    app = Celery("sluiceway", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="msgpack",
        accept_content=["msgpack"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        task_default_queue=f"{ns}.default",
        broker_transport_options={
            # Live workers renew their reservations every second (core/broker/leases.py),
            # so this only applies to reservations nobody renews: a transient
            # failure's retry delay, and a consumer that never took a lease.
            "visibility_timeout": settings.visibility_timeout_s,
            # Sweep for such messages every fifth of the visibility timeout (1-10 s).
            # kombu's default sweep is 10 s x a throttle of 10, so a stranded
            # message could wait 100 s past its timeout.
            "unacked_restore_interval": min(10, max(1, settings.visibility_timeout_s // 5)),
            "unacked_restore_throttle": 1,
            # The restore runs under a Redis lock. A worker killed (or a Redis
            # stopped) while holding it leaves it for this long, and no worker
            # restores anything meanwhile; kombu's default is 300 s. A pass takes
            # milliseconds, and two at once are safe (each move is a WATCHed
            # transaction), so a short expiry costs nothing.
            "unacked_mutex_expire": min(30, settings.visibility_timeout_s),
            # Strict priority lists per queue: realtime (0) > async (3) > transform (6).
            "queue_order_strategy": "priority",
            "priority_steps": list(PRIORITY_STEPS),
            # Keep each stack's bookkeeping apart when several share one Redis.
            "unacked_key": unacked_key(ns),
            "unacked_index_key": unacked_index_key(ns),
            "unacked_mutex_key": unacked_mutex_key(ns),
        },
    )
    return app


@functools.cache
def get_redis() -> redis.Redis:
    """This process's Redis client (a thread-safe connection pool) for the configured URL."""
    return redis.Redis.from_url(get_settings().redis_url)
