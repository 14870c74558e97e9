"""Realtime answers: one Redis list per API process, one listener task, one future per call.

The API never polls the database for a realtime result. Each process picks a
random instance id; workers push each answer to `reply_key(ns, instance)`;
a single BLPOP loop here hands every answer to the future of its job id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import redis.asyncio as aioredis

from core.protocol import Reply, reply_key
from core.queue import unpack

logger = logging.getLogger(__name__)

DRAIN_BATCH = 256


class ReplyWaiter:
    def __init__(self, *, redis_url: str, namespace: str) -> None:
        self.instance = uuid.uuid4().hex[:12]
        self.key = reply_key(namespace, self.instance)
        self._redis = aioredis.Redis.from_url(redis_url)
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="reply-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.delete(self.key)
        await self._redis.aclose()

    @property
    def redis(self) -> aioredis.Redis:
        """The process's asyncio Redis client (also used to enqueue realtime calls)."""
        return self._redis

    def expect(self, job_id: str) -> asyncio.Future[Reply]:
        """Register interest before enqueueing, so a fast answer is never missed."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[job_id] = future
        return future

    def forget(self, job_id: str) -> None:
        self._pending.pop(job_id, None)

    async def _listen(self) -> None:
        while True:
            try:
                item = await self._redis.blpop([self.key], timeout=1)
                if item is None:
                    continue
                self._deliver(item[1])
                # Under load many answers queue up: take them in one round trip.
                more = await self._redis.lpop(self.key, DRAIN_BATCH)
                for raw in more or ():
                    self._deliver(raw)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("reply listener failed; retrying in 0.5 s")
                await asyncio.sleep(0.5)

    def _deliver(self, raw: object) -> None:
        assert isinstance(raw, bytes)
        reply = Reply.from_wire(unpack(raw))
        future = self._pending.pop(reply.job_id, None)
        if future is None:
            logger.debug("job %s: answer arrived after its caller gave up", reply.job_id)
        elif not future.done():
            future.set_result(reply)
