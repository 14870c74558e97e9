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

2. *Which priority first, and how many of each?* The order is the broker's,
   with its priority lists: `core.broker.pull_order` (realtime before async
   before transform, with every 8th pull starting at async and every 32nd at
   transform). How many of each is `pull_caps`: a pull takes one transform
   chunk at most, and no more async invocations than the endpoint's
   `max_concurrent_invocations_per_worker` leaves room for: with a cap of 4 and
   3 already in the batch, the next pull may take 1 more (a worker runs one
   batch at a time, so what a batch holds is what the worker holds).

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

from core.broker import PRIORITY

FlushReason = Literal["size", "delay", "drained"]

# A transform message is a whole chunk (up to max_payload_mb of records): take
# one per pull, so one worker does not hoard a job's chunks while others idle,
# and a batch holds at most a few chunks' bytes. Smaller chunks still merge:
# the consumer pulls again while the batch is short of max_batch_size.
TRANSFORM_PER_PULL = 1


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """A variant queue's batching, as its worker applies it.

    `max_concurrent_async` is the endpoint's `max_concurrent_invocations_per_worker`
    (None: no cap but `max_batch_size`).
    """

    max_batch_size: int = 1
    max_delay_ms: float = 0.0
    max_concurrent_async: int | None = None


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


def pull_caps(
    order: Sequence[int], *, limit: int, settings: BatchSettings, async_held: int
) -> list[tuple[int, int]]:
    """(priority step, most messages to take from its list) for one pull, in `order`.

    Each list may give up to `limit`, except the transform list (one chunk) and
    the async list (the endpoint's cap less the `async_held` already in the
    batch). Lists that may give nothing are left out. Limit 32, cap 4, 3 held:
    order (0, 3, 6, 9) → [(0, 32), (3, 1), (6, 1), (9, 32)]; with 4 held the
    async list is left out.
    """
    caps: list[tuple[int, int]] = []
    for step in order:
        cap = limit
        if step == PRIORITY["transform"]:
            cap = min(limit, TRANSFORM_PER_PULL)
        elif step == PRIORITY["async"] and settings.max_concurrent_async is not None:
            cap = min(limit, settings.max_concurrent_async - async_held)
        if cap > 0:
            caps.append((step, cap))
    return caps


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
    items: Sequence[T],
    run: Callable[[Sequence[T]], Sequence[R]],
    *,
    keep_whole: tuple[type[BaseException], ...] = (),
) -> list[R | BaseException]:
    """Run `items` together; if that raises, bisect to find the items that fail alone.

    Returns one result per item: its output, or the exception its own run raised.
    A poisoned item among 32 costs about 2·log2(32) = 10 extra calls, not 32.
    An exception of a `keep_whole` type fails every item at once instead: a
    call that timed out would only time out again, half as wide, twice.
    """
    try:
        results: list[R | BaseException] = list(run(items))
        return results
    except Exception as exc:
        if len(items) == 1 or isinstance(exc, keep_whole):
            return [exc] * len(items)
    middle = len(items) // 2
    return isolate(items[:middle], run, keep_whole=keep_whole) + isolate(
        items[middle:], run, keep_whole=keep_whole
    )


def split_failing(
    failed: Slice,
    run: Callable[[Sequence[Slice]], Sequence[R]],
    error: BaseException,
    *,
    keep_whole: tuple[type[BaseException], ...] = (),
) -> list[tuple[Slice, R | BaseException]]:
    """Bisect a failed slice by rows until every failing part is a single row.

    For requests whose rows are independent records (batch transform), one bad
    row must not fail its neighbours: a chunk of 1,000 rows with one poisoned
    row costs about 2·log2(1000) = 20 extra calls. Returns (part, result) pairs
    in row order; `error` is what the whole slice raised. A part failing with a
    `keep_whole` error (a timeout) fails whole, without further bisection.
    """
    if failed.rows <= 1 or isinstance(error, keep_whole):
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
            outcomes.extend(split_failing(half, run, exc, keep_whole=keep_whole))
    return outcomes
