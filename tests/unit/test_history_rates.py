"""The history sampler's pure part: rates and latency quantiles from two counter readings."""

from __future__ import annotations

import math

import pytest

from core.history import Point
from scheduler.history.rates import Reading, delta, point, quantile

BOUNDS = (0.005, 0.01, 0.025, math.inf)


def reading(at: float, requests: float, errors: float, counts: tuple[float, ...]) -> Reading:
    return Reading(
        at=at,
        requests=requests,
        errors=errors,
        model_buckets=tuple(zip(BOUNDS, counts, strict=True)),
        backlog=7,
        workers=2,
        desired=3,
    )


def test_the_worked_example_of_the_module_docstring() -> None:
    before = reading(100.0, 1_000, 3, (0, 0, 0, 0))
    after = reading(105.0, 1_600, 8, (10, 30, 10, 0))
    assert point(before, after) == Point(
        t=105.0,
        rps=120.0,
        eps=1.0,
        p50_ms=pytest.approx(7.5),
        p99_ms=pytest.approx(24.25),
        backlog=7,
        workers=2,
        desired=3,
    )


def test_no_batch_in_the_interval_means_no_latency_not_zero() -> None:
    sample = point(reading(0, 5, 0, (1, 1, 1, 0)), reading(5, 5, 0, (1, 1, 1, 0)))
    assert sample is not None
    assert (sample.rps, sample.p50_ms, sample.p99_ms) == (0.0, None, None)


def test_a_reset_counter_counts_from_zero() -> None:
    assert delta(1_000, 40) == 40
    sample = point(reading(0, 1_000, 9, (5, 0, 0, 0)), reading(4, 40, 0, (2, 0, 0, 0)))
    assert sample is not None and sample.rps == 10.0 and sample.eps == 0.0


def test_beyond_the_last_bound_the_quantile_is_that_bound() -> None:
    assert quantile(0.99, list(zip(BOUNDS, (0, 0, 1, 99), strict=True))) == 0.025


def test_no_time_between_readings_gives_no_point() -> None:
    assert point(reading(5, 0, 0, (0, 0, 0, 0)), reading(5, 1, 0, (0, 0, 0, 0))) is None
