"""The Celery application shared by producers (api/, scheduler/) and consumers (workers/).

Celery here is a Redis-backed transport with at-least-once delivery:
`acks_late` keeps a message in Redis's unacked set until its task has stored
its result, and a message whose worker died is restored to its queue once
`visibility_timeout_s` has passed. No result backend: realtime answers travel
on a per-API-process Redis list (see core/protocol.py), async results in S3 and SQL.
"""

from __future__ import annotations

import base64
import functools
import os
import socket
import time
import uuid
from typing import Any

import msgpack
import orjson
import redis
from celery import Celery

from core.arrivals import note_arrival
from core.config import Settings, get_settings
from core.protocol import (
    PRIORITY,
    PRIORITY_STEPS,
    TASK_NAME,
    Invocation,
    bell_key,
    priority_list,
    queue_name,
    unacked_index_key,
    unacked_key,
    unacked_mutex_key,
)

# Workers block on a variant's "bell" list when idle; producers push a token with
# every message. Tokens carry no data (a lost one costs at most one idle poll),
# so the list is capped.
BELL_DEPTH = 64
_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"


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
def get_celery() -> Celery:
    return make_celery(get_settings())


@functools.cache
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url)


def task_message(invocation: Invocation, queue: str) -> tuple[str, bytes]:
    """A Celery task message (protocol 2, msgpack body) as kombu's Redis transport stores it.

    Built by hand instead of `send_task` because it is on the realtime hot path:
    kombu's producer costs ~0.3 ms of CPU per message, this a few microseconds.
    The result is byte-compatible: a plain Celery worker could consume it, and
    kombu's restore of unacknowledged messages puts it back where it came from.
    Returns the Redis list to push it to and the message.
    """
    priority = PRIORITY[invocation.mode]
    task_id = invocation.job_id
    body = msgpack.packb(
        [
            [invocation.to_wire()],
            {},
            {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
        ],
        use_bin_type=True,
    )
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "binary",
        "content-type": "application/x-msgpack",
        "headers": {
            "lang": "py",
            "task": TASK_NAME,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": f"<{invocation.mode} {invocation.endpoint}/{invocation.variant}>",
            "kwargsrepr": "{}",
            "origin": _ORIGIN,
            "ignore_result": True,
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": priority,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return priority_list(queue, priority), orjson.dumps(envelope)


def decode_task_message(raw: bytes) -> tuple[Invocation, str | None]:
    """The invocation inside a task message, and the message's delivery tag."""
    envelope = orjson.loads(raw)
    args = msgpack.unpackb(base64.b64decode(envelope["body"]), raw=False)[0]
    return Invocation.from_wire(args[0]), envelope["properties"].get("delivery_tag")


def enqueue(invocation: Invocation, *, client: redis.Redis | None = None) -> None:
    """Put one invocation on its variant's queue at its mode's priority, and ring its bell."""
    settings = get_settings()
    queue = queue_name(settings.namespace, invocation.endpoint, invocation.variant)
    key, message = task_message(invocation, queue)
    bell = bell_key(settings.namespace, queue)
    pipe = (client or get_redis()).pipeline(transaction=False)
    pipe.lpush(key, message)
    pipe.lpush(bell, 1)
    pipe.ltrim(bell, 0, BELL_DEPTH - 1)
    pipe.execute()
    # For the scaler's idle clock: a dict write here, the Redis write comes later.
    note_arrival(settings.redis_url, settings.namespace, queue)


# KEYS: unacked hash, unacked index, the list to put the message back on.
# ARGV: delivery tag, the reservation as it was read, the message.
# Compare-and-move: if its worker acknowledged it, or kombu restored it, since it
# was read, the reservation is gone or different and nothing happens. RPUSH puts
# it at the end consumers pop from, as kombu's own restore does: it goes next.
_RESTORE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[3])
return 1
"""


def restore_stale_reservations(
    client: redis.Redis, namespace: str, *, older_than_s: float, limit: int = 500
) -> int:
    """Put messages reserved more than `older_than_s` ago back on their queues; how many.

    kombu's periodic restore, run by every live Celery worker, normally does
    this after the visibility timeout. It is skipped while its Redis lock is
    held, and a worker killed (or a Redis stopped) between taking and freeing
    that lock leaves the lock for `unacked_mutex_expire`; with no worker
    running, nobody restores at all. This is the same move, done from outside.
    """
    unacked, index = unacked_key(namespace), unacked_index_key(namespace)
    cutoff = time.time() - older_than_s
    tags: list[bytes] = client.zrangebyscore(index, "-inf", cutoff, start=0, num=limit)  # type: ignore[assignment]
    if not tags:
        return 0
    restore = client.register_script(_RESTORE)
    restored = 0
    for tag, reservation in zip(tags, client.hmget(unacked, tags), strict=True):
        if reservation is None:
            continue  # acknowledged between the two reads
        message, _exchange, queue = orjson.loads(reservation)
        key = priority_list(queue, message["properties"].get("priority") or 0)
        restored += int(
            restore(keys=[unacked, index, key], args=[tag, reservation, orjson.dumps(message)])
        )
    return restored


def pack(value: dict[str, Any]) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = msgpack.unpackb(data, raw=False)
    return result
