"""`/v1/jobs`: the state and output of async jobs."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import SessionDep
from api.problems import problem_responses
from api.schemas import JobPublic
from api.services import jobs as job_service
from core.apikeys import KeyInfo
from core.errors import NotFound
from core.states import JobStatus
from core.storage import S3Location, get_store

router = APIRouter(
    prefix="/v1/jobs", tags=["jobs"], responses=problem_responses(404, 409, 422, 503)
)


def _key(request: Request) -> KeyInfo | None:
    key: KeyInfo | None = getattr(request.state, "api_key", None)
    return key


@router.get("", response_model=list[JobPublic])
def list_jobs(
    request: Request,
    session: SessionDep,
    endpoint: str | None = None,
    status: JobStatus | None = None,
    dead_letter: bool | None = None,
    limit: int = Query(default=50, ge=1, le=1000),
) -> list[JobPublic]:
    """Newest first; `dead_letter=true` lists the jobs that failed every delivery."""
    return job_service.list_jobs(
        session,
        endpoint=endpoint,
        status=status,
        dead_letter=dead_letter,
        limit=limit,
        key=_key(request),
    )


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: str, request: Request, session: SessionDep) -> JobPublic:
    return job_service.get_job(session, job_id, _key(request))


@router.post("/{job_id}/retry", status_code=202, response_model=JobPublic)
def retry_job(job_id: str, request: Request, session: SessionDep) -> JobPublic:
    """Run a failed (for instance dead-lettered) job again from its stored input."""
    return job_service.retry_job(session, job_id, _key(request))


@router.get(
    "/{job_id}/output",
    responses={200: {"description": "The output bytes", "content": {"application/json": {}}}},
)
def get_job_output(job_id: str, request: Request, session: SessionDep) -> StreamingResponse:
    """The output object's bytes; 404 until the job has succeeded."""
    job = job_service.load_job(session, job_id, _key(request))
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
