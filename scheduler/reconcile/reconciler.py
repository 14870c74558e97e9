"""The reconciler: finds accepted jobs whose queue message is gone, and requeues them.

A job is `queued` or `running` in SQL while its message sits in a variant's
Redis lists or in the unacknowledged set of a worker. Messages can still be
lost: Redis restarted without its append-only file, someone flushed a queue,
the API died between writing the row and pushing the message. Every
`reconcile_interval_s` this compares the two: an unfinished job older than the
grace period (the visibility timeout, so kombu's own redelivery goes first)
whose id appears nowhere in Redis is pushed again. Its variant gone, it fails
with that reason; past the delivery limit it is dead-lettered.

The Redis side is read in one MULTI/EXEC, so a message moving between a list
and the unacknowledged set is never missed; a job finishing meanwhile is
harmless, since every step of a job is guarded by its row's status.

A message can also be stranded in the unacknowledged set: its worker died and
kombu's restore, which would put it back, does not run (its lock was left held
by a worker or a Redis that stopped mid-restore; or no worker is alive). Such a
job looks present, so each pass first restores reservations older than the
grace period itself (core/queue.py), the same move kombu's restore makes.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from core.config import Settings
from core.db import session_scope
from core.jobs import async_invocation
from core.outbox import record_job_event
from core.protocol import priority_lists, queue_name, unacked_keys
from core.queue import enqueue, get_redis, restore_stale_reservations
from core.states import JOB_UNFINISHED, JobStatus
from core.tables import Job, utcnow
from scheduler.loop import start_loop

logger = logging.getLogger(__name__)

# The task id is the job id; it appears as the message's correlation_id.
JOB_ID = re.compile(rb'"correlation_id": ?"([0-9a-f-]{36})"')
MAX_DELIVERIES = 5
BATCH = 500


@dataclass
class ReconcileReport:
    restored: int = 0  # stranded reservations put back on their queue
    requeued: int = 0
    failed: int = 0
    dead_lettered: int = 0


class Reconciler:
    """The reconciler loop (a `scheduler.loop.ControlLoop`): one `tick` per interval."""

    name = "reconciler"

    def __init__(
        self, *, client: redis.Redis, namespace: str, grace_s: float, interval_s: float = 30.0
    ) -> None:
        self.redis = client
        self.namespace = namespace
        self.grace_s = grace_s
        self.interval_s = interval_s

    def step(self) -> bool:
        self.tick()
        return False

    def idle(self, stop: threading.Event) -> None:
        stop.wait(self.interval_s)

    def close(self) -> None:
        pass

    def tick(self) -> ReconcileReport:
        report = ReconcileReport(
            restored=restore_stale_reservations(
                self.redis, self.namespace, older_than_s=self.grace_s
            )
        )
        if report.restored:
            logger.warning(
                "reconciler: restored %d message(s) reserved over %.0f s ago and never "
                "acknowledged (their worker died or hung)",
                report.restored,
                self.grace_s,
            )
        suspects = self._unfinished_jobs()
        if not suspects:
            return report
        present = self._ids_in_redis({(j.endpoint, j.variant) for j in suspects})
        for job in suspects:
            if job.id not in present:
                self._recover(job, report)
        if report.requeued or report.failed or report.dead_lettered:
            logger.warning(
                "reconciler: requeued %d, failed %d, dead-lettered %d lost job(s)",
                report.requeued,
                report.failed,
                report.dead_lettered,
            )
        return report

    def _unfinished_jobs(self) -> list[Job]:
        cutoff = utcnow() - dt.timedelta(seconds=self.grace_s)
        with session_scope() as session:
            jobs = session.scalars(
                select(Job)
                .where(
                    or_(
                        (Job.status == JobStatus.QUEUED) & (Job.created_at < cutoff),
                        (Job.status == JobStatus.RUNNING) & (Job.started_at < cutoff),
                    )
                )
                .limit(BATCH)
            ).all()
            session.expunge_all()
            return list(jobs)

    def _ids_in_redis(self, variants: set[tuple[str, str]]) -> set[str]:
        pipe = self.redis.pipeline(transaction=True)
        for endpoint, variant in variants:
            for key in priority_lists(queue_name(self.namespace, endpoint, variant)):
                pipe.lrange(key, 0, -1)
        pipe.hvals(unacked_keys(self.namespace)[0])
        found: set[str] = set()
        for messages in pipe.execute():
            for message in messages:
                match = JOB_ID.search(message)
                if match:
                    found.add(match.group(1).decode())
        return found

    def _recover(self, job: Job, report: ReconcileReport) -> None:
        with session_scope() as session:
            current = session.get(Job, job.id)
            if current is None or current.status not in JOB_UNFINISHED:
                return
            if current.attempts >= MAX_DELIVERIES:
                self._fail(session, job.id, "its message was lost after every delivery", dead=True)
                report.dead_lettered += 1
                return
            invocation = async_invocation(session, current)
            if invocation is None:
                self._fail(session, job.id, "its endpoint variant was deleted before it ran")
                report.failed += 1
                return
            current.status = JobStatus.QUEUED
        enqueue(invocation, client=self.redis)
        logger.warning("job %s: its message was lost; requeued", job.id)
        report.requeued += 1

    @staticmethod
    def _fail(session: Session, job_id: str, reason: str, *, dead: bool = False) -> None:
        result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(Job)
            .where(Job.id == job_id, Job.status.in_(JOB_UNFINISHED))
            .values(
                status=JobStatus.FAILED,
                error=f"Lost: {reason}",
                dead_letter=dead,
                finished_at=utcnow(),
            )
        )
        if result.rowcount:
            record_job_event(session, job_id)  # same transaction, like a worker's finish
        logger.warning("job %s: failed: %s", job_id, reason)


def start_reconciler(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Run the reconciler every `reconcile_interval_s` on its own thread until `stop` is set."""
    reconciler = Reconciler(
        client=get_redis(),
        namespace=settings.namespace,
        # kombu restores a dead worker's messages after the visibility timeout:
        # give it that long (and a margin) before calling a message lost.
        grace_s=settings.visibility_timeout_s * 2,
        interval_s=settings.reconcile_interval_s,
    )
    return start_loop(reconciler, stop)
