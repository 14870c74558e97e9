"""Monitoring's I/O: stream capture objects, datasets and ground truth from S3; write reports.

Everything is read as a stream of lines (1 MiB pieces), so memory does not grow
with an object's size. Capture objects of a run are those under
`<destination><endpoint>/` whose LastModified falls in the run's window
(decisions.py); with a start, only the hour folders from the hour before the
start to the end's hour are listed, so a run does not list an endpoint's whole
history.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import orjson
from minio.error import S3Error

from core.errors import InvalidInput, StorageError
from core.storage import ObjectStore, S3Location

JSON_TYPES = ("application/json", "application/jsonlines", "application/x-jsonlines")


def iter_lines(store: ObjectStore, location: S3Location) -> Iterator[bytes]:
    """The object's lines (without their newline), read in pieces."""
    rest = b""
    for chunk in store.iter_chunks(location):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def objects_under(store: ObjectStore, uri: str) -> list[S3Location]:
    """One object, or every object under a prefix ending in `/`."""
    location = S3Location.parse(uri)
    if location.key and not location.key.endswith("/"):
        return [location]
    return [S3Location(location.bucket, key) for key in store.list_keys(location)]


# --- captured records -------------------------------------------------------------------


def capture_objects(
    store: ObjectStore,
    *,
    destination: str,
    endpoint: str,
    start: dt.datetime | None,
    end: dt.datetime,
) -> list[S3Location]:
    """Capture objects of `endpoint` written in [start, end) (start None: from the first)."""
    root = S3Location.parse(destination).child(f"{endpoint}/")
    if start is None:
        prefixes = [root]
    else:
        variants = {key[len(root.key) :].split("/", 1)[0] for key in _folders(store, root)}
        hours = _hours(start - dt.timedelta(hours=1), end)
        prefixes = [root.child(f"{v}/{h}/") for v in sorted(variants) for h in hours]
    found = []
    for prefix in prefixes:
        for key, modified in store.iter_objects_modified(prefix):
            if (start is None or modified >= start) and modified < end:
                found.append(S3Location(root.bucket, key))
    return found


def _folders(store: ObjectStore, root: S3Location) -> list[str]:
    """The names one level under `root` (the variant folders), by a delimiter listing."""
    try:
        objects = store.client.list_objects(root.bucket, prefix=root.key, recursive=False)
        return [obj.object_name for obj in objects if obj.object_name]
    except S3Error as exc:
        if exc.code == "NoSuchBucket":
            return []
        raise StorageError(f"cannot list {root}: {exc.code}") from exc


def _hours(first: dt.datetime, last: dt.datetime) -> list[str]:
    hour = first.replace(minute=0, second=0, microsecond=0)
    out = []
    while hour <= last:
        out.append(hour.strftime("%Y/%m/%d/%H"))
        hour += dt.timedelta(hours=1)
    return out


def iter_records(store: ObjectStore, locations: list[S3Location]) -> Iterator[dict[str, Any]]:
    """Every capture record of these objects, parsed (a line that is not JSON is skipped)."""
    for location in locations:
        for line in iter_lines(store, location):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue


def decoded(part: dict[str, Any] | None) -> tuple[str, str] | None:
    """(content type, text) of one side of a capture record; None if absent or binary."""
    if not part:
        return None
    data = part.get("data", "")
    if part.get("encoding") == "BASE64":
        try:
            data = base64.b64decode(data).decode()
        except (ValueError, UnicodeDecodeError):
            return None
    return str(part.get("observedContentType", "")).split(";")[0].strip().lower(), data


def input_rows(record: dict[str, Any]) -> list[Any]:
    """The rows (instances) of a captured request: CSV lines, or JSON instances."""
    found = decoded(record.get("captureData", {}).get("endpointInput"))
    if found is None:
        return []
    content_type, text = found
    if content_type == "text/csv":
        return list(csv.reader(line for line in text.splitlines() if line.strip()))
    if content_type in JSON_TYPES:
        try:
            payload = orjson.loads(text)
        except orjson.JSONDecodeError:
            return []
        if isinstance(payload, dict):
            payload = payload.get("instances", [payload])
        return payload if isinstance(payload, list) else [payload]
    return []


def output_data(record: dict[str, Any]) -> Any:
    """A captured answer as data: parsed JSON, or CSV text; None if there is none."""
    found = decoded(record.get("captureData", {}).get("endpointOutput"))
    if found is None:
        return None
    content_type, text = found
    if content_type in JSON_TYPES:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
    return text


def inference_id(record: dict[str, Any]) -> str | None:
    value = record.get("eventMetadata", {}).get("inferenceId")
    return str(value) if value is not None else None


# --- datasets and ground truth -------------------------------------------------------------


def dataset_rows(
    store: ObjectStore, uri: str, *, content_type: str, header: bool, block_rows: int
) -> tuple[list[str], Iterator[list[Any]]]:
    """The feature names (from the CSV header; else none) and blocks of rows.

    Raises InvalidInput when there is nothing to read or the first line does not parse.
    """
    locations = objects_under(store, uri)
    if not locations:
        raise InvalidInput(f"no object at {uri}")
    names: list[str] = []
    if content_type == "text/csv" and header:
        first = next(iter_lines(store, locations[0]), b"")
        names = next(csv.reader([first.decode(errors="replace")]), [])
        if not names:
            raise InvalidInput(f"{locations[0]} has no header line")

    def blocks() -> Iterator[list[Any]]:
        block: list[Any] = []
        for index, location in enumerate(locations):
            lines = (line.decode(errors="replace") for line in iter_lines(store, location))
            if header and content_type == "text/csv":
                next(lines, None)  # every object of a CSV dataset starts with the header
            rows: Iterator[Any]
            if content_type == "text/csv":
                rows = csv.reader(line for line in lines if line.strip())
            else:
                rows = (_json_row(line, location, index) for line in lines if line.strip())
            for row in rows:
                block.append(row)
                if len(block) >= block_rows:
                    yield block
                    block = []
        if block:
            yield block

    return names, blocks()


def _json_row(line: str, location: S3Location, index: int) -> Any:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{location}: a line is not JSON: {line[:80]!r}") from exc
    if isinstance(value, dict) and isinstance(value.get("features"), list):
        return value["features"]
    return value


def ground_truth(store: ObjectStore, prefix: str) -> dict[str, Any]:
    """inferenceId → groundTruthLabel from every JSON Lines object under `prefix`."""
    labels: dict[str, Any] = {}
    for location in objects_under(store, prefix):
        for line in iter_lines(store, location):
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(item, dict) and "inferenceId" in item:
                labels[str(item["inferenceId"])] = item.get("groundTruthLabel")
    return labels


# --- JSON objects ---------------------------------------------------------------------------


def read_json(store: ObjectStore, uri: str) -> Any:
    return orjson.loads(store.get_bytes(S3Location.parse(uri)))


def write_json(store: ObjectStore, uri: str, value: Any) -> None:
    body = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    store.put_stream(S3Location.parse(uri), io.BytesIO(body), "application/json", len(body))
