"""What a worker does with a batch of invocations: prepare, run merged, complete.

- prepare: decode each request, drop realtime calls whose caller has given up,
  move async jobs to `running` (a job already finished — a duplicate delivery —
  is skipped), read async inputs from the object store, parse rows.
  Transform chunks are claimed, read by a ranged GET and parsed record by
  record (workers/transform.py).
- run: requests of one model are merged row-wise into calls of at most
  `max_batch_size` rows; a failing call is bisected so only the guilty
  requests fail (workers/batching.py); for a transform chunk the bisection
  goes down to the single record. `single_record` chunks call the model once
  per record. Custom python handlers run one by one.
- complete: realtime answers go to each caller's reply list in one pipeline;
  async outputs go to their fixed key in the object store, then the job rows
  move to `succeeded`/`failed` — each guarded by the row's current status, so
  a redelivered message never finishes a job twice and never writes a second
  output object. Transform chunks write their part objects and are marked
  done once, their counts added to their job.

Errors of the input or the model fail only their request with a readable
reason. Errors of the infrastructure (S3, SQL down) mark a request
`transient`: it is not acknowledged, so Redis redelivers it after the
visibility timeout; after `MAX_ATTEMPTS` deliveries the job fails for good.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis
import sqlalchemy.exc
from sqlalchemy import update

from core import codecs
from core.db import session_scope
from core.errors import (
    InvalidInput,
    ModelError,
    NotFound,
    SluicewayError,
    describe,
    error_kind,
)
from core.outbox import record_job_event
from core.protocol import Invocation, Reply, pack
from core.states import JOB_UNFINISHED, JobStatus
from core.storage import ObjectStore, S3Location
from core.tables import Job, utcnow
from workers import capture, transform
from workers.batching import BatchSettings, Slice, isolate, plan_calls, split_failing
from workers.model_cache import ModelCache
from workers.runners.base import NumericRunner, Runner

logger = logging.getLogger(__name__)

REPLY_TTL_S = 120
MAX_ATTEMPTS = 5  # deliveries of one async job before it fails for good


@dataclass(eq=False)
class Request:
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
    chunk: transform.ChunkWork | None = None  # batch transform: the chunk and its records

    @property
    def instances(self) -> int:
        return len(self.rows) if self.rows is not None else (1 if self.body is not None else 0)

    @property
    def live(self) -> bool:
        return not (self.skip or self.transient or self.error is not None)


class TransientError(Exception):
    """Infrastructure trouble: retry the work later rather than fail it."""


@dataclass
class BatchStats:
    model_s: float = 0.0
    calls: int = 0
    rows: int = 0


class Executor:
    def __init__(
        self, *, cache: ModelCache, store: ObjectStore, redis: redis.Redis, namespace: str
    ) -> None:
        self.cache = cache
        self.store = store
        self.redis = redis
        self.namespace = namespace
        # Async inputs and outputs are independent objects: move them in parallel.
        self._io = ThreadPoolExecutor(max_workers=8, thread_name_prefix="s3-io")
        self.capture = capture.recorder_for_worker(store)

    # --- prepare ----------------------------------------------------------------

    def prepare(self, invocations: Sequence[tuple[Invocation, str | None]]) -> list[Request]:
        now_ms = time.time() * 1000
        requests = [Request(inv=inv, tag=tag) for inv, tag in invocations]
        for request in requests:
            request.queue_wait_s = max(now_ms - request.inv.enqueued_ms, 0) / 1000
            deadline = request.inv.deadline_ms
            if request.inv.mode == "realtime" and deadline is not None and now_ms > deadline:
                logger.info(
                    "job %s: caller timed out %.0f ms ago; dropped before compute",
                    request.inv.job_id,
                    now_ms - deadline,
                )
                request.skip = True
        self._start_async_jobs([r for r in requests if r.inv.mode == "async" and not r.skip])
        transform.claim(
            [r for r in requests if r.inv.mode == "transform" and not r.skip],
            max_attempts=MAX_ATTEMPTS,
        )
        # Stored inputs are fetched in parallel; inline ones (realtime) are read
        # here, without a trip through the thread pool (~10 µs per request).
        stored = {
            id(r): self._io.submit(self._payload, r)
            for r in requests
            if r.live and r.inv.mode != "realtime" and r.inv.input_location is not None
        }
        for request in requests:
            future = stored.get(id(request))
            payload = future.result() if future is not None else self._payload(request)
            if payload is not None and request.live:
                request.payload = payload
                self._parse(request, payload)
        return requests

    def _start_async_jobs(self, requests: list[Request]) -> None:
        """Move jobs to `running`; skip those already finished; fail those retried too often."""
        if not requests:
            return
        ids = [r.inv.job_id for r in requests]
        try:
            with session_scope() as session:
                result = session.execute(
                    update(Job)
                    .where(Job.id.in_(ids), Job.status.in_(JOB_UNFINISHED))
                    .values(
                        status=JobStatus.RUNNING, started_at=utcnow(), attempts=Job.attempts + 1
                    )
                    .returning(Job.id, Job.attempts),
                    execution_options={"synchronize_session": False},
                )
                started = {job_id: attempts for job_id, attempts in result.all()}
        except sqlalchemy.exc.OperationalError as exc:
            logger.warning("database unavailable starting %d job(s): %s", len(ids), exc)
            for request in requests:
                request.transient = True
            return
        for request in requests:
            attempts = started.get(request.inv.job_id)
            if attempts is None:
                logger.info(
                    "job %s: already finished (duplicate delivery); skipped", request.inv.job_id
                )
                request.skip = True
            elif attempts > MAX_ATTEMPTS:
                request.dead_letter = True
                request.error = ModelError(
                    f"gave up after {attempts - 1} deliveries (the worker died or the "
                    "infrastructure failed each time); dead-lettered"
                )

    def _payload(self, request: Request) -> bytes | None:
        if not request.live:
            return None
        if request.inv.mode == "realtime" or request.inv.input_location is None:
            return request.inv.body or b""
        if request.chunk is not None:
            return transform.read(self.store, request)
        try:
            return self.store.get_bytes(S3Location.parse(request.inv.input_location))
        except NotFound as exc:
            request.error = InvalidInput(f"input is gone: {exc.detail}")
        except SluicewayError as exc:
            logger.warning("job %s: cannot read input: %s", request.inv.job_id, exc.detail)
            request.transient = True
        return None

    def _parse(self, request: Request, payload: bytes) -> None:
        try:
            runner = self.cache.get(request.inv.model)
            request.runner = runner
            if request.chunk is not None:
                transform.parse(request, runner, payload)
            elif isinstance(runner, NumericRunner):
                request.rows = runner.to_array(payload, request.inv.content_type)
                if request.inv.content_type == codecs.CSV:
                    request.blank_lines = codecs.blank_lines(payload)
            else:
                request.body = payload
        except SluicewayError as exc:
            if exc.status >= 500 and not isinstance(exc, ModelError):
                request.transient = True  # e.g. the artifact could not be downloaded
            else:
                request.error = exc
        except Exception as exc:
            # A loader or parser bug must fail this request, not the whole batch.
            logger.exception("job %s: unexpected error preparing it", request.inv.job_id)
            request.error = ModelError(f"cannot run the model: {describe(exc)}")

    # --- run --------------------------------------------------------------------

    def run(self, requests: list[Request], settings: BatchSettings) -> BatchStats:
        stats = BatchStats()
        groups: dict[int, list[Request]] = defaultdict(list)
        for request in requests:
            if request.live and request.runner is not None:
                groups[id(request.runner)].append(request)
        for group in groups.values():
            runner = group[0].runner
            if isinstance(runner, NumericRunner):
                self._run_numeric(runner, group, settings, stats)
            else:
                for request in group:
                    self._run_handler(request, stats)
        return stats

    def _run_numeric(
        self,
        runner: NumericRunner,
        group: list[Request],
        settings: BatchSettings,
        stats: BatchStats,
    ) -> None:
        rows = [r.rows for r in group]
        parts: dict[int, list[tuple[int, list[Any]]]] = defaultdict(list)
        single = [r.chunk is not None and r.chunk.single_record for r in group]

        def run_slices(slices: Sequence[Slice]) -> list[list[Any]]:
            merged = np.concatenate([rows[s.request][s.start : s.stop] for s in slices])  # type: ignore[index]
            started = time.perf_counter()
            try:
                predictions = runner.predict(merged)
            finally:
                stats.model_s += time.perf_counter() - started
                stats.calls += 1
            out, offset = [], 0
            for s in slices:
                out.append(predictions[offset : offset + s.rows])
                offset += s.rows
            return out

        sizes = [0 if one else len(r) for r, one in zip(rows, single, strict=True)]  # type: ignore[arg-type]
        calls = plan_calls(sizes, settings.max_batch_size)
        for index, one in enumerate(single):  # single_record: one model call per record
            if one:
                calls += [[Slice(index, k, k + 1)] for k in range(len(rows[index]))]  # type: ignore[arg-type]
        for call in calls:
            stats.rows += sum(s.rows for s in call)
            for s, result in zip(call, isolate(call, run_slices), strict=True):
                request = group[s.request]
                if request.chunk is not None and isinstance(result, BaseException):
                    # A transform chunk's records are independent: fail only the bad ones.
                    for part, outcome in split_failing(s, run_slices, result):
                        if isinstance(outcome, BaseException):
                            reason = transform.failure_reason(outcome)
                            request.chunk.row_failures.update(
                                dict.fromkeys(range(part.start, part.stop), reason)
                            )
                        else:
                            parts[s.request].append((part.start, outcome))
                elif isinstance(result, SluicewayError):
                    request.error = request.error or result
                elif isinstance(result, BaseException):
                    request.error = request.error or ModelError(
                        f"the model raised {describe(result)}"
                    )
                else:
                    parts[s.request].append((s.start, result))
        for index, request in enumerate(group):
            if request.chunk is not None:
                predictions: list[Any] = [None] * len(rows[index])  # type: ignore[arg-type]
                for start, chunk in parts[index]:
                    predictions[start : start + len(chunk)] = chunk
                request.chunk.predictions = predictions
            elif request.error is None:
                request.predictions = [p for _, chunk in sorted(parts[index]) for p in chunk]
                accept = codecs.response_type(request.inv.content_type, request.inv.accept)
                request.output = codecs.encode_predictions(
                    request.predictions, accept, blank_lines=request.blank_lines
                )

    def _run_handler(self, request: Request, stats: BatchStats) -> None:
        assert request.runner is not None and request.body is not None
        started = time.perf_counter()
        try:
            request.output = request.runner.invoke(
                request.body, request.inv.content_type, request.inv.accept
            )
        except SluicewayError as exc:
            request.error = exc
        except Exception as exc:
            request.error = ModelError(f"the handler raised {describe(exc)}")
        finally:
            stats.model_s += time.perf_counter() - started
            stats.calls += 1
            stats.rows += 1

    # --- complete ---------------------------------------------------------------

    def complete(self, requests: list[Request], *, model_ms: float) -> None:
        """Answer realtime callers, store async and transform outputs, record job states."""
        self._reply([r for r in requests if r.inv.mode == "realtime" and not r.skip], model_ms)
        async_requests = [r for r in requests if r.inv.mode == "async"]
        list(self._io.map(self._store_output, async_requests))
        self._finish_jobs([r for r in async_requests if not (r.skip or r.transient)])
        self.capture.record(requests)  # buffered; written to S3 off this path
        transform.finish(
            [r for r in requests if r.chunk is not None and not (r.skip or r.transient)],
            store=self.store,
            client=self.redis,
            namespace=self.namespace,
            io_map=self._io.map,
        )

    def _reply(self, requests: list[Request], model_ms: float) -> None:
        if not requests:
            return
        replies: dict[str, list[bytes]] = defaultdict(list)  # per API process
        for request in requests:
            if request.transient:
                # Realtime callers are waiting now: answer 503 rather than retry later.
                request.error = SluicewayError("temporary infrastructure failure; retry")
                request.transient = False
            if request.error is not None:
                reply = Reply(
                    job_id=request.inv.job_id,
                    ok=False,
                    error_kind=error_kind(request.error),
                    detail=request.error.detail,
                )
            else:
                assert request.output is not None
                body, content_type = request.output
                reply = Reply(
                    job_id=request.inv.job_id,
                    ok=True,
                    body=body,
                    content_type=content_type,
                    model_ms=model_ms,
                )
            assert request.inv.reply_to is not None
            replies[request.inv.reply_to].append(pack(reply.to_wire()))
        # One RPUSH per API process for the whole batch, not one per request.
        pipe = self.redis.pipeline(transaction=False)
        for key, packed in replies.items():
            pipe.rpush(key, *packed)
            pipe.expire(key, REPLY_TTL_S)
        pipe.execute()

    def _store_output(self, request: Request) -> None:
        if request.output is None or not request.live:
            return
        assert request.inv.output_location is not None
        body, content_type = request.output
        try:
            self.store.put_bytes(S3Location.parse(request.inv.output_location), body, content_type)
        except SluicewayError as exc:
            logger.warning("job %s: cannot write output: %s", request.inv.job_id, exc.detail)
            request.transient = True
        except Exception as exc:
            logger.exception("job %s: cannot write output", request.inv.job_id)
            request.error = InvalidInput(
                f"cannot write output to {request.inv.output_location}: {describe(exc)}"
            )

    def _finish_jobs(self, requests: list[Request]) -> None:
        if not requests:
            return
        try:
            with session_scope() as session:
                for request in requests:
                    finish_job(session, request)
        except sqlalchemy.exc.OperationalError as exc:
            logger.warning("database unavailable finishing %d job(s): %s", len(requests), exc)
            for request in requests:
                request.transient = True


def finish_job(session: Any, request: Request) -> None:
    """Record one job's terminal state, once: the UPDATE only matches a running job."""
    job_id = request.inv.job_id
    if request.error is not None:
        values: dict[str, Any] = {
            "status": JobStatus.FAILED,
            "error": f"{request.error.title}: {request.error.detail}",
            "dead_letter": request.dead_letter,
        }
        logger.warning("job %s: failed: %s", job_id, values["error"])
    else:
        assert request.output is not None
        values = {
            "status": JobStatus.SUCCEEDED,
            "output_content_type": request.output[1],
            "error": None,
        }
        logger.info("job %s: succeeded, output at %s", job_id, request.inv.output_location)
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(JOB_UNFINISHED))
        .values(finished_at=utcnow(), **values)
    )
    # The outbox event goes in the same transaction, and only when this call
    # actually finished the job: a duplicate delivery publishes nothing.
    if result.rowcount:
        record_job_event(session, job_id)
