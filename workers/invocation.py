"""An invocation in flight through a worker: the message, and what became of it so far.

Vocabulary: an *invocation* is the unit of work (one realtime call, one async
job's run, one transform chunk); a *job* is a row in SQL. `InFlight` carries
one invocation through the worker's three phases (workers/execution.py):
prepare fills `runner` and `rows` (numeric models) or `body` (python
handlers), run fills `predictions`/`output` or `error`, and complete answers,
stores and records it. Flags say why an invocation left the normal path:

- `skip`: nothing to do (its realtime caller gave up, its job already finished
  — a duplicate delivery — or its transform chunk is stale); acknowledged.
- `transient`: the infrastructure failed (S3, SQL); not acknowledged, so Redis
  delivers it again.
- `error`: it failed, for a reason its caller or job row is told.

`deadline_s` (epoch seconds) is when its model work must be done: the
realtime caller's deadline, or an async job's start plus its
`invocation_timeout_s` — e.g. started at 1,000.0 with a 900 s limit → 1,900.0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import InvocationTimeout, SluicewayError
from core.protocol import Invocation
from workers.runners.base import Runner

if TYPE_CHECKING:
    from concurrent.futures import Future

    from workers.modes.transform import ChunkWork


@dataclass(eq=False)
class InFlight:
    """One invocation on its way through a batch."""

    inv: Invocation
    tag: str | None = None  # delivery tag to acknowledge
    runner: Runner | None = None
    rows: np.ndarray | None = None  # numeric models
    blank_lines: tuple[int, ...] = ()  # of a CSV body: kept as empty lines in a CSV answer
    body: bytes | None = None  # custom handlers
    payload: bytes | None = None  # the input as received (data capture)
    predictions: list[Any] = field(default_factory=list)
    output: tuple[bytes, str] | None = None
    error: SluicewayError | None = None
    transient: bool = False  # infrastructure trouble: leave unacknowledged
    skip: bool = False  # nothing to do (caller gone, job already finished)
    dead_letter: bool = False  # failed every delivery: kept apart as a poison job
    queue_wait_s: float = 0.0
    deadline_s: float | None = None  # epoch seconds by which its model work must be done
    timeout_s: float | None = None  # the limit that deadline comes from, for messages
    failure_location: str | None = None  # async: where its error document goes if it fails
    finished_at: dt.datetime | None = None  # async: when it finished, as recorded and documented
    chunk: ChunkWork | None = None  # batch transform: the chunk and its records
    records: bool = False  # its rows are independent records: a bad one fails alone
    one_per_call: bool = False  # call the model once per row (single_record)
    row_failures: dict[int, str] = field(default_factory=dict)  # records: row → why it failed
    model_cache: str | None = None  # multi-model variants: "hit", or "miss" when it was loaded
    # multi-model variants: the load of its model, running while the rest of its pull is
    # answered (workers/execution.py), and the mode handler that parses it afterwards
    loading: Future[object] | None = None
    handler: object | None = None

    @property
    def instances(self) -> int:
        return len(self.rows) if self.rows is not None else (1 if self.body is not None else 0)

    @property
    def live(self) -> bool:
        return not (self.skip or self.transient or self.error is not None)

    def remaining_s(self, now_s: float) -> float | None:
        """Seconds left before its deadline (at least 0), or None when it has none."""
        return None if self.deadline_s is None else max(self.deadline_s - now_s, 0.0)

    def timed_out(self) -> InvocationTimeout:
        """The error of an invocation that ran past its deadline."""
        limit = f"{self.timeout_s:g} s" if self.timeout_s is not None else "its deadline"
        return InvocationTimeout(f"the invocation ran longer than its limit of {limit}")


@dataclass
class BatchStats:
    """What one batch cost in model time and calls (for the worker's metrics)."""

    model_s: float = 0.0
    calls: int = 0
    rows: int = 0
