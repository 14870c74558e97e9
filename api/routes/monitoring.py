"""`/v1/monitoring`: baselines, monitoring schedules and their executions (docs/monitoring.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import SessionDep
from api.problems import problem_responses
from api.schemas import (
    BaselineCreate,
    BaselinePublic,
    ExecutionPublic,
    ScheduleCreate,
    SchedulePublic,
)
from api.services import monitoring as monitoring_service

router = APIRouter(
    prefix="/v1/monitoring",
    tags=["monitoring"],
    responses=problem_responses(400, 403, 404, 409, 422, 503),
)


@router.post("/baselines", status_code=202, response_model=BaselinePublic)
def create_baseline(
    spec: BaselineCreate, response: Response, session: SessionDep
) -> BaselinePublic:
    """Compute statistics.json and constraints.json of a dataset (status moves to completed)."""
    baseline = monitoring_service.create_baseline(session, spec)
    response.headers["Location"] = f"/v1/monitoring/baselines/{baseline.name}"
    return baseline


@router.get("/baselines", response_model=list[BaselinePublic])
def list_baselines(session: SessionDep) -> list[BaselinePublic]:
    return monitoring_service.list_baselines(session)


@router.get("/baselines/{name}", response_model=BaselinePublic)
def get_baseline(name: str, session: SessionDep) -> BaselinePublic:
    return monitoring_service.get_baseline(session, name)


@router.delete("/baselines/{name}", status_code=204)
def delete_baseline(name: str, session: SessionDep) -> Response:
    """Forget a baseline no schedule uses (its files stay in S3)."""
    monitoring_service.delete_baseline(session, name)
    return Response(status_code=204)


@router.post("/schedules", status_code=201, response_model=SchedulePublic)
def create_schedule(spec: ScheduleCreate, session: SessionDep) -> SchedulePublic:
    """Check the endpoint's captured data against the baseline every `interval_s`."""
    return monitoring_service.create_schedule(session, spec)


@router.get("/schedules", response_model=list[SchedulePublic])
def list_schedules(session: SessionDep) -> list[SchedulePublic]:
    return monitoring_service.list_schedules(session)


@router.get("/schedules/{name}", response_model=SchedulePublic)
def get_schedule(name: str, session: SessionDep) -> SchedulePublic:
    return monitoring_service.get_schedule(session, name)


@router.delete("/schedules/{name}", status_code=204)
def delete_schedule(name: str, session: SessionDep) -> Response:
    monitoring_service.delete_schedule(session, name)
    return Response(status_code=204)


@router.post("/schedules/{name}/run", status_code=202, response_model=ExecutionPublic)
def run_schedule(name: str, response: Response, session: SessionDep) -> ExecutionPublic:
    """Run the schedule now, over the capture written since its previous run."""
    execution = monitoring_service.run_now(session, name)
    response.headers["Location"] = (
        f"/v1/monitoring/schedules/{name}/executions/{execution.execution_id}"
    )
    return execution


@router.get("/schedules/{name}/executions", response_model=list[ExecutionPublic])
def list_executions(
    name: str, session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[ExecutionPublic]:
    """The schedule's runs, newest first."""
    return monitoring_service.list_executions(session, name, limit=limit)


@router.get("/schedules/{name}/executions/{execution_id}", response_model=ExecutionPublic)
def get_execution(name: str, execution_id: str, session: SessionDep) -> ExecutionPublic:
    return monitoring_service.get_execution(session, name, execution_id)
