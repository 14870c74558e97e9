"""The history sampler's reads: every live variant's worker counters and queue gauges.

The same numbers `/metrics` shows (api/metrics.py): the per-variant counter
hashes workers add to (core/worker_metrics.py) and the queue state
(core/broker: backlog, live workers; core/scaling_state.py: desired workers), in a few round trips.
"""

from __future__ import annotations

import math

import redis

from core import scaling_state
from core.broker import live_queues, metrics_key, queue_loads, workers_per_queue
from core.worker_metrics import SECONDS_BUCKETS
from scheduler.history.rates import Reading

MODEL_FIELDS = (
    *((b, f"model_seconds_le_{b}") for b in SECONDS_BUCKETS),
    (math.inf, "model_seconds_le_inf"),
)


def read_all(client: redis.Redis, namespace: str, *, now: float) -> dict[str, Reading]:
    """A `Reading` of every live variant queue, stamped `now` (epoch seconds)."""
    queues = live_queues(client, namespace)
    if not queues:
        return {}
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.hgetall(metrics_key(namespace, queue))
    hashes = pipe.execute()
    loads = queue_loads(client, namespace, queues)
    workers = workers_per_queue(client, namespace)
    desired = scaling_state.desired_workers(client, namespace)
    readings = {}
    for queue, raw in zip(queues, hashes, strict=True):
        values = {k.decode(): float(v) for k, v in raw.items()}
        live = workers.get(queue, 0)
        readings[queue] = Reading(
            at=now,
            requests=values.get("requests", 0.0),
            errors=values.get("errors", 0.0),
            model_buckets=tuple((bound, values.get(name, 0.0)) for bound, name in MODEL_FIELDS),
            backlog=loads[queue].backlog,
            workers=live,
            desired=desired.get(queue, live),
        )
    return readings
