"""`/v1/endpoints/{name}/components`: inference components of a live endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import SessionDep
from api.problems import problem_responses
from api.schemas import ComponentCreate, ComponentPatch, ComponentPublic
from api.services import components as component_service

router = APIRouter(
    prefix="/v1/endpoints/{name}/components",
    tags=["inference components"],
    responses=problem_responses(400, 404, 409, 422, 503),
)


def _forget_route(request: Request, name: str) -> None:
    request.app.state.routes.invalidate(name)


@router.post("", status_code=201, response_model=ComponentPublic)
def create_component(
    name: str, spec: ComponentCreate, request: Request, session: SessionDep
) -> ComponentPublic:
    """Add a component to a live endpoint; copies that fit nowhere stay pending (201)."""
    result = component_service.create_component(session, name, spec)
    _forget_route(request, name)
    return result


@router.get("", response_model=list[ComponentPublic])
def list_components(name: str, session: SessionDep) -> list[ComponentPublic]:
    return component_service.list_components(session, name)


@router.get("/{component}", response_model=ComponentPublic)
def get_component(name: str, component: str, session: SessionDep) -> ComponentPublic:
    """Its copies (current, desired), where each runs, and why wanted copies are pending."""
    return component_service.get_component(session, name, component)


@router.patch("/{component}", response_model=ComponentPublic)
def update_component(
    name: str, component: str, patch: ComponentPatch, request: Request, session: SessionDep
) -> ComponentPublic:
    """Change copies, compute, scaling, batching or priority (only the fields sent)."""
    result = component_service.update_component(session, name, component, patch)
    _forget_route(request, name)
    return result


@router.delete("/{component}", status_code=202, response_model=ComponentPublic)
def delete_component(
    name: str, component: str, request: Request, session: SessionDep
) -> JSONResponse:
    """Refuse new calls now, drain what is queued, then remove it (`status: deleting`)."""
    result = component_service.delete_component(session, name, component)
    _forget_route(request, name)
    return JSONResponse(result.model_dump(mode="json"), status_code=202)
