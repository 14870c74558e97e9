"""Worker-side metrics: one batch's increments to its variant's Redis hash.

Counters and histogram buckets live in Redis (one hash per variant queue) so
every worker adds to the same totals, and the API's `/metrics` renders them
(api/metrics.py). The increments ride in the batch's acknowledgement, one
Redis call for both (workers/consumer.py), so they cost no round trip.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from core.worker_metrics import BATCH_SIZE_BUCKETS, SECONDS_BUCKETS, bucket_field, step_field


def batch_increments(requests: Sequence[Any], stats: Any, reason: str) -> dict[str, float]:
    """Field → amount to add for one batch; fields that would add 0 are left out.

    Per-request histograms are summed here first: 26 requests waiting about
    as long add 26 to one or two buckets, not 26 separate increments.
    """
    live = [r for r in requests if not r.skip and not r.transient]
    rows = sum(r.instances for r in live)
    added: Counter[str] = Counter(
        {
            "batches": 1,
            f"flush_{reason}": 1,
            "requests": len(live),
            "errors": sum(1 for r in live if r.error is not None),
            "dropped": sum(1 for r in requests if r.skip and r.inv.mode == "realtime"),
            "batch_rows_sum": rows,
            bucket_field("batch_rows", BATCH_SIZE_BUCKETS, rows): 1,
            "model_seconds_sum": stats.model_s,
            "model_calls": stats.calls,
            bucket_field("model_seconds", SECONDS_BUCKETS, stats.model_s): 1,
            "queue_wait_seconds_sum": sum(r.queue_wait_s for r in live),
        }
    )
    for request in live:
        added[bucket_field("queue_wait_seconds", SECONDS_BUCKETS, request.queue_wait_s)] += 1
    for step, seconds in getattr(stats, "step_seconds", {}).items():
        name = step_field(step)
        added[f"{name}_sum"] += seconds
        added[bucket_field(name, SECONDS_BUCKETS, seconds)] += 1
    return {name: amount for name, amount in added.items() if amount}
