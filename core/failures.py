"""Error documents of failed async jobs (SageMaker's failure location).

An endpoint with `async.failure_prefix` gets, for every async job that fails, a
JSON document at `<failure_prefix><job_id>.error.json`:

    {"job_id": "f09b1f63-...", "error": "timeout: the invocation ran longer than
     its limit of 2 s", "finished_at": "2026-12-02T09:00:00.123Z"}

The job row keeps that location (`failure_location`) from the moment it is
accepted, as it keeps `output_location`. Whoever fails a job — a worker (model
error, timeout, expired when taken, dead-lettered) or the scheduler's
reconciler (lost, expired while queued) — writes the document *before* the row
moves to `failed`, with the `finished_at` it then records: anyone who sees the
job failed can read its document. When the object store is down the job is not
failed yet; it is retried (a worker's message is redelivered, the reconciler
tries again on its next pass).
"""

from __future__ import annotations

import datetime as dt
import logging

import orjson

from core.errors import SluicewayError, StorageError
from core.outbox import rfc3339
from core.storage import ObjectStore, S3Location

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/json"


def failure_location(prefix: str | None, job_id: str) -> str | None:
    """`s3://bucket/errors/` and `f09b...` → `s3://bucket/errors/f09b....error.json`; None
    without a prefix."""
    if not prefix:
        return None
    return str(S3Location.parse(prefix).child(f"{job_id}.error.json"))


def failure_document(*, job_id: str, error: str, finished_at: dt.datetime) -> bytes:
    """The document's bytes: `{"job_id","error","finished_at"}` (RFC 3339, UTC)."""
    return orjson.dumps({"job_id": job_id, "error": error, "finished_at": rfc3339(finished_at)})


def write_failure_document(
    store: ObjectStore,
    location: str | None,
    *,
    job_id: str,
    error: str,
    finished_at: dt.datetime,
) -> bool:
    """Write one job's error document; False when the store is unavailable (retry later).

    No location (the endpoint has no failure prefix) is nothing to write: True.
    A location the store refuses outright (not a passing outage) is logged and
    given up: the job still fails, its `error` is in the job row regardless.
    """
    if location is None:
        return True
    body = failure_document(job_id=job_id, error=error, finished_at=finished_at)
    try:
        store.put_bytes(S3Location.parse(location), body, CONTENT_TYPE)
    except StorageError as exc:
        logger.warning("job %s: cannot write its error document: %s", job_id, exc.detail)
        return False
    except SluicewayError as exc:
        logger.error(
            "job %s: the store refuses its error document at %s: %s", job_id, location, exc.detail
        )
    return True
