"""Reads of live queue state in Redis: backlog per variant queue and live workers.

Shared by the API (endpoint views, metrics) and the scheduler (scaling).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import msgpack
import redis

from core.protocol import desired_workers_key, priority_lists, variants_key, worker_key


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    hostname: str
    device: str
    pid: int
    queues: tuple[str, ...]


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
