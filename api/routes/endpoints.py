"""`/v1/endpoints`: endpoints with weighted variants."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response

from api.deps import SessionDep
from api.problems import problem_responses
from api.schemas import (
    DataCapture,
    DeploymentPublic,
    EndpointConfigPublic,
    EndpointCreate,
    EndpointPublic,
    EndpointUpdate,
    ModelLoadPublic,
    ShadowReport,
    UpdateAccepted,
    VariantCreate,
    VariantPatch,
    WeightsPatch,
)
from api.services import deployments as deployment_service
from api.services import endpoints as endpoint_service
from api.services import multi_models
from api.services import shadows as shadow_service

router = APIRouter(
    prefix="/v1/endpoints",
    tags=["endpoints"],
    responses=problem_responses(400, 404, 409, 422, 503),
)


def _forget_route(request: Request, name: str) -> None:
    request.app.state.routes.invalidate(name)


@router.post("", status_code=201, response_model=EndpointPublic, response_model_by_alias=True)
def create_endpoint(spec: EndpointCreate, session: SessionDep) -> EndpointPublic:
    return endpoint_service.create_endpoint(session, spec)


@router.get("", response_model=list[EndpointPublic], response_model_by_alias=True)
def list_endpoints(session: SessionDep) -> list[EndpointPublic]:
    return endpoint_service.list_endpoints(session)


@router.get("/{name}", response_model=EndpointPublic, response_model_by_alias=True)
def get_endpoint(name: str, session: SessionDep) -> EndpointPublic:
    return endpoint_service.get_endpoint(session, name)


@router.delete("/{name}", status_code=204)
def delete_endpoint(name: str, request: Request, session: SessionDep) -> Response:
    endpoint_service.delete_endpoint(session, name)
    _forget_route(request, name)
    return Response(status_code=204)


@router.patch("/{name}/weights", response_model=EndpointPublic, response_model_by_alias=True)
def set_weights(
    name: str, patch: WeightsPatch, request: Request, session: SessionDep
) -> EndpointPublic:
    result = endpoint_service.set_weights(session, name, patch)
    _forget_route(request, name)
    return result


@router.patch(
    "/{name}/variants/{variant}", response_model=EndpointPublic, response_model_by_alias=True
)
def update_variant(
    name: str, variant: str, patch: VariantPatch, request: Request, session: SessionDep
) -> EndpointPublic:
    result = endpoint_service.update_variant(session, name, variant, patch)
    _forget_route(request, name)
    return result


@router.patch("/{name}/data-capture", response_model=EndpointPublic, response_model_by_alias=True)
def set_data_capture(
    name: str, capture: DataCapture, request: Request, session: SessionDep
) -> EndpointPublic:
    """Replace the endpoint's data capture (`{"enabled": false}` stops it); no deployment."""
    result = endpoint_service.set_data_capture(session, name, capture)
    _forget_route(request, name)
    return result


@router.get("/{name}/models", response_model=list[ModelLoadPublic])
def list_models(
    name: str,
    session: SessionDep,
    response: Response,
    variant: str | None = None,
    after: str | None = Query(default=None, description="The last model of the previous page."),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[ModelLoadPublic]:
    """Every model under the endpoint's multi-model variants' prefixes, in key order, with
    where it is loaded. `X-Next-After` (when present) is the `after` of the next page."""
    page, next_after = multi_models.list_models(
        session, name, variant=variant, after=after, limit=limit
    )
    if next_after is not None:
        response.headers["X-Next-After"] = quote(next_after, safe="/")
    return page


@router.put(
    "/{name}",
    response_model=UpdateAccepted,
    response_model_by_alias=True,
    responses={202: {"model": UpdateAccepted, "description": "A deployment started."}},
)
def update_endpoint(
    name: str, spec: EndpointUpdate, request: Request, response: Response, session: SessionDep
) -> UpdateAccepted:
    """A whole new spec: 200 when it applies in place, 202 with a deployment otherwise."""
    result, status = deployment_service.update_endpoint(session, name, spec)
    _forget_route(request, name)
    response.status_code = status
    return result


@router.get("/{name}/configs", response_model=list[EndpointConfigPublic])
def list_configs(name: str, session: SessionDep) -> list[EndpointConfigPublic]:
    return deployment_service.list_configs(session, name)


@router.get("/{name}/configs/{version}", response_model=EndpointConfigPublic)
def get_config(name: str, version: int, session: SessionDep) -> EndpointConfigPublic:
    return deployment_service.get_config(session, name, version)


@router.get("/{name}/deployments", response_model=list[DeploymentPublic])
def list_deployments(name: str, session: SessionDep) -> list[DeploymentPublic]:
    return deployment_service.list_deployments(session, name)


@router.get("/{name}/deployments/{deployment_id}", response_model=DeploymentPublic)
def get_deployment(name: str, deployment_id: str, session: SessionDep) -> DeploymentPublic:
    return deployment_service.get_deployment(session, name, deployment_id)


@router.post("/{name}/deployments/{deployment_id}/rollback", response_model=DeploymentPublic)
def roll_back(
    name: str, deployment_id: str, request: Request, session: SessionDep
) -> DeploymentPublic:
    """All traffic back to the old config now; the new variants drain and stop."""
    result = deployment_service.roll_back(session, name, deployment_id)
    _forget_route(request, name)
    return result


@router.post(
    "/{name}/variants",
    status_code=201,
    response_model=EndpointPublic,
    response_model_by_alias=True,
)
def add_variant(
    name: str, spec: VariantCreate, request: Request, session: SessionDep
) -> EndpointPublic:
    """Add a production variant in place (a new config version, no deployment)."""
    result = deployment_service.add_variant(session, name, spec)
    _forget_route(request, name)
    return result


@router.delete(
    "/{name}/variants/{variant}",
    status_code=202,
    response_model=EndpointPublic,
    response_model_by_alias=True,
)
def remove_variant(
    name: str, variant: str, request: Request, session: SessionDep
) -> EndpointPublic:
    """Stop routing to a variant; its queued work finishes first, then it is removed."""
    result = deployment_service.remove_variant(session, name, variant)
    _forget_route(request, name)
    return result


@router.get("/{name}/shadow-report", response_model=ShadowReport)
def shadow_report(
    name: str,
    session: SessionDep,
    tolerance: float = Query(default=1e-6, ge=0, le=1e12),
) -> ShadowReport:
    """Each shadow variant against production: agreement, differences, errors, latencies."""
    return shadow_service.shadow_report(session, name, tolerance)
