"""Worker-side metrics, added to per-variant Redis hashes in the acknowledgement pipeline.

Counters and histogram buckets live in Redis (one hash per variant queue) so
every worker adds to the same totals at no extra round trip, and the API's
`/metrics` renders them (api/metrics.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def bucket_field(name: str, buckets: Sequence[float], value: float) -> str:
    """The cumulative-histogram field a value falls in: `<name>_le_<bound>` or `_le_inf`."""
    for bound in buckets:
        if value <= bound:
            return f"{name}_le_{bound}"
    return f"{name}_le_inf"


def record_batch(pipe: Any, key: str, requests: Sequence[Any], stats: Any, reason: str) -> None:
    live = [r for r in requests if not r.skip and not r.transient]
    if not live and not requests:
        return
    rows = sum(r.instances for r in live)
    errors = sum(1 for r in live if r.error is not None)
    dropped = sum(1 for r in requests if r.skip and r.inv.mode == "realtime")
    pipe.hincrby(key, "batches", 1)
    pipe.hincrby(key, f"flush_{reason}", 1)
    pipe.hincrby(key, "requests", len(live))
    pipe.hincrby(key, "errors", errors)
    pipe.hincrby(key, "dropped", dropped)
    pipe.hincrby(key, "batch_rows_sum", rows)
    pipe.hincrby(key, bucket_field("batch_rows", BATCH_SIZE_BUCKETS, rows), 1)
    pipe.hincrbyfloat(key, "model_seconds_sum", stats.model_s)
    pipe.hincrby(key, "model_calls", stats.calls)
    pipe.hincrby(key, bucket_field("model_seconds", SECONDS_BUCKETS, stats.model_s), 1)
    for request in live:
        pipe.hincrby(
            key, bucket_field("queue_wait_seconds", SECONDS_BUCKETS, request.queue_wait_s), 1
        )
    pipe.hincrbyfloat(key, "queue_wait_seconds_sum", sum(r.queue_wait_s for r in live))
