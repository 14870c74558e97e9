"""One handler per invocation mode: what each phase of a batch means for it.

The executor (workers/execution.py) takes every batch through the same phases
and hands each mode's invocations to that mode's handler for the parts that
differ — once per phase, not an `if mode == ...` in each:

- realtime (modes/realtime.py): prepare drops calls whose caller gave up and
  takes the caller's deadline; the payload is inline; complete answers every
  caller of the batch with one RPUSH per API process.
- async (modes/asynchronous.py): prepare starts the job rows (skipping jobs
  already finished, failing expired and dead-lettered ones without running
  them) and sets the deadline from the job's `invocation_timeout_s`; the input
  object is read on the I/O pool; complete stores outputs and error documents,
  then records each job once.
- transform (modes/transform.py): prepare claims the chunks (skipping stale
  ones); one ranged GET reads a chunk; parse turns records into rows; complete
  writes the output parts, then records each chunk once.

Running the models (merged calls for numeric models, one call at a time for
python handlers) is the same for every mode.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

import redis

from core import codecs
from core.storage import ObjectStore
from workers.invocation import InFlight
from workers.runners.base import NumericRunner, Runner


@dataclass(frozen=True)
class WorkerIO:
    """What the mode handlers talk to: the object store, Redis, and the I/O thread pool."""

    store: ObjectStore
    redis: redis.Redis
    namespace: str
    pool: ThreadPoolExecutor


class ModeHandler:
    """The mode-specific parts of a batch's phases; the defaults suit inline payloads."""

    # True when `read` goes to the object store: the executor runs it on the I/O pool.
    reads_store: ClassVar[bool] = False

    def __init__(self, io: WorkerIO) -> None:
        self.io = io

    def prepare(self, items: list[InFlight]) -> None:
        """Bookkeeping before payloads are read: set deadlines, skip or fail what must not run."""

    def read(self, item: InFlight) -> bytes | None:
        """The payload; None when it cannot be had (the item then says why)."""
        return item.inv.body or b""

    def parse(self, item: InFlight, runner: Runner, payload: bytes) -> None:
        """Rows for a numeric model (and a CSV body's blank lines, kept in a CSV answer),
        the body as is for a python handler."""
        if isinstance(runner, NumericRunner):
            item.rows = runner.to_array(payload, item.inv.content_type)
            if item.inv.content_type == codecs.CSV:
                item.blank_lines = codecs.blank_lines(payload)
        else:
            item.body = payload

    def complete(self, items: list[InFlight], *, model_ms: float) -> None:
        """Answer, store and record what the run produced."""
