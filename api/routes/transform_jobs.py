"""`/v1/transform-jobs`: batch transform over S3 prefixes."""

from __future__ import annotations

from fastapi import APIRouter, Header, Query, Response
from pydantic import ValidationError

from api.deps import SessionDep
from api.headers import header_text
from api.problems import problem_responses
from api.schemas import TransformJobCreate, TransformJobPublic
from api.services import transforms as transform_service
from core.errors import BadRequest, InvalidInput
from core.states import TransformStatus

router = APIRouter(
    prefix="/v1/transform-jobs",
    tags=["transform"],
    responses=problem_responses(400, 403, 404, 409, 422, 503),
)


@router.post("", status_code=202, response_model=TransformJobPublic)
def create_transform_job(
    spec: TransformJobCreate,
    response: Response,
    session: SessionDep,
    x_target_component: str | None = Header(
        default=None, description="Run on this inference component of the endpoint."
    ),
) -> TransformJobPublic:
    """Start a transform, or resume a stopped or failed one by resubmitting its name."""
    component = header_text("X-Target-Component", x_target_component)
    if component is not None:
        if spec.component is not None and spec.component != component:
            raise BadRequest(
                f"X-Target-Component {component!r} and component {spec.component!r} differ"
            )
        try:
            spec = TransformJobCreate.model_validate(spec.model_dump() | {"component": component})
        except ValidationError as exc:
            # e.g. the header on a model's job, or a name no component can have: 422, not 500
            reasons = "; ".join(error["msg"] for error in exc.errors())
            raise InvalidInput(f"X-Target-Component {component!r}: {reasons}") from exc
    job = transform_service.submit(session, spec)
    response.headers["Location"] = f"/v1/transform-jobs/{job.job_id}"
    return job


@router.get("", response_model=list[TransformJobPublic])
def list_transform_jobs(
    session: SessionDep,
    status: TransformStatus | None = None,
    limit: int = Query(default=50, ge=1, le=1000),
) -> list[TransformJobPublic]:
    """Newest first, optionally of one status."""
    return transform_service.list_jobs(session, status=status, limit=limit)


@router.get("/{job_id}", response_model=TransformJobPublic)
def get_transform_job(job_id: str, session: SessionDep) -> TransformJobPublic:
    """Status and progress (by id, or by name)."""
    return transform_service.get(session, job_id)


@router.post("/{job_id}/stop", status_code=202, response_model=TransformJobPublic)
def stop_transform_job(job_id: str, session: SessionDep) -> TransformJobPublic:
    """Stop within seconds; resubmit the same name to resume."""
    return transform_service.stop(session, job_id)
