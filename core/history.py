"""Short history of every endpoint variant, in Redis: what the console plots.

The scheduler's sampler (scheduler/history/) writes one `Point` per variant
every `history_interval_s` (5 s) to a Redis list per variant queue, trimmed
to the last `history_retention_s / history_interval_s` points (3600 / 5 = 720
points, about 60 bytes each as msgpack: ~43 KB per variant). The console reads
the lists back (api/console/queries.py); the browser only asks for the points
newer than the last one it has.

A point holds rates over the interval before it (requests/s, errors/s: counter
deltas / seconds), the model latency quantiles of the batches run in that
interval (p50/p99 in ms; None when no batch ran) and the gauges at its time
(backlog, live and desired workers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import msgpack
import redis

from core.broker import history_key

FIELDS = ("t", "rps", "eps", "p50_ms", "p99_ms", "backlog", "workers", "desired")


@dataclass(frozen=True, slots=True)
class Point:
    """One sample of a variant: `t` in epoch seconds; rates per second; latencies in ms."""

    t: float
    rps: float
    eps: float
    p50_ms: float | None
    p99_ms: float | None
    backlog: int
    workers: int
    desired: int


def max_points(*, interval_s: float, retention_s: float) -> int:
    """Points kept per variant: retention / interval, at least 2 (a rate needs two)."""
    return max(int(retention_s // interval_s), 2)


def append(client: redis.Redis, namespace: str, points: dict[str, Point], *, keep: int) -> None:
    """Add one point per queue and trim each list to its last `keep`, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for queue, point in points.items():
        key = history_key(namespace, queue)
        pipe.rpush(key, msgpack.packb(list(asdict(point).values())))
        pipe.ltrim(key, -keep, -1)
    pipe.execute()


def read(
    client: redis.Redis, namespace: str, queues: list[str], *, since: float = 0.0
) -> dict[str, list[Point]]:
    """Each queue's points newer than `since` (epoch seconds), oldest first."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.lrange(history_key(namespace, queue), 0, -1)
    result: dict[str, list[Point]] = {}
    for queue, raws in zip(queues, pipe.execute() if queues else [], strict=True):
        points = [Point(*msgpack.unpackb(raw)) for raw in raws]
        result[queue] = [p for p in points if p.t > since]
    return result


def forget(client: redis.Redis, namespace: str, queues: list[str]) -> None:
    """Drop the history of queues that no longer exist (a deleted endpoint's variants)."""
    if queues:
        client.delete(*(history_key(namespace, q) for q in queues))
