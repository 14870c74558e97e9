"""Async invocations: a job row in SQL, input and output in the object store.

- prepare: one UPDATE starts the batch's jobs (`running`, `attempts` + 1) —
  only rows still unfinished, and not expired: a job with `expires_at`
  (X-Request-Ttl-S) that no worker has started by then fails "expired: not
  started within 30 s" without running. A job already finished (a duplicate
  delivery) is skipped; one started more than `MAX_ATTEMPTS` times (its worker
  died each time) is failed and dead-lettered. A started job's deadline is
  now + its `invocation_timeout_s` (started at 1,000.0 with 900 s → 1,900.0).
- read: the input object, on the I/O pool (inputs of a batch in parallel).
- complete: a job that ran past its deadline fails "timeout: ..." even if its
  model answered (a built-in runner's forward pass cannot be interrupted; a
  python handler was stopped at the deadline already). Outputs and, for failed
  jobs, error documents (core/failures.py) are written in parallel; then one
  transaction records every job's end — each UPDATE guarded by the row's
  status, so a redelivered message never finishes a job twice — with its
  outbox event.

Storage or database trouble leaves the invocation `transient` (not
acknowledged): Redis delivers it again later.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy.exc
from sqlalchemy import exists, or_, select, update

from core.db import session_scope
from core.errors import (
    InvalidInput,
    ModelError,
    NotFound,
    RequestExpired,
    SluicewayError,
    describe,
    job_error,
)
from core.failures import write_failure_document
from core.jobs import same_endpoint
from core.outbox import record_job_event
from core.states import JOB_UNFINISHED, JobStatus
from core.storage import S3Location
from core.tables import Endpoint, Job, utcnow
from workers.invocation import InFlight
from workers.modes import ModeHandler

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # deliveries of one async job before it fails for good


class Asynchronous(ModeHandler):
    reads_store = True

    def prepare(self, items: list[InFlight]) -> None:
        try:
            with session_scope() as session:
                started, expired = start_jobs(session, [item.inv.job_id for item in items])
        except sqlalchemy.exc.OperationalError as exc:
            logger.warning("database unavailable starting %d job(s): %s", len(items), exc)
            for item in items:
                item.transient = True
            return
        now_s = time.time()
        for item in items:
            job_id = item.inv.job_id
            if job_id in expired:
                ttl_s, item.failure_location = expired[job_id]
                item.error = RequestExpired.not_started_within(ttl_s)
                continue
            row = started.get(job_id)
            if row is None:
                logger.info("job %s: already finished (duplicate delivery); skipped", job_id)
                item.skip = True
                continue
            attempts, timeout_s, item.failure_location = row
            if attempts > MAX_ATTEMPTS:
                item.dead_letter = True
                item.error = ModelError(
                    f"gave up after {attempts - 1} deliveries (the worker died or the "
                    "infrastructure failed each time); dead-lettered"
                )
                continue
            item.timeout_s = float(timeout_s)
            item.deadline_s = now_s + item.timeout_s

    def read(self, item: InFlight) -> bytes | None:
        if item.inv.input_location is None:
            return item.inv.body or b""
        try:
            return self.io.store.get_bytes(S3Location.parse(item.inv.input_location))
        except NotFound as exc:
            item.error = InvalidInput(f"input is gone: {exc.detail}")
        except SluicewayError as exc:
            logger.warning("job %s: cannot read input: %s", item.inv.job_id, exc.detail)
            item.transient = True
        return None

    def complete(self, items: list[InFlight], *, model_ms: float) -> None:
        now_s = time.time()
        for item in items:
            if item.live and item.deadline_s is not None and now_s > item.deadline_s:
                item.error = item.timed_out()
        list(self.io.pool.map(self._store, items))
        self._finish([item for item in items if not (item.skip or item.transient)])

    def _store(self, item: InFlight) -> None:
        """The output of a job that succeeded, the error document of one that failed."""
        if item.skip or item.transient:
            return
        item.finished_at = utcnow()
        if item.error is None:
            assert item.inv.output_location is not None and item.output is not None
            body, content_type = item.output
            try:
                self.io.store.put_bytes(
                    S3Location.parse(item.inv.output_location), body, content_type
                )
                return
            except SluicewayError as exc:
                logger.warning("job %s: cannot write output: %s", item.inv.job_id, exc.detail)
                item.transient = True
                return
            except Exception as exc:
                logger.exception("job %s: cannot write output", item.inv.job_id)
                item.error = InvalidInput(
                    f"cannot write output to {item.inv.output_location}: {describe(exc)}"
                )
        assert item.error is not None
        written = write_failure_document(
            self.io.store,
            item.failure_location,
            job_id=item.inv.job_id,
            error=job_error(item.error),
            finished_at=item.finished_at,
        )
        if not written:
            item.transient = True  # failed only once its document is stored

    def _finish(self, items: list[InFlight]) -> None:
        if not items:
            return
        try:
            with session_scope() as session:
                for item in items:
                    finish_job(session, item)
        except sqlalchemy.exc.OperationalError as exc:
            logger.warning("database unavailable finishing %d job(s): %s", len(items), exc)
            for item in items:
                item.transient = True


def start_jobs(
    session: Any, job_ids: list[str]
) -> tuple[dict[str, tuple[int, int, str | None]], dict[str, tuple[float, str | None]]]:
    """Start these jobs; returns (started, expired).

    started: job id → (attempts now, invocation_timeout_s, failure_location) for
    each job moved to `running`. expired: job id → (its TTL in seconds, failure
    location) for each unfinished job that was never started and is past its
    `expires_at`; it is left as it is, for the caller to fail. A job in
    neither is finished already.
    """
    now = utcnow()
    rows = session.execute(
        update(Job)
        .where(
            Job.id.in_(job_ids),
            Job.status.in_(JOB_UNFINISHED),
            # Expiry is about starting: a job once started (its worker died) runs again.
            or_(Job.expires_at.is_(None), Job.expires_at > now, Job.attempts > 0),
            # Only on the endpoint that accepted it: a job of a deleted endpoint is never
            # started by one re-created under its name (the reconciler fails it instead).
            exists().where(Endpoint.name == Job.endpoint, same_endpoint()),
        )
        .values(status=JobStatus.RUNNING, started_at=now, attempts=Job.attempts + 1)
        .returning(Job.id, Job.attempts, Job.invocation_timeout_s, Job.failure_location),
        execution_options={"synchronize_session": False},
    ).all()
    started = {
        row.id: (row.attempts, row.invocation_timeout_s, row.failure_location) for row in rows
    }
    rest = [job_id for job_id in job_ids if job_id not in started]
    expired: dict[str, tuple[float, str | None]] = {}
    if rest:
        for row in session.execute(
            select(
                Job.id, Job.attempts, Job.created_at, Job.expires_at, Job.failure_location
            ).where(Job.id.in_(rest), Job.status.in_(JOB_UNFINISHED))
        ):
            if row.expires_at is not None and row.attempts == 0:
                ttl = round((row.expires_at - row.created_at).total_seconds(), 3)
                expired[row.id] = (ttl, row.failure_location)
    return started, expired


def finish_job(session: Any, item: InFlight) -> None:
    """Record one job's terminal state, once: the UPDATE only matches an unfinished job."""
    job_id = item.inv.job_id
    if item.error is not None:
        values: dict[str, Any] = {
            "status": JobStatus.FAILED,
            "error": job_error(item.error),
            "dead_letter": item.dead_letter,
        }
        logger.warning("job %s: failed: %s", job_id, values["error"])
    else:
        assert item.output is not None
        values = {
            "status": JobStatus.SUCCEEDED,
            "output_content_type": item.output[1],
            "error": None,
        }
        logger.info("job %s: succeeded, output at %s", job_id, item.inv.output_location)
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(JOB_UNFINISHED))
        .values(finished_at=item.finished_at or utcnow(), **values)
    )
    # The outbox event goes in the same transaction, and only when this call
    # actually finished the job: a duplicate delivery publishes nothing.
    if result.rowcount:
        record_job_event(session, job_id)
