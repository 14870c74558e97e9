"""Topics, their webhook subscriptions, and the deliveries of their events.

A subscription's secret is stored so the notifier can sign with it; it leaves
the API once at most, in the reply that created it when the server generated
it. Webhook URLs are checked by core/url_safety.py (422 when refused).
Deliveries are read here and redriven here; they are sent by scheduler/webhooks/notifier.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from api.schemas import (
    DeliveryAttemptPublic,
    DeliveryDetail,
    DeliveryPublic,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    TopicCreate,
    TopicPublic,
)
from core.config import get_settings
from core.errors import Conflict, InvalidInput, NotFound
from core.states import DeliveryStatus
from core.tables import (
    Delivery,
    DeliveryAttempt,
    Endpoint,
    Event,
    Subscription,
    Topic,
    utcnow,
)
from core.url_safety import check_webhook_url

# --- topics ---------------------------------------------------------------------


def _topic(session: Session, name: str) -> Topic:
    topic = session.scalar(
        select(Topic).where(Topic.name == name).options(selectinload(Topic.subscriptions))
    )
    if topic is None:
        raise NotFound(f"no topic named {name!r}")
    return topic


def _subscription_public(topic: Topic, sub: Subscription) -> SubscriptionPublic:
    return SubscriptionPublic(
        subscription_id=sub.id,
        topic=topic.name,
        url=sub.url,
        max_attempts=sub.max_attempts,
        created_at=sub.created_at,
    )


def _topic_public(topic: Topic) -> TopicPublic:
    return TopicPublic(
        name=topic.name,
        created_at=topic.created_at,
        subscriptions=[_subscription_public(topic, sub) for sub in topic.subscriptions],
    )


def require_topics(session: Session, fields: Mapping[str, str | None]) -> None:
    """InvalidInput (422) naming each field whose topic does not exist (None is fine)."""
    wanted = {name for name in fields.values() if name}
    if not wanted:
        return
    existing = set(session.scalars(select(Topic.name).where(Topic.name.in_(wanted))))
    missing = [
        f"{field} {name!r}" for field, name in fields.items() if name and name not in existing
    ]
    if missing:
        raise InvalidInput(f"no such topic: {', '.join(missing)}; create it with POST /v1/topics")


def create_topic(session: Session, spec: TopicCreate) -> TopicPublic:
    session.add(Topic(name=spec.name))
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"a topic named {spec.name!r} already exists") from exc
    return _topic_public(_topic(session, spec.name))


def list_topics(session: Session) -> list[TopicPublic]:
    topics = session.scalars(
        select(Topic).order_by(Topic.name).options(selectinload(Topic.subscriptions))
    )
    return [_topic_public(topic) for topic in topics]


def get_topic(session: Session, name: str) -> TopicPublic:
    return _topic_public(_topic(session, name))


def delete_topic(session: Session, name: str) -> None:
    """Delete a topic with its subscriptions and their deliveries; 409 while an endpoint uses it."""
    topic = _topic(session, name)
    users = list(
        session.scalars(
            select(Endpoint.name)
            .where(or_(Endpoint.success_topic == name, Endpoint.error_topic == name))
            .order_by(Endpoint.name)
        )
    )
    if users:
        raise Conflict(f"topic {name!r} is used by endpoint(s) {users}; delete those first")
    session.delete(topic)
    session.commit()


# --- subscriptions ----------------------------------------------------------------


def subscribe(session: Session, name: str, spec: SubscriptionCreate) -> SubscriptionCreated:
    topic = _topic(session, name)
    url = check_webhook_url(spec.url, allowed=get_settings().webhook_networks)
    secret = spec.secret or secrets.token_urlsafe(32)
    sub = Subscription(topic_id=topic.id, url=url, secret=secret, max_attempts=spec.max_attempts)
    session.add(sub)
    session.commit()
    public = _subscription_public(topic, sub).model_dump()
    if spec.secret is None:
        return SubscriptionCreated(**public, secret=secret)
    return SubscriptionCreated(**public)  # `secret` unset: left out of the reply


def list_subscriptions(session: Session, name: str) -> list[SubscriptionPublic]:
    topic = _topic(session, name)
    return [_subscription_public(topic, sub) for sub in topic.subscriptions]


def unsubscribe(session: Session, name: str, subscription_id: str) -> None:
    """Remove a subscription; its deliveries, pending ones included, go with it."""
    topic = _topic(session, name)
    sub = next((s for s in topic.subscriptions if s.id == subscription_id), None)
    if sub is None:
        raise NotFound(f"topic {name!r} has no subscription {subscription_id!r}")
    session.delete(sub)
    session.commit()


# --- deliveries -------------------------------------------------------------------


def _delivery_public(delivery: Delivery, event: Event) -> dict[str, Any]:
    return {
        "delivery_id": delivery.id,
        "event_id": event.id,
        "type": event.type,
        "job_id": event.job_id,
        "topic": event.topic if delivery.subscription_id else None,
        "subscription_id": delivery.subscription_id,
        "url": delivery.url,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "max_attempts": delivery.max_attempts,
        "redrives": delivery.redrives,
        "next_attempt_at": delivery.next_attempt_at
        if delivery.status == DeliveryStatus.PENDING
        else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "delivered_at": delivery.delivered_at,
        "created_at": delivery.created_at,
        "updated_at": delivery.updated_at,
    }


def list_deliveries(
    session: Session,
    *,
    topic: str | None,
    job_id: str | None,
    status: DeliveryStatus | None,
    limit: int,
) -> list[DeliveryPublic]:
    """Newest first; of one topic's subscriptions, or (topic None) of any, callbacks included."""
    query = select(Delivery, Event).join(Event, Event.id == Delivery.event_id)
    if topic is not None:
        topic_id = _topic(session, topic).id
        query = query.join(Subscription, Subscription.id == Delivery.subscription_id).where(
            Subscription.topic_id == topic_id
        )
    if job_id is not None:
        query = query.where(Event.job_id == job_id)
    if status is not None:
        query = query.where(Delivery.status == status)
    rows = session.execute(
        query.order_by(Delivery.created_at.desc(), Delivery.id).limit(limit)
    ).all()
    return [DeliveryPublic(**_delivery_public(delivery, event)) for delivery, event in rows]


def _delivery(session: Session, delivery_id: str, topic: str | None) -> tuple[Delivery, Event]:
    row = session.execute(
        select(Delivery, Event)
        .join(Event, Event.id == Delivery.event_id)
        .where(Delivery.id == delivery_id)
    ).first()
    where = f" of topic {topic!r}" if topic is not None else ""
    if row is None:
        raise NotFound(f"no delivery {delivery_id!r}{where}")
    delivery, event = row.tuple()
    if topic is not None:
        if delivery.subscription_id is None:
            raise NotFound(f"no delivery {delivery_id!r}{where}")
        topic_id = session.scalar(
            select(Subscription.topic_id).where(Subscription.id == delivery.subscription_id)
        )
        if topic_id != _topic(session, topic).id:
            raise NotFound(f"no delivery {delivery_id!r}{where}")
    return delivery, event


def get_delivery(session: Session, delivery_id: str, *, topic: str | None) -> DeliveryDetail:
    delivery, event = _delivery(session, delivery_id, topic)
    attempts = session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery.id)
        .order_by(DeliveryAttempt.started_at, DeliveryAttempt.id)
    )
    history = [
        DeliveryAttemptPublic(
            attempt=a.attempt,
            started_at=a.started_at,
            status_code=a.status_code,
            latency_ms=a.latency_ms,
            error=a.error,
        )
        for a in attempts
    ]
    return DeliveryDetail(
        **_delivery_public(delivery, event), body=orjson.loads(event.payload), history=history
    )


def redrive(session: Session, delivery_id: str, *, topic: str | None) -> DeliveryPublic:
    """Send a dead delivery again, with a fresh budget of attempts; 409 unless it is dead."""
    delivery, _ = _delivery(session, delivery_id, topic)
    budget = func.coalesce(
        select(Subscription.max_attempts)
        .where(Subscription.id == Delivery.subscription_id)
        .scalar_subquery(),
        get_settings().webhook_max_attempts,
    )
    # Guarded by status: of two redrives at once, exactly one moves the row.
    changed = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id, Delivery.status == DeliveryStatus.DEAD)
        .values(
            status=DeliveryStatus.PENDING,
            next_attempt_at=utcnow(),
            max_attempts=Delivery.attempts + budget,
            redrives=Delivery.redrives + 1,
            lease_owner=None,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not changed:
        raise Conflict(
            f"delivery {delivery_id} is {delivery.status}; only a dead delivery can be redriven"
        )
    session.commit()
    session.expire_all()
    delivery, event = _delivery(session, delivery_id, topic)
    return DeliveryPublic(**_delivery_public(delivery, event))
