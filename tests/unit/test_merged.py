"""run_merged: packing rows into model calls, splitting results back, bisecting failures.

A fake model stands in for torch/XGBoost: it records every call's rows and
answers each row with its first value doubled, raising on a poisoned value.
Deadlines run on a fake clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from core.errors import InvocationTimeout, ModelError
from workers.merged import run_merged

POISON = -1.0


@dataclass(eq=False)
class Item:
    rows: np.ndarray | None
    records: bool = False
    one_per_call: bool = False
    deadline_s: float | None = None

    def timed_out(self) -> InvocationTimeout:
        return InvocationTimeout("too slow")


class FakeModel:
    def __init__(self, *, short_by: int = 0, timeout_on: float | None = None) -> None:
        self.calls: list[list[float]] = []
        self.short_by = short_by
        self.timeout_on = timeout_on

    def __call__(self, rows: np.ndarray) -> Sequence[Any]:
        firsts = [float(r[0]) for r in rows]
        self.calls.append(firsts)
        if self.timeout_on is not None and self.timeout_on in firsts:
            raise InvocationTimeout("no answer within 1 s")
        if POISON in firsts:
            raise ValueError("poisoned row")
        answers = [2 * v for v in firsts]
        return answers[: len(answers) - self.short_by]


def rows(*firsts: float) -> np.ndarray:
    return np.array([[v, 0.0] for v in firsts], dtype=np.float32)


def item(*firsts: float, **flags: Any) -> Item:
    return Item(rows=rows(*firsts), **flags)


def test_requests_merge_into_one_call_and_split_back_in_order() -> None:
    model = FakeModel()
    run = run_merged(model, [item(1, 2), item(3), item(4, 5, 6)], max_batch_size=32)
    assert model.calls == [[1, 2, 3, 4, 5, 6]]
    assert [o.predictions for o in run.outcomes] == [[2, 4], [6], [8, 10, 12]]
    assert (run.calls, run.rows) == (1, 6)


def test_one_bad_request_fails_alone_and_the_others_keep_their_order() -> None:
    model = FakeModel()
    run = run_merged(model, [item(1), item(2), item(POISON), item(4)], max_batch_size=32)
    assert [o.predictions for o in run.outcomes] == [[2], [4], None, [8]]
    assert isinstance(run.outcomes[2].error, ValueError)
    assert all(o.error is None for i, o in enumerate(run.outcomes) if i != 2)
    assert len(model.calls) == 5  # the whole, two halves, the bad half's halves


def test_an_oversize_request_is_split_over_calls_and_reassembled() -> None:
    """Rows 3, 9 and 2 with a maximum of 4: calls [3+1], [4], [4], [2]."""
    model = FakeModel()
    big = list(range(10, 19))
    run = run_merged(model, [item(1, 2, 3), item(*big), item(7, 8)], max_batch_size=4)
    assert [len(call) for call in model.calls] == [4, 4, 4, 2]
    assert run.outcomes[1].predictions == [2 * v for v in big]
    assert [run.outcomes[0].predictions, run.outcomes[2].predictions] == [[2, 4, 6], [14, 16]]


def test_a_failure_in_one_call_of_a_split_request_fails_it_and_spares_its_later_calls() -> None:
    model = FakeModel()
    run = run_merged(model, [item(1, POISON, 3, 4, 5, 6), item(7)], max_batch_size=2)
    assert isinstance(run.outcomes[0].error, ValueError)
    assert run.outcomes[1].predictions == [14]
    assert [5.0, 6.0] not in model.calls  # no compute for a request already failed


def test_a_transform_chunk_fails_only_its_bad_records() -> None:
    model = FakeModel()
    chunk = item(1, 2, POISON, 4, 5, records=True)
    run = run_merged(model, [chunk, item(9)], max_batch_size=32)
    assert run.outcomes[0].error is None
    assert run.outcomes[0].predictions == [2, 4, None, 8, 10]
    assert list(run.outcomes[0].row_errors) == [2]
    assert run.outcomes[1].predictions == [18]


def test_single_record_chunks_call_the_model_once_per_record() -> None:
    model = FakeModel()
    run = run_merged(model, [item(1, 2, 3, records=True, one_per_call=True)], max_batch_size=32)
    assert model.calls == [[1], [2], [3]]
    assert run.outcomes[0].predictions == [2, 4, 6]


def test_a_model_answering_too_few_predictions_fails_the_call() -> None:
    run = run_merged(FakeModel(short_by=1), [item(1, 2, 3)], max_batch_size=32)
    assert isinstance(run.outcomes[0].error, ModelError)
    assert "returned 2 predictions for 3 instances" in str(run.outcomes[0].error)


def test_an_item_past_its_deadline_fails_with_its_timeout_without_running() -> None:
    """Deadlines are checked before each call, on the given clock."""
    model = FakeModel()
    now = [100.0]

    def clock() -> float:
        now[0] += 1.0  # one second per call
        return now[0]

    late = item(1, 2, 3, 4, deadline_s=101.5)
    on_time = item(5, 6, 7, 8, deadline_s=1000.0)
    run = run_merged(model, [late, on_time], max_batch_size=2, clock=clock)
    assert model.calls == [[1, 2], [5, 6], [7, 8]]  # late's second call never ran
    assert isinstance(run.outcomes[0].error, InvocationTimeout)
    assert run.outcomes[1].predictions == [10, 12, 14, 16]


def test_a_timeout_fails_its_call_whole_without_bisecting() -> None:
    """Halving a call that timed out only waits as long again, twice."""
    model = FakeModel(timeout_on=3.0)
    chunk = item(1, 2, 3, 4, records=True)
    run = run_merged(model, [chunk, item(5)], max_batch_size=32)
    assert len(model.calls) == 1
    assert set(run.outcomes[0].row_errors) == {0, 1, 2, 3}
    assert isinstance(run.outcomes[1].error, InvocationTimeout)


@pytest.mark.parametrize("max_batch_size", [1, 3, 64])
def test_every_row_is_predicted_once_whatever_the_packing(max_batch_size: int) -> None:
    model = FakeModel()
    items = [item(*range(n, n + n)) for n in range(1, 8)]
    run = run_merged(model, items, max_batch_size=max_batch_size)
    assert sum(len(call) for call in model.calls) == sum(n for n in range(1, 8))
    for source, outcome in zip(items, run.outcomes, strict=True):
        assert source.rows is not None
        assert outcome.predictions == [2 * float(r[0]) for r in source.rows]
