"""Reads of live queue state in Redis: backlog per variant queue, live workers, scaling.

Shared by the API (endpoint views, metrics) and the scheduler (scaling).

A variant's backlog is what waits in its priority lists (`queued`) plus what
workers have reserved and not yet acknowledged (`reserved`): kombu keeps every
reserved message in the `unacked` hash, whose value is the JSON list
`[message, exchange, routing_key]` with the routing key equal to the queue name.
Acknowledgement is late (after the task), so `reserved` also counts the messages
being executed right now.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgpack
import orjson
import redis

from core.protocol import (
    arrivals_key,
    desired_workers_key,
    priority_lists,
    scaling_events_key,
    unacked_key,
    variants_key,
    worker_key,
)

# Count the unacked messages per routing key inside Redis, so a large hash (a
# batching worker reserves many messages, each with its payload) never crosses
# the wire. kombu writes each value with json.dumps as [message, exchange,
# routing_key], and routing keys are queue names (no quotes, no escapes), so the
# routing key is the last JSON string of the value: read it from the tail
# instead of decoding the whole message.
_COUNT_RESERVED = """
local counts = {}
local cursor = "0"
repeat
  local page = redis.call("HSCAN", KEYS[1], cursor, "COUNT", 500)
  cursor = page[1]
  local items = page[2]
  for i = 2, #items, 2 do
    local queue = string.match(string.sub(items[i], -400), '"([^"]*)"%s*%]%s*$')
    if queue then counts[queue] = (counts[queue] or 0) + 1 end
  end
until cursor == "0"
local flat = {}
for queue, count in pairs(counts) do
  flat[#flat + 1] = queue
  flat[#flat + 1] = count
end
return flat
"""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    hostname: str
    device: str
    pid: int
    queues: tuple[str, ...]
    # core/process_stats.py's sample: cpu_seconds, rss_bytes, gpu_* where a GPU exists.
    stats: dict[str, float] = field(default_factory=dict)


def backlogs(client: redis.Redis, queues: list[str]) -> dict[str, int]:
    """Messages waiting in each queue (all priorities), in one round trip."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for key in priority_lists(queue):
            pipe.llen(key)
    counts = pipe.execute()
    per_queue = len(priority_lists(""))
    return {
        queue: sum(counts[i * per_queue : (i + 1) * per_queue]) for i, queue in enumerate(queues)
    }


@dataclass(frozen=True, slots=True)
class QueueLoad:
    """A variant queue's outstanding work: waiting in Redis, and reserved by workers."""

    queued: int
    reserved: int

    @property
    def backlog(self) -> int:
        return self.queued + self.reserved


def reserved_counts(client: redis.Redis, namespace: str) -> Counter[str]:
    """Unacknowledged messages per queue (reserved by a worker, waiting there or running)."""
    # EVALSHA, with the script sent once per Redis server.
    flat = client.register_script(_COUNT_RESERVED)(keys=[unacked_key(namespace)])
    counts: Counter[str] = Counter()
    for i in range(0, len(flat), 2):
        counts[_text(flat[i])] = int(flat[i + 1])
    return counts


def queue_loads(client: redis.Redis, namespace: str, queues: list[str]) -> dict[str, QueueLoad]:
    """Queued and reserved messages of each queue: the scaler's backlog signal."""
    if not queues:
        return {}
    queued = backlogs(client, queues)
    reserved = reserved_counts(client, namespace)
    return {q: QueueLoad(queued=queued[q], reserved=reserved.get(q, 0)) for q in queues}


def last_arrivals(client: redis.Redis, namespace: str) -> dict[str, float]:
    """Epoch seconds of the last message producers put on each queue (see core/arrivals.py)."""
    raw = client.hgetall(arrivals_key(namespace))
    return {_text(k): int(v) / 1000 for k, v in raw.items()}


@dataclass(frozen=True, slots=True)
class ScalingEvent:
    at: float  # epoch seconds
    from_workers: int
    to_workers: int
    reason: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"at": self.at, "from": self.from_workers, "to": self.to_workers, "reason": self.reason}
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> ScalingEvent:
        data: dict[str, Any] = orjson.loads(raw)
        return cls(
            at=float(data["at"]),
            from_workers=int(data["from"]),
            to_workers=int(data["to"]),
            reason=str(data["reason"]),
        )


def scaling_events(
    client: redis.Redis, namespace: str, queues: list[str], *, limit: int = 10
) -> dict[str, list[ScalingEvent]]:
    """The latest scaling events of each queue, newest first."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.lrange(scaling_events_key(namespace, queue), 0, limit - 1)
    return {
        queue: [ScalingEvent.from_json(raw) for raw in raws]
        for queue, raws in zip(queues, pipe.execute(), strict=True)
    }


def live_workers(client: redis.Redis, namespace: str) -> list[WorkerInfo]:
    keys = list(client.scan_iter(match=worker_key(namespace, "*"), count=500))
    if not keys:
        return []
    workers = []
    for key, raw in zip(keys, client.mget(keys), strict=True):
        if raw is None:  # expired between SCAN and MGET
            continue
        info = msgpack.unpackb(raw, raw=False)
        hostname = _text(key).split(":worker:", 1)[1]
        workers.append(
            WorkerInfo(
                hostname=hostname,
                device=info["device"],
                pid=info["pid"],
                queues=tuple(info["queues"]),
                stats=info.get("stats") or {},
            )
        )
    return workers


def workers_per_queue(client: redis.Redis, namespace: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for worker in live_workers(client, namespace):
        counts.update(worker.queues)
    return counts


def desired_workers(client: redis.Redis, namespace: str) -> dict[str, int]:
    raw = client.hgetall(desired_workers_key(namespace))
    return {_text(k): int(v) for k, v in raw.items()}


def live_queues(client: redis.Redis, namespace: str) -> list[str]:
    """Every variant queue that exists now (endpoints publish theirs on create)."""
    return sorted(_text(q) for q in client.smembers(variants_key(namespace)))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
