"""The deployment's pure decisions: plans, steps, baking, provisioning, rollback (fake clock)."""

from __future__ import annotations

import math

import pytest

from scheduler.deployments.decisions import (
    Plan,
    Progress,
    RollbackOn,
    Window,
    decide,
    histogram_quantile,
    plan_percents,
    window_between,
)

T0 = 1_000_000.0


def _plan(percents: tuple[float, ...], rules: RollbackOn | None = None) -> Plan:
    return Plan(
        percents=percents,
        step_interval_s=60,
        baking_s=300,
        rollback_on=rules,
        provision_timeout_s=120,
    )


def _at(step: int, *, provisioned: bool = True, window: Window | None = None) -> Progress:
    return Progress(
        step_index=step, step_started_at=T0, provisioned=provisioned, window=window or Window()
    )


@pytest.mark.parametrize(
    ("strategy", "canary", "linear", "expected"),
    [
        ("all_at_once", None, None, (100.0,)),
        ("canary", 10, None, (10.0, 100.0)),
        ("canary", 100, None, (100.0,)),
        ("linear", None, 33, (33.0, 66.0, 100.0)),
        ("linear", None, 25, (25.0, 50.0, 75.0, 100.0)),
        ("linear", None, 40, (40.0, 80.0, 100.0)),
        ("linear", None, 100, (100.0,)),
    ],
)
def test_plans(strategy: str, canary: float | None, linear: float | None, expected: tuple) -> None:
    got = plan_percents(strategy, canary_percent=canary, linear_step_percent=linear)  # type: ignore[arg-type]
    assert got == expected


@pytest.mark.parametrize(
    ("strategy", "canary", "linear", "field"),
    [("canary", None, None, "canary_percent"), ("linear", None, 0, "linear_step_percent")],
)
def test_a_strategy_without_its_percent_is_refused(
    strategy: str, canary: float | None, linear: float | None, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        plan_percents(strategy, canary_percent=canary, linear_step_percent=linear)  # type: ignore[arg-type]


def test_no_traffic_moves_until_the_new_workers_are_up() -> None:
    plan = _plan((10.0, 100.0))
    assert decide(plan, _at(-1, provisioned=False), T0 + 5).action == "wait"
    assert decide(plan, _at(-1, provisioned=True), T0 + 5).next_index == 0


def test_provisioning_that_never_ends_fails_the_deployment() -> None:
    decision = decide(_plan((100.0,)), _at(-1, provisioned=False), T0 + 120)
    assert decision.action == "fail"
    assert "120 s" in (decision.reason or "")


def test_a_step_is_watched_for_its_interval_then_the_next_begins() -> None:
    plan = _plan((33.0, 66.0, 100.0))
    assert decide(plan, _at(0), T0 + 59.9).action == "wait"
    assert decide(plan, _at(0), T0 + 60).next_index == 1
    assert decide(plan, _at(1), T0 + 61).next_index == 2


def test_the_last_step_bakes_then_succeeds() -> None:
    plan = _plan((10.0, 100.0))
    assert decide(plan, _at(1), T0 + 299).action == "wait"
    assert decide(plan, _at(1), T0 + 300).action == "succeed"


def test_error_rate_above_the_threshold_rolls_back_naming_threshold_and_value() -> None:
    plan = _plan((10.0, 100.0), RollbackOn(error_rate_percent=5, min_requests=20))
    decision = decide(plan, _at(0, window=Window(requests=40, errors=3)), T0 + 1)
    assert decision.action == "rollback"
    assert "error rate 7.5%" in (decision.reason or "")
    assert "rollback_on.error_rate_percent 5%" in (decision.reason or "")
    assert "10% of traffic" in (decision.reason or "")


def test_nothing_is_judged_before_min_requests() -> None:
    plan = _plan((10.0, 100.0), RollbackOn(error_rate_percent=5, min_requests=20))
    assert decide(plan, _at(0, window=Window(requests=19, errors=19)), T0 + 1).action == "wait"


def test_error_rate_at_the_threshold_does_not_trip() -> None:
    plan = _plan((100.0,), RollbackOn(error_rate_percent=5, min_requests=20))
    assert decide(plan, _at(0, window=Window(requests=100, errors=5)), T0 + 1).action == "wait"


def test_p99_above_the_threshold_rolls_back_even_while_baking() -> None:
    plan = _plan((100.0,), RollbackOn(p99_latency_ms=2000, min_requests=10))
    window = Window(requests=50, errors=0, p99_ms=2500.0)
    decision = decide(plan, _at(0, window=window), T0 + 299)
    assert decision.action == "rollback"
    assert "p99 2500 ms" in (decision.reason or "")
    assert "rollback_on.p99_latency_ms 2000 ms" in (decision.reason or "")


def test_a_rollback_wins_over_the_end_of_a_step() -> None:
    plan = _plan((10.0, 100.0), RollbackOn(error_rate_percent=1, min_requests=1))
    decision = decide(plan, _at(0, window=Window(requests=10, errors=5)), T0 + 600)
    assert decision.action == "rollback"


def test_histogram_quantile_is_the_upper_bound_of_its_bucket() -> None:
    buckets = [(0.05, 99.0), (2.5, 1.0), (math.inf, 0.0)]
    assert histogram_quantile(buckets, 0.99) == 0.05
    assert histogram_quantile(buckets, 0.995) == 2.5
    assert histogram_quantile([(1.0, 0.0), (math.inf, 0.0)], 0.99) is None


def test_window_between_snapshots_and_a_counter_reset() -> None:
    before = {"requests": 100.0, "errors": 4.0, "model_seconds_le_0.01": 50.0}
    after = {
        "requests": 140.0,
        "errors": 6.0,
        "model_seconds_le_0.01": 70.0,
        "model_seconds_le_1": 1.0,
    }
    window = window_between(before, after, (0.01, 1))
    assert (window.requests, window.errors) == (40, 2)
    assert window.p99_ms == 1000.0
    reset = window_between(before, {"requests": 7.0}, (0.01,))
    assert reset.requests == 7 and reset.errors == 0 and reset.p99_ms is None
