"""The layout of worker counters in Redis, shared by workers (who add) and the API (who renders).

One hash per variant queue (`core.broker.metrics_key`). Histograms are stored
as one field per bucket, `<name>_le_<bound>` (not cumulative) plus `_le_inf`,
and `<name>_sum`.
"""

from __future__ import annotations

from collections.abc import Sequence

BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SECONDS_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)


def bucket_field(name: str, buckets: Sequence[float], value: float) -> str:
    """The histogram field a value falls in: `<name>_le_<bound>` or `<name>_le_inf`."""
    for bound in buckets:
        if value <= bound:
            return f"{name}_le_{bound}"
    return f"{name}_le_inf"


def cumulative_buckets(
    values: dict[str, float], name: str, bounds: Sequence[float]
) -> list[tuple[str, float]]:
    """Prometheus's cumulative buckets from the per-bucket counts."""
    total, out = 0.0, []
    for bound in bounds:
        total += values.get(f"{name}_le_{bound}", 0.0)
        out.append((str(float(bound)), total))
    total += values.get(f"{name}_le_inf", 0.0)
    out.append(("+Inf", total))
    return out


# A pipeline step's time per batch: `step.<step>_le_<bound>` and `step.<step>_sum`
# (step names hold no "_" or ".", so the step reads back unambiguously).
STEP_PREFIX = "step."


def step_field(step: str) -> str:
    """The histogram name of one pipeline step's seconds per batch."""
    return f"{STEP_PREFIX}{step}"


def step_names(values: dict[str, float]) -> list[str]:
    """The pipeline steps that have figures among a variant's fields, sorted."""
    return sorted(
        {
            name[len(STEP_PREFIX) :].split("_", 1)[0]
            for name in values
            if name.startswith(STEP_PREFIX)
        }
    )
