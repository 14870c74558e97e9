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

All SQL is in scheduler/transform/store.py; this module streams objects, talks
to Redis and decides.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import timedelta
from typing import Any

import redis
import sqlalchemy.exc

from core.broker import enqueue, transform_done_key
from core.config import Settings
from core.errors import NotFound, SluicewayError
from core.states import ChunkStatus, TransformStatus
from core.storage import ObjectStore, S3Location, get_store
from core.tables import TransformJob, TransformObject, utcnow
from scheduler.loop import run_loop
from scheduler.transform import store
from scheduler.transform.dispatch import chunk_invocation
from scheduler.transform.outcome import failure_reason
from scheduler.transform.output import OutputWriter
from scheduler.transform.plan import cut_chunks
from scheduler.transform.store import JobFailed

logger = logging.getLogger(__name__)

# Planning and assembling yield to dispatch after this long per job, so workers
# start on the first objects while the rest are still being split, and never
# run dry while outputs are written.
PLAN_BUDGET_S = 0.25
ASSEMBLE_BUDGET_S = 1.0


class TransformCoordinator:
    """The transform loop (a `scheduler.loop.ControlLoop`)."""

    name = "transform-coordinator"

    def __init__(self, *, settings: Settings, objects: ObjectStore, client: redis.Redis) -> None:
        self.settings = settings
        self.objects = objects
        self.redis = client
        self.output = OutputWriter(objects)
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
        more = False
        for job_id in store.active_job_ids():
            try:
                more |= self.advance(job_id)
            except JobFailed as exc:
                self._finish(job_id, TransformStatus.FAILED, str(exc))
            except (SluicewayError, sqlalchemy.exc.OperationalError, redis.RedisError) as exc:
                logger.warning("job %s: %s; retrying on the next pass", job_id, exc)
        return more

    def advance(self, job_id: str) -> bool:
        job = store.load_job(job_id)
        if job.status == TransformStatus.STOPPING:
            self._settle_stop(job)
            return False
        if job.status == TransformStatus.QUEUED:
            store.mark_running(job.id)
            logger.info("job %s: running (%s)", job.id, job.name)
        if job.input_objects is None:
            self._list(job)
        more = self._plan(job)
        failed = store.first_failed_chunk(job.id)
        if failed is not None:
            chunk_id, error, key = failed
            raise JobFailed(f"chunk {chunk_id} of {key} could not be processed: {error}")
        self._dispatch(store.load_job(job_id))
        more |= self._assemble(job)
        self._maybe_finish(job)
        return more

    # --- steps ------------------------------------------------------------------------

    def _list(self, job: TransformJob) -> None:
        prefix = S3Location.parse(job.input_prefix)
        found = [
            (key, size)
            for key, size in self.objects.iter_objects(prefix)
            if not key.endswith("/")  # folder markers some consoles create
        ]
        if not found:
            raise JobFailed(f"no objects under {job.input_prefix}")
        store.record_listing(job.id, found)
        job.input_objects = len(found)
        logger.info("job %s: %d object(s) under %s", job.id, len(found), job.input_prefix)

    def _plan(self, job: TransformJob) -> bool:
        """Cut listed objects into chunks, for up to PLAN_BUDGET_S; True if some remain.

        The first pass of a job plans one object only, so its first chunks are sent
        (and workers start) while the rest is planned on the next passes.
        """
        max_bytes = int(job.max_payload_mb * 1024 * 1024)
        deadline = time.monotonic() + PLAN_BUDGET_S
        listed = store.listed_objects(job.id)
        first_pass = len(listed) == job.input_objects
        bucket = S3Location.parse(job.input_prefix).bucket
        for index, (object_id, key) in enumerate(listed):
            if index and (first_pass or time.monotonic() > deadline):
                logger.info("job %s: %d object(s) left to plan", job.id, len(listed) - index)
                return True
            whole = job.split_type == "none"
            source = S3Location(bucket, key)
            try:
                blocks = self.objects.iter_chunks(source)
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
            store.record_plan(
                job.id,
                object_id,
                rows,
                records=sum(p.records for p in plans),
                failed=sum(r["failed"] for r in rows),
            )
        if job.total_records is None:
            total = store.record_total_records(job.id)
            logger.info("job %s: planned, %d record(s) in all", job.id, total)
        return False

    def _dispatch(self, job: TransformJob) -> None:
        """Send pending chunks while fewer than `transform_max_in_flight` are out."""
        if job.status != TransformStatus.RUNNING:
            return
        sends = store.take_chunks_to_send(
            job,
            max_in_flight=self.settings.transform_max_in_flight,
            resend_after_s=self.settings.transform_resend_s,
            choose=lambda targets: self.rng.choices(
                targets, weights=[t.weight for t in targets], k=1
            )[0],
        )
        for send in sends:
            if send.resent:
                logger.warning("job %s: chunk %d was sent long ago; re-sent", job.id, send.chunk.id)
        invocations = [
            chunk_invocation(job, s.chunk, s.key, s.target, self.settings.s3_bucket) for s in sends
        ]
        for index, invocation in enumerate(invocations):
            try:
                enqueue(invocation, client=self.redis)
            except redis.RedisError:
                store.unsend([inv.extra["token"] for inv in invocations[index:]])
                raise
        if invocations:
            logger.debug("job %s: sent %d chunk(s)", job.id, len(invocations))

    # --- assembly ---------------------------------------------------------------------

    def _assemble(self, job: TransformJob) -> bool:
        """Write the outputs of objects whose chunks are all done; True if time ran out."""
        deadline = time.monotonic() + ASSEMBLE_BUDGET_S
        ready = store.objects_ready(job.id)
        for index, obj in enumerate(ready):
            if time.monotonic() > deadline:
                logger.info("job %s: %d object(s) left to assemble", job.id, len(ready) - index)
                return True
            self._assemble_object(job, obj)
        return False

    def _assemble_object(self, job: TransformJob, obj: TransformObject) -> None:
        chunks = store.chunks_of(obj.id)
        out = self.output.write(job, obj.key, chunks)
        store.mark_assembled(job.id, obj.id)
        self.output.delete([u for c in chunks for u in (c.part_uri, c.error_part_uri) if u])
        logger.info("job %s: wrote %s", job.id, out)

    # --- endings ----------------------------------------------------------------------

    def _maybe_finish(self, job: TransformJob) -> None:
        """Once every output is written: succeeded, or failed on too many failed records."""
        if store.objects_left(job.id) != 0:
            return
        done = store.load_job(job.id)  # the record counts as the last chunk left them
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
        if not store.chunks_being_worked(job.id, claimed_since=recent):
            self._finish(job.id, TransformStatus.STOPPED, None)

    def _finish(self, job_id: str, status: TransformStatus, error: str | None) -> bool:
        """End an active job (and record its event); False if it had ended already."""
        if not store.finish_job(job_id, status, error):
            return False
        job = store.load_job(job_id)
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
        return True


def start_transform_coordinator(
    settings: Settings, client: redis.Redis, stop: threading.Event
) -> threading.Thread:
    """Run the coordinator on a daemon thread until `stop` is set.

    Without an object store (SLUICEWAY_S3_ENDPOINT unset) it says so and does
    not run; the rest of the scheduler goes on.
    """

    def run() -> None:
        try:
            object_store = get_store()
        except SluicewayError as exc:
            logger.error("transform coordinator not started: %s", exc.detail)
            return
        run_loop(TransformCoordinator(settings=settings, objects=object_store, client=client), stop)

    thread = threading.Thread(target=run, name="transform-coordinator", daemon=True)
    thread.start()
    return thread
