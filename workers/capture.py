"""Data capture in the worker: what an endpoint saw and said, written to S3 in batches.

The worker already holds each request's bytes and its answer, so capture costs
the hot path one dictionary look-up, one hash and one list append per request
(`CaptureRecorder.record`, called once per batch from the complete step). A
background thread (`flush_forever`) encodes the records as JSON Lines in
SageMaker's capture format and writes each variant's buffer as ONE object:

    <destination><endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<8 hex>.jsonl

A buffer is written when it is `capture_flush_s` old (5 s) or holds
`capture_flush_records` records (5,000), whichever comes first: at 2,000
requests/s a variant writes one ~1 MB object every 2.5 s; at 2 requests/s one
object of 10 records every 5 s. Records of different hours go to their own
hour's folder. A clean stop (SIGTERM, warm shutdown) writes everything left; a
worker killed without warning loses at most one flush window of records — the
answers themselves were already sent.

Which requests are captured is a pure decision on the inference id
(`sampled`): a stable hash, so 10 % means the same 10 % of ids on every worker
and on a redelivery. The endpoints' capture settings are re-read from SQL by
the flusher every flush tick (a change applies within seconds, no restart); an
endpoint seen for the first time is read at once. While S3 is unreachable the
records wait, up to `capture_max_buffer_mb`; beyond it new ones are dropped and
counted in the log.
"""

from __future__ import annotations

import atexit
import base64
import datetime as dt
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select

from core.codecs import media_type
from core.storage import ObjectStore, S3Location

logger = logging.getLogger(__name__)

CAPTURED_MODES = ("realtime", "async")
CONTENT_TYPE = "application/jsonlines"
# Per-record overhead of the buffer bookkeeping, for the memory bound (bytes).
RECORD_OVERHEAD = 200


# --- pure decisions -------------------------------------------------------------------


def sampled(inference_id: str, percent: float) -> bool:
    """Whether the request with this inference id is captured at `percent` %.

    A stable hash of the id (CRC-32 mod 10,000, in hundredths of a percent), so
    every worker decides alike: at 10 %, ids hashing to 0..999 are captured.
    """
    if percent >= 100:
        return True
    if percent <= 0:
        return False
    return zlib.crc32(inference_id.encode()) % 10_000 < percent * 100


def flush_due(
    *, records: int, first_at_s: float, now_s: float, interval_s: float, max_records: int
) -> bool:
    """A buffer is written once it holds `max_records` or its oldest record is `interval_s` old.

    >>> flush_due(records=12, first_at_s=100.0, now_s=104.9, interval_s=5, max_records=5000)
    False
    >>> flush_due(records=12, first_at_s=100.0, now_s=105.0, interval_s=5, max_records=5000)
    True
    """
    return records > 0 and (records >= max_records or now_s - first_at_s >= interval_s)


def encoding_of(content_type: str) -> str:
    """SageMaker's `encoding` for a payload: CSV, JSON, or BASE64 for anything else."""
    kind = media_type(content_type)
    if kind == "text/csv":
        return "CSV"
    if kind in ("application/json", "application/jsonlines"):
        return "JSON"
    return "BASE64"


def payload_part(data: bytes, content_type: str, mode: str) -> dict[str, str]:
    """One side of `captureData`: the bytes as text when they are CSV or JSON text."""
    encoding = encoding_of(content_type)
    text = None
    if encoding != "BASE64":
        try:
            text = data.decode()
        except UnicodeDecodeError:
            encoding = "BASE64"
    return {
        "observedContentType": content_type,
        "mode": mode,
        "data": text if text is not None else base64.b64encode(data).decode(),
        "encoding": encoding,
    }


def capture_record(entry: Entry) -> dict[str, Any]:
    """A record in SageMaker's data capture format (one JSON Lines line)."""
    capture: dict[str, Any] = {}
    if entry.input is not None:
        capture["endpointInput"] = payload_part(entry.input, entry.input_type, "INPUT")
    if entry.output is not None:
        capture["endpointOutput"] = payload_part(entry.output, entry.output_type, "OUTPUT")
    moment = dt.datetime.fromtimestamp(entry.at_s, dt.UTC)
    return {
        "captureData": capture,
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceId": entry.inference_id,
            "inferenceTime": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        },
        "eventVersion": "0",
    }


def object_location(destination: str, key: BufferKey, *, now_s: float) -> S3Location:
    """Where one flush of a buffer goes: `<destination><endpoint>/<variant>/yyyy/mm/dd/hh/…`."""
    moment = dt.datetime.fromtimestamp(now_s, dt.UTC)
    name = f"{moment:%M-%S}-{moment.microsecond // 1000:03d}-{uuid.uuid4().hex[:8]}.jsonl"
    return S3Location.parse(destination).child(f"{key.endpoint}/{key.variant}/{key.hour}/{name}")


# --- settings -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    destination: str
    sampling_percent: float
    input: bool
    output: bool

    @classmethod
    def from_stored(cls, raw: dict[str, Any] | None) -> CaptureConfig | None:
        """`endpoints.data_capture` as stored by the API; None when capture is off."""
        if not raw or not raw.get("enabled") or not raw.get("destination"):
            return None
        sides = set(raw.get("capture") or ("input", "output"))
        return cls(
            destination=raw["destination"],
            sampling_percent=float(raw.get("sampling_percent", 100)),
            input="input" in sides,
            output="output" in sides,
        )


def load_capture_configs(endpoint: str | None = None) -> dict[str, CaptureConfig | None]:
    """Endpoint name → capture settings, from SQL (all endpoints, or one)."""
    from core.db import session_scope
    from core.tables import Endpoint

    query = select(Endpoint.name, Endpoint.data_capture)
    if endpoint is not None:
        query = query.where(Endpoint.name == endpoint)
    with session_scope() as session:
        rows = session.execute(query).all()
    found = {name: CaptureConfig.from_stored(raw) for name, raw in rows}
    if endpoint is not None:
        found.setdefault(endpoint, None)
    return found


# --- the buffer -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BufferKey:
    destination: str
    endpoint: str
    variant: str
    hour: str  # "yyyy/mm/dd/hh" of its records' inference time (UTC)


@dataclass(slots=True)
class Entry:
    inference_id: str
    at_s: float
    input: bytes | None
    input_type: str
    output: bytes | None
    output_type: str

    @property
    def size(self) -> int:
        return len(self.input or b"") + len(self.output or b"") + RECORD_OVERHEAD


@dataclass(slots=True)
class Buffer:
    first_at_s: float
    entries: list[Entry] = field(default_factory=list)


class CaptureRecorder:
    """Buffers capture records per endpoint variant and hour; a thread writes them to S3."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        load_configs: Callable[[str | None], dict[str, CaptureConfig | None]],
        flush_s: float,
        flush_records: int,
        max_buffer_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.load_configs = load_configs
        self.flush_s = flush_s
        self.flush_records = flush_records
        self.max_buffer_bytes = max_buffer_bytes
        self.clock = clock
        self.configs: dict[str, CaptureConfig | None] = {}
        self.buffers: dict[BufferKey, Buffer] = {}
        self.buffered_bytes = 0
        self.written = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the hot path (the worker's complete step) ---------------------------------------

    def record(self, requests: Iterable[Any]) -> None:
        """Buffer a record for each answered realtime or async request its endpoint captures.

        `requests` are workers.invocation.InFlight objects; only answered ones
        (an output and no error) are captured.
        """
        for request in requests:
            inv = request.inv
            if inv.mode not in CAPTURED_MODES or request.output is None or not request.live:
                continue
            config = self._config(inv.endpoint)
            if config is None:
                continue
            inference_id = inv.inference_id or inv.job_id
            if not sampled(inference_id, config.sampling_percent):
                continue
            body, output_type = request.output
            self._add(
                config,
                inv.endpoint,
                inv.variant,
                Entry(
                    inference_id=inference_id,
                    at_s=self.clock(),
                    input=request.payload if config.input else None,
                    input_type=inv.content_type,
                    output=body if config.output else None,
                    output_type=output_type,
                ),
            )

    def _config(self, endpoint: str) -> CaptureConfig | None:
        try:
            return self.configs[endpoint]
        except KeyError:
            pass
        try:
            self.configs.update(self.load_configs(endpoint))
        except Exception as exc:  # the database blinked: no capture until the next refresh
            logger.warning("cannot read the capture settings of %s: %s", endpoint, exc)
            return None
        return self.configs.get(endpoint)

    def _add(self, config: CaptureConfig, endpoint: str, variant: str, entry: Entry) -> None:
        hour = dt.datetime.fromtimestamp(entry.at_s, dt.UTC).strftime("%Y/%m/%d/%H")
        key = BufferKey(config.destination, endpoint, variant, hour)
        with self._lock:
            if self.buffered_bytes + entry.size > self.max_buffer_bytes:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    logger.warning(
                        "capture buffer full (%d bytes, S3 unreachable?): %d record(s) dropped",
                        self.buffered_bytes,
                        self.dropped,
                    )
                return
            buffer = self.buffers.get(key)
            if buffer is None:
                buffer = self.buffers[key] = Buffer(first_at_s=entry.at_s)
            buffer.entries.append(entry)
            self.buffered_bytes += entry.size
            full = len(buffer.entries) >= self.flush_records
        if full:
            self._wake.set()

    # --- the flusher thread ---------------------------------------------------------------

    def start(self) -> None:
        """Run the flusher on a daemon thread; everything left is written at interpreter exit."""
        self._thread = threading.Thread(target=self.flush_forever, name="capture", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the flusher and write every buffer now (a clean stop loses nothing)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.flush(everything=True)

    def flush_forever(self) -> None:
        next_refresh = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.flush_s / 4)
            self._wake.clear()
            try:
                if time.monotonic() >= next_refresh:
                    self.configs = self.load_configs(None)
                    next_refresh = time.monotonic() + self.flush_s
            except Exception as exc:
                logger.warning("cannot re-read capture settings (%s); keeping the known", exc)
            try:
                self.flush()
            except Exception:
                logger.exception("capture flush failed; retrying next tick")

    def flush(self, *, everything: bool = False) -> int:
        """Write each due buffer as one object; returns the records written.

        A buffer whose write fails goes back to be retried on the next tick.
        """
        now = self.clock()
        with self._lock:
            due = {
                key: buffer
                for key, buffer in self.buffers.items()
                if everything
                or flush_due(
                    records=len(buffer.entries),
                    first_at_s=buffer.first_at_s,
                    now_s=now,
                    interval_s=self.flush_s,
                    max_records=self.flush_records,
                )
            }
            for key in due:
                del self.buffers[key]
        written = 0
        for key, buffer in due.items():
            body = b"".join(orjson.dumps(capture_record(e)) + b"\n" for e in buffer.entries)
            location = object_location(key.destination, key, now_s=now)
            try:
                self.store.put_bytes(location, body, CONTENT_TYPE)
            except Exception as exc:
                logger.warning(
                    "cannot write %d capture record(s) to %s: %s; will retry",
                    len(buffer.entries),
                    location,
                    exc,
                )
                self._put_back(key, buffer)
                continue
            written += len(buffer.entries)
            with self._lock:
                self.buffered_bytes -= sum(e.size for e in buffer.entries)
            logger.debug("wrote %d capture record(s) to %s", len(buffer.entries), location)
        self.written += written
        return written

    def _put_back(self, key: BufferKey, buffer: Buffer) -> None:
        with self._lock:
            newer = self.buffers.get(key)
            if newer is not None:
                buffer.entries.extend(newer.entries)
            self.buffers[key] = buffer


def recorder_for_worker(store: ObjectStore) -> CaptureRecorder:
    """The worker's recorder, its flusher running: settings from SLUICEWAY_CAPTURE_*."""
    from core.config import get_settings

    settings = get_settings()
    recorder = CaptureRecorder(
        store=store,
        load_configs=load_capture_configs,
        flush_s=settings.capture_flush_s,
        flush_records=settings.capture_flush_records,
        max_buffer_bytes=settings.capture_max_buffer_bytes,
    )
    recorder.start()
    return recorder
