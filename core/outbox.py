"""The transactional outbox: a finished job's event, written in the transaction that finishes it.

A worker calls `record_job_event(session, job_id)` inside the very transaction
whose UPDATE moved the job to `succeeded` or `failed`, and only when that UPDATE
changed the row. Both commit together or not at all, so a crash between "job
done" and "event sent" cannot lose the event, and a message delivered twice
cannot publish twice (the second UPDATE changes nothing). A failed job that a
person retries (POST /v1/jobs/{id}/retry) finishes, and publishes, once more.
Nothing here talks to the network: the notifier in scheduler/ reads the outbox
and sends the webhooks later.

The stored payload is the exact body every delivery sends and signs:
`{"type","job_id","endpoint","variant","output_location","error","finished_at",
"inference_id","failure_location"}` (docs/api.md, Notifications; `failure_location`
is a failed job's error document, null on success or without a failure prefix).
Which topic it goes to (the endpoint's success or error topic) and the job's
X-Callback-Url are resolved here, when the job finishes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from core.states import JobStatus
from core.tables import Endpoint, Event, Job, new_id, public_variant_name, utcnow

JOB_EVENT_TYPES = {JobStatus.SUCCEEDED: "InferenceSucceeded", JobStatus.FAILED: "InferenceFailed"}
TRANSFORM_EVENT_TYPES = {True: "TransformSucceeded", False: "TransformFailed"}


def rfc3339(moment: dt.datetime | None) -> str | None:
    """UTC, millisecond precision, `Z` suffix (stored times are UTC-aware: tables.UTCDateTime)."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_payload(payload: dict[str, Any]) -> str:
    return orjson.dumps(payload).decode()


def record_job_events(session: Session, job_ids: Sequence[str]) -> list[str]:
    """Write one outbox event per finished async job; returns the new event ids.

    Call it in the session whose UPDATE finished these jobs, before it commits,
    with only the ids that UPDATE actually changed. One SELECT and one INSERT,
    however many jobs (a batch finishes many at once).
    """
    if not job_ids:
        return []
    rows = session.execute(
        select(
            Job.id,
            Job.endpoint,
            Job.variant,
            Job.status,
            Job.output_location,
            Job.error,
            Job.finished_at,
            Job.callback_url,
            Job.inference_id,
            Job.failure_location,
            Endpoint.success_topic,
            Endpoint.error_topic,
        )
        .outerjoin(Endpoint, Endpoint.name == Job.endpoint)
        .where(Job.id.in_(list(job_ids)))
    ).all()
    found = {row.id for row in rows}
    missing = [job_id for job_id in job_ids if job_id not in found]
    if missing:
        raise ValueError(f"no job row for {missing} (outbox write must follow the job's UPDATE)")
    now = utcnow()
    events: list[dict[str, Any]] = []
    for row in rows:
        if row.status not in JOB_EVENT_TYPES:
            raise ValueError(f"job {row.id} is {row.status!r}, not finished; no event to publish")
        succeeded = row.status == JobStatus.SUCCEEDED
        payload = {
            "type": JOB_EVENT_TYPES[row.status],
            "job_id": row.id,
            "endpoint": row.endpoint,
            "variant": public_variant_name(row.variant),
            "output_location": row.output_location if succeeded else None,
            "error": row.error,
            "finished_at": rfc3339(row.finished_at or now),
            "inference_id": row.inference_id,
            "failure_location": None if succeeded else row.failure_location,
        }
        events.append(
            {
                "id": new_id(),
                "type": payload["type"],
                "job_id": row.id,
                "topic": row.success_topic if succeeded else row.error_topic,
                "callback_url": row.callback_url,
                "payload": encode_payload(payload),
                "created_at": now,
            }
        )
    session.execute(insert(Event), events)
    return [event["id"] for event in events]


def record_job_event(session: Session, job_id: str) -> str:
    """`record_job_events` for one job: the worker's call in `Executor.finish`."""
    return record_job_events(session, [job_id])[0]


def record_transform_event(
    session: Session,
    *,
    job_id: str,
    endpoint: str | None,
    succeeded: bool,
    output_prefix: str,
    error: str | None = None,
    finished_at: dt.datetime | None = None,
    callback_url: str | None = None,
    details: dict[str, Any] | None = None,
) -> str:
    """Write the outbox event of a finished batch-transform job; returns its id.

    Call it in the transaction that records the transform job's final status.
    The event goes to the endpoint's success or error topic (none when the job
    ran a bare model) and to `callback_url`; `details` (record counts, say)
    are added to the body.
    """
    topic = None
    if endpoint is not None:
        topics = session.execute(
            select(Endpoint.success_topic, Endpoint.error_topic).where(Endpoint.name == endpoint)
        ).first()
        if topics is not None:
            topic = topics.success_topic if succeeded else topics.error_topic
    now = utcnow()
    payload: dict[str, Any] = {
        "type": TRANSFORM_EVENT_TYPES[succeeded],
        "job_id": job_id,
        "endpoint": endpoint,
        "variant": None,
        "output_location": output_prefix,
        "error": error,
        "finished_at": rfc3339(finished_at or now),
        **(details or {}),
    }
    event_id = new_id()
    session.execute(
        insert(Event).values(
            id=event_id,
            type=payload["type"],
            job_id=job_id,
            topic=topic,
            callback_url=callback_url,
            payload=encode_payload(payload),
            created_at=now,
        )
    )
    return event_id


def record_monitoring_event(
    session: Session, *, execution_id: str, topic: str, payload: dict[str, Any]
) -> str:
    """Write the outbox event of a monitoring run that found violations; returns its id.

    Call it in the transaction that records the run's outcome. `payload` is the
    body every delivery sends: `{"type": "MonitoringViolations", ...}`.
    """
    event_id = new_id()
    session.execute(
        insert(Event).values(
            id=event_id,
            type=payload["type"],
            job_id=execution_id,
            topic=topic,
            callback_url=None,
            payload=encode_payload(payload),
            created_at=utcnow(),
        )
    )
    return event_id
