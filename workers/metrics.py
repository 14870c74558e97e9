"""Worker-side metrics, added to per-variant Redis hashes in the acknowledgement pipeline.

Counters and histogram buckets live in Redis (one hash per variant queue) so
every worker adds to the same totals at no extra round trip, and the API's
`/metrics` renders them (api/metrics.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.worker_metrics import BATCH_SIZE_BUCKETS, SECONDS_BUCKETS, bucket_field


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
