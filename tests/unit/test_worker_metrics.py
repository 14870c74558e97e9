"""One batch's metric increments: summed per field before they go to Redis."""

from __future__ import annotations

import numpy as np

from core.errors import InvalidInput
from core.protocol import Invocation, ModelRef
from workers.invocation import BatchStats, InFlight
from workers.metrics import batch_increments


def request(rows: int, *, wait_s: float, mode: str = "realtime", **flags: object) -> InFlight:
    inv = Invocation(
        job_id="j",
        mode=mode,  # type: ignore[arg-type]
        endpoint="e",
        variant="a",
        model=ModelRef("m", 1, "torch", "s3://b/m"),
        content_type="application/json",
    )
    made = InFlight(inv=inv, rows=np.zeros((rows, 4)), queue_wait_s=wait_s)
    for name, value in flags.items():
        setattr(made, name, value)
    return made


def test_a_batch_adds_its_counts_and_one_bucket_per_distinct_wait() -> None:
    requests = [
        request(2, wait_s=0.0004),
        request(1, wait_s=0.0009),
        request(1, wait_s=0.02, error=InvalidInput("bad row")),
        request(1, wait_s=3.0, skip=True),  # caller timed out: dropped, not run
        request(1, wait_s=0.0, transient=True),  # left for redelivery: not counted
    ]
    added = batch_increments(requests, BatchStats(model_s=0.004, calls=1, rows=4), "size")
    assert added == {
        "batches": 1,
        "flush_size": 1,
        "requests": 3,
        "errors": 1,
        "dropped": 1,
        "batch_rows_sum": 4,
        "batch_rows_le_4": 1,
        "model_seconds_sum": 0.004,
        "model_calls": 1,
        "model_seconds_le_0.005": 1,
        "queue_wait_seconds_le_0.001": 2,  # two requests, one increment
        "queue_wait_seconds_le_0.025": 1,
        "queue_wait_seconds_sum": 0.0004 + 0.0009 + 0.02,
    }


def test_fields_that_would_add_nothing_are_left_out() -> None:
    added = batch_increments([request(1, wait_s=0.0)], BatchStats(model_s=0.0, calls=1), "empty")
    assert "errors" not in added and "dropped" not in added
    assert "model_seconds_sum" not in added and "queue_wait_seconds_sum" not in added
    assert added["batches"] == 1 and added["model_seconds_le_0.001"] == 1
