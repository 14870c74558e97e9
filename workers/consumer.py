"""The batching consumer: reads a variant's queue many messages per Redis round trip.

Plain Celery reads one message per round trip (~2.5 ms of worker CPU per task
here), which caps a worker near 400 requests/s however well the model batches.
This consumer, started inside the Celery worker by a bootstep, reads the same
kombu lists in bulk:

- `RESERVE` (a Lua script, atomic) pops up to N messages from a variant's
  priority lists and records each in kombu's unacknowledged hash/zset in the
  same step — exactly what kombu does for one message with `acks_late`. A
  worker killed at any point therefore loses nothing: kombu's periodic restore
  (run by every live worker) puts its reserved messages back after the
  visibility timeout.
- Messages are acknowledged (removed from that hash) only after their answers
  and outputs are stored.
- Idle, the consumer blocks on the variants' bell lists, which producers ring
  with every message, so a lone request is picked up within a round trip.

The flush rule, the priority order and the packing of requests into model calls
are pure decisions in workers/batching.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from core.protocol import (
    PRIORITY,
    Invocation,
    bell_key,
    metrics_key,
    priority_list,
    unacked_keys,
)
from core.queue import decode_task_message
from workers import metrics
from workers.batching import BatchSettings, flush_reason, pull_order
from workers.execution import Executor, Request

logger = logging.getLogger(__name__)

# KEYS: unacked hash, unacked index, then the lists to read, in order.
# ARGV: most messages to take, the time (for the index), the queue (routing key),
# then per list read (ARGV[i + 1] for KEYS[i]) the most to take from it.
# The unacked value is kombu's own format, [message, exchange, routing_key],
# built by concatenation so the message's bytes are kept exactly.
RESERVE = """
local limit = tonumber(ARGV[1])
local taken = {}
for i = 3, #KEYS do
  local want = limit - #taken
  local cap = tonumber(ARGV[i + 1])
  if cap and cap < want then want = cap end
  if limit - #taken <= 0 then break end
  local messages = redis.call('RPOP', KEYS[i], want)
  if messages then
    for _, message in ipairs(messages) do
      local tag = string.match(message, '"delivery_tag": ?"([^"]+)"')
      if tag then
        redis.call('HSET', KEYS[1], tag, '[' .. message .. ', "", "' .. ARGV[3] .. '"]')
        redis.call('ZADD', KEYS[2], ARGV[2], tag)
      end
      taken[#taken + 1] = message
    end
  end
end
return taken
"""

# KEYS: unacked hash, unacked index, the variant's metrics hash.
# ARGV: how many delivery tags, the tags, then field/amount pairs for the metrics.
# One call per batch instead of a pipeline of ~12 + one per request: redis-py
# packs every command in Python, and that was a quarter of the worker's CPU at
# one request per batch. HINCRBYFLOAT keeps whole numbers whole ("6", not "6.0").
ACKNOWLEDGE = """
local tags = tonumber(ARGV[1])
for i = 2, tags + 1 do
  redis.call('HDEL', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
end
for i = tags + 2, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[i], ARGV[i + 1])
end
return tags
"""

IDLE_WAIT_S = 0.5
# A transform message is a whole chunk (up to max_payload_mb of records): take
# one per pull, so one worker does not hoard a job's chunks while others idle,
# and a batch holds at most a few chunks' bytes. Smaller chunks still merge:
# the consumer pulls again while the batch is short of max_batch_size.
TRANSFORM_PER_PULL = 1


class BatchingConsumer:
    def __init__(
        self,
        *,
        executor: Executor,
        client: redis.Redis,
        namespace: str,
        variants: Callable[[], dict[str, BatchSettings]],
        refresh_s: float,
    ) -> None:
        self.executor = executor
        self.redis = client
        self.namespace = namespace
        self._variants = variants
        self.refresh_s = refresh_s
        self.queues: dict[str, BatchSettings] = {}
        self._reserve = client.register_script(RESERVE)
        self._ack = client.register_script(ACKNOWLEDGE)
        self._unacked, self._unacked_index = unacked_keys(namespace)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pulls = 0

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="batching-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Warm stop: the batch in hand finishes and is acknowledged first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        next_refresh = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_refresh:
                    self.queues = self._variants()
                    next_refresh = time.monotonic() + self.refresh_s
                served = False
                for queue, settings in list(self.queues.items()):
                    served |= self.serve(queue, settings)
                if not served:
                    self._wait_for_work(min(IDLE_WAIT_S, max(next_refresh - time.monotonic(), 0)))
            except redis.RedisError as exc:
                logger.warning("Redis unavailable (%s); retrying in 1 s", exc)
                self._stop.wait(1.0)
            except Exception:
                logger.exception("batching consumer error; continuing in 1 s")
                self._stop.wait(1.0)

    def _wait_for_work(self, timeout_s: float) -> None:
        if not self.queues:
            self._stop.wait(timeout_s)
            return
        bells = [bell_key(self.namespace, q) for q in self.queues]
        # BLPOP takes whole seconds or fractions; 0 would mean "forever".
        self.redis.blpop(bells, timeout=max(timeout_s, 0.01))

    # --- one batch ----------------------------------------------------------------

    def reserve(self, queue: str, limit: int) -> list[tuple[Invocation, str | None]]:
        order = pull_order(self._pulls)
        self._pulls += 1
        keys = [self._unacked, self._unacked_index]
        keys += [priority_list(queue, step) for step in order]
        caps = [TRANSFORM_PER_PULL if step == PRIORITY["transform"] else limit for step in order]
        raw = self._reserve(keys=keys, args=[limit, time.time(), queue, *caps])
        return [decode_task_message(message) for message in raw]

    def serve(self, queue: str, settings: BatchSettings) -> bool:
        """Gather one batch from `queue`, run it, answer, acknowledge. False if it was empty."""
        taken = self.reserve(queue, settings.max_batch_size)
        if not taken:
            return False
        first_taken = time.monotonic()
        requests = self.executor.prepare(taken)
        while True:
            gathered = sum(r.instances for r in requests if r.live)
            reason = flush_reason(
                gathered_instances=gathered,
                first_taken_s=first_taken,
                now_s=time.monotonic(),
                last_pull_empty=not taken,
                settings=settings,
            )
            if reason:
                break
            taken = self.reserve(queue, max(settings.max_batch_size - gathered, 1))
            requests += self.executor.prepare(taken)
        stats = self.executor.run(requests, settings)
        self.executor.complete(requests, model_ms=stats.model_s * 1000)
        self._acknowledge(queue, requests, stats, reason)
        return True

    def _acknowledge(self, queue: str, requests: list[Request], stats: object, reason: str) -> None:
        tags = [r.tag for r in requests if r.tag and not r.transient]
        increments = metrics.batch_increments(requests, stats, reason)
        self._ack(
            keys=[self._unacked, self._unacked_index, metrics_key(self.namespace, queue)],
            args=[len(tags), *tags, *(x for pair in increments.items() for x in pair)],
        )
        left = len(requests) - len(tags)
        if left:
            logger.warning(
                "%d message(s) of %s left for redelivery (transient failure)", left, queue
            )
