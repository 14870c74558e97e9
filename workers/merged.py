"""Merged model calls: many invocations' rows through one model, split back per invocation.

`run_merged(predict, items, max_batch_size)` is the core of dynamic batching,
with no I/O of its own (the model is the `predict` it is given):

1. pack: the items' rows, in order, into calls of at most `max_batch_size`
   rows (`batching.plan_calls`). Rows 3, 40 and 2 with a maximum of 32 → two
   calls, [3 + 29] and [11 + 2]; the 40-row item spans both and is
   reassembled. An item marked `one_per_call` (batch transform's
   `single_record`) gets one call per row instead.
2. call: each call's rows are concatenated and predicted at once; the model
   must return one prediction per row ("the model returned 31 predictions for
   32 instances" otherwise).
3. bisect: a call that raises is bisected (`batching.isolate`) so only the
   guilty items fail; an item of independent `records` (a transform chunk)
   is bisected further, down to single rows (`batching.split_failing`), so a
   bad record fails alone. A timeout is not bisected: the halves would only
   time out again.
4. between calls: an item that already failed gets no more calls, and one
   past its `deadline_s` fails with its timeout error without running.

Each item's outcome is its predictions in row order, or the error that failed
it, or (records) the rows that failed and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from core.errors import InvocationTimeout, ModelError
from workers.batching import Slice, isolate, plan_calls, split_failing

Predict = Callable[[np.ndarray], Sequence[Any]]

# Errors that fail a whole call without bisecting it.
WHOLE = (InvocationTimeout,)


class Mergeable(Protocol):
    """What `run_merged` needs of an item (workers.invocation.InFlight has it)."""

    rows: np.ndarray | None
    records: bool
    one_per_call: bool
    deadline_s: float | None

    def timed_out(self) -> InvocationTimeout: ...


@dataclass(slots=True)
class Outcome:
    """What became of one item: predictions (one per row), or why it failed."""

    predictions: list[Any] | None = None  # records: failed rows hold None
    error: BaseException | None = None  # the item failed as a whole
    row_errors: dict[int, BaseException] = field(default_factory=dict)  # records: row → why


@dataclass
class MergedRun:
    outcomes: list[Outcome]
    calls: int = 0
    rows: int = 0
    model_s: float = 0.0


def run_merged(
    predict: Predict,
    items: Sequence[Mergeable],
    max_batch_size: int,
    *,
    clock: Callable[[], float] = time.time,
    timer: Callable[[], float] = time.perf_counter,
) -> MergedRun:
    """Run `items` through `predict` in merged calls; one outcome per item, in order.

    `clock` (epoch seconds) is compared with the items' deadlines before each
    call; `timer` measures model time. Raises nothing the model raises.
    """
    rows = [_rows(item) for item in items]
    run = MergedRun(outcomes=[Outcome() for _ in items])
    parts: list[list[tuple[int, Sequence[Any]]]] = [[] for _ in items]
    deadlines = any(item.deadline_s is not None for item in items)

    def call(slices: Sequence[Slice]) -> list[Sequence[Any]]:
        merged = np.concatenate([rows[s.request][s.start : s.stop] for s in slices])
        started = timer()
        try:
            predictions = predict(merged)
        finally:
            run.model_s += timer() - started
            run.calls += 1
        if len(predictions) != len(merged):
            raise ModelError(
                f"the model returned {len(predictions)} predictions for {len(merged)} instances"
            )
        out, offset = [], 0
        for s in slices:
            out.append(predictions[offset : offset + s.rows])
            offset += s.rows
        return out

    def wanted(index: int, now: float | None) -> bool:
        outcome = run.outcomes[index]
        if outcome.error is not None:
            return False
        deadline = items[index].deadline_s
        if now is not None and deadline is not None and now > deadline:
            outcome.error = items[index].timed_out()
            return False
        return True

    planned = plan_calls(
        [0 if item.one_per_call else len(r) for item, r in zip(items, rows, strict=True)],
        max_batch_size,
    )
    for index, item in enumerate(items):
        if item.one_per_call:
            planned += [[Slice(index, k, k + 1)] for k in range(len(rows[index]))]
    for slices in planned:
        now = clock() if deadlines else None
        live = [s for s in slices if wanted(s.request, now)]
        if not live:
            continue
        run.rows += sum(s.rows for s in live)
        for s, result in zip(live, isolate(live, call, keep_whole=WHOLE), strict=True):
            outcome = run.outcomes[s.request]
            if not isinstance(result, BaseException):
                parts[s.request].append((s.start, result))
            elif items[s.request].records:
                for part, got in split_failing(s, call, result, keep_whole=WHOLE):
                    if isinstance(got, BaseException):
                        outcome.row_errors.update(dict.fromkeys(range(part.start, part.stop), got))
                    else:
                        parts[s.request].append((part.start, got))
            else:
                outcome.error = outcome.error or result
    for index, item in enumerate(items):
        outcome = run.outcomes[index]
        if outcome.error is not None:
            continue
        if item.records:
            predictions: list[Any] = [None] * len(rows[index])
            for start, chunk in parts[index]:
                predictions[start : start + len(chunk)] = chunk
            outcome.predictions = predictions
        elif len(parts[index]) == 1:  # the usual case: the item fit in one call
            outcome.predictions = list(parts[index][0][1])
        else:
            ordered = sorted(parts[index], key=lambda part: part[0])
            outcome.predictions = [p for _, chunk in ordered for p in chunk]
    return run


def _rows(item: Mergeable) -> np.ndarray:
    if item.rows is None:
        raise ValueError("run_merged needs items with rows")
    return item.rows
