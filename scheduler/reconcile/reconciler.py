"""The reconciler: finds accepted jobs whose queue message is gone, and requeues them.

A job is `queued` or `running` in SQL while its message sits in a variant's
Redis lists or among the reservations (kombu's `unacked` hash) — and every
move between those two places is atomic: a reserve, an acknowledgement (after
the job's row is finished), a dead worker's release by the lease sweep
(scheduler/reconcile/sweeper.py), kombu's restore. So a message "absent
everywhere" is really lost — Redis restarted without its append-only file,
someone flushed a queue — except in one window: the API commits the job's row
a moment before it pushes the message. The grace period covers that window:
3 leases, `3 * worker_lease_s` = 30 s by default (it was twice the visibility
timeout, 10 minutes). Every `reconcile_interval_s` an unfinished job older than
that whose id appears nowhere in Redis is pushed again. Its variant gone, it fails with
that reason; past the delivery limit it is dead-lettered. Several schedulers
may reconcile at once: a job is requeued only by the one that claims it first
(core/broker/recovery.py `claim_requeue`).

The Redis side is read in one MULTI/EXEC, so a message moving between a list
and the reservations is never missed; a job finishing meanwhile is harmless,
since every step of a job is guarded by its row's status.

A reservation no worker renews — a transient failure let go for a retry, a
consumer that never took a lease — comes back after the visibility timeout
through kombu's restore, run by live workers. If kombu's restore does not run
(no worker alive, or its lock left held by a worker or a Redis that stopped
mid-restore), such a job looks present forever, so each pass first restores
reservations older than the visibility timeout itself, the same move.

Each pass also fails the queued jobs that no worker started within their
X-Request-Ttl-S (scheduler/reconcile/expiry.py). A job failed here gets its
error document (core/failures.py) before its row moves to `failed`; with the
object store down it is left for the next pass.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass

import redis
from sqlalchemy.orm import Session

from core.broker import (
    claim_requeue,
    enqueue,
    get_redis,
    job_ids_present,
    queue_name,
    restore_stale_reservations,
)
from core.config import Settings
from core.db import session_scope
from core.failures import write_failure_document
from core.jobs import async_invocation
from core.states import JOB_UNFINISHED, JobStatus
from core.storage import ObjectStore, get_store
from core.tables import Job, utcnow
from scheduler.loop import start_loop
from scheduler.reconcile import store as reconcile_store
from scheduler.reconcile.expiry import expire_unstarted_jobs

logger = logging.getLogger(__name__)

MAX_DELIVERIES = 5
# Lease lengths between the API's commit of a job row and the push of its message.
GRACE_LEASES = 3


@dataclass
class ReconcileReport:
    restored: int = 0  # stranded reservations put back on their queue
    requeued: int = 0
    failed: int = 0
    dead_lettered: int = 0
    expired: int = 0  # never started within their X-Request-Ttl-S


class Reconciler:
    """The reconciler loop (a `scheduler.loop.ControlLoop`): one `tick` per interval."""

    name = "reconciler"

    def __init__(
        self,
        *,
        client: redis.Redis,
        namespace: str,
        grace_s: float,
        stale_after_s: float,
        interval_s: float = 30.0,
        store: ObjectStore | None = None,
    ) -> None:
        self.redis = client
        self.namespace = namespace
        self.grace_s = grace_s  # a job's message may be absent this long (see the docstring)
        self.stale_after_s = stale_after_s  # a reservation nobody renews comes back after this
        self.interval_s = interval_s
        self._store = store

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = get_store()
        return self._store

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
                self.redis, self.namespace, older_than_s=self.stale_after_s
            )
        )
        if report.restored:
            logger.warning(
                "reconciler: restored %d message(s) reserved over %.0f s ago that no worker "
                "renews (let go after a transient failure, or a consumer without a lease)",
                report.restored,
                self.stale_after_s,
            )
        report.expired = expire_unstarted_jobs(self.store)
        suspects = self._unfinished_jobs()
        if not suspects:
            return report
        queues = {queue_name(self.namespace, j.endpoint, j.variant) for j in suspects}
        present = job_ids_present(self.redis, self.namespace, queues)
        for job in suspects:
            if job.id not in present and claim_requeue(
                self.redis, self.namespace, job.id, ttl_s=max(self.grace_s, 1.0)
            ):
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
        return reconcile_store.unfinished_jobs(utcnow() - dt.timedelta(seconds=self.grace_s))

    def _recover(self, job: Job, report: ReconcileReport) -> None:
        with session_scope() as session:
            current = session.get(Job, job.id)
            if current is None or current.status not in JOB_UNFINISHED:
                return
            if current.attempts >= MAX_DELIVERIES:
                reason = "its message was lost after every delivery"
                report.dead_lettered += self._fail(session, current, reason, dead=True)
                return
            invocation = async_invocation(session, current)
            if invocation is None:
                reason = "its endpoint variant was deleted before it ran"
                report.failed += self._fail(session, current, reason)
                return
            current.status = JobStatus.QUEUED
        enqueue(invocation, client=self.redis)
        logger.warning("job %s: its message was lost; requeued", job.id)
        report.requeued += 1

    def _fail(self, session: Session, job: Job, reason: str, *, dead: bool = False) -> bool:
        """Fail the job, its error document first; False if it was not (retried next pass)."""
        error, finished_at = f"Lost: {reason}", utcnow()
        if not write_failure_document(
            self.store, job.failure_location, job_id=job.id, error=error, finished_at=finished_at
        ):
            return False
        failed = reconcile_store.fail_unfinished(
            session, job.id, error=error, finished_at=finished_at, dead=dead
        )
        logger.warning("job %s: failed: %s", job.id, reason)
        return failed


def start_reconciler(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Run the reconciler every `reconcile_interval_s` on its own thread until `stop` is set."""
    reconciler = Reconciler(
        client=get_redis(),
        namespace=settings.namespace,
        grace_s=settings.worker_lease_s * GRACE_LEASES,
        stale_after_s=settings.visibility_timeout_s,
        interval_s=settings.reconcile_interval_s,
    )
    return start_loop(reconciler, stop)
