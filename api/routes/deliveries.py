"""`/v1/deliveries`: every webhook delivery, X-Callback-Url ones included, by id or by job."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SessionDep
from api.problems import problem_responses
from api.routes.topics import Limit
from api.schemas import DeliveryDetail, DeliveryPublic
from api.services import topics as topic_service
from core.states import DeliveryStatus

router = APIRouter(
    prefix="/v1/deliveries",
    tags=["notifications"],
    responses=problem_responses(400, 404, 409, 422, 503),
)


@router.get("", response_model=list[DeliveryPublic])
def list_deliveries(
    session: SessionDep,
    job_id: str | None = None,
    status: DeliveryStatus | None = None,
    limit: Limit = 100,
) -> list[DeliveryPublic]:
    """Deliveries newest first, optionally of one job or one status."""
    return topic_service.list_deliveries(
        session, topic=None, job_id=job_id, status=status, limit=limit
    )


@router.get("/{delivery_id}", response_model=DeliveryDetail)
def get_delivery(delivery_id: str, session: SessionDep) -> DeliveryDetail:
    return topic_service.get_delivery(session, delivery_id, topic=None)


@router.post("/{delivery_id}/redrive", response_model=DeliveryPublic)
def redrive(delivery_id: str, session: SessionDep) -> DeliveryPublic:
    """Send a dead delivery again (same delivery id) with a fresh budget of attempts."""
    return topic_service.redrive(session, delivery_id, topic=None)
