"""A deployment's decisions as pure functions: the plan of traffic steps, and what to do now.

The plan (`plan_percents`) is the share of traffic the new config gets at each
step, ending at 100:

- `all_at_once` → `[100]`;
- `canary` with `canary_percent` 10 → `[10, 100]`;
- `linear` with `linear_step_percent` 33 → `[33, 66, 100]` (a last step that
  would move 1 % or less, 99 → 100, is merged into the one before: three steps,
  as the user meant).

`decide` takes the plan, where the deployment is (`Progress`: the step, when it
began, whether the new variants have their workers, the step's window of
requests on the new config) and `now`, and returns one `Decision`:

1. Provisioning (step -1): no traffic moves until every new variant that wants
   workers (`min_workers` ≥ 1) has one live; then step 0. If that takes longer
   than `provision_timeout_s` the deployment fails and traffic never moved.
2. Rollback first: once the window holds `min_requests`, an error rate above
   `error_rate_percent` (failed / all requests on the new config since the step
   began) or a model-latency p99 above `p99_latency_ms` rolls back. 3 errors
   in 40 requests = 7.5 % > 5 % → rollback, "error rate 7.5% over 40 requests
   > rollback_on.error_rate_percent 5%". With 19 requests seen and
   `min_requests` 20 nothing is judged yet.
3. A step is watched for `step_interval_s`, the last one (100 %) for
   `baking_s`; then the next step, or success after the last.

No I/O and no clock of its own: the runner passes `now` (epoch seconds), the
tests a fake one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Strategy = Literal["all_at_once", "canary", "linear"]
Action = Literal["wait", "advance", "succeed", "rollback", "fail"]

# A last linear step moving this many percent or fewer is merged into the one before.
MERGE_LAST_STEP_PERCENT = 1.0


@dataclass(frozen=True, slots=True)
class RollbackOn:
    """Thresholds on the new config's own traffic; None turns a check off."""

    error_rate_percent: float | None = None
    p99_latency_ms: float | None = None
    min_requests: int = 20


@dataclass(frozen=True, slots=True)
class Plan:
    percents: tuple[float, ...]
    step_interval_s: float
    baking_s: float
    rollback_on: RollbackOn | None
    provision_timeout_s: float


@dataclass(frozen=True, slots=True)
class Window:
    """The new config's requests since the step began: counts and the model-latency p99 (ms)."""

    requests: int = 0
    errors: int = 0
    p99_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    step_index: int  # -1: the new variants' workers are starting
    step_started_at: float  # epoch s; for -1, when the deployment began
    provisioned: bool
    window: Window


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    next_index: int | None = None  # for "advance"
    reason: str | None = None  # for "rollback" and "fail"


WAIT = Decision("wait")


def plan_percents(
    strategy: Strategy, *, canary_percent: float | None, linear_step_percent: float | None
) -> tuple[float, ...]:
    """The new config's traffic share (0-100) at each step, the last always 100.

    ValueError names the field when a strategy lacks its percent or it is out of (0, 100].
    """
    if strategy == "all_at_once":
        return (100.0,)
    if strategy == "canary":
        if canary_percent is None or not 0 < canary_percent <= 100:
            raise ValueError(f"canary needs canary_percent in (0, 100], got {canary_percent}")
        return (float(canary_percent), 100.0) if canary_percent < 100 else (100.0,)
    if linear_step_percent is None or not 0 < linear_step_percent <= 100:
        raise ValueError(f"linear needs linear_step_percent in (0, 100], got {linear_step_percent}")
    count = math.ceil(100.0 / linear_step_percent - 1e-9)
    percents = [min(100.0, linear_step_percent * (k + 1)) for k in range(count)]
    if len(percents) > 1 and 100.0 - percents[-2] <= MERGE_LAST_STEP_PERCENT:
        percents.pop(-2)
    percents[-1] = 100.0
    return tuple(percents)


def rollback_reason(rules: RollbackOn | None, window: Window, *, percent: float) -> str | None:
    """Why the window trips a threshold (naming it and the measured value), or None."""
    if rules is None or window.requests < max(1, rules.min_requests):
        return None
    where = f"at {percent:g}% of traffic"
    if rules.error_rate_percent is not None:
        rate = 100.0 * window.errors / window.requests
        if rate > rules.error_rate_percent:
            return (
                f"error rate {rate:.1f}% ({window.errors} of {window.requests} requests) {where} "
                f"> rollback_on.error_rate_percent {rules.error_rate_percent:g}%"
            )
    p99, limit = window.p99_ms, rules.p99_latency_ms
    if limit is not None and p99 is not None and p99 > limit:
        return (
            f"model latency p99 {p99:g} ms over {window.requests} requests {where} "
            f"> rollback_on.p99_latency_ms {limit:g} ms"
        )
    return None


def decide(plan: Plan, progress: Progress, now: float) -> Decision:
    """What the deployment does now (see the module docstring for the rules)."""
    elapsed = now - progress.step_started_at
    if progress.step_index < 0:
        if progress.provisioned:
            return Decision("advance", next_index=0)
        if elapsed >= plan.provision_timeout_s:
            return Decision(
                "fail",
                reason=f"the new variants had no live worker after {plan.provision_timeout_s:g} s",
            )
        return WAIT
    percent = plan.percents[progress.step_index]
    reason = rollback_reason(plan.rollback_on, progress.window, percent=percent)
    if reason is not None:
        return Decision("rollback", reason=reason)
    last = progress.step_index == len(plan.percents) - 1
    if elapsed < (plan.baking_s if last else plan.step_interval_s):
        return WAIT
    if last:
        return Decision("succeed")
    return Decision("advance", next_index=progress.step_index + 1)


def histogram_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the bucket holding quantile `q` of per-bucket (not cumulative) counts.

    `buckets` is `(upper_bound, count)` in increasing bound order (`math.inf` last).
    Conservative: 99 of 100 at ≤ 0.05 s and 1 at ≤ 2.5 s → p99 = 0.05, p99.5 = 2.5.
    None when there are no observations.
    """
    total = sum(count for _, count in buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for bound, count in buckets:
        seen += count
        if seen >= rank - 1e-9 and count > 0:
            return bound
    return buckets[-1][0]


def window_between(
    before: Mapping[str, float], after: Mapping[str, float], bounds: Sequence[float]
) -> Window:
    """The window from two snapshots of summed worker counters (`requests`, `errors`,
    `model_seconds_le_<bound>`), p99 in ms.

    A counter that went down (Redis lost its counters) counts from zero, never negative.
    """

    def delta(field: str) -> float:
        now, then = after.get(field, 0.0), before.get(field, 0.0)
        return now - then if now >= then else now

    buckets = [(float(b), delta(f"model_seconds_le_{b}")) for b in bounds]
    buckets.append((math.inf, delta("model_seconds_le_inf")))
    p99_s = histogram_quantile(buckets, 0.99)
    return Window(
        requests=int(delta("requests")),
        errors=int(delta("errors")),
        p99_ms=None if p99_s is None else p99_s * 1000.0,
    )
