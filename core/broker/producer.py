"""Putting invocations on their queues: one LPUSH to the right priority list, one bell ring.

Producers push to the left end of a list, consumers pop from the right, so a
list is first-in first-out. Every message also pushes a token on its queue's
bell list, which idle workers block on; tokens carry no data (a lost one
costs at most one idle poll), so the bell is capped at `BELL_DEPTH`. An async
job for `churn/a` on namespace `sluiceway` is
`LPUSH sluiceway.churn.a\\x06\\x163 <message>`, then
`LPUSH sluiceway:bell:sluiceway.churn.a 1` and `LTRIM ... 0 63`, in one
pipeline. The API's realtime producer coalesces many such pushes into one
pipeline (api/realtime/producer.py) with `Outgoing` and `add_pushes`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

import redis

from core.broker.arrivals import note_arrival
from core.broker.connection import get_redis
from core.broker.envelope import build_message
from core.broker.keys import bell_key, queue_name, transform_done_key
from core.config import get_settings
from core.protocol import Invocation

logger = logging.getLogger(__name__)

BELL_DEPTH = 64


class Outgoing(NamedTuple):
    """One message ready to push: its queue, the priority list, the message, the bell."""

    queue: str
    key: str
    message: bytes
    bell: str


def outgoing(invocation: Invocation, namespace: str) -> Outgoing:
    """The message for `invocation` and where it goes."""
    queue = queue_name(namespace, invocation.endpoint, invocation.variant)
    key, message = build_message(invocation, queue)
    return Outgoing(queue, key, message, bell_key(namespace, queue))


def add_pushes(pipe: Any, batch: Iterable[Outgoing]) -> None:
    """Add the pushes of `batch` to `pipe` (redis or redis.asyncio), one ring per bell."""
    bells = set()
    for item in batch:
        pipe.lpush(item.key, item.message)
        bells.add(item.bell)
    for bell in bells:
        pipe.lpush(bell, 1)
        pipe.ltrim(bell, 0, BELL_DEPTH - 1)


def enqueue(invocation: Invocation, *, client: redis.Redis | None = None) -> None:
    """Put one invocation on its variant's queue at its mode's priority, and ring its bell.

    Raises redis.RedisError when Redis did not take it.
    """
    settings = get_settings()
    item = outgoing(invocation, settings.namespace)
    pipe = (client or get_redis()).pipeline(transaction=False)
    add_pushes(pipe, [item])
    pipe.execute()
    # For the scaler's idle clock: a dict write here, the Redis write comes later.
    note_arrival(settings.redis_url, settings.namespace, item.queue)


TRANSFORM_WAKE_DEPTH = 64  # the coordinator's wake-up list holds tokens only; keep it short


def wake_transform_coordinator(client: redis.Redis, namespace: str) -> None:
    """Ring the transform coordinator's wake-up list (a chunk is done, a job was created
    or asked to stop), so it acts now instead of after `transform_interval_s`.

    Best effort: a RedisError is logged and swallowed (the coordinator polls anyway).
    """
    try:
        pipe = client.pipeline(transaction=False)
        pipe.lpush(transform_done_key(namespace), 1)
        pipe.ltrim(transform_done_key(namespace), 0, TRANSFORM_WAKE_DEPTH - 1)
        pipe.execute()
    except redis.RedisError:
        logger.debug("could not wake the transform coordinator; it polls anyway", exc_info=True)
