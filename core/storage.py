"""The object-store client: plain S3 through the `minio` SDK, so any S3 store works.

Locations are `s3://bucket/key` strings, read and written only by
`core.locations.S3Location` (re-exported here). SDK and network errors are mapped to
`StorageError` (503: the store is down) or `NotFound` (the object is not there).
Large objects move in pieces: `iter_chunks` / `iter_range` stream a download,
`put_stream` with an unknown length is a multipart upload holding one part in
memory at a time, and `StreamReader` turns any iterator of byte blocks into
the file-like object `put_stream` reads.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, cast
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from core.config import Settings, get_settings
from core.errors import InvalidInput, NotFound, StorageError
from core.locations import S3Location

__all__ = ["ObjectInfo", "ObjectStore", "S3Location", "StreamReader", "get_store"]

PART_SIZE = 16 * 1024 * 1024
# Answers about the request itself (a name the store will not take), not its health.
REFUSED_CODES = {
    "BadRequest",
    "InvalidArgument",
    "InvalidObjectName",
    "InvalidBucketName",
    "KeyTooLongError",
    "InvalidURI",
}
MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"}


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    size: int
    content_type: str
    etag: str = ""  # changes when the object is replaced (multi-model reloads key on it)


class ObjectStore:
    def __init__(self, settings: Settings) -> None:
        if not settings.s3_endpoint:
            raise StorageError("SLUICEWAY_S3_ENDPOINT is not set (`sluice up` starts a store)")
        url = urlparse(settings.s3_endpoint)
        # Short timeouts and few retries: a store that is down must give a clear
        # 503 quickly, not hang a request for minutes.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=60),
            maxsize=32,
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503]),
        )
        self.client = Minio(
            url.netloc,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            region=settings.s3_region,
            secure=url.scheme == "https",
            http_client=http,
        )
        self._known_buckets: set[str] = set()

    def ensure_bucket(self, bucket: str) -> None:
        if bucket in self._known_buckets:
            return
        try:
            with _mapped_errors("create bucket", bucket):
                if not self.client.bucket_exists(bucket):
                    self.client.make_bucket(bucket)
        except StorageError as exc:
            if not isinstance(exc.__cause__, S3Error) or exc.__cause__.code not in {
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            }:
                raise
        self._known_buckets.add(bucket)

    def put_bytes(self, location: S3Location, data: bytes, content_type: str) -> None:
        self.put_stream(location, io.BytesIO(data), content_type, length=len(data))

    def put_stream(
        self, location: S3Location, stream: Readable, content_type: str, length: int = -1
    ) -> None:
        self.ensure_bucket(location.bucket)
        with _mapped_errors("write", location):
            self.client.put_object(
                location.bucket,
                location.key,
                cast(BinaryIO, stream),  # the SDK only ever calls read(n)
                length=length,
                content_type=content_type,
                part_size=PART_SIZE if length < 0 else 0,
            )

    def get_bytes(self, location: S3Location) -> bytes:
        return b"".join(self.iter_chunks(location))

    def iter_chunks(self, location: S3Location, chunk_bytes: int = 1024 * 1024) -> Iterator[bytes]:
        return self.iter_range(location, 0, 0, chunk_bytes=chunk_bytes)

    def iter_range(
        self, location: S3Location, offset: int, length: int, *, chunk_bytes: int = 1024 * 1024
    ) -> Iterator[bytes]:
        """Stream bytes [offset, offset + length) of an object; length 0 means to its end."""
        response = None
        try:
            with _mapped_errors("read", location):
                response = self.client.get_object(
                    location.bucket, location.key, offset=offset, length=length
                )
                yield from response.stream(chunk_bytes)
        finally:
            if response is not None:
                response.close()
                response.release_conn()

    def get_range(self, location: S3Location, offset: int, length: int) -> bytes:
        """Bytes [offset, offset + length) of an object, by one ranged GET."""
        if length <= 0:
            return b""
        data = b"".join(self.iter_range(location, offset, length))
        if len(data) != length:
            raise NotFound(
                f"{location} holds {offset + len(data)} bytes, not the {offset + length} expected"
            )
        return data

    def stat(self, location: S3Location) -> ObjectInfo:
        """Size and content type; NotFound if the object (or its bucket) does not exist."""
        with _mapped_errors("stat", location):
            stat = self.client.stat_object(location.bucket, location.key)
        return ObjectInfo(
            size=int(stat.size or 0),
            content_type=stat.content_type or "application/octet-stream",
            etag=stat.etag or "",
        )

    def list_keys(self, location: S3Location) -> list[str]:
        return [key for key, _size in self.iter_objects(location)]

    def iter_objects(
        self, location: S3Location, *, start_after: str | None = None
    ) -> Iterator[tuple[str, int]]:
        """(key, size) of every object whose key starts with the location's key, in key order
        (only keys after `start_after`, a whole key, when given).

        A bucket that does not exist holds no objects: nothing is yielded.
        """
        try:
            with _mapped_errors("list", location):
                for obj in self.client.list_objects(
                    location.bucket, prefix=location.key, recursive=True, start_after=start_after
                ):
                    if obj.object_name is not None and not obj.is_dir:
                        yield obj.object_name, int(obj.size or 0)
        except NotFound:
            return

    def iter_objects_modified(self, location: S3Location) -> Iterator[tuple[str, dt.datetime]]:
        """(key, LastModified) of every object under the location's key, in key order
        (nothing when the bucket does not exist). S3 stamps to the second."""
        try:
            with _mapped_errors("list", location):
                for obj in self.client.list_objects(
                    location.bucket, prefix=location.key, recursive=True
                ):
                    if obj.object_name is not None and not obj.is_dir:
                        assert obj.last_modified is not None
                        yield obj.object_name, obj.last_modified
        except NotFound:
            return

    def bucket_exists(self, bucket: str) -> bool:
        with _mapped_errors("check bucket", bucket):
            return bool(self.client.bucket_exists(bucket))

    def delete(self, bucket: str, keys: Iterable[str]) -> None:
        """Remove objects of one bucket (missing ones are no error), many per request."""
        try:
            errors = list(self.client.remove_objects(bucket, (DeleteObject(key) for key in keys)))
        except S3Error as exc:
            if exc.code in MISSING_CODES:
                return
            raise StorageError(f"cannot delete objects in {bucket!r}: {exc.code}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageError(f"object store unreachable deleting in {bucket!r}") from exc
        failed = [e for e in errors if e.code not in MISSING_CODES]
        if failed:
            raise StorageError(
                f"cannot delete {len(failed)} object(s) in {bucket!r}, "
                f"first {failed[0].name!r}: {failed[0].code}"
            )

    def delete_uris(self, uris: Iterable[str]) -> list[StorageError]:
        """Remove objects named by s3:// URIs, one request per bucket, best effort:
        every bucket is tried, and what failed is returned rather than raised."""
        by_bucket: dict[str, list[str]] = {}
        for uri in uris:
            location = S3Location.parse(uri)
            by_bucket.setdefault(location.bucket, []).append(location.key)
        failures = []
        for bucket, keys in by_bucket.items():
            try:
                self.delete(bucket, keys)
            except StorageError as exc:
                failures.append(exc)
        return failures

    def ping(self) -> None:
        with _mapped_errors("list buckets of", "the object store"):
            self.client.list_buckets()


@contextmanager
def _mapped_errors(action: str, what: S3Location | str) -> Iterator[None]:
    """SDK and network errors as project errors: missing → NotFound, refused name →
    InvalidInput (the SDK checks names before sending), anything else → StorageError (503)."""
    try:
        yield
    except S3Error as exc:
        if exc.code in MISSING_CODES:
            raise NotFound(f"no object at {what}") from exc
        if exc.code in REFUSED_CODES:
            raise InvalidInput(f"the object store refuses to {action} {what}: {exc.code}") from exc
        raise StorageError(f"cannot {action} {what}: {exc.code}") from exc
    except ValueError as exc:
        raise InvalidInput(f"cannot {action} {what}: {exc}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise StorageError(f"object store unreachable ({action} {what})") from exc


class StreamReader(io.RawIOBase):
    """A read-only file over an iterator of byte blocks, for `put_stream` of unknown length.

    `read(n)` returns up to n bytes in one piece (the SDK appends what it reads,
    so small pieces would cost it a copy each); nothing beyond the block being
    handed out is buffered.
    """

    def __init__(self, blocks: Iterable[bytes]) -> None:
        super().__init__()
        self._blocks = iter(blocks)
        self._pending = memoryview(b"")
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        pieces: list[bytes] = []
        wanted = size if size >= 0 else 1 << 62
        while wanted > 0:
            if not self._pending:
                block = next(self._blocks, None)
                if block is None:
                    break
                self._pending = memoryview(block)
                continue
            piece = self._pending[:wanted]
            self._pending = self._pending[len(piece) :]
            pieces.append(piece.tobytes())
            wanted -= len(piece)
        data = b"".join(pieces)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@functools.cache
def get_store() -> ObjectStore:
    return ObjectStore(get_settings())
