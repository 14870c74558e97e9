"""The batcher's pure decisions, driven by a fake clock."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from core.broker import pull_order
from workers.batching import (
    BatchSettings,
    Slice,
    flush_reason,
    isolate,
    plan_calls,
    pull_caps,
    split_failing,
)

ON = BatchSettings(max_batch_size=32, max_delay_ms=5)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def advance_ms(self, ms: float) -> None:
        self.now += ms / 1000


@pytest.mark.parametrize(
    ("gathered", "elapsed_ms", "empty", "expected"),
    [
        (32, 0, False, "size"),  # full: run at once
        (40, 0, False, "size"),
        (5, 5, False, "delay"),  # waited max_delay_ms
        (5, 1, True, "drained"),  # nothing more queued: no point waiting
        (1, 0, True, "drained"),  # a lone request at low load pays no delay
        (5, 1, False, None),  # more is arriving: keep gathering
    ],
)
def test_flush_reason(gathered: int, elapsed_ms: float, empty: bool, expected: str | None) -> None:
    clock = FakeClock()
    first = clock.now
    clock.advance_ms(elapsed_ms)
    assert (
        flush_reason(
            gathered_instances=gathered,
            first_taken_s=first,
            now_s=clock.now,
            last_pull_empty=empty,
            settings=ON,
        )
        == expected
    )


def test_gathering_under_steady_arrivals_stops_at_the_delay() -> None:
    """Arrivals every 1 ms never drain the queue: the batch runs at 5 ms, not later."""
    clock = FakeClock()
    first, gathered = clock.now, 1
    reasons = []
    while True:
        clock.advance_ms(1)
        gathered += 1
        reason = flush_reason(
            gathered_instances=gathered,
            first_taken_s=first,
            now_s=clock.now,
            last_pull_empty=False,
            settings=ON,
        )
        if reason:
            reasons.append(reason)
            break
    assert reasons == ["delay"]
    assert gathered == 6


def test_batching_off_runs_every_request_alone() -> None:
    off = BatchSettings(max_batch_size=1, max_delay_ms=0)
    assert (
        flush_reason(
            gathered_instances=1, first_taken_s=0, now_s=0, last_pull_empty=False, settings=off
        )
        == "size"
    )


def test_plan_calls_packs_and_splits_large_requests() -> None:
    assert plan_calls([3, 40, 2], 32) == [
        [Slice(0, 0, 3), Slice(1, 0, 29)],
        [Slice(1, 29, 40), Slice(2, 0, 2)],
    ]
    assert plan_calls([1] * 4, 2) == [
        [Slice(0, 0, 1), Slice(1, 0, 1)],
        [Slice(2, 0, 1), Slice(3, 0, 1)],
    ]
    assert plan_calls([100], 32) == [
        [Slice(0, 0, 32)],
        [Slice(0, 32, 64)],
        [Slice(0, 64, 96)],
        [Slice(0, 96, 100)],
    ]
    assert plan_calls([], 8) == []


def test_plan_calls_covers_every_row_exactly_once() -> None:
    sizes = [7, 1, 33, 64, 2, 5]
    for max_size in (1, 3, 32, 64, 1000):
        covered: dict[int, list[tuple[int, int]]] = {}
        for call in plan_calls(sizes, max_size):
            assert sum(s.rows for s in call) <= max_size
            for s in call:
                covered.setdefault(s.request, []).append((s.start, s.stop))
        for request, size in enumerate(sizes):
            spans = sorted(covered[request])
            assert spans[0][0] == 0 and spans[-1][1] == size
            assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))


def test_isolate_fails_only_the_poisoned_items() -> None:
    calls: list[int] = []

    def run(items: Sequence[int]) -> list[int]:
        calls.append(len(items))
        if 13 in items or 20 in items:
            raise ValueError("poison")
        return [i * 2 for i in items]

    results = isolate(list(range(32)), run)
    assert [isinstance(r, ValueError) for r in results] == [i in (13, 20) for i in range(32)]
    assert [r for r in results if not isinstance(r, BaseException)] == [
        i * 2 for i in range(32) if i not in (13, 20)
    ]
    assert len(calls) < 32  # bisection, not one call per item


def test_isolate_runs_once_when_nothing_fails() -> None:
    calls: list[int] = []

    def run(items: Sequence[int]) -> list[int]:
        calls.append(len(items))
        return list(items)

    assert isolate([1, 2, 3], run) == [1, 2, 3]
    assert calls == [3]


def test_split_failing_bisects_down_to_the_bad_rows() -> None:
    """Rows 3 and 12 of 16 are poisoned: everything else gets its result."""
    calls: list[Slice] = []

    def run(slices: Sequence[Slice]) -> list[list[int]]:
        (s,) = slices
        calls.append(s)
        if any(row in (3, 12) for row in range(s.start, s.stop)):
            raise ValueError(f"rows {s.start}-{s.stop} hold a bad one")
        return [list(range(s.start, s.stop))]

    outcomes = split_failing(Slice(0, 0, 16), run, ValueError("whole"))
    failed = [s for s, r in outcomes if isinstance(r, BaseException)]
    assert failed == [Slice(0, 3, 4), Slice(0, 12, 13)]
    succeeded = [row for _, r in outcomes if not isinstance(r, BaseException) for row in r]
    assert succeeded == [r for r in range(16) if r not in (3, 12)]
    assert len(calls) <= 2 * 2 * 4  # two culprits, log2(16) levels, two halves each


def test_split_failing_of_one_row_returns_its_error() -> None:
    error = ValueError("bad")
    assert split_failing(Slice(2, 5, 6), lambda _: [], error) == [(Slice(2, 5, 6), error)]


@pytest.mark.parametrize(
    ("cap", "held", "expected"),
    [
        (None, 0, [(0, 32), (3, 32), (6, 1), (9, 32)]),
        (4, 0, [(0, 32), (3, 4), (6, 1), (9, 32)]),
        (4, 3, [(0, 32), (3, 1), (6, 1), (9, 32)]),
        (4, 4, [(0, 32), (6, 1), (9, 32)]),  # full: the async list is not read
        (100, 0, [(0, 32), (3, 32), (6, 1), (9, 32)]),  # never above the batch's room
    ],
)
def test_pull_caps_hold_async_to_the_endpoint_cap(
    cap: int | None, held: int, expected: list[tuple[int, int]]
) -> None:
    settings = BatchSettings(max_batch_size=32, max_concurrent_async=cap)
    assert pull_caps((0, 3, 6, 9), limit=32, settings=settings, async_held=held) == expected


def test_pull_caps_keep_the_pull_order() -> None:
    settings = BatchSettings(max_batch_size=8, max_concurrent_async=2)
    caps = pull_caps(pull_order(7), limit=8, settings=settings, async_held=0)
    assert caps == [(3, 2), (0, 8), (6, 1), (9, 8)]


class Timeout(Exception):
    pass


def test_isolate_does_not_bisect_an_error_kept_whole() -> None:
    calls: list[Sequence[int]] = []

    def run(items: Sequence[int]) -> list[int]:
        calls.append(items)
        raise Timeout("no answer in time")

    results = isolate([1, 2, 3, 4], run, keep_whole=(Timeout,))
    assert calls == [[1, 2, 3, 4]]
    assert all(isinstance(r, Timeout) for r in results) and len(results) == 4


def test_split_failing_stops_at_an_error_kept_whole() -> None:
    def run(slices: Sequence[Slice]) -> list[list[int]]:
        raise Timeout("no answer in time")

    whole = Slice(0, 0, 8)
    assert split_failing(whole, run, Timeout("first"), keep_whole=(Timeout,))[0][0] == whole
