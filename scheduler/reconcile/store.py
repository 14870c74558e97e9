"""The reconcile room's SQL: the jobs it inspects, and failing one for good.

One owner for these queries, as `webhooks/delivery_store.py` and
`transform/store.py` are for theirs; `reconciler.py` and `expiry.py` decide,
this module reads and writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from core.db import session_scope
from core.outbox import record_job_event
from core.states import JOB_UNFINISHED, JobStatus
from core.tables import Job

BATCH = 500


def unfinished_jobs(cutoff: dt.datetime, *, limit: int = BATCH) -> list[Job]:
    """Jobs queued before `cutoff`, or running since before it (detached rows, at most `limit`)."""
    with session_scope() as session:
        jobs = session.scalars(
            select(Job)
            .where(
                or_(
                    (Job.status == JobStatus.QUEUED) & (Job.created_at < cutoff),
                    (Job.status == JobStatus.RUNNING) & (Job.started_at < cutoff),
                )
            )
            .limit(limit)
        ).all()
        session.expunge_all()
        return list(jobs)


def fail_unfinished(
    session: Session, job_id: str, *, error: str, finished_at: dt.datetime, dead: bool = False
) -> bool:
    """Fail the job if it is still unfinished, with its JobFailed event in the same
    transaction (as a worker's finish); False if another process finished it first."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Job)
        .where(Job.id == job_id, Job.status.in_(JOB_UNFINISHED))
        .values(status=JobStatus.FAILED, error=error, dead_letter=dead, finished_at=finished_at)
    )
    if result.rowcount:
        record_job_event(session, job_id)
    return bool(result.rowcount)


@dataclass(frozen=True, slots=True)
class Expirable:
    """A queued job that never started and has an expiry (X-Request-Ttl-S)."""

    id: str
    created_at: dt.datetime
    expires_at: dt.datetime
    failure_location: str | None


def _never_started() -> Any:
    return (Job.status == JobStatus.QUEUED) & (Job.attempts == 0) & Job.expires_at.is_not(None)


def expired_jobs(cutoff: dt.datetime, *, limit: int = BATCH) -> list[Expirable]:
    """Never-started jobs whose expiry is at or before `cutoff` (at most `limit`)."""
    with session_scope() as session:
        rows = session.execute(
            select(Job.id, Job.created_at, Job.expires_at, Job.failure_location)
            .where(_never_started(), Job.expires_at <= cutoff)
            .limit(limit)
        ).all()
    return [Expirable(r.id, r.created_at, r.expires_at, r.failure_location) for r in rows]


def fail_expired(job_id: str, *, error: str, finished_at: dt.datetime) -> bool:
    """Fail the job if it still never started, with its JobFailed event; False if a
    worker took it in the meantime."""
    with session_scope() as session:
        result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(Job)
            .where(Job.id == job_id, _never_started())
            .values(status=JobStatus.FAILED, error=error, finished_at=finished_at)
        )
        if result.rowcount:
            record_job_event(session, job_id)
        return bool(result.rowcount)
