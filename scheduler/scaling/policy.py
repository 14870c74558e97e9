"""The scaler's decisions as pure functions: worker counts from backlog, bounds and a clock.

`decide` takes one variant's observation (backlog, in-flight, live workers, last
arrival), its bounds (`min_workers`, `max_workers`, target backlog per worker),
the global timings and the state it returned last time, and returns the desired
worker count, why it changed, and the state to pass next time. No I/O and no
clock of its own: the scheduler passes `now`, the tests a fake one.

The rules, in order:
1. Bounds first: a count outside `[min_workers, max_workers]` (a PATCH moved
   them) is brought inside at once.
2. Scale out fast: the need is the workers busy now plus one per `target`
   messages waiting ("3 busy, 120 waiting at 10 per worker → 3 + 12 = 15,
   capped at max 8"); above the current count it is applied at once, several
   workers in one decision. From zero this is the wake-up on the first job.
   Counting the busy workers matters under steady load: workers that keep up
   leave the queue near empty, and a need from the waiting messages alone would
   drop them until the queue grew again (a flapping sawtooth).
3. Scale to zero: with `min_workers` 0, after `scale_to_zero_idle_s` with
   nothing queued, reserved, running or arriving.
4. Scale in slowly: down only to the largest need seen over the look-back
   window (a brief lull in a sawtooth drops nothing), never below one worker
   until the variant is idle, and no sooner than the cooldown after the last
   change.

`share_slots` splits a machine's worker slots between variants that want more
than the machine has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TypeVar


@dataclass(frozen=True, slots=True)
class Bounds:
    """A variant's own scaling settings (from the variants table)."""

    min_workers: int
    max_workers: int
    target_backlog_per_worker: int
    # An inference component may scale on invocations instead (SageMaker's
    # InvocationsPerCopy): one copy per this many a minute; 0 scales on the backlog.
    target_invocations_per_minute: float = 0.0

    def clamp(self, count: int) -> int:
        return max(self.min_workers, min(count, self.max_workers))

    def describe_target(self) -> str:
        if self.target_invocations_per_minute > 0:
            return f"{self.target_invocations_per_minute:g} invocations a minute per copy"
        return f"{self.target_backlog_per_worker} waiting per worker"


@dataclass(frozen=True, slots=True)
class Timings:
    """The scaler's global timings (from the settings)."""

    scale_in_cooldown_s: float = 60.0
    scale_in_window_s: float = 60.0
    scale_to_zero_idle_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Observation:
    """What the scheduler saw of one variant just now."""

    backlog: int  # waiting: queued in Redis, or reserved by a worker and not started
    in_flight: int  # being executed
    current: int  # live workers consuming the variant's queue
    last_arrival_at: float | None = None  # when a producer last enqueued (clock seconds)
    invocations_per_minute: float = 0.0  # answered lately (for the invocations target)

    @property
    def demand(self) -> int:
        return self.backlog + self.in_flight


@dataclass(frozen=True, slots=True)
class VariantState:
    """What `decide` remembers between calls for one variant."""

    desired: int
    last_change_at: float
    last_busy_at: float
    # (time, need) samples within the look-back window, oldest first.
    needs: tuple[tuple[float, int], ...] = ()

    def window_need(self) -> int:
        return max((need for _, need in self.needs), default=0)


@dataclass(frozen=True, slots=True)
class Decision:
    desired: int
    previous: int
    reason: str  # why the count changed; empty when it did not
    state: VariantState

    @property
    def changed(self) -> bool:
        return self.desired != self.previous


def need_for(
    obs: Observation, target_backlog_per_worker: int, *, target_invocations_per_minute: float = 0.0
) -> int:
    """Busy workers plus one per `target` waiting: 3 busy, 45 waiting, target 10 → 3 + 5 = 8.

    A worker may run many messages at once (a batch), so busy workers are at most
    the in-flight messages and at most the live workers.

    With an invocations target, one copy per `target` invocations a minute, and at
    least one while anything waits (the wake from zero): 450 a minute at 100 per
    copy → 5 copies; 0 a minute with 3 queued → 1.
    """
    if target_invocations_per_minute > 0:
        by_rate = math.ceil(obs.invocations_per_minute / target_invocations_per_minute - 1e-9)
        return max(by_rate, 1 if obs.demand > 0 else 0)
    busy = min(obs.in_flight, obs.current)
    return busy + math.ceil(obs.backlog / max(target_backlog_per_worker, 1))


def initial_state(obs: Observation, now: float) -> VariantState:
    """A variant seen for the first time (or after a scheduler restart): adopt what runs.

    The idle clock and the cooldown start now, so a restart never stops workers at
    once; the bounds rule then brings the count within `[min, max]` as a change.
    """
    return VariantState(desired=obs.current, last_change_at=now, last_busy_at=now)


def decide(
    obs: Observation,
    bounds: Bounds,
    timings: Timings,
    state: VariantState | None,
    now: float,
) -> Decision:
    """The desired worker count of one variant now, and the state for the next call."""
    if state is None:
        state = initial_state(obs, now)
    previous = state.desired
    need = need_for(
        obs,
        bounds.target_backlog_per_worker,
        target_invocations_per_minute=bounds.target_invocations_per_minute,
    )

    busy_at = state.last_busy_at
    if obs.demand > 0:
        busy_at = now
    elif obs.last_arrival_at is not None:
        busy_at = max(busy_at, min(obs.last_arrival_at, now))
    window_start = now - timings.scale_in_window_s
    needs = (*(s for s in state.needs if s[0] >= window_start), (now, need))
    state = replace(state, last_busy_at=busy_at, needs=needs)

    desired, reason = _target(obs, bounds, timings, state, need, now)
    if desired != previous:
        state = replace(state, desired=desired, last_change_at=now)
    return Decision(desired=desired, previous=previous, reason=reason, state=state)


def _target(
    obs: Observation,
    bounds: Bounds,
    timings: Timings,
    state: VariantState,
    need: int,
    now: float,
) -> tuple[int, str]:
    current = state.desired
    if current > bounds.max_workers:
        return bounds.max_workers, f"max_workers is {bounds.max_workers}"
    if current < bounds.min_workers:
        return bounds.min_workers, f"min_workers is {bounds.min_workers}"

    work = f"{obs.backlog} waiting, {obs.in_flight} in flight"
    if need > current:
        target = bounds.clamp(need)
        if target == current:  # already at max_workers
            return current, ""
        capped = f", capped at max_workers {bounds.max_workers}" if need > target else ""
        why = f"{work} → need {need} at {bounds.describe_target()}{capped}"
        return target, f"wake from zero: {why}" if current == 0 else f"scale out: {why}"

    idle_s = now - state.last_busy_at
    if bounds.min_workers == 0 and current > 0 and idle_s >= timings.scale_to_zero_idle_s:
        limit = timings.scale_to_zero_idle_s
        return 0, f"idle for {idle_s:.0f} s (scale to zero after {limit:g} s)"

    # Keep one worker warm until the variant has been idle long enough for zero.
    floor = max(bounds.min_workers, 1 if current > 0 else 0)
    window_need = state.window_need()
    target = max(window_need, floor)
    if target < current and now - state.last_change_at >= timings.scale_in_cooldown_s:
        return target, (
            f"scale in: need at most {window_need} over the last "
            f"{timings.scale_in_window_s:g} s ({work} now)"
        )
    return current, ""


K = TypeVar("K")


def share_slots(wants: dict[K, int], slots: int) -> dict[K, int]:
    """Split `slots` between variants wanting more than there are, one slot each in turn.

    Round-robin in the order of `wants`, so every variant with work gets a worker
    before any gets a second: wants {a: 3, b: 1, c: 2} with 4 slots → {a: 2, b: 1, c: 1}.
    """
    granted = dict.fromkeys(wants, 0)
    left = max(slots, 0)
    while left > 0:
        hungry = [key for key, want in wants.items() if granted[key] < want]
        if not hungry:
            break
        for key in hungry[:left]:
            granted[key] += 1
        left -= min(left, len(hungry))
    return granted


def invocation_rate(samples: tuple[tuple[float, float], ...]) -> float:
    """Invocations a minute from (time, answered-ever) samples, oldest first.

    Samples at t=0 with 100 answered and t=30 with 160 → 60 in 30 s → 120 a minute.
    Fewer than two samples, or under a second apart: 0. A counter that went back
    (its Redis hash was reset) counts from its new value.
    """
    if len(samples) < 2:
        return 0.0
    (t0, n0), (t1, n1) = samples[0], samples[-1]
    if t1 - t0 < 1.0:
        return 0.0
    return max(n1 - n0, 0.0) * 60.0 / (t1 - t0)
