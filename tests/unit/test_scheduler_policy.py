"""The scaler's policy over traffic shapes, on a fake clock: step, spike, sawtooth, ramp, idle.

A small simulation stands in for the world: messages arrive, each ready worker
serves `rate` messages a second, and a worker the policy asks for is ready
`startup_s` later. The policy sees what the scheduler would: the backlog at each
tick and when a message last arrived.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from scheduler.scaling.policy import (
    Bounds,
    Decision,
    Observation,
    Timings,
    VariantState,
    decide,
    invocation_rate,
    need_for,
    share_slots,
)

TIMINGS = Timings(scale_in_cooldown_s=30, scale_in_window_s=60, scale_to_zero_idle_s=300)


@dataclass
class World:
    bounds: Bounds
    timings: Timings = TIMINGS
    rate: float = 20.0  # messages per second per ready worker
    startup_s: float = 3.0
    now: float = 1_000_000.0  # a fake epoch clock
    queued: float = 0.0
    starts: list[float] = field(default_factory=list)  # start time of each worker
    state: VariantState | None = None
    last_arrival: float | None = None
    timeline: list[tuple[float, int, int, int]] = field(default_factory=list)
    events: list[Decision] = field(default_factory=list)

    @property
    def desired(self) -> int:
        return len(self.starts)

    def ready(self) -> int:
        return sum(1 for started in self.starts if self.now - started >= self.startup_s)

    def tick(self, arrivals: float) -> Decision:
        """One second: messages arrive and are served, then the scaler decides.

        The sample sees a ready worker as busy in proportion to the work it had
        this second, rounded up (a worker busy part of the second may be caught busy).
        """
        if arrivals:
            self.last_arrival = self.now
        ready = self.ready()
        work = self.queued + arrivals
        capacity = ready * self.rate
        busy = math.ceil(ready * min(work / capacity, 1.0)) if capacity else 0
        self.queued = max(work - capacity, 0.0)
        decision = decide(
            Observation(
                backlog=math.ceil(self.queued),
                in_flight=busy,
                current=ready,
                last_arrival_at=self.last_arrival,
            ),
            self.bounds,
            self.timings,
            self.state,
            self.now,
        )
        self.state = decision.state
        if decision.changed:
            self.events.append(decision)
        while len(self.starts) < decision.desired:
            self.starts.append(self.now)
        del self.starts[decision.desired :]  # the youngest go first
        self.timeline.append((self.now, math.ceil(self.queued), decision.desired, self.ready()))
        self.now += 1.0
        return decision

    def run(self, seconds: int, arrivals: Callable[[int], float] = lambda _t: 0.0) -> None:
        for t in range(seconds):
            self.tick(arrivals(t))

    def first_time(self, predicate: Callable[[int], bool], since: float = 0.0) -> float:
        """Seconds from `since` to the first tick whose desired count satisfies `predicate`."""
        for at, _backlog, desired, _ready in self.timeline:
            if at >= since and predicate(desired):
                return at - since
        raise AssertionError(f"never happened; timeline ends {self.timeline[-5:]}")


def bounds(min_workers: int = 0, max_workers: int = 8, target: int = 10) -> Bounds:
    return Bounds(
        min_workers=min_workers, max_workers=max_workers, target_backlog_per_worker=target
    )


@pytest.mark.parametrize(
    ("backlog", "in_flight", "current", "need"),
    [(0, 0, 0, 0), (1, 0, 0, 1), (120, 0, 0, 12), (45, 3, 3, 8), (0, 64, 2, 2), (9, 2, 4, 3)],
)
def test_need_is_busy_workers_plus_waiting_over_target(
    backlog: int, in_flight: int, current: int, need: int
) -> None:
    obs = Observation(backlog=backlog, in_flight=in_flight, current=current)
    assert need_for(obs, 10) == need


def test_spike_scales_out_in_one_decision_then_in_slowly_then_to_zero() -> None:
    world = World(bounds(max_workers=8))
    world.run(10)
    assert world.desired == 0 and not world.events
    spike_at = world.now
    world.tick(500)  # 500 messages at once
    # Wake from zero straight to the cap: 500 / 10 = 50 → 8, in the same tick.
    assert world.desired == 8
    assert world.events[0].previous == 0 and "capped at max_workers 8" in world.events[0].reason
    assert world.events[0].reason == (
        "wake from zero: 500 waiting, 0 in flight → need 50 at 10 waiting per worker, "
        "capped at max_workers 8"
    )
    world.run(400)
    drained = next(at for at, backlog, *_ in world.timeline if at > spike_at and backlog == 0)
    scale_in = world.events[1]
    assert scale_in.desired == 1, "scale in keeps one worker until the variant is idle"
    scale_in_at = scale_in.state.last_change_at
    # Not before both the look-back window and the cooldown have passed.
    assert scale_in_at - spike_at >= TIMINGS.scale_in_window_s
    assert scale_in_at - spike_at >= TIMINGS.scale_in_cooldown_s
    to_zero = world.events[2]
    assert to_zero.desired == 0 and to_zero.reason.startswith("idle for")
    idle_for = to_zero.state.last_change_at - drained
    assert TIMINGS.scale_to_zero_idle_s <= idle_for <= TIMINGS.scale_to_zero_idle_s + 2
    assert len(world.events) == 3


def test_step_tracks_the_load_without_flapping() -> None:
    world = World(bounds(max_workers=8), rate=20)
    world.run(10)
    start = world.now
    world.run(180, lambda _t: 50.0)  # 50 msg/s needs 3 workers at 20 msg/s each
    assert world.first_time(lambda d: d >= 1, since=start) == 0, "wakes on the first tick"
    assert world.first_time(lambda d: d >= 3, since=start) <= 5
    steady = [desired for at, _b, desired, _r in world.timeline if at >= start + 60]
    assert min(steady) >= 3, "never drops below what the load needs"
    assert max(desired for *_, desired, _r in world.timeline) <= 8
    # Scale-out, then at most a couple of trims once the startup backlog is gone.
    assert len(world.events) <= 4, [(e.previous, e.desired, e.reason) for e in world.events]


def test_sawtooth_keeps_its_workers_through_the_lulls() -> None:
    world = World(bounds(max_workers=8), rate=20)
    # Every 20 s a burst of 200 messages, drained in ~3 s by 4 workers, then a lull.
    world.run(240, lambda t: 200.0 if t % 20 == 0 else 0.0)
    after_warmup = [e for e in world.events if e.state.last_change_at >= 1_000_000 + 30]
    assert not [e for e in after_warmup if e.desired < e.previous], "scaled in during a lull"
    assert world.desired >= 1


def test_slow_ramp_follows_upwards_and_never_steps_back() -> None:
    world = World(bounds(max_workers=8), rate=20)
    world.run(300, lambda t: t / 300 * 100)  # 0 → 100 msg/s over five minutes
    desired = [d for *_, d, _r in world.timeline]
    first = desired.index(1)
    assert all(b >= a for a, b in zip(desired[first:], desired[first + 1 :], strict=False))
    assert desired[-1] >= 5, "100 msg/s at 20 per worker needs at least 5"
    assert max(desired) <= 8


@pytest.mark.parametrize(
    ("min_workers", "expected"), [(0, 0), (2, 2)], ids=["scale-to-zero", "min-workers"]
)
def test_idle_stays_at_its_floor(min_workers: int, expected: int) -> None:
    world = World(bounds(min_workers=min_workers))
    world.run(1000)
    assert world.desired == expected
    # Only the first decision moves to the floor (from zero running workers).
    assert len(world.events) == (1 if min_workers else 0)


def test_quick_jobs_between_ticks_keep_the_variant_awake() -> None:
    """The queue looks empty at every tick, yet a job arrives every 5 s: not idle."""
    world = World(bounds(), timings=TIMINGS)
    world.run(2, lambda _t: 1.0)  # wake
    assert world.desired == 1
    world.run(900, lambda t: 1.0 if t % 5 == 0 else 0.0)
    assert world.desired == 1, "scaled to zero while jobs kept arriving"
    stopped = world.now
    world.run(400)
    assert world.desired == 0
    assert world.first_time(lambda d: d == 0, since=stopped) <= TIMINGS.scale_to_zero_idle_s + 2


def test_bounds_changes_apply_at_once() -> None:
    world = World(bounds(max_workers=8))
    world.tick(500)
    assert world.desired == 8
    world.bounds = bounds(max_workers=2)
    world.tick(0)
    assert world.desired == 2 and world.events[-1].reason == "max_workers is 2"
    world.bounds = bounds(min_workers=3, max_workers=4)
    world.tick(0)
    assert world.desired == 3 and world.events[-1].reason == "min_workers is 3"


def test_a_restarted_scheduler_adopts_the_running_workers() -> None:
    decision = decide(
        Observation(backlog=0, in_flight=0, current=3), bounds(), TIMINGS, None, now=50.0
    )
    assert decision.desired == 3 and not decision.changed
    # ... and does not stop them before the cooldown (nor zero them before the idle period).
    later = decide(
        Observation(backlog=0, in_flight=0, current=3), bounds(), TIMINGS, decision.state, 60.0
    )
    assert later.desired == 3


def test_busy_workers_are_kept_while_the_queue_is_empty() -> None:
    """Workers that keep up leave nothing waiting; they are still needed."""
    state = None
    for second in range(200):
        decision = decide(
            Observation(backlog=0, in_flight=4, current=4), bounds(), TIMINGS, state, float(second)
        )
        state = decision.state
        assert decision.desired == 4


def test_max_workers_zero_never_wakes() -> None:
    decision = decide(
        Observation(backlog=100, in_flight=0, current=0),
        bounds(max_workers=0),
        TIMINGS,
        None,
        now=0.0,
    )
    assert decision.desired == 0 and not decision.changed


@pytest.mark.parametrize(
    ("wants", "slots", "expected"),
    [
        ({"a": 3, "b": 1, "c": 2}, 4, {"a": 2, "b": 1, "c": 1}),
        ({"a": 3, "b": 1}, 10, {"a": 3, "b": 1}),
        ({"a": 2, "b": 2}, 1, {"a": 1, "b": 0}),
        ({"a": 0}, 2, {"a": 0}),
        ({}, 2, {}),
    ],
)
def test_share_slots_round_robin(
    wants: dict[str, int], slots: int, expected: dict[str, int]
) -> None:
    assert share_slots(wants, slots) == expected


# --- inference components: invocations per copy, per-component timings -----------------


@pytest.mark.parametrize(
    ("rate", "backlog", "need"),
    [(450.0, 0, 5), (400.0, 0, 4), (0.0, 3, 1), (0.0, 0, 0), (50.0, 0, 1)],
)
def test_invocations_per_copy_per_minute(rate: float, backlog: int, need: int) -> None:
    obs = Observation(backlog=backlog, in_flight=0, current=1, invocations_per_minute=rate)
    assert need_for(obs, 10, target_invocations_per_minute=100) == need


def test_invocations_target_scales_out_and_says_so() -> None:
    bounds = Bounds(0, 8, 10, target_invocations_per_minute=100)
    obs = Observation(backlog=0, in_flight=1, current=1, invocations_per_minute=350)
    decision = decide(obs, bounds, TIMINGS, None, 1000.0)
    assert decision.desired == 4
    assert "100 invocations a minute per copy" in decision.reason


def test_a_component_with_its_own_short_cooldown_scales_in_sooner() -> None:
    """Per-component scale-in cooldown: same history, 5 s vs the global 30 s."""
    bounds = Bounds(0, 4, 10)
    busy = Observation(backlog=30, in_flight=0, current=0)
    quiet = Observation(backlog=0, in_flight=1, current=3)
    short = Timings(scale_in_cooldown_s=5, scale_in_window_s=5, scale_to_zero_idle_s=300)
    for timings, expected in ((TIMINGS, 3), (short, 1)):
        state = decide(busy, bounds, timings, None, 0.0).state
        assert state.desired == 3
        assert decide(quiet, bounds, timings, state, 10.0).desired == expected


def test_invocation_rate() -> None:
    assert invocation_rate(((0.0, 100.0), (15.0, 130.0), (30.0, 160.0))) == 120.0
    assert invocation_rate(((0.0, 100.0),)) == 0.0
    assert invocation_rate(((0.0, 500.0), (30.0, 20.0))) == 0.0, "a reset counter is no rate"
