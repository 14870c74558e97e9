"""Dynamic batching decisions — pure functions of state and a clock, no I/O.

The consumer (workers/consumer.py) asks three questions; the first and third are
answered here:

1. *Flush now or gather more?* (`flush_reason`) A batch runs when it holds
   `max_batch_size` instances, when `max_delay_ms` has passed since its first
   request was taken, or as soon as a pull finds the queue empty. The last rule
   is why a lone request at low load pays no delay: once nothing else is
   queued, waiting can only delay the requests already in hand. Under load the
   queue refills while the model runs, so the next pull brings a fuller batch:
   batches grow exactly when the worker falls behind. Example: max 32, delay
   5 ms; 40 requests queued → the first pull takes 32 → "size". One request
   alone → the second pull is empty → "drained" after one extra round trip
   (~0.1 ms), not 5 ms.

2. *Which priority first?* That order is the broker's, with its priority lists:
   `core.broker.pull_order` (realtime before async before transform, with every
   8th pull starting at async and every 32nd at transform).

3. *How do gathered requests become model calls?* (`plan_calls`) Requests are
   packed in order into calls of at most `max_batch_size` rows; a request
   larger than that is split over several calls and reassembled afterwards.
   When a merged call fails, `isolate` bisects it to fail only the culprits;
   for batch-transform requests `split_failing` goes on down to single rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

FlushReason = Literal["size", "delay", "drained"]


@dataclass(frozen=True, slots=True)
class BatchSettings:
    max_batch_size: int = 1
    max_delay_ms: float = 0.0


def flush_reason(
    *,
    gathered_instances: int,
    first_taken_s: float,
    now_s: float,
    last_pull_empty: bool,
    settings: BatchSettings,
) -> FlushReason | None:
    """Why the gathered batch must run now, or None to pull again."""
    if gathered_instances >= settings.max_batch_size:
        return "size"
    # The nanosecond of slack absorbs float rounding of clock differences.
    if (now_s - first_taken_s) * 1000 + 1e-6 >= settings.max_delay_ms:
        return "delay"
    if last_pull_empty:
        return "drained"
    return None


@dataclass(frozen=True, slots=True)
class Slice:
    """Rows [start, stop) of request `request` within one model call."""

    request: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def plan_calls(sizes: Sequence[int], max_batch_size: int) -> list[list[Slice]]:
    """Pack requests (by row count, in order) into calls of at most `max_batch_size` rows.

    sizes [3, 40, 2] with max 32 → [[0:0-3, 1:0-29], [1:29-40, 2:0-2]]: request 1
    spans two calls and is reassembled from both.
    """
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
    calls: list[list[Slice]] = []
    current: list[Slice] = []
    room = max_batch_size
    for request, size in enumerate(sizes):
        start = 0
        while start < size:
            take = min(room, size - start)
            current.append(Slice(request, start, start + take))
            start += take
            room -= take
            if room == 0:
                calls.append(current)
                current, room = [], max_batch_size
    if current:
        calls.append(current)
    return calls


T = TypeVar("T")
R = TypeVar("R")


def isolate(
    items: Sequence[T], run: Callable[[Sequence[T]], Sequence[R]]
) -> list[R | BaseException]:
    """Run `items` together; if that raises, bisect to find the items that fail alone.

    Returns one result per item: its output, or the exception its own run raised.
    A poisoned item among 32 costs about 2·log2(32) = 10 extra calls, not 32.
    """
    try:
        results: list[R | BaseException] = list(run(items))
        return results
    except Exception as exc:
        if len(items) == 1:
            return [exc]
    middle = len(items) // 2
    return isolate(items[:middle], run) + isolate(items[middle:], run)


def split_failing(
    failed: Slice,
    run: Callable[[Sequence[Slice]], Sequence[R]],
    error: BaseException,
) -> list[tuple[Slice, R | BaseException]]:
    """Bisect a failed slice by rows until every failing part is a single row.

    For requests whose rows are independent records (batch transform), one bad
    row must not fail its neighbours: a chunk of 1,000 rows with one poisoned
    row costs about 2·log2(1000) = 20 extra calls. Returns (part, result) pairs
    in row order; `error` is what the whole slice raised.
    """
    if failed.rows <= 1:
        return [(failed, error)]
    middle = failed.start + failed.rows // 2
    outcomes: list[tuple[Slice, R | BaseException]] = []
    for half in (
        Slice(failed.request, failed.start, middle),
        Slice(failed.request, middle, failed.stop),
    ):
        try:
            outcomes.append((half, run([half])[0]))
        except Exception as exc:
            outcomes.extend(split_failing(half, run, exc))
    return outcomes
