"""Async jobs that no worker started within their X-Request-Ttl-S: failed "expired".

A worker checks a job's expiry when it takes the message
(workers/modes/asynchronous.py), but a job can sit `queued` with no worker to
take it: its variant is scaled to zero, or its workers are gone. Each
reconciler pass fails such jobs, error document first (core/failures.py),
then the row, with its outbox event, in one transaction guarded by the row
still being queued and never started.

Only jobs whose expiry passed over `EXPIRY_SLACK_S` ago: a worker taking one
in its last moments (its clock a little behind ours) starts it, and the
reconciler never writes an error document for a job that then runs. A job
with a 30 s TTL accepted at 12:00:00 with no worker: expired at 12:00:30,
failed by the first pass after 12:00:35.
"""

from __future__ import annotations

import datetime as dt
import logging

from core.errors import RequestExpired, job_error
from core.failures import write_failure_document
from core.storage import ObjectStore
from core.tables import utcnow
from scheduler.reconcile import store as reconcile_store

logger = logging.getLogger(__name__)

EXPIRY_SLACK_S = 5.0


def expire_unstarted_jobs(store: ObjectStore, *, now: dt.datetime | None = None) -> int:
    """Fail queued, never-started jobs past their expiry (and the slack); how many."""
    cutoff = (now or utcnow()) - dt.timedelta(seconds=EXPIRY_SLACK_S)
    expired = 0
    for job in reconcile_store.expired_jobs(cutoff):
        ttl_s = round((job.expires_at - job.created_at).total_seconds(), 3)
        error = job_error(RequestExpired.not_started_within(ttl_s))
        finished_at = utcnow()
        if not write_failure_document(
            store, job.failure_location, job_id=job.id, error=error, finished_at=finished_at
        ):
            continue  # the store is down: the next pass tries again
        if reconcile_store.fail_expired(job.id, error=error, finished_at=finished_at):
            expired += 1
            logger.warning("job %s: failed: %s (no worker took it)", job.id, error)
    return expired
