"""Async options on a real SQLite file with an in-memory object store (no network).

Starting jobs (expired ones are reported, not started), failing expired jobs
that no worker took (the reconciler's pass), error documents written before a
job is failed, a job that outran its deadline failing "timeout", the
realtime caller's deadline, and the X-Request-Ttl-S / X-Invocation-Timeout-S
header rules.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services.invocations import header_seconds
from core import db
from core.config import get_settings
from core.db import make_engine, upgrade_schema
from core.errors import BadRequest, InvalidInput, StorageError
from core.failures import failure_document, failure_location
from core.protocol import Invocation, ModelRef
from core.storage import S3Location
from core.tables import Endpoint, Event, Job, utcnow
from scheduler.reconcile.expiry import EXPIRY_SLACK_S, expire_unstarted_jobs
from workers.invocation import InFlight
from workers.modes import WorkerIO
from workers.modes.asynchronous import Asynchronous, start_jobs
from workers.modes.realtime import Realtime


class FakeStore:
    """put_bytes into a dict; `down` makes it fail like an unreachable store."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.down = False

    def put_bytes(self, location: S3Location, data: bytes, content_type: str) -> None:
        if self.down:
            raise StorageError(f"object store unreachable (write {location})")
        self.objects[str(location)] = data


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    upgrade_schema(url)
    monkeypatch.setenv("SLUICEWAY_DATABASE_URL", url)  # core.db's session_scope
    for cached in (get_settings, db.get_engine, db._session_factory):
        cached.cache_clear()
    yield url
    for cached in (get_settings, db.get_engine, db._session_factory):
        cached.cache_clear()


@pytest.fixture
def session(database: str) -> Iterator[Session]:
    engine = make_engine(database)
    with Session(engine, expire_on_commit=False) as session:
        # Created before any job of the tests (a worker starts only jobs its endpoint took).
        session.add(
            Endpoint(
                name="churn",
                output_prefix="s3://out/churn/",
                created_at=utcnow() - dt.timedelta(days=1),
            )
        )
        session.commit()
        yield session
    engine.dispose()


def add_job(session: Session, job_id: str, *, ttl_s: float | None = None, **fields: Any) -> str:
    created = fields.pop("created_at", utcnow())
    session.add(
        Job(
            id=job_id,
            endpoint="churn",
            variant="a",
            status=fields.pop("status", "queued"),
            input_location="s3://in/x",
            content_type="application/json",
            output_location=f"s3://out/churn/{job_id}.out",
            failure_location=f"s3://errors/churn/{job_id}.error.json",
            created_at=created,
            expires_at=created + dt.timedelta(seconds=ttl_s) if ttl_s is not None else None,
            **fields,
        )
    )
    session.commit()
    return job_id


def job(session: Session, job_id: str) -> Job:
    session.expire_all()
    found = session.get(Job, job_id)
    assert found is not None
    return found


def test_start_jobs_starts_what_may_run_and_reports_what_expired(session: Session) -> None:
    long_ago = utcnow() - dt.timedelta(minutes=5)
    add_job(session, "fresh", invocation_timeout_s=60)
    add_job(session, "within-ttl", ttl_s=3600)
    add_job(session, "expired", ttl_s=30, created_at=long_ago)
    # Started once within its TTL, then its worker died: expiry is about starting.
    add_job(session, "redelivered", ttl_s=30, created_at=long_ago, attempts=1, status="running")
    add_job(session, "done", status="succeeded")
    ids = ["fresh", "within-ttl", "expired", "redelivered", "done"]
    started, expired = start_jobs(session, ids)
    session.commit()
    assert set(started) == {"fresh", "within-ttl", "redelivered"}
    assert started["fresh"] == (1, 60, "s3://errors/churn/fresh.error.json")
    assert started["redelivered"][0] == 2
    assert expired == {"expired": (30.0, "s3://errors/churn/expired.error.json")}
    assert job(session, "expired").status == "queued"  # left for the caller to fail


def test_a_job_expired_when_taken_fails_without_running_and_with_its_document(
    session: Session,
) -> None:
    add_job(session, "late", ttl_s=30, created_at=utcnow() - dt.timedelta(minutes=1))
    store = FakeStore()
    mode = Asynchronous(_io(store))
    item = InFlight(inv=_invocation("late"))
    mode.prepare([item])
    assert not item.live and item.deadline_s is None
    mode.complete([item], model_ms=0)
    row = job(session, "late")
    assert row.status == "failed" and row.attempts == 0 and row.started_at is None
    assert row.error == "expired: not started within 30 s (X-Request-Ttl-S)"
    document = orjson.loads(store.objects["s3://errors/churn/late.error.json"])
    assert document["error"] == row.error and document["job_id"] == "late"
    assert session.scalars(select(Event.type)).all() == ["InferenceFailed"]


def test_a_job_that_outran_its_deadline_fails_timeout_even_with_an_answer(
    session: Session,
) -> None:
    """A built-in runner's forward pass cannot be interrupted: the job fails when it ends."""
    add_job(session, "slow", invocation_timeout_s=2)
    store = FakeStore()
    mode = Asynchronous(_io(store))
    item = InFlight(inv=_invocation("slow"))
    mode.prepare([item])
    assert item.timeout_s == 2 and item.deadline_s is not None
    item.deadline_s = time.time() - 0.1  # the model took longer than that
    item.output = (b'{"predictions":[1]}', "application/json")
    mode.complete([item], model_ms=2500)
    row = job(session, "slow")
    assert row.status == "failed"
    assert row.error == "timeout: the invocation ran longer than its limit of 2 s"
    assert list(store.objects) == ["s3://errors/churn/slow.error.json"]  # no output object


def test_a_failed_job_waits_for_its_document_while_the_store_is_down(session: Session) -> None:
    add_job(session, "bad")
    store = FakeStore()
    mode = Asynchronous(_io(store))
    item = InFlight(inv=_invocation("bad"))
    mode.prepare([item])
    item.error = InvalidInput("the model expects 4 features per instance, got 3")
    store.down = True
    mode.complete([item], model_ms=1)
    assert item.transient  # not acknowledged: delivered again later
    assert job(session, "bad").status == "running"


def test_the_reconciler_fails_jobs_no_worker_started_in_time(session: Session) -> None:
    now = utcnow()
    past = now - dt.timedelta(seconds=30 + EXPIRY_SLACK_S + 1)
    add_job(session, "forgotten", ttl_s=30, created_at=past)
    add_job(session, "just-expired", ttl_s=30, created_at=now - dt.timedelta(seconds=31))
    add_job(session, "no-ttl", created_at=past)
    add_job(session, "taken", ttl_s=30, created_at=past, status="running", attempts=1)
    store = FakeStore()
    store.down = True
    assert expire_unstarted_jobs(store, now=now) == 0  # document first, or nothing
    assert job(session, "forgotten").status == "queued"
    store.down = False
    assert expire_unstarted_jobs(store, now=now) == 1
    assert expire_unstarted_jobs(store, now=now) == 0  # once
    row = job(session, "forgotten")
    assert row.status == "failed" and row.finished_at is not None
    assert row.error == "expired: not started within 30 s (X-Request-Ttl-S)"
    assert list(store.objects) == ["s3://errors/churn/forgotten.error.json"]
    # Within the slack a worker may still be starting it; without a TTL it waits.
    assert [job(session, j).status for j in ("just-expired", "no-ttl", "taken")] == [
        "queued",
        "queued",
        "running",
    ]
    assert session.scalars(select(Event.job_id)).all() == ["forgotten"]


def test_a_realtime_call_takes_its_callers_deadline_or_is_dropped() -> None:
    mode = Realtime(_io(FakeStore()))
    now_ms = int(time.time() * 1000)
    waiting = InFlight(
        inv=_invocation("w", mode="realtime", enqueued_ms=now_ms, deadline_ms=now_ms + 5000)
    )
    gone = InFlight(
        inv=_invocation("g", mode="realtime", enqueued_ms=now_ms - 9000, deadline_ms=now_ms - 1)
    )
    mode.prepare([waiting, gone])
    assert waiting.deadline_s == (now_ms + 5000) / 1000 and waiting.timeout_s == 5.0
    assert gone.skip and gone.deadline_s is None


def test_failure_documents_and_their_location() -> None:
    assert failure_location("s3://errors/churn", "j1") == "s3://errors/churn/j1.error.json"
    assert failure_location(None, "j1") is None
    finished = dt.datetime(2026, 12, 2, 9, 0, 0, 123000, tzinfo=dt.UTC)
    assert orjson.loads(
        failure_document(job_id="j1", error="timeout: x", finished_at=finished)
    ) == {
        "job_id": "j1",
        "error": "timeout: x",
        "finished_at": "2026-12-02T09:00:00.123Z",
    }


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("soon", BadRequest, "X-Request-Ttl-S 'soon' is not a whole number of seconds"),
        ("1.5", BadRequest, "'1.5' is not a whole number"),
        ("0", InvalidInput, "X-Request-Ttl-S must be 1 to 3600 seconds, got 0"),
        ("3601", InvalidInput, "must be 1 to 3600 seconds, got 3601"),
    ],
)
def test_bad_seconds_headers_name_the_header_and_value(
    value: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        header_seconds("X-Request-Ttl-S", value, maximum=3600)


def test_seconds_headers_within_bounds() -> None:
    assert header_seconds("X-Invocation-Timeout-S", " 3600 ", maximum=3600) == 3600
    assert header_seconds("X-Invocation-Timeout-S", None, maximum=3600) is None


def _io(store: FakeStore) -> WorkerIO:
    return WorkerIO(
        store=store,  # type: ignore[arg-type]
        redis=None,  # type: ignore[arg-type]
        namespace="t",
        pool=ThreadPoolExecutor(max_workers=2),
    )


def _invocation(job_id: str, *, mode: str = "async", **fields: Any) -> Invocation:
    return Invocation(
        job_id=job_id,
        mode=mode,  # type: ignore[arg-type]
        endpoint="churn",
        variant="a",
        model=ModelRef(name="m", version=1, framework="torch", artifact_uri="s3://b/k"),
        content_type="application/json",
        input_location="s3://in/x" if mode == "async" else None,
        output_location=f"s3://out/churn/{job_id}.out" if mode == "async" else None,
        **fields,
    )


def test_a_worker_never_starts_a_job_of_an_endpoint_deleted_and_created_again(
    session: Session,
) -> None:
    """Issue 12.3: an endpoint re-created under the same name ran the old endpoint's
    queued jobs with the deleted endpoint's model."""
    add_job(session, "old", created_at=utcnow() - dt.timedelta(days=2))
    started, expired = start_jobs(session, ["old"])
    session.commit()
    assert started == {} and expired == {}
    assert job(session, "old").status == "queued"  # the reconciler fails it


def test_a_job_names_its_endpoint_exactly_whatever_the_api_hosts_clocks(
    session: Session,
) -> None:
    """A job carries the created_at of the endpoint that accepted it: a worker starts it on
    that endpoint even if the accepting API host's clock ran behind, and never on another
    endpoint of the same name."""
    current = session.query(Endpoint).one().created_at
    # Accepted by this endpoint on a host whose clock is an hour behind.
    add_job(
        session, "skewed", created_at=current - dt.timedelta(hours=1), endpoint_created_at=current
    )
    # Accepted by an endpoint of the same name deleted since.
    add_job(session, "orphan", endpoint_created_at=current - dt.timedelta(days=3))
    started, _ = start_jobs(session, ["skewed", "orphan"])
    session.commit()
    assert set(started) == {"skewed"}
    assert job(session, "orphan").status == "queued"
