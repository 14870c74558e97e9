"""`/v1/endpoints`: endpoints with weighted variants."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response

from api.deps import SessionDep
from api.problems import problem_responses
from api.schemas import (
    DataCapture,
    EndpointCreate,
    EndpointPublic,
    ModelLoadPublic,
    VariantPatch,
    WeightsPatch,
)
from api.services import endpoints as endpoint_service
from api.services import multi_models

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
