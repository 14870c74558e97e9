"""The worker's side of batch transform: claim a chunk, answer its records, record it once.

A `transform` invocation names one chunk: whole lines [start, end) of an input
object (see scheduler/transform/coordinator.py). The executor (workers/execution.py)
handles it like any invocation; this mode handler adds:

- claim: one UPDATE marks the chunk taken (attempts + 1) only if it is still
  pending, the message's token is still the chunk's, and its job is running.
  Otherwise the message is a duplicate, stale (the job was stopped and resumed,
  or the chunk re-sent) or its job stopped: it is skipped and acknowledged.
- read: one ranged GET of the chunk's bytes (at most max_payload_mb).
- parse: records become rows; a record that does not parse is a failure of
  that record alone (core/records.py), not of the invocation. The rows are
  independent records: in a merged call that fails, only the bad rows fail
  (workers/merged.py). `single_record` chunks call the model once per record.
- finish: the output part (one line per input line) and the error part go to
  the object store under names of this attempt's own; then one transaction
  marks the chunk done and adds its counts to the job — guarded by the chunk's
  status, so a redelivered chunk never counts twice (the loser deletes its
  parts). A request-level error (the model cannot load, the input object is
  gone, the chunk was delivered too often) marks the chunk failed with its
  reason; the coordinator then fails the job (it alone ends jobs).

A python handler gets a chunk's rows as `{"instances": [...]}` and must answer
one prediction per row; each call of it is bounded by the default invocation
timeout (900 s): a call that runs longer fails its rows with a timeout reason.

Infrastructure errors leave the message unacknowledged (`transient`): Redis
redelivers it after the visibility timeout.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import redis
import sqlalchemy.exc
from sqlalchemy import select, update

from core import codecs
from core.broker import wake_transform_coordinator
from core.db import session_scope
from core.errors import InvalidInput, ModelError, NotFound, SluicewayError
from core.protocol import Invocation
from core.records import ParsedChunk, parse_chunk, render_chunk
from core.states import ChunkStatus, TransformStatus
from core.storage import ObjectStore, S3Location
from core.tables import TransformChunk, TransformJob, utcnow
from core.timeouts import DEFAULT_INVOCATION_TIMEOUT_S
from workers.invocation import InFlight
from workers.modes import ModeHandler
from workers.runners.base import NumericRunner, Runner

logger = logging.getLogger(__name__)


@dataclass
class ChunkWork:
    """The chunk a transform request carries, and what became of its records."""

    chunk_id: int
    token: str
    first_line: int
    lines: int
    start: int
    end: int
    join_source: str
    single_record: bool
    part_uri: str
    parsed: ParsedChunk | None = None
    part: str | None = None  # where this attempt wrote its output part
    error_part: str | None = None

    @classmethod
    def from_invocation(cls, inv: Invocation) -> ChunkWork:
        extra = inv.extra
        return cls(
            chunk_id=int(extra["chunk_id"]),
            token=str(extra["token"]),
            first_line=int(extra["first_line"]),
            lines=int(extra["lines"]),
            start=int(extra["start"]),
            end=int(extra["end"]),
            join_source=str(extra["join_source"]),
            single_record=extra["batch_strategy"] == "single_record",
            part_uri=str(inv.output_location),
        )


class HandlerRows(NumericRunner):
    """A custom python handler seen as rows in, predictions out, for batch transform.

    Records reach the handler as `{"instances": [row, ...]}` (application/json)
    and it must answer `{"predictions": [...]}`, one per row — the default
    handler functions do.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def predict_array(self, rows: np.ndarray) -> list[Any]:
        body = orjson.dumps({"instances": rows.tolist()})
        output, _content_type = self.runner.invoke(
            body, codecs.JSON, codecs.JSON, timeout_s=float(DEFAULT_INVOCATION_TIMEOUT_S)
        )
        try:
            predictions = orjson.loads(output)["predictions"]
        except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
            raise ModelError(
                'for batch transform a handler must answer {"predictions": [...]} in JSON'
            ) from exc
        if not isinstance(predictions, list):
            raise ModelError(f'"predictions" must be a list, got {type(predictions).__name__}')
        return predictions


MAX_ATTEMPTS = 5  # deliveries of one chunk before it fails its job


class Transform(ModeHandler):
    reads_store = True

    def prepare(self, items: list[InFlight]) -> None:
        claim(items, max_attempts=MAX_ATTEMPTS)

    def read(self, item: InFlight) -> bytes | None:
        return read(self.io.store, item)

    def parse(self, item: InFlight, runner: Runner, payload: bytes) -> None:
        parse(item, runner, payload)

    def complete(self, items: list[InFlight], *, model_ms: float) -> None:
        finish(
            [item for item in items if not (item.skip or item.transient)],
            store=self.io.store,
            client=self.io.redis,
            namespace=self.io.namespace,
            io_map=self.io.pool.map,
        )


def claim(requests: list[InFlight], *, max_attempts: int) -> None:
    """Take the chunks of these requests; skip the stale, fail those delivered too often."""
    if not requests:
        return
    for request in requests:
        request.chunk = ChunkWork.from_invocation(request.inv)
    running = select(TransformJob.id).where(TransformJob.status == TransformStatus.RUNNING)
    try:
        with session_scope() as session:
            claimed: dict[int, int] = {}
            for request in requests:
                assert request.chunk is not None
                attempts = session.scalar(
                    update(TransformChunk)
                    .where(
                        TransformChunk.id == request.chunk.chunk_id,
                        TransformChunk.token == request.chunk.token,
                        TransformChunk.status == ChunkStatus.PENDING,
                        TransformChunk.job_id.in_(running),
                    )
                    .values(attempts=TransformChunk.attempts + 1, claimed_at=utcnow())
                    .returning(TransformChunk.attempts),
                    execution_options={"synchronize_session": False},
                )
                if attempts is not None:
                    claimed[request.chunk.chunk_id] = attempts
    except sqlalchemy.exc.OperationalError as exc:
        logger.warning("database unavailable claiming %d chunk(s): %s", len(requests), exc)
        for request in requests:
            request.transient = True
        return
    for request in requests:
        assert request.chunk is not None
        attempts = claimed.get(request.chunk.chunk_id)
        if attempts is None:
            logger.info(
                "job %s: chunk %d is done, re-sent or its job is not running; skipped",
                request.inv.job_id,
                request.chunk.chunk_id,
            )
            request.skip = True
        elif attempts > max_attempts:
            request.error = ModelError(
                f"chunk {request.chunk.chunk_id} (lines from {request.chunk.first_line} of "
                f"{request.inv.input_location}) was delivered {attempts - 1} times without "
                "finishing (a worker died on it each time)"
            )


def read(store: ObjectStore, request: InFlight) -> bytes | None:
    """The chunk's bytes, by one ranged GET."""
    assert request.chunk is not None and request.inv.input_location is not None
    chunk = request.chunk
    try:
        return store.get_range(
            S3Location.parse(request.inv.input_location), chunk.start, chunk.end - chunk.start
        )
    except NotFound as exc:
        request.error = InvalidInput(f"an input object is gone or shorter: {exc.detail}")
    except SluicewayError as exc:
        logger.warning("job %s: cannot read a chunk: %s", request.inv.job_id, exc.detail)
        request.transient = True
    return None


def parse(request: InFlight, runner: Runner, payload: bytes) -> None:
    """Records to rows; a custom handler is wrapped so it takes rows like a numeric model."""
    assert request.chunk is not None
    expected = runner.expected_features if isinstance(runner, NumericRunner) else None
    parsed = parse_chunk(payload, request.inv.content_type, expected)
    if len(parsed.lines) != request.chunk.lines:
        request.error = InvalidInput(
            f"{request.inv.input_location} changed while the job ran: bytes "
            f"{request.chunk.start}-{request.chunk.end} now hold {len(parsed.lines)} lines, "
            f"{request.chunk.lines} when the job was planned"
        )
        return
    request.chunk.parsed = parsed
    request.rows = parsed.rows
    request.records = True
    request.one_per_call = request.chunk.single_record
    request.runner = runner if isinstance(runner, NumericRunner) else HandlerRows(runner)


def finish(
    requests: list[InFlight],
    *,
    store: ObjectStore,
    client: redis.Redis,
    namespace: str,
    io_map: Any,
) -> None:
    """Write each chunk's parts, then record chunks done (once) or failed."""
    if not requests:
        return
    done = [r for r in requests if r.error is None]
    list(io_map(lambda r: _write_parts(store, r), done))
    done = [r for r in done if not r.transient]
    failing = [r for r in requests if r.error is not None]
    losers: list[str] = []
    try:
        with session_scope() as session:
            # One lock order (job, chunk) across workers, so two never deadlock.
            for request in sorted(done, key=lambda r: (r.inv.job_id, _chunk(r).chunk_id)):
                losers += _mark_done(session, request)
            for request in failing:
                _mark_failed(session, request)
    except sqlalchemy.exc.OperationalError as exc:
        logger.warning("database unavailable finishing %d chunk(s): %s", len(requests), exc)
        for request in done + failing:
            request.transient = True
        return
    for failure in store.delete_uris(losers):
        # Harmless: the coordinator sweeps a job's parts when it finishes.
        logger.warning("could not delete duplicate parts: %s", failure.detail)
    wake_transform_coordinator(client, namespace)


def _chunk(request: InFlight) -> ChunkWork:
    assert request.chunk is not None
    return request.chunk


def _write_parts(store: ObjectStore, request: InFlight) -> None:
    chunk = _chunk(request)
    assert chunk.parsed is not None
    chunk.parsed.fail_rows(request.row_failures)
    output, errors = render_chunk(
        chunk.parsed,
        request.predictions,
        content_type=request.inv.content_type,
        join_source=chunk.join_source,
        first_line=chunk.first_line,
    )
    # A name of this attempt's own: a duplicate delivery never overwrites the
    # part the job already recorded, and deletes its own when it loses.
    attempt = uuid.uuid4().hex[:12]
    base = S3Location.parse(chunk.part_uri)
    part = base.extended(f".{attempt}.out")
    error_part = base.extended(f".{attempt}.err") if errors else None
    try:
        store.put_bytes(part, output, "application/octet-stream")
        if error_part is not None:
            store.put_bytes(error_part, errors, "text/plain")
    except SluicewayError as exc:
        logger.warning("job %s: cannot write a chunk's output: %s", request.inv.job_id, exc.detail)
        request.transient = True
        return
    chunk.part = str(part)
    chunk.error_part = str(error_part) if error_part is not None else None


def _mark_done(session: Any, request: InFlight) -> list[str]:
    """Record the chunk done and count it, unless an earlier delivery did; else our parts."""
    chunk = _chunk(request)
    assert chunk.parsed is not None and chunk.part is not None
    processed, failed = chunk.parsed.records, len(chunk.parsed.failures)
    result = session.execute(
        update(TransformChunk)
        .where(TransformChunk.id == chunk.chunk_id, TransformChunk.status == ChunkStatus.PENDING)
        .values(
            status=ChunkStatus.DONE,
            processed=processed,
            failed=failed,
            part_uri=chunk.part,
            error_part_uri=chunk.error_part,
            finished_at=utcnow(),
        ),
        execution_options={"synchronize_session": False},
    )
    if int(result.rowcount) != 1:
        logger.info("job %s: chunk %d was already done", request.inv.job_id, chunk.chunk_id)
        return [p for p in (chunk.part, chunk.error_part) if p]
    session.execute(
        update(TransformJob)
        .where(TransformJob.id == request.inv.job_id)
        .values(
            processed_records=TransformJob.processed_records + processed,
            failed_records=TransformJob.failed_records + failed,
            updated_at=utcnow(),
        ),
        execution_options={"synchronize_session": False},
    )
    logger.debug(
        "job %s: chunk %d done, %d records, %d failed",
        request.inv.job_id,
        chunk.chunk_id,
        processed,
        failed,
    )
    return []


def _mark_failed(session: Any, request: InFlight) -> None:
    chunk = _chunk(request)
    assert request.error is not None
    error = f"{request.error.title}: {request.error.detail}"
    logger.warning("job %s: chunk %d failed: %s", request.inv.job_id, chunk.chunk_id, error)
    session.execute(
        update(TransformChunk)
        .where(TransformChunk.id == chunk.chunk_id, TransformChunk.status == ChunkStatus.PENDING)
        .values(status=ChunkStatus.FAILED, error=error, finished_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
