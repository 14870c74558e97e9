"""Reads of what sits in Redis: backlogs, reservations, live workers, job ids present.

Shared by the API (back-pressure, endpoint views, metrics), the scheduler
(scaling, reconciling) and tests. No writes.

A variant's backlog is what waits in its priority lists (`queued`) plus what
workers have reserved and not yet acknowledged (`reserved`): every reserved
message sits in kombu's `unacked` hash as `[message, exchange, queue]`.
Acknowledgement is late (after the answer and outputs are stored), so
`reserved` also counts the messages being executed right now. Example: 3
waiting async jobs and a worker running a batch of 7 → queued 3, reserved 7,
backlog 10.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis

from core.broker import scripts
from core.broker.envelope import job_id_of
from core.broker.keys import (
    arrivals_key,
    held_key,
    leases_key,
    unacked_key,
    variants_key,
    workers_key,
)
from core.broker.priorities import PRIORITY_STEPS, priority_lists
from core.protocol import unpack


def backlogs(client: redis.Redis, queues: list[str]) -> dict[str, int]:
    """Messages waiting in each queue (all priorities), in one round trip."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for key in priority_lists(queue):
            pipe.llen(key)
    counts = pipe.execute()
    steps = len(PRIORITY_STEPS)
    return {queue: sum(counts[i * steps : (i + 1) * steps]) for i, queue in enumerate(queues)}


async def backlog_async(client: aioredis.Redis, queue: str) -> int:
    """Messages waiting in `queue` (all priorities), through an asyncio client."""
    pipe = client.pipeline(transaction=False)
    for key in priority_lists(queue):
        pipe.llen(key)
    return sum(await pipe.execute())


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
    flat = client.register_script(scripts.COUNT_RESERVED)(keys=[unacked_key(namespace)])
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
    """Epoch seconds of the last message producers put on each queue (core/broker/arrivals.py)."""
    raw = client.hgetall(arrivals_key(namespace))
    return {_text(k): int(v) / 1000 for k, v in raw.items()}


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker (its lease has not ended), as it last described itself."""

    id: str
    host: str
    device: str
    pid: int
    queues: tuple[str, ...]
    # core/process_stats.py's sample: cpu_seconds, rss_bytes, gpu_* where a GPU exists.
    stats: dict[str, float] = field(default_factory=dict)


def live_workers(client: redis.Redis, namespace: str) -> list[WorkerInfo]:
    """Every worker whose lease has not ended (by the Redis clock), with its info."""
    flat = client.register_script(scripts.LIVE)(
        keys=[leases_key(namespace), workers_key(namespace)]
    )
    workers = []
    for i in range(0, len(flat), 2):
        worker_id, raw = _text(flat[i]), flat[i + 1]
        info = unpack(raw) if raw else {}
        workers.append(
            WorkerInfo(
                id=worker_id,
                host=info.get("host", ""),
                device=info.get("device", ""),
                pid=int(info.get("pid", 0)),
                queues=tuple(info.get("queues", ())),
                stats=info.get("stats") or {},
            )
        )
    return workers


def workers_per_queue(client: redis.Redis, namespace: str) -> Counter[str]:
    """Live workers serving each queue."""
    counts: Counter[str] = Counter()
    for worker in live_workers(client, namespace):
        counts.update(worker.queues)
    return counts


def held_by(client: redis.Redis, namespace: str, worker_id: str) -> dict[str, str]:
    """The reservations `worker_id` holds: delivery tag → the list it came from."""
    raw = client.hgetall(held_key(namespace, worker_id))
    return {_text(tag): _text(source) for tag, source in raw.items()}


def live_queues(client: redis.Redis, namespace: str) -> list[str]:
    """Every variant queue that exists now (endpoints publish theirs on create)."""
    return sorted(_text(q) for q in client.smembers(variants_key(namespace)))


def job_ids_present(client: redis.Redis, namespace: str, queues: set[str]) -> set[str]:
    """Ids of the jobs whose message is in Redis: waiting in one of `queues`, or reserved.

    Read in one MULTI/EXEC, so a message moving between a list and the
    reservations (a reserve, an acknowledgement, a release) is seen exactly once.
    """
    pipe = client.pipeline(transaction=True)
    for queue in queues:
        for key in priority_lists(queue):
            pipe.lrange(key, 0, -1)
    pipe.hvals(unacked_key(namespace))
    found: set[str] = set()
    for messages in pipe.execute():
        for message in messages:
            job_id = job_id_of(message)
            if job_id:
                found.add(job_id)
    return found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
