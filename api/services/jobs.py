"""Async jobs: read one (within what an API key may see), list them, retry a failed one.

Shared by the HTTP routes (api/routes/jobs.py) and the console (api/routes/console.py):
a key limited to some endpoints never learns of other endpoints' jobs — to it
they do not exist (404), and lists hold only its endpoints' jobs.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas import JobPublic
from core.apikeys import KeyInfo
from core.broker import enqueue
from core.errors import Conflict, NotFound
from core.jobs import async_invocation
from core.states import JobStatus
from core.storage import get_store
from core.tables import Endpoint, Job, public_variant_name

logger = logging.getLogger(__name__)


def load_job(session: Session, job_id: str, key: KeyInfo | None) -> Job:
    """The job row, or NotFound if it does not exist or `key` may not see its endpoint."""
    job = session.get(Job, job_id)
    if job is None or (key is not None and not key.allows_endpoint(job.endpoint)):
        raise NotFound(f"no job with id {job_id!r}")
    return job


def public(job: Job) -> JobPublic:
    return JobPublic(
        job_id=job.id,
        endpoint=job.endpoint,
        variant=public_variant_name(job.variant),
        status=job.status,
        output_location=job.output_location,
        failure_location=job.failure_location,
        error=job.error,
        inference_id=job.inference_id,
        attempts=job.attempts,
        dead_letter=job.dead_letter,
        invocation_timeout_s=job.invocation_timeout_s,
        expires_at=job.expires_at,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def get_job(session: Session, job_id: str, key: KeyInfo | None) -> JobPublic:
    return public(load_job(session, job_id, key))


def list_jobs(
    session: Session,
    *,
    endpoint: str | None = None,
    status: JobStatus | None = None,
    dead_letter: bool | None = None,
    limit: int = 50,
    key: KeyInfo | None = None,
) -> list[JobPublic]:
    """Newest first; `dead_letter=True` lists the jobs that failed every delivery."""
    query = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if endpoint is not None:
        query = query.where(Job.endpoint == endpoint)
    if status is not None:
        query = query.where(Job.status == status)
    if dead_letter is not None:
        query = query.where(Job.dead_letter == dead_letter)
    if key is not None and key.endpoints is not None:
        query = query.where(Job.endpoint.in_(sorted(key.endpoints)))
    return [public(job) for job in session.scalars(query)]


def retry_job(session: Session, job_id: str, key: KeyInfo | None) -> JobPublic:
    """Run a failed (for instance dead-lettered, or expired) job again from its stored input.

    Conflict unless it failed, or when its variant no longer exists. Its
    X-Request-Ttl-S no longer applies (a person asked for it now), and its old
    error document is removed, so the failure location only ever holds the
    latest failure.
    """
    job = load_job(session, job_id, key)
    if job.status != JobStatus.FAILED:
        raise Conflict(f"job {job_id} is {job.status}; only failed jobs can be retried")
    deleting = session.scalar(
        select(Endpoint.delete_requested_at).where(Endpoint.name == job.endpoint)
    )
    if deleting is not None:
        raise Conflict(f"job {job_id}'s endpoint {job.endpoint!r} is being deleted")
    invocation = async_invocation(session, job)
    if invocation is None:
        # Gone, or an endpoint re-created under the same name since: never run it there.
        raise Conflict(
            f"job {job_id}'s variant {job.endpoint}/{public_variant_name(job.variant)} "
            "no longer exists (its endpoint or variant was deleted)"
        )
    job.status, job.error, job.attempts, job.dead_letter = JobStatus.QUEUED, None, 0, False
    job.started_at = job.finished_at = job.expires_at = None
    session.commit()
    if job.failure_location:
        for failure in get_store().delete_uris([job.failure_location]):
            logger.warning("job %s: old error document left: %s", job_id, failure.detail)
    enqueue(invocation)
    return public(job)
