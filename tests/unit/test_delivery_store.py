"""The outbox, the notifier's SQL and its loop, on a real SQLite file (no network).

What is checked is what makes "never lost" true: the event commits with the
job's final status or not at all, once; an event is expanded once; a lease
keeps other notifiers off a delivery until it expires (a killed notifier's
deliveries come back); a recorded attempt moves the delivery on; and a
stopping notifier gives back what it leased but never sent. The SQL tests use
a fake clock; the loop tests a fake sender in place of HTTP.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core import db
from core.config import Settings, get_settings
from core.db import make_engine, upgrade_schema
from core.errors import ModelError
from core.outbox import record_job_event, record_transform_event
from core.protocol import Invocation, ModelRef
from core.tables import Delivery, DeliveryAttempt, Endpoint, Event, Job, Subscription, Topic
from scheduler.webhooks import delivery_store
from scheduler.webhooks.delivery_store import Result
from scheduler.webhooks.notifier import Notifier
from scheduler.webhooks.retry_policy import Decision
from scheduler.webhooks.webhook_sender import Outcome
from workers.invocation import InFlight
from workers.modes.asynchronous import finish_job

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    upgrade_schema(url)
    # core.db's process-wide engine points here too, for Executor.finish.
    monkeypatch.setenv("SLUICEWAY_DATABASE_URL", url)
    for cached in (get_settings, db.get_engine, db._session_factory):
        cached.cache_clear()
    yield url
    for cached in (get_settings, db.get_engine, db._session_factory):
        cached.cache_clear()


@pytest.fixture
def session(database: str) -> Iterator[Session]:
    engine = make_engine(database)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()


def seed(session: Session, *, subscribers: int = 2, callback: str | None = None) -> str:
    """A topic with `subscribers` subscriptions, an endpoint publishing to it, a running job."""
    topic = Topic(name="ok")
    session.add(topic)
    session.flush()
    for n in range(subscribers):
        session.add(
            Subscription(topic_id=topic.id, url=f"http://hooks.example.com/{n}", secret=f"s{n}" * 8)
        )
    session.add(Endpoint(name="churn", output_prefix="s3://out/churn/", success_topic="ok"))
    session.add(
        Job(
            id="job-1",
            endpoint="churn",
            variant="a",
            status="running",
            input_location="s3://in/x",
            content_type="application/json",
            output_location="s3://out/churn/job-1.out",
            callback_url=callback,
        )
    )
    session.commit()
    return "job-1"


def finish(session: Session, job_id: str, status: str = "succeeded") -> None:
    session.execute(update(Job).where(Job.id == job_id).values(status=status, finished_at=T0))
    record_job_event(session, job_id)


def count(session: Session, table: type) -> int:
    return int(session.scalar(select(func.count()).select_from(table)) or 0)


def test_the_event_commits_with_the_job_or_not_at_all(session: Session) -> None:
    job_id = seed(session)
    finish(session, job_id)
    session.rollback()  # the worker died before COMMIT
    assert count(session, Event) == 0
    assert session.get(Job, job_id).status == "running"  # type: ignore[union-attr]
    finish(session, job_id)
    session.commit()
    event = session.scalars(select(Event)).one()
    assert event.type == "InferenceSucceeded" and event.topic == "ok"
    assert event.payload.startswith('{"type":"InferenceSucceeded","job_id":"job-1",')
    assert '"finished_at":"2026-01-01T12:00:00.000Z"' in event.payload


def test_executor_finish_publishes_once_even_when_the_message_comes_twice(session: Session) -> None:
    """A redelivered message finishes the job again: nothing changes, nothing is published."""
    job_id = seed(session)
    invocation = Invocation(
        job_id=job_id,
        mode="async",
        endpoint="e",
        variant="a",
        model=ModelRef(name="m", version=1, framework="torch", artifact_uri="s3://b/k"),
        content_type="application/json",
    )
    failed = InFlight(inv=invocation, error=ModelError("boom"))
    succeeded = InFlight(inv=invocation, output=(b"{}", "application/json"))
    for request in (failed, failed, succeeded):
        finish_job(session, request)
        session.commit()
    session.expire_all()
    (event,) = session.scalars(select(Event)).all()
    assert event.type == "InferenceFailed"
    assert '"output_location":null,"error":"Model error: boom"' in event.payload


def test_an_unfinished_job_has_no_event_to_publish(session: Session) -> None:
    job_id = seed(session)
    with pytest.raises(ValueError, match="is 'running', not finished"):
        record_job_event(session, job_id)


def test_an_event_is_expanded_once_into_a_delivery_per_subscription_and_callback(
    session: Session,
) -> None:
    job_id = seed(session, subscribers=2, callback="http://cb.example.com/hook")
    finish(session, job_id)
    session.commit()
    assert delivery_store.fan_out(session, limit=10, default_max_attempts=5, now=T0) == 1
    session.commit()
    assert delivery_store.fan_out(session, limit=10, default_max_attempts=5, now=at(1)) == 0
    urls = sorted(session.scalars(select(Delivery.url)))
    assert urls == [
        "http://cb.example.com/hook",
        "http://hooks.example.com/0",
        "http://hooks.example.com/1",
    ]


def test_a_lease_keeps_others_off_until_it_expires(session: Session) -> None:
    """A notifier killed while holding deliveries: they come back once its lease is over."""
    finish(session, seed(session, subscribers=3))
    delivery_store.fan_out(session, limit=10, default_max_attempts=5, now=T0)
    session.commit()
    claim = {"limit": 10, "lease_s": 30, "callback_secret": None}
    first = delivery_store.claim(session, lease="a", now=at(1), **claim)
    session.commit()
    assert len(first) == 3 and {c.attempt for c in first} == {1}
    assert {c.secret for c in first} == {"s0" * 8, "s1" * 8, "s2" * 8}
    assert delivery_store.claim(session, lease="b", now=at(20), **claim) == []
    again = delivery_store.claim(session, lease="b", now=at(32), **claim)
    session.commit()
    assert {c.delivery_id for c in again} == {c.delivery_id for c in first}


def test_recorded_attempts_move_a_delivery_on_and_stay_in_its_history(session: Session) -> None:
    finish(session, seed(session, subscribers=1))
    delivery_store.fan_out(session, limit=10, default_max_attempts=5, now=T0)
    claim = {"limit": 10, "lease_s": 30, "callback_secret": None}
    (claimed,) = delivery_store.claim(session, lease="a", now=T0, **claim)
    failed = Outcome(started_at=T0, latency_ms=3.2, status_code=503, error="HTTP 503")
    retry = Decision("pending", at(5))
    delivery_store.record(session, [Result(claimed, failed, retry)], now=at(1))
    session.commit()
    assert delivery_store.claim(session, lease="b", now=at(4), **claim) == []  # not due yet
    (second,) = delivery_store.claim(session, lease="b", now=at(5), **claim)
    assert second.delivery_id == claimed.delivery_id and second.attempt == 2
    ok = Outcome(started_at=at(5), latency_ms=1.5, status_code=204)
    delivery_store.record(session, [Result(second, ok, Decision("delivered", None))], now=at(6))
    session.commit()
    delivery = session.get(Delivery, claimed.delivery_id)
    assert delivery is not None
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 204)
    history = session.execute(
        select(DeliveryAttempt.attempt, DeliveryAttempt.status_code).order_by(DeliveryAttempt.id)
    ).all()
    assert [tuple(row) for row in history] == [(1, 503), (2, 204)]


def test_a_notifier_whose_lease_expired_does_not_overwrite_the_new_holder(
    session: Session,
) -> None:
    finish(session, seed(session, subscribers=1))
    delivery_store.fan_out(session, limit=10, default_max_attempts=5, now=T0)
    claim = {"limit": 10, "lease_s": 10, "callback_secret": None}
    (stale,) = delivery_store.claim(session, lease="old", now=T0, **claim)
    (fresh,) = delivery_store.claim(session, lease="new", now=at(11), **claim)
    late = Outcome(started_at=T0, latency_ms=11_000, error="timed out")
    delivery_store.record(session, [Result(stale, late, Decision("dead", None))], now=at(12))
    session.commit()
    delivery = session.get(Delivery, fresh.delivery_id)
    assert delivery is not None and delivery.status == "pending" and delivery.lease_owner == "new"
    assert count(session, DeliveryAttempt) == 1  # the late attempt is still on record


def test_a_transform_event_goes_to_the_endpoints_topic(session: Session) -> None:
    seed(session, subscribers=1)
    record_transform_event(
        session,
        job_id="tj-1",
        endpoint="churn",
        succeeded=True,
        output_prefix="s3://out/t/",
        finished_at=T0,
        details={"total_records": 10},
    )
    session.commit()
    event = session.scalars(select(Event)).one()
    assert (event.type, event.topic) == ("TransformSucceeded", "ok")
    assert '"total_records":10' in event.payload


def test_released_leases_are_due_again_at_once(session: Session) -> None:
    finish(session, seed(session, subscribers=2))
    delivery_store.fan_out(session, limit=10, default_max_attempts=5, now=T0)
    claim = {"limit": 10, "lease_s": 30, "callback_secret": None}
    taken = delivery_store.claim(session, lease="a", now=T0, **claim)
    delivery_store.release(session, taken[:1])
    session.commit()
    (again,) = delivery_store.claim(session, lease="b", now=at(1), **claim)
    assert again.delivery_id == taken[0].delivery_id


# --- the notifier's loop, with a fake sender (no network) --------------------------


class FakeSender:
    """Answers from a script per attempt number; `gate` holds every attempt until set."""

    def __init__(self, codes: dict[int, int], gate: threading.Event | None = None) -> None:
        self.codes = codes
        self.gate = gate
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()

    def send(self, *, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        if self.gate is not None:
            self.gate.wait(10)
        with self.lock:
            self.calls.append((url, headers))
        code = self.codes.get(int(headers["X-Sluiceway-Attempt"]), 200)
        return Outcome(started_at=dt.datetime.now(dt.UTC), latency_ms=1.0, status_code=code)

    def close(self) -> None:
        pass


def notifier_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "webhook_backoff_base_s": 0.05,
        "webhook_backoff_cap_s": 0.05,
        "webhook_poll_s": 0.01,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def test_the_notifier_retries_until_2xx_with_one_delivery_id(session: Session) -> None:
    finish(session, seed(session, subscribers=1))
    session.commit()
    sender = FakeSender({1: 500, 2: 502})
    notifier = Notifier(notifier_settings(), sender=sender)  # type: ignore[arg-type]

    def delivered() -> bool:
        notifier.step()
        session.expire_all()
        return session.scalar(select(Delivery.status)) == "delivered"

    deadline = time.monotonic() + 10
    while not delivered():
        assert time.monotonic() < deadline, "not delivered within 10 s"
        time.sleep(0.01)
    assert [h["X-Sluiceway-Attempt"] for _, h in sender.calls] == ["1", "2", "3"]
    assert len({h["X-Sluiceway-Delivery"] for _, h in sender.calls}) == 1
    assert count(session, DeliveryAttempt) == 3
    notifier.pool.shutdown()


def test_a_stopping_notifier_hands_back_what_it_never_sent(session: Session) -> None:
    """One sending thread, two leased: the queued one is released for the next notifier."""
    finish(session, seed(session, subscribers=2))
    session.commit()
    gate = threading.Event()
    sender = FakeSender({}, gate=gate)
    notifier = Notifier(notifier_settings(webhook_concurrency=1), sender=sender)  # type: ignore[arg-type]
    notifier.step()
    assert notifier.in_flight == 2  # one sending (held at the gate), one queued behind it
    threading.Timer(0.2, gate.set).start()
    notifier._finish_in_flight()
    session.expire_all()
    rows = session.execute(select(Delivery.status, Delivery.lease_owner)).all()
    assert sorted(tuple(row) for row in rows) == [("delivered", None), ("pending", None)]
    assert len(sender.calls) == 1
