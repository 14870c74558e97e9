"""`/v1/jobs`: the state and output of async jobs."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from api.deps import SessionDep
from api.problems import problem_responses
from api.schemas import JobPublic
from core.apikeys import KeyInfo
from core.errors import NotFound
from core.storage import S3Location, get_store
from core.tables import Job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=problem_responses(404, 422, 503))


def _job(session: SessionDep, job_id: str, request: Request) -> Job:
    job = session.get(Job, job_id)
    key: KeyInfo | None = getattr(request.state, "api_key", None)
    # A key limited to some endpoints must not learn of other endpoints' jobs.
    if job is None or (key is not None and not key.allows_endpoint(job.endpoint)):
        raise NotFound(f"no job with id {job_id!r}")
    return job


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: str, request: Request, session: SessionDep) -> JobPublic:
    job = _job(session, job_id, request)
    return JobPublic(
        job_id=job.id,
        endpoint=job.endpoint,
        variant=job.variant,
        status=job.status,
        output_location=job.output_location,
        error=job.error,
        inference_id=job.inference_id,
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@router.get(
    "/{job_id}/output",
    responses={200: {"description": "The output bytes", "content": {"application/json": {}}}},
)
def get_job_output(job_id: str, request: Request, session: SessionDep) -> StreamingResponse:
    """The output object's bytes; 404 until the job has succeeded."""
    job = _job(session, job_id, request)
    if job.status != "succeeded":
        reason = f": {job.error}" if job.error else ""
        raise NotFound(f"job {job_id} has no output; it is {job.status}{reason}")
    location = S3Location.parse(job.output_location)
    chunks: Iterator[bytes] = get_store().iter_chunks(location)
    first = next(chunks, b"")  # surfaces a missing object as 404 before headers go out

    def body() -> Iterator[bytes]:
        yield first
        yield from chunks

    return StreamingResponse(body(), media_type=job.output_content_type or "application/json")
