"""`/v1/topics`: SNS-like topics, their webhook subscriptions, and their deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import SessionDep
from api.problems import problem_responses
from api.schemas import (
    DeliveryDetail,
    DeliveryPublic,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    TopicCreate,
    TopicPublic,
)
from api.services import topics as topic_service
from core.states import DeliveryStatus

router = APIRouter(
    prefix="/v1/topics",
    tags=["notifications"],
    responses=problem_responses(400, 404, 409, 422, 503),
)

Limit = Annotated[int, Query(ge=1, le=1000)]


@router.post("", status_code=201, response_model=TopicPublic)
def create_topic(spec: TopicCreate, session: SessionDep) -> TopicPublic:
    return topic_service.create_topic(session, spec)


@router.get("", response_model=list[TopicPublic])
def list_topics(session: SessionDep) -> list[TopicPublic]:
    return topic_service.list_topics(session)


@router.get("/{name}", response_model=TopicPublic)
def get_topic(name: str, session: SessionDep) -> TopicPublic:
    return topic_service.get_topic(session, name)


@router.delete("/{name}", status_code=204)
def delete_topic(name: str, session: SessionDep) -> Response:
    topic_service.delete_topic(session, name)
    return Response(status_code=204)


@router.post(
    "/{name}/subscriptions",
    status_code=201,
    response_model=SubscriptionCreated,
    response_model_exclude_unset=True,
)
def subscribe(name: str, spec: SubscriptionCreate, session: SessionDep) -> SubscriptionCreated:
    """Add a webhook; a URL that is not http(s) or targets a refused address is a 422."""
    return topic_service.subscribe(session, name, spec)


@router.get("/{name}/subscriptions", response_model=list[SubscriptionPublic])
def list_subscriptions(name: str, session: SessionDep) -> list[SubscriptionPublic]:
    return topic_service.list_subscriptions(session, name)


@router.delete("/{name}/subscriptions/{subscription_id}", status_code=204)
def unsubscribe(name: str, subscription_id: str, session: SessionDep) -> Response:
    topic_service.unsubscribe(session, name, subscription_id)
    return Response(status_code=204)


@router.get("/{name}/deliveries", response_model=list[DeliveryPublic])
def list_deliveries(
    name: str,
    session: SessionDep,
    status: DeliveryStatus | None = None,
    job_id: str | None = None,
    limit: Limit = 100,
) -> list[DeliveryPublic]:
    """The topic's deliveries, newest first, optionally of one status or one job."""
    return topic_service.list_deliveries(
        session, topic=name, job_id=job_id, status=status, limit=limit
    )


@router.get("/{name}/deliveries/{delivery_id}", response_model=DeliveryDetail)
def get_delivery(name: str, delivery_id: str, session: SessionDep) -> DeliveryDetail:
    """One delivery with the body it sends and every attempt so far."""
    return topic_service.get_delivery(session, delivery_id, topic=name)


@router.post("/{name}/deliveries/{delivery_id}/redrive", response_model=DeliveryPublic)
def redrive(name: str, delivery_id: str, session: SessionDep) -> DeliveryPublic:
    """Send a dead delivery again (same delivery id) with a fresh budget of attempts."""
    return topic_service.redrive(session, delivery_id, topic=name)
