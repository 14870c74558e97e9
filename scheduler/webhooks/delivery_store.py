"""The notifier's SQL: expand outbox events into deliveries, lease due ones, record attempts.

Each function is one short transaction (the caller's session) and is safe to be
killed at any point: a transaction that did not commit changed nothing, and
what did commit is a consistent step.

- `fan_out` marks a batch of new events as expanded and inserts their delivery
  rows in the same transaction, so an event is expanded exactly once.
- `claim` leases due deliveries to one notifier until `lease_until`. A notifier
  that dies holding leases loses nothing: once they expire, the rows are due
  again and any notifier sends them (at least once; receivers de-duplicate on
  the delivery id).
- `record` stores each attempt and the delivery's next state.

Both "take" steps are one `UPDATE ... WHERE <still free> RETURNING` statement,
so two notifiers (two schedulers, or a restarted one beside its leftover
leases) never take the same row at once; on PostgreSQL `FOR UPDATE SKIP LOCKED`
in the inner SELECT lets them take disjoint batches without waiting on each
other, and SQLite runs one writer at a time anyway.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from core.states import DeliveryStatus
from core.tables import Delivery, DeliveryAttempt, Event, Subscription, Topic, new_id
from scheduler.webhooks.retry_policy import Decision
from scheduler.webhooks.webhook_sender import Outcome


@dataclass(frozen=True, slots=True)
class Claimed:
    """A leased delivery with everything needed to send its next attempt."""

    delivery_id: str
    lease: str
    url: str
    attempt: int  # the number of the attempt about to be made, 1-based
    max_attempts: int
    job_id: str
    event_type: str
    body: bytes
    secret: str | None


@dataclass(frozen=True, slots=True)
class Result:
    claimed: Claimed
    outcome: Outcome
    decision: Decision


def fan_out(session: Session, *, limit: int, default_max_attempts: int, now: dt.datetime) -> int:
    """Expand up to `limit` new events into one delivery per subscription (+ callback).

    Returns how many events were expanded. The subscriptions are those of the
    topic at this moment: one added after the job finished still gets its event.
    """
    batch = (
        select(Event.id)
        .where(Event.fanned_out_at.is_(None))
        .order_by(Event.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    events = session.execute(
        update(Event)
        .where(Event.id.in_(batch.scalar_subquery()), Event.fanned_out_at.is_(None))
        .values(fanned_out_at=now)
        .returning(Event.id, Event.topic, Event.callback_url)
        .execution_options(synchronize_session=False)
    ).all()
    if not events:
        return 0
    topics = {event.topic for event in events if event.topic}
    subscribers: dict[str, list[Any]] = defaultdict(list)
    if topics:
        for row in session.execute(
            select(Topic.name, Subscription.id, Subscription.url, Subscription.max_attempts)
            .join(Subscription, Subscription.topic_id == Topic.id)
            .where(Topic.name.in_(topics))
        ):
            subscribers[row.name].append(row)
    rows: list[dict[str, Any]] = []

    def add(event_id: str, url: str, subscription_id: str | None, max_attempts: int) -> None:
        rows.append(
            {
                "id": new_id(),
                "event_id": event_id,
                "subscription_id": subscription_id,
                "url": url,
                "status": DeliveryStatus.PENDING,
                "attempts": 0,
                "max_attempts": max_attempts,
                "redrives": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )

    for event in events:
        for sub in subscribers.get(event.topic, []) if event.topic else []:
            add(event.id, sub.url, sub.id, sub.max_attempts or default_max_attempts)
        if event.callback_url:
            add(event.id, event.callback_url, None, default_max_attempts)
    if rows:
        session.execute(insert(Delivery), rows)
    return len(events)


def claim(
    session: Session,
    *,
    lease: str,
    limit: int,
    lease_s: float,
    now: dt.datetime,
    callback_secret: str | None,
) -> list[Claimed]:
    """Lease up to `limit` due deliveries (oldest due first) under the token `lease`."""
    free = or_(Delivery.lease_until.is_(None), Delivery.lease_until < now)
    due = (
        select(Delivery.id)
        .where(Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= now, free)
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = session.scalars(
        update(Delivery)
        .where(
            Delivery.id.in_(due.scalar_subquery()), Delivery.status == DeliveryStatus.PENDING, free
        )
        .values(lease_owner=lease, lease_until=now + dt.timedelta(seconds=lease_s))
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    ).all()
    if not ids:
        return []
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.url,
            Delivery.attempts,
            Delivery.max_attempts,
            Delivery.subscription_id,
            Event.job_id,
            Event.type,
            Event.payload,
            Subscription.secret,
        )
        .join(Event, Event.id == Delivery.event_id)
        .outerjoin(Subscription, Subscription.id == Delivery.subscription_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.next_attempt_at)
    ).all()
    return [
        Claimed(
            delivery_id=row.id,
            lease=lease,
            url=row.url,
            attempt=row.attempts + 1,
            max_attempts=row.max_attempts,
            job_id=row.job_id,
            event_type=row.type,
            body=row.payload.encode(),
            secret=row.secret if row.subscription_id is not None else callback_secret,
        )
        for row in rows
    ]


_table: Table = Delivery.__table__  # type: ignore[assignment]
_RECORD = (
    update(_table)
    .where(_table.c.id == bindparam("b_id"), _table.c.lease_owner == bindparam("b_lease"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        lease_owner=None,
        lease_until=None,
        last_status_code=bindparam("b_code"),
        last_error=bindparam("b_error"),
        delivered_at=bindparam("b_delivered"),
        updated_at=bindparam("b_now"),
    )
)


def record(session: Session, results: Sequence[Result], *, now: dt.datetime) -> None:
    """Store each attempt and move each delivery on (delivered, retry later, or dead).

    A delivery whose lease this notifier no longer holds (it expired and another
    notifier took the row) keeps the other's state; the attempt is still recorded.
    """
    if not results:
        return
    session.connection().execute(
        _RECORD,
        [
            {
                "b_id": r.claimed.delivery_id,
                "b_lease": r.claimed.lease,
                "b_status": r.decision.status,
                "b_attempts": r.claimed.attempt,
                "b_next": r.decision.next_attempt_at or now,
                "b_code": r.outcome.status_code,
                "b_error": r.outcome.error,
                "b_delivered": r.outcome.started_at
                if r.decision.status == DeliveryStatus.DELIVERED
                else None,
                "b_now": now,
            }
            for r in results
        ],
    )
    # A subscription deleted meanwhile took its deliveries with it: skip those.
    ids = [r.claimed.delivery_id for r in results]
    existing = set(session.scalars(select(Delivery.id).where(Delivery.id.in_(ids))))
    attempts = [
        {
            "delivery_id": r.claimed.delivery_id,
            "attempt": r.claimed.attempt,
            "started_at": r.outcome.started_at,
            "status_code": r.outcome.status_code,
            "latency_ms": round(r.outcome.latency_ms, 3),
            "error": r.outcome.error,
        }
        for r in results
        if r.claimed.delivery_id in existing
    ]
    if attempts:
        session.execute(insert(DeliveryAttempt), attempts)


def release(session: Session, claimed: Sequence[Claimed]) -> None:
    """Give back leases of deliveries this notifier took but never sent (it is stopping)."""
    if not claimed:
        return
    session.connection().execute(
        update(_table)
        .where(_table.c.id == bindparam("b_id"), _table.c.lease_owner == bindparam("b_lease"))
        .values(lease_owner=None, lease_until=None),
        [{"b_id": c.delivery_id, "b_lease": c.lease} for c in claimed],
    )
