"""The transform coordinator: plans transform jobs, feeds their chunks to workers, assembles.

One loop in the scheduler process, on its own thread. Each pass, for every
active job (the database holds all state, so a restarted scheduler goes on
where the last one stopped):

1. start: `queued` → `running`.
2. list: every object under `input_prefix` is recorded, once (a resumed job
   keeps its list).
3. plan: each listed object is streamed once through `ChunkCutter`
   (scheduler/transform/plan.py) into chunks of whole lines of at most
   `max_payload_mb`, with exact record counts; `total_records` is set once every
   object is planned. `split_type=none` makes one chunk per object. A line (or,
   with split none, an object) over `max_payload_mb` is an oversized chunk: its
   records fail without reaching a worker.
4. dispatch: pending chunks go out as `transform` invocations at priority 6,
   behind realtime (0) and async (3) work on the same queues, at most
   `transform_max_in_flight` per job. A chunk still pending
   `transform_resend_s` after it was sent is sent again under a new token
   (its message was lost); a worker skips a message whose token is stale.
5. assemble: an object whose chunks are all done gets its `.out` (and `.err`)
   by one streamed multipart upload of its parts in order
   (scheduler/transform/output.py), then its parts are deleted.
6. finish: every object assembled → `succeeded`, or `failed` when more than the
   job's `max_failed_records_percent` of its records failed (default 0; the
   error names the threshold and the share, scheduler/transform/outcome.py);
   a chunk a worker could not process at all (model will not load, input
   gone) → `failed` at once. The event (TransformSucceeded or TransformFailed)
   follows the status.

`stop` (API) moves a job to `stopping`: nothing more is sent, workers skip its
queued chunks, and once no chunk is being worked on it is `stopped`.
Resubmitting it (same name) resumes: done chunks and assembled objects stay.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import redis
import sqlalchemy.exc
from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.orm import Session

from core.broker import enqueue, transform_done_key
from core.config import Settings
from core.db import session_scope
from core.errors import NotFound, SluicewayError
from core.outbox import record_transform_event
from core.states import TRANSFORM_ACTIVE, ChunkStatus, ObjectStatus, TransformStatus
from core.storage import ObjectStore, S3Location, get_store
from core.tables import (
    TransformChunk,
    TransformJob,
    TransformObject,
    utcnow,
)
from scheduler.loop import run_loop
from scheduler.transform.dispatch import JobFailed, chunk_invocation, load_targets
from scheduler.transform.outcome import failure_reason
from scheduler.transform.output import OutputWriter
from scheduler.transform.plan import cut_chunks

logger = logging.getLogger(__name__)

# Planning and assembling yield to dispatch after this long per job, so workers
# start on the first objects while the rest are still being split, and never
# run dry while outputs are written.
PLAN_BUDGET_S = 0.25
ASSEMBLE_BUDGET_S = 1.0


def rowcount(result: Any) -> int:
    """Rows an UPDATE matched (a CursorResult's count; Result's type does not show it)."""
    return int(result.rowcount)


class TransformCoordinator:
    """The transform loop (a `scheduler.loop.ControlLoop`)."""

    name = "transform-coordinator"

    def __init__(self, *, settings: Settings, store: ObjectStore, client: redis.Redis) -> None:
        self.settings = settings
        self.store = store
        self.redis = client
        self.output = OutputWriter(store)
        self.rng = random.Random()

    # --- the loop -------------------------------------------------------------------

    def idle(self, stop: threading.Event) -> None:
        """Sleep up to `transform_interval_s`; a worker finishing a chunk wakes us at once."""
        key = transform_done_key(self.settings.namespace)
        try:
            if self.redis.blpop([key], timeout=self.settings.transform_interval_s):
                self.redis.delete(key)
        except redis.RedisError:
            stop.wait(self.settings.transform_interval_s)

    def close(self) -> None:
        pass

    def step(self) -> bool:
        """One pass over the active jobs; True if planning or assembly was cut short."""
        with session_scope() as session:
            job_ids = session.scalars(
                select(TransformJob.id)
                .where(TransformJob.status.in_(TRANSFORM_ACTIVE))
                .order_by(TransformJob.created_at)
            ).all()
        more = False
        for job_id in job_ids:
            try:
                more |= self.advance(job_id)
            except JobFailed as exc:
                self._finish(job_id, TransformStatus.FAILED, str(exc))
            except (SluicewayError, sqlalchemy.exc.OperationalError, redis.RedisError) as exc:
                logger.warning("job %s: %s; retrying on the next pass", job_id, exc)
        return more

    def advance(self, job_id: str) -> bool:
        job = self._load(job_id)
        if job.status == TransformStatus.STOPPING:
            self._settle_stop(job)
            return False
        if job.status == TransformStatus.QUEUED:
            self._start(job)
        if job.input_objects is None:
            self._list(job)
        more = self._plan(job)
        self._check_failed_chunks(job)
        self._dispatch(self._load(job_id))
        more |= self._assemble(job)
        self._maybe_finish(job)
        return more

    # --- steps ------------------------------------------------------------------------

    def _load(self, job_id: str) -> TransformJob:
        with session_scope() as session:
            job = session.get(TransformJob, job_id)
            assert job is not None
            session.expunge(job)
            return job

    def _start(self, job: TransformJob) -> None:
        with session_scope() as session:
            session.execute(
                update(TransformJob)
                .where(TransformJob.id == job.id, TransformJob.status == TransformStatus.QUEUED)
                .values(
                    status=TransformStatus.RUNNING,
                    started_at=utcnow(),
                    runs=TransformJob.runs + 1,
                    updated_at=utcnow(),
                )
            )
        logger.info("job %s: running (%s)", job.id, job.name)

    def _list(self, job: TransformJob) -> None:
        prefix = S3Location.parse(job.input_prefix)
        found = [
            {"job_id": job.id, "key": key, "size": size, "status": ObjectStatus.LISTED}
            for key, size in self.store.iter_objects(prefix)
            if not key.endswith("/")  # folder markers some consoles create
        ]
        if not found:
            raise JobFailed(f"no objects under {job.input_prefix}")
        with session_scope() as session:
            session.execute(insert(TransformObject), found)
            session.execute(
                update(TransformJob)
                .where(TransformJob.id == job.id)
                .values(input_objects=len(found), updated_at=utcnow())
            )
        job.input_objects = len(found)
        logger.info("job %s: %d object(s) under %s", job.id, len(found), job.input_prefix)

    def _plan(self, job: TransformJob) -> bool:
        """Cut listed objects into chunks, for up to PLAN_BUDGET_S; True if some remain."""
        max_bytes = int(job.max_payload_mb * 1024 * 1024)
        deadline = time.monotonic() + PLAN_BUDGET_S
        with session_scope() as session:
            listed = session.execute(
                select(TransformObject.id, TransformObject.key)
                .where(
                    TransformObject.job_id == job.id, TransformObject.status == ObjectStatus.LISTED
                )
                .order_by(TransformObject.id)
            ).all()
        bucket = S3Location.parse(job.input_prefix).bucket
        for index, (object_id, key) in enumerate(listed):
            if time.monotonic() > deadline:
                logger.info("job %s: %d object(s) left to plan", job.id, len(listed) - index)
                return True
            whole = job.split_type == "none"
            source = S3Location(bucket, key)
            try:
                blocks = self.store.iter_chunks(source)
                plans = list(cut_chunks(blocks, None if whole else max_bytes))
            except NotFound as exc:
                raise JobFailed(f"input object {source} is gone") from exc
            rows: list[dict[str, Any]] = []
            for plan in plans:
                oversized = plan.oversized or (whole and plan.end - plan.start > max_bytes)
                rows.append(
                    {
                        "job_id": job.id,
                        "object_id": object_id,
                        "seq": plan.seq,
                        "start_byte": plan.start,
                        "end_byte": plan.end,
                        "first_line": plan.first_line,
                        "lines": plan.lines,
                        "records": plan.records,
                        "oversized": oversized,
                        # Oversized records fail here and now; no worker reads them.
                        "status": ChunkStatus.DONE if oversized else ChunkStatus.PENDING,
                        "processed": plan.records if oversized else 0,
                        "failed": plan.records if oversized else 0,
                    }
                )
            failed = sum(r["failed"] for r in rows)
            with session_scope() as session:
                if rows:
                    session.execute(insert(TransformChunk), rows)
                session.execute(
                    update(TransformObject)
                    .where(TransformObject.id == object_id)
                    .values(
                        status=ObjectStatus.PLANNED,
                        records=sum(p.records for p in plans),
                        chunks=len(plans),
                    )
                )
                if failed:
                    session.execute(
                        update(TransformJob)
                        .where(TransformJob.id == job.id)
                        .values(
                            processed_records=TransformJob.processed_records + failed,
                            failed_records=TransformJob.failed_records + failed,
                        )
                    )
        if job.total_records is None:
            with session_scope() as session:
                total = session.scalar(
                    select(func.sum(TransformObject.records)).where(
                        TransformObject.job_id == job.id
                    )
                )
                session.execute(
                    update(TransformJob)
                    .where(TransformJob.id == job.id)
                    .values(total_records=int(total or 0), updated_at=utcnow())
                )
            logger.info("job %s: planned, %d record(s) in all", job.id, int(total or 0))
        return False

    def _check_failed_chunks(self, job: TransformJob) -> None:
        with session_scope() as session:
            failed = session.execute(
                select(TransformChunk.id, TransformChunk.error, TransformObject.key)
                .join(TransformObject, TransformObject.id == TransformChunk.object_id)
                .where(TransformChunk.job_id == job.id, TransformChunk.status == ChunkStatus.FAILED)
                .limit(1)
            ).first()
        if failed is not None:
            chunk_id, error, key = failed
            raise JobFailed(f"chunk {chunk_id} of {key} could not be processed: {error}")

    def _dispatch(self, job: TransformJob) -> None:
        """Send pending chunks while fewer than `transform_max_in_flight` are out."""
        if job.status != TransformStatus.RUNNING:
            return
        now = utcnow()
        stale = now - timedelta(seconds=self.settings.transform_resend_s)
        pending = (
            TransformChunk.job_id == job.id,
            TransformChunk.status == ChunkStatus.PENDING,
            TransformChunk.oversized.is_(False),
        )
        with session_scope() as session:
            in_flight = session.scalar(
                select(func.count())
                .select_from(TransformChunk)
                .where(*pending, TransformChunk.sent_at > stale)
            )
            room = self.settings.transform_max_in_flight - int(in_flight or 0)
            if room <= 0:
                return
            rows = session.execute(
                select(TransformChunk, TransformObject.key)
                .join(TransformObject, TransformObject.id == TransformChunk.object_id)
                .where(
                    *pending,
                    (TransformChunk.sent_at.is_(None)) | (TransformChunk.sent_at <= stale),
                )
                .order_by(TransformChunk.object_id, TransformChunk.seq)
                .limit(room)
            ).all()
            if not rows:
                return
            targets = load_targets(session, job)
            weights = [t.weight for t in targets]
            sends = []
            for chunk, key in rows:
                if chunk.sent_at is not None:
                    logger.warning("job %s: chunk %d was sent long ago; re-sent", job.id, chunk.id)
                chunk.token, chunk.sent_at = uuid.uuid4().hex, now
                target = self.rng.choices(targets, weights=weights, k=1)[0]
                sends.append(chunk_invocation(job, chunk, key, target, self.settings.s3_bucket))
        # Marked sent first, then sent: a worker never sees a token the database lacks.
        for index, invocation in enumerate(sends):
            try:
                enqueue(invocation, client=self.redis)
            except redis.RedisError:
                with session_scope() as session:
                    session.execute(
                        update(TransformChunk)
                        .where(
                            TransformChunk.token.in_([inv.extra["token"] for inv in sends[index:]])
                        )
                        .values(token=None, sent_at=None)
                    )
                raise
        logger.debug("job %s: sent %d chunk(s)", job.id, len(sends))

    # --- assembly ---------------------------------------------------------------------

    def _assemble(self, job: TransformJob) -> bool:
        """Write the outputs of objects whose chunks are all done; True if time ran out."""
        deadline = time.monotonic() + ASSEMBLE_BUDGET_S
        unfinished = exists().where(
            TransformChunk.object_id == TransformObject.id,
            TransformChunk.status != ChunkStatus.DONE,
        )
        with session_scope() as session:
            ready = session.scalars(
                select(TransformObject)
                .where(
                    TransformObject.job_id == job.id,
                    TransformObject.status == ObjectStatus.PLANNED,
                    ~unfinished,
                )
                .order_by(TransformObject.id)
            ).all()
            session.expunge_all()
        for index, obj in enumerate(ready):
            if time.monotonic() > deadline:
                logger.info("job %s: %d object(s) left to assemble", job.id, len(ready) - index)
                return True
            self._assemble_object(job, obj)
        return False

    def _assemble_object(self, job: TransformJob, obj: TransformObject) -> None:
        with session_scope() as session:
            chunks = session.scalars(
                select(TransformChunk)
                .where(TransformChunk.object_id == obj.id)
                .order_by(TransformChunk.seq)
            ).all()
            session.expunge_all()
        out = self.output.write(job, obj.key, chunks)
        with session_scope() as session:
            marked = session.execute(
                update(TransformObject)
                .where(TransformObject.id == obj.id, TransformObject.status == ObjectStatus.PLANNED)
                .values(status=ObjectStatus.ASSEMBLED)
            )
            if rowcount(marked) == 1:
                session.execute(
                    update(TransformJob)
                    .where(TransformJob.id == job.id)
                    .values(
                        completed_objects=TransformJob.completed_objects + 1, updated_at=utcnow()
                    )
                )
        self.output.delete([u for c in chunks for u in (c.part_uri, c.error_part_uri) if u])
        logger.info("job %s: wrote %s", job.id, out)

    # --- endings ----------------------------------------------------------------------

    def _maybe_finish(self, job: TransformJob) -> None:
        """Once every output is written: succeeded, or failed on too many failed records."""
        with session_scope() as session:
            left = session.scalar(
                select(func.count())
                .select_from(TransformObject)
                .where(
                    TransformObject.job_id == job.id,
                    TransformObject.status != ObjectStatus.ASSEMBLED,
                )
            )
        if left != 0:
            return
        done = self._load(job.id)  # the record counts as the last chunk left them
        reason = failure_reason(
            total=done.total_records or 0,
            failed=done.failed_records,
            max_percent=done.max_failed_records_percent,
            output_prefix=done.output_prefix,
        )
        status = TransformStatus.SUCCEEDED if reason is None else TransformStatus.FAILED
        if self._finish(job.id, status, reason):
            # Every output is written: the parts left are duplicates that lost.
            self.output.sweep(self.settings.s3_bucket, job.id)

    def _settle_stop(self, job: TransformJob) -> None:
        """`stopping` → `stopped` once no chunk of the job is being worked on."""
        recent = utcnow() - timedelta(seconds=self.settings.visibility_timeout_s)
        with session_scope() as session:
            working = session.scalar(
                select(func.count())
                .select_from(TransformChunk)
                .where(
                    TransformChunk.job_id == job.id,
                    TransformChunk.status == ChunkStatus.PENDING,
                    TransformChunk.claimed_at > recent,
                )
            )
        if not working:
            self._finish(job.id, TransformStatus.STOPPED, None)

    def _finish(self, job_id: str, status: TransformStatus, error: str | None) -> bool:
        """End an active job (and record its event); False if it had ended already."""
        with session_scope() as session:
            moved = session.execute(
                update(TransformJob)
                .where(TransformJob.id == job_id, TransformJob.status.in_(TRANSFORM_ACTIVE))
                .values(status=status, error=error, finished_at=utcnow(), updated_at=utcnow())
            )
            if rowcount(moved) != 1:
                return False
            record_finished_job(session, job_id, status)
        return True


def record_finished_job(session: Session, job_id: str, status: str) -> None:
    """The one place a transform job's end is recorded, in the transaction that ends it:
    its outbox event (the endpoint's success or error topic) commits with it.
    A stopped job has not finished and publishes nothing.
    """
    job: Any = session.get(TransformJob, job_id)
    if status in (TransformStatus.SUCCEEDED, TransformStatus.FAILED):
        record_transform_event(
            session,
            job_id=job_id,
            endpoint=job.endpoint,
            succeeded=status == TransformStatus.SUCCEEDED,
            output_prefix=job.output_prefix,
            error=job.error,
            details={
                "name": job.name,
                "total_records": job.total_records,
                "processed_records": job.processed_records,
                "failed_records": job.failed_records,
                "input_objects": job.input_objects,
                "completed_objects": job.completed_objects,
            },
        )
    logger.info(
        "job %s: %s (%s records, %s failed, %s/%s objects)%s",
        job_id,
        status,
        job.processed_records,
        job.failed_records,
        job.completed_objects,
        job.input_objects,
        f": {job.error}" if job.error else "",
    )


def start_transform_coordinator(
    settings: Settings, client: redis.Redis, stop: threading.Event
) -> threading.Thread:
    """Run the coordinator on a daemon thread until `stop` is set.

    Without an object store (SLUICEWAY_S3_ENDPOINT unset) it says so and does
    not run; the rest of the scheduler goes on.
    """

    def run() -> None:
        try:
            store = get_store()
        except SluicewayError as exc:
            logger.error("transform coordinator not started: %s", exc.detail)
            return
        run_loop(TransformCoordinator(settings=settings, store=store, client=client), stop)

    thread = threading.Thread(target=run, name="transform-coordinator", daemon=True)
    thread.start()
    return thread
