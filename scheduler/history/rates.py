"""Pure decisions of the history sampler: a `Point` from two readings of a variant's counters.

Workers add to per-variant counters in Redis (core/worker_metrics.py): `requests`,
`errors`, and the batch model-time histogram (one count per bucket). Two readings
`interval` seconds apart give rates and the latency quantiles of the batches run
between them, the way Prometheus's `rate()` and `histogram_quantile()` would:

- requests 1,000 → 1,600 over 5 s: 120 requests/s; errors 3 → 8: 1 error/s.
- model-time bucket deltas {≤5 ms: 10, ≤10 ms: 30, ≤25 ms: 10} (50 batches):
  p50 is rank 25, inside the ≤10 ms bucket after 10 below it: 5 + 5 * 15/30 = 7.5 ms;
  p99 is rank 49.5, inside ≤25 ms after 40: 10 + 15 * 9.5/10 = 24.25 ms.
- No batch in the interval: no latency (None), not a zero that would read as "fast".
- A counter that went down was reset (its hash deleted and recreated): the new
  value is what was counted since, so it is the delta.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.history import Point


@dataclass(frozen=True, slots=True)
class Reading:
    """One read of a variant's counters and gauges; `at` in epoch seconds."""

    at: float
    requests: float
    errors: float
    # Non-cumulative count per bucket upper bound (seconds), math.inf last.
    model_buckets: tuple[tuple[float, float], ...]
    backlog: int
    workers: int
    desired: int


def delta(before: float, after: float) -> float:
    """How much a counter grew; after a reset (it went down) the new value is the growth."""
    return after - before if after >= before else after


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile (0..1) of observations counted per bucket, linearly interpolated inside
    its bucket as Prometheus does; None without observations. Seconds, like the bounds."""
    total = sum(count for _bound, count in buckets)
    if total <= 0:
        return None
    rank = q * total
    below, lower = 0.0, 0.0
    for bound, count in buckets:
        if count > 0 and below + count >= rank:
            if math.isinf(bound):  # beyond the last finite bound: say that bound
                return lower
            return lower + (bound - lower) * (rank - below) / count
        below += count
        if not math.isinf(bound):
            lower = bound
    return lower


def point(before: Reading, after: Reading) -> Point | None:
    """The sample between two readings of one variant; None if no time passed between them."""
    seconds = after.at - before.at
    if seconds <= 0:
        return None
    grown = [
        (bound, delta(was, now))
        for (bound, was), (_same, now) in zip(
            before.model_buckets, after.model_buckets, strict=True
        )
    ]
    p50, p99 = quantile(0.5, grown), quantile(0.99, grown)
    return Point(
        t=after.at,
        rps=delta(before.requests, after.requests) / seconds,
        eps=delta(before.errors, after.errors) / seconds,
        p50_ms=None if p50 is None else p50 * 1000,
        p99_ms=None if p99 is None else p99 * 1000,
        backlog=after.backlog,
        workers=after.workers,
        desired=after.desired,
    )
