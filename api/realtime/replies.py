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

from core.broker import reply_key
from core.protocol import Reply, unpack

logger = logging.getLogger(__name__)

DRAIN_BATCH = 256


class ReplyWaiter:
    def __init__(self, *, redis_url: str, namespace: str) -> None:
        self.instance = uuid.uuid4().hex[:12]
        self.key = reply_key(namespace, self.instance)
        self._redis = aioredis.Redis.from_url(redis_url)
        self._pending: dict[str, tuple[asyncio.Future[Reply], asyncio.TimerHandle]] = {}
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

    def expect(self, job_id: str, *, timeout_s: float) -> asyncio.Future[Reply]:
        """A future for the answer to `job_id`, failed with TimeoutError after `timeout_s`.

        Registered before the message is sent, so a fast answer is never missed.
        (A timer on the future itself costs less than `asyncio.wait_for`, which
        wraps every call in another future and callbacks.)
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self._pending[job_id] = (future, loop.call_later(timeout_s, _expire, future))
        return future

    def forget(self, job_id: str) -> None:
        """Stop waiting for `job_id` (answered or not); a late answer is then dropped."""
        entry = self._pending.pop(job_id, None)
        if entry is not None:
            entry[1].cancel()

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
        entry = self._pending.get(reply.job_id)
        if entry is None:
            logger.debug("job %s: answer arrived after its caller gave up", reply.job_id)
        elif not entry[0].done():
            entry[0].set_result(reply)


def _expire(future: asyncio.Future[Reply]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
