"""The webhook retry schedule, driven by a fake clock: backoff, jitter, cap, and giving up."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

import pytest

from core.config import Settings
from scheduler.webhooks.retry_policy import Decision, RetryPolicy

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
POLICY = RetryPolicy(base_s=5, cap_s=3600)


@dataclass
class FakeClock:
    now: dt.datetime = T0

    def advance_to(self, moment: dt.datetime) -> None:
        assert moment >= self.now, "time runs forward"
        self.now = moment


@dataclass
class Receiver:
    """Fails the first `failures` attempts, then answers 2xx."""

    failures: int
    seen: list[dt.datetime] = field(default_factory=list)

    def attempt(self, now: dt.datetime) -> bool:
        self.seen.append(now)
        return len(self.seen) > self.failures


def drive(policy: RetryPolicy, receiver: Receiver, *, max_attempts: int, seed: int = 1) -> Decision:
    """Attempt, decide, jump the fake clock to the next attempt; until delivered or dead."""
    clock, rng = FakeClock(), random.Random(seed)
    attempt = 0
    while True:
        attempt += 1
        delivered = receiver.attempt(clock.now)
        decision = policy.decide(
            attempt=attempt,
            max_attempts=max_attempts,
            delivered=delivered,
            retryable=True,
            now=clock.now,
            rand=rng.random(),
        )
        if decision.status != "pending":
            return decision
        assert decision.next_attempt_at is not None
        clock.advance_to(decision.next_attempt_at)


def test_nominal_delays_double_from_the_base_and_stop_at_the_cap() -> None:
    delays = [POLICY.nominal_delay_s(n) for n in range(1, 14)]
    assert delays[:11] == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert delays[11:] == [3600, 3600]
    assert POLICY.nominal_delay_s(10_000) == 3600  # no float overflow far out


@pytest.mark.parametrize(("rand", "expected_s"), [(0.0, 16.0), (0.5, 20.0), (0.999, 23.992)])
def test_jitter_spreads_a_delay_by_at_most_a_fifth(rand: float, expected_s: float) -> None:
    # attempt 3 → nominal 20 s; jitter ±20 % → 16 s .. 24 s
    assert POLICY.delay_s(3, rand) == pytest.approx(expected_s)


def test_jittered_delays_differ_between_deliveries() -> None:
    rng = random.Random(7)
    delays = {round(POLICY.delay_s(4, rng.random()), 3) for _ in range(50)}
    assert len(delays) > 40
    assert all(32 <= d <= 48 for d in delays)


def test_a_receiver_failing_three_times_gets_the_fourth_attempt_on_schedule() -> None:
    receiver = Receiver(failures=3)
    decision = drive(POLICY, receiver, max_attempts=34)
    assert decision == Decision("delivered", None)
    gaps = [(b - a).total_seconds() for a, b in zip(receiver.seen, receiver.seen[1:], strict=False)]
    for gap, nominal in zip(gaps, [5, 10, 20], strict=True):
        assert 0.8 * nominal <= gap <= 1.2 * nominal


def test_a_receiver_that_never_answers_makes_the_delivery_dead_after_the_last_attempt() -> None:
    receiver = Receiver(failures=10_000)
    decision = drive(POLICY, receiver, max_attempts=34)
    assert decision == Decision("dead", None)
    assert len(receiver.seen) == 34
    spent_h = (receiver.seen[-1] - receiver.seen[0]).total_seconds() / 3600
    # nominal 24.4 h; ±20 % jitter on each of 33 delays averages out close to it
    assert 22 <= spent_h <= 27


def test_the_default_settings_retry_for_about_a_day() -> None:
    settings = Settings()
    policy = RetryPolicy(
        base_s=settings.webhook_backoff_base_s, cap_s=settings.webhook_backoff_cap_s
    )
    hours = policy.total_nominal_s(settings.webhook_max_attempts) / 3600
    assert 20 <= hours <= 28, hours


def test_a_refused_target_is_dead_at_once_and_a_2xx_is_delivered() -> None:
    common = {"attempt": 1, "max_attempts": 34, "now": T0, "rand": 0.5}
    assert POLICY.decide(delivered=False, retryable=False, **common).status == "dead"
    assert POLICY.decide(delivered=True, retryable=True, **common).status == "delivered"


def test_a_single_attempt_budget_never_retries() -> None:
    decision = POLICY.decide(
        attempt=1, max_attempts=1, delivered=False, retryable=True, now=T0, rand=0.5
    )
    assert decision.status == "dead"
