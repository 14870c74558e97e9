"""`/v1/jobs`: the state and output of async jobs."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from api.deps import SessionDep
from api.problems import problem_responses
from api.schemas import JobPublic
from core.apikeys import KeyInfo
from core.broker import enqueue
from core.errors import Conflict, NotFound
from core.jobs import async_invocation
from core.states import JobStatus
from core.storage import S3Location, get_store
from core.tables import Job

router = APIRouter(
    prefix="/v1/jobs", tags=["jobs"], responses=problem_responses(404, 409, 422, 503)
)


def _job(session: SessionDep, job_id: str, request: Request) -> Job:
    job = session.get(Job, job_id)
    key: KeyInfo | None = getattr(request.state, "api_key", None)
    # A key limited to some endpoints must not learn of other endpoints' jobs.
    if job is None or (key is not None and not key.allows_endpoint(job.endpoint)):
        raise NotFound(f"no job with id {job_id!r}")
    return job


def _public(job: Job) -> JobPublic:
    return JobPublic(
        job_id=job.id,
        endpoint=job.endpoint,
        variant=job.variant,
        status=job.status,
        output_location=job.output_location,
        error=job.error,
        inference_id=job.inference_id,
        attempts=job.attempts,
        dead_letter=job.dead_letter,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@router.get("", response_model=list[JobPublic])
def list_jobs(
    session: SessionDep,
    endpoint: str | None = None,
    status: JobStatus | None = None,
    dead_letter: bool | None = None,
    limit: int = Query(default=50, ge=1, le=1000),
) -> list[JobPublic]:
    """Newest first; `dead_letter=true` lists the jobs that failed every delivery."""
    query = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if endpoint is not None:
        query = query.where(Job.endpoint == endpoint)
    if status is not None:
        query = query.where(Job.status == status)
    if dead_letter is not None:
        query = query.where(Job.dead_letter == dead_letter)
    return [_public(job) for job in session.scalars(query)]


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: str, request: Request, session: SessionDep) -> JobPublic:
    return _public(_job(session, job_id, request))


@router.post("/{job_id}/retry", status_code=202, response_model=JobPublic)
def retry_job(job_id: str, request: Request, session: SessionDep) -> JobPublic:
    """Run a failed (for instance dead-lettered) job again from its stored input."""
    job = _job(session, job_id, request)
    if job.status != JobStatus.FAILED:
        raise Conflict(f"job {job_id} is {job.status}; only failed jobs can be retried")
    invocation = async_invocation(session, job)
    if invocation is None:
        raise Conflict(f"job {job_id}'s variant {job.endpoint}/{job.variant} no longer exists")
    job.status, job.error, job.attempts, job.dead_letter = JobStatus.QUEUED, None, 0, False
    job.started_at = job.finished_at = None
    session.commit()
    enqueue(invocation)
    return _public(job)


@router.get(
    "/{job_id}/output",
    responses={200: {"description": "The output bytes", "content": {"application/json": {}}}},
)
def get_job_output(job_id: str, request: Request, session: SessionDep) -> StreamingResponse:
    """The output object's bytes; 404 until the job has succeeded."""
    job = _job(session, job_id, request)
    if job.status != JobStatus.SUCCEEDED:
        reason = f": {job.error}" if job.error else ""
        raise NotFound(f"job {job_id} has no output; it is {job.status}{reason}")
    location = S3Location.parse(job.output_location)
    chunks: Iterator[bytes] = get_store().iter_chunks(location)
    first = next(chunks, b"")  # surfaces a missing object as 404 before headers go out

    def body() -> Iterator[bytes]:
        yield first
        yield from chunks

    return StreamingResponse(body(), media_type=job.output_content_type or "application/json")
