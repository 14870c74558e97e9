"""The new config's counters: the workers' own per-variant Redis hashes, summed.

These are the numbers `/metrics` renders (`sluiceway_worker_requests`,
`sluiceway_worker_errors`, `sluiceway_batch_model_seconds`): a deployment's
window is the difference between two snapshots (decisions.window_between), so
no new store of requests is kept anywhere.
"""

from __future__ import annotations

import redis

from core.broker import metrics_key

# The fields a window needs; the others (batch sizes, queue waits) are left out.
_PREFIXES = ("requests", "errors", "model_seconds_le_")


def snapshot(client: redis.Redis, namespace: str, queues: list[str]) -> dict[str, float]:
    """The summed counters of `queues` now: `{"requests": 140, "errors": 6, ...}`."""
    if not queues:
        return {}
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.hgetall(metrics_key(namespace, queue))
    total: dict[str, float] = {}
    for raw in pipe.execute():
        for key, value in raw.items():
            field = key.decode() if isinstance(key, bytes) else str(key)
            if field == "requests" or field == "errors" or field.startswith(_PREFIXES[2]):
                total[field] = total.get(field, 0.0) + float(value)
    return total
