"""The message that carries one transform chunk to a worker.

Where chunks go is read by the store (scheduler/transform/store.py:
`load_targets`): an endpoint job sends each chunk to one of the endpoint's
variants, drawn by weight (re-read each dispatch, so a weight change applies to
the chunks not yet sent); a model job sends them to its model version's
transform-pool queue, which every generic worker serves. The message is an
ordinary `Invocation` in mode `transform` (priority 6): the chunk's object,
byte range, first line number and token travel in `extra`, and
`output_location` is where the worker writes the chunk's part.
"""

from __future__ import annotations

import time

from core.protocol import Invocation
from core.storage import S3Location
from core.tables import TransformChunk, TransformJob
from scheduler.transform.output import parts_prefix
from scheduler.transform.store import Target


def chunk_invocation(
    job: TransformJob, chunk: TransformChunk, key: str, target: Target, parts_bucket: str
) -> Invocation:
    """The `transform` invocation of `chunk` (of object `key`) for `target`; its part is
    written under `parts_bucket`."""
    bucket = S3Location.parse(job.input_prefix).bucket
    return Invocation(
        job_id=job.id,
        mode="transform",
        endpoint=target.endpoint,
        variant=target.variant,
        model=target.model,
        content_type=job.content_type,
        input_location=str(S3Location(bucket, key)),
        output_location=str(S3Location(parts_bucket, f"{parts_prefix(job.id)}{chunk.id}")),
        enqueued_ms=int(time.time() * 1000),
        extra={
            "chunk_id": chunk.id,
            "token": chunk.token,
            "start": chunk.start_byte,
            "end": chunk.end_byte,
            "first_line": chunk.first_line,
            "lines": chunk.lines,
            "join_source": job.join_source,
            "batch_strategy": job.batch_strategy,
        },
    )
