"""Shadow copies of realtime requests and inline async jobs: sampled, queued at the lowest
priority, never awaited.

For each shadow variant of the serving config, a request is copied with the
shadow's `sampling_percent` chance (a 10 % shadow gets about one request in
ten). The copy is a realtime message to the shadow's own queue at priority 9
(below transform work), whose answer goes to `shadow-replies`, never to a
caller. Once the production answer is back, it is stored beside the copy's id
for the scheduler's comparer (scheduler/shadows/). Both writes are fire-and-
forget tasks: a shadow that is slow, failing or without workers, or a Redis
hiccup on the way, never changes what the caller gets or how fast.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from api.realtime.routing import EndpointRoute
from core.broker import shadow_production_key, shadow_replies_key
from core.protocol import Invocation, Reply, pack
from core.tables import new_id

logger = logging.getLogger(__name__)

SHADOW_PRIORITY = 9
# A copy nobody took within this long is dropped by the worker (its deadline).
SHADOW_DEADLINE_MS = 60_000
# How long a production answer waits for its copy's answer.
PRODUCTION_TTL_S = 600

_tasks: set[asyncio.Task[Any]] = set()


def _spawn(coro: Any) -> None:
    task = asyncio.create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def send_copies(
    state: Any,
    *,
    route: EndpointRoute,
    body: bytes,
    content_type: str,
    accept: str | None,
    namespace: str,
    rng: random.Random,
) -> list[tuple[str, str]]:
    """Queue the sampled copies; (copy id, shadow key) of each one sent."""
    sent = []
    now_ms = int(time.time() * 1000)
    for shadow, percent in route.shadows:
        if rng.random() * 100.0 >= percent:
            continue
        copy = Invocation(
            job_id=new_id(),
            mode="realtime",
            endpoint=route.name,
            variant=shadow.name,
            model=shadow.model,
            content_type=content_type,
            accept=accept,
            body=body,
            reply_to=shadow_replies_key(namespace),
            deadline_ms=now_ms + SHADOW_DEADLINE_MS,
            enqueued_ms=now_ms,
            extra={"priority": SHADOW_PRIORITY},
        )
        _spawn(_send(state, copy))
        sent.append((copy.job_id, shadow.name))
    return sent


async def _send(state: Any, copy: Invocation) -> None:
    try:
        await state.producer.send(copy)
    except Exception:
        logger.warning("shadow copy %s not queued", copy.job_id, exc_info=True)


def record_production(
    state: Any,
    *,
    copies: list[tuple[str, str]],
    endpoint: str,
    reply: Reply,
    total_ms: float,
    namespace: str,
) -> None:
    """Keep the production answer beside each copy's id, for the comparer."""
    answer = {
        "endpoint": endpoint,
        "ok": reply.ok,
        "body": reply.body,
        "content_type": reply.content_type,
        "model_ms": reply.model_ms,
        "total_ms": total_ms,
    }
    for copy_id, shadow in copies:
        record = pack({**answer, "shadow": shadow})
        _spawn(_store(state, shadow_production_key(namespace, copy_id), shadow, record))


async def _store(state: Any, key: str, shadow: str, record: bytes) -> None:
    try:
        await state.replies.redis.set(key, record, ex=PRODUCTION_TTL_S)
    except Exception:
        logger.warning("production answer for shadow %s not kept", shadow, exc_info=True)


def send_async_copies(
    state: Any,
    *,
    route: EndpointRoute,
    body: bytes,
    content_type: str,
    accept: str | None,
    namespace: str,
    rng: random.Random,
    job_id: str,
) -> None:
    """Copy an accepted async job's inline input to the sampled shadows.

    The production answer is the job's output: the comparer reads it once the
    job has finished (its record names the job instead of holding an answer).
    """
    for copy_id, shadow in send_copies(
        state,
        route=route,
        body=body,
        content_type=content_type,
        accept=accept,
        namespace=namespace,
        rng=rng,
    ):
        record = pack({"endpoint": route.name, "shadow": shadow, "job_id": job_id})
        _spawn(_store(state, shadow_production_key(namespace, copy_id), shadow, record))
