"""What a worker does with one invocation, realtime or async.

Realtime: drop it if the caller's deadline has passed; otherwise run the model
and push the answer (or the error) to the caller's reply list.

Async: the job row moves queued → running → succeeded|failed. Every step is
guarded by the row's current status, so a message delivered twice (a worker
died after finishing but before acknowledging) finishes the job once, and the
output key is fixed per job, so there is never a second output object.
Errors of the input or the model fail the job with a readable reason; errors of
the infrastructure (S3, SQL, Redis down) raise `TransientError` so the task is
retried later instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
import sqlalchemy.exc
from sqlalchemy import update

from core.db import session_scope
from core.errors import InvalidInput, ModelError, NotFound, SluicewayError, error_kind
from core.outbox import record_job_event
from core.protocol import Invocation, Reply
from core.queue import pack
from core.storage import ObjectStore, S3Location
from core.tables import Job, utcnow
from workers.model_cache import ModelCache

logger = logging.getLogger(__name__)

REPLY_TTL_S = 120


class TransientError(Exception):
    """Infrastructure trouble: retry the job later rather than fail it."""


@dataclass
class Executor:
    cache: ModelCache
    store: ObjectStore
    redis: redis.Redis

    def handle(self, invocation: Invocation) -> None:
        if invocation.mode == "realtime":
            self.run_realtime(invocation)
        else:
            self.run_async(invocation)

    # --- realtime --------------------------------------------------------------

    def run_realtime(self, inv: Invocation) -> None:
        now_ms = time.time() * 1000
        if inv.deadline_ms is not None and now_ms > inv.deadline_ms:
            logger.info(
                "job %s: caller timed out %.0f ms ago; dropped",
                inv.job_id,
                now_ms - inv.deadline_ms,
            )
            return
        started = time.perf_counter()
        try:
            body, content_type = self.cache.get(inv.model).invoke(
                inv.body or b"", inv.content_type, inv.accept
            )
            reply = Reply(
                job_id=inv.job_id,
                ok=True,
                body=body,
                content_type=content_type,
                model_ms=(time.perf_counter() - started) * 1000,
            )
        except SluicewayError as exc:
            reply = Reply(
                job_id=inv.job_id, ok=False, error_kind=error_kind(exc), detail=exc.detail
            )
        except Exception as exc:
            logger.exception("job %s: unexpected error", inv.job_id)
            reply = Reply(
                job_id=inv.job_id,
                ok=False,
                error_kind="internal",
                detail=f"worker error: {type(exc).__name__}",
            )
        assert inv.reply_to is not None
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(inv.reply_to, pack(reply.to_wire()))
        pipe.expire(inv.reply_to, REPLY_TTL_S)
        pipe.execute()

    # --- async -----------------------------------------------------------------

    def run_async(self, inv: Invocation) -> None:
        if not self._mark_running(inv.job_id):
            logger.info("job %s: already finished (duplicate delivery); skipped", inv.job_id)
            return
        assert inv.input_location is not None and inv.output_location is not None
        try:
            payload = self.store.get_bytes(S3Location.parse(inv.input_location))
            body, content_type = self.cache.get(inv.model).invoke(
                payload, inv.content_type, inv.accept
            )
        except NotFound as exc:
            self.finish(inv.job_id, status="failed", error=f"input is gone: {exc.detail}")
            return
        except (InvalidInput, ModelError) as exc:
            self.finish(inv.job_id, status="failed", error=f"{exc.title}: {exc.detail}")
            return
        except SluicewayError as exc:
            raise TransientError(exc.detail) from exc
        try:
            self.store.put_bytes(S3Location.parse(inv.output_location), body, content_type)
        except SluicewayError as exc:
            raise TransientError(exc.detail) from exc
        self.finish(inv.job_id, status="succeeded", content_type=content_type)
        logger.info("job %s: succeeded, output at %s", inv.job_id, inv.output_location)

    def _mark_running(self, job_id: str) -> bool:
        try:
            with session_scope() as session:
                result = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status.in_(("queued", "running")))
                    .values(status="running", started_at=utcnow(), attempts=Job.attempts + 1)
                )
                return bool(result.rowcount)  # type: ignore[attr-defined]
        except sqlalchemy.exc.OperationalError as exc:
            raise TransientError(f"database unavailable: {exc}") from exc

    def finish(
        self, job_id: str, *, status: str, error: str | None = None, content_type: str | None = None
    ) -> None:
        """Record the job's terminal state and its outbox event once; duplicates change nothing."""
        if status == "failed":
            logger.warning("job %s: failed: %s", job_id, error)
        try:
            with session_scope() as session:
                result = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status.in_(("queued", "running")))
                    .values(
                        status=status,
                        error=error,
                        output_content_type=content_type,
                        finished_at=utcnow(),
                    )
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    # Same transaction: the job's end and its webhook event commit together.
                    record_job_event(session, job_id)
        except sqlalchemy.exc.OperationalError as exc:
            raise TransientError(f"database unavailable: {exc}") from exc
