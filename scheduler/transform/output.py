"""Writing a transform job's outputs: each object's parts streamed into one upload.

The workers leave one part per chunk (and an error part when a record of it
failed) in the platform bucket. Once an object's chunks are all done, its
output is the concatenation of those parts in chunk order: `OutputWriter`
streams them, part after part, into ONE multipart upload at
`<output_prefix><relative key>.out` (and `.err`), so memory stays at a few
upload parts (16 MiB each) whatever the object's size. Chunks too big to
process (oversized) have no part: their failure lines are made here,
streamed from the input when there are many.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from core.records import error_line, failure_line
from core.storage import ObjectStore, S3Location, StreamReader
from core.tables import TransformChunk, TransformJob
from scheduler.transform.plan import iter_line_kinds

logger = logging.getLogger(__name__)

LINES_PER_BLOCK = 10_000  # failure lines of an oversized chunk are written this many at a time
CONTENT_TYPES = {"text/csv": "text/csv", "application/jsonlines": "application/jsonlines"}


def output_location(job: TransformJob, key: str, suffix: str) -> S3Location:
    """`s3://data/in/` + `in/a/x.csv` → `<output_prefix>a/x.csv<suffix>`.

    Keys are taken relative to the input prefix's folder, so a prefix that ends
    mid-name (`s3://data/in/part-`) keeps whole file names.
    """
    source = S3Location.parse(job.input_prefix).key
    relative = key[source.rfind("/") + 1 :]
    return S3Location.parse(job.output_prefix).extended(relative + suffix)


def parts_prefix(job_id: str) -> str:
    """Where workers leave a job's part objects, in the platform bucket."""
    return f"transform-parts/{job_id}/"


class OutputWriter:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def write(self, job: TransformJob, key: str, chunks: Sequence[TransformChunk]) -> S3Location:
        """Write `.out` (and `.err`, or remove a stale one) for one input object."""
        out = output_location(job, key, ".out")
        err = output_location(job, key, ".err")
        blocks = self._blocks(job, key, chunks, errors=False)
        self.store.put_stream(out, StreamReader(blocks), CONTENT_TYPES.get(job.content_type, ""))
        if any(c.failed for c in chunks):
            errors = self._blocks(job, key, chunks, errors=True)
            self.store.put_stream(err, StreamReader(errors), "text/plain")
        else:
            self.store.delete(err.bucket, [err.key])  # left by an earlier job, if any
        return out

    def _blocks(
        self, job: TransformJob, key: str, chunks: Sequence[TransformChunk], *, errors: bool
    ) -> Iterator[bytes]:
        for chunk in chunks:
            if chunk.oversized:
                yield from self._oversized_lines(job, key, chunk, errors=errors)
                continue
            uri = chunk.error_part_uri if errors else chunk.part_uri
            if uri is not None:
                yield from self.store.iter_chunks(S3Location.parse(uri))

    def _oversized_lines(
        self, job: TransformJob, key: str, chunk: TransformChunk, *, errors: bool
    ) -> Iterator[bytes]:
        """Failure lines for a chunk too big to process (core/records.py says their shape)."""
        size = chunk.end_byte - chunk.start_byte
        limit = f"max_payload_mb {job.max_payload_mb:g}"
        if job.split_type == "none":
            reason = (
                f"the object is {size} bytes, over {limit}; split_type none sends each "
                "object whole (use split_type line)"
            )
            source = S3Location(S3Location.parse(job.input_prefix).bucket, key)
            kinds: Iterator[bool] = iter_line_kinds(
                self.store.iter_range(source, chunk.start_byte, size)
            )
        else:
            reason = f"the record is {size} bytes, over {limit}"
            kinds = iter([chunk.records > 0])
        lines: list[bytes] = []
        for offset, is_record in enumerate(kinds):
            if errors:
                if is_record:
                    lines.append(error_line(chunk.first_line + offset, reason))
            else:
                failed = failure_line(job.content_type, job.join_source, None, reason)
                lines.append(failed if is_record else b"")
            if len(lines) >= LINES_PER_BLOCK:
                yield b"\n".join(lines) + b"\n"
                lines = []
        if lines:
            yield b"\n".join(lines) + b"\n"

    def delete(self, uris: Sequence[str]) -> None:
        """Remove part objects, best effort (a leftover is swept when its job succeeds)."""
        for failure in self.store.delete_uris(uris):
            logger.warning("could not delete parts: %s", failure.detail)

    def sweep(self, bucket: str, job_id: str) -> None:
        """Remove whatever parts of a finished job are left (duplicates that lost)."""
        location = S3Location(bucket, parts_prefix(job_id))
        self.delete([str(S3Location(bucket, key)) for key, _ in self.store.iter_objects(location)])
