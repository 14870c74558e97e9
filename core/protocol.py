"""What travels between the parts: an invocation (API or scheduler → worker) and a
realtime reply (worker → API), and their msgpack wire form (bytes stay bytes).

How they sit in Redis — lists, envelopes, reservations, leases — is
core/broker's business; this module knows nothing of Redis.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

import msgpack

Mode = Literal["realtime", "async", "transform"]


@dataclass(frozen=True, slots=True)
class ModelRef:
    name: str
    version: int
    framework: str
    artifact_uri: str

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(slots=True)
class Invocation:
    """One request as it travels on the queue."""

    job_id: str
    mode: Mode
    endpoint: str
    variant: str
    model: ModelRef
    content_type: str
    accept: str | None = None
    body: bytes | None = None  # inline payload (realtime)
    input_location: str | None = None  # s3:// URI (async)
    output_location: str | None = None  # s3:// URI (async)
    reply_to: str | None = None  # Redis list key (realtime)
    deadline_ms: int | None = None  # epoch ms after which no one waits for the answer
    enqueued_ms: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    inference_id: str | None = None  # X-Inference-Id, or the job id; kept in capture records

    def to_wire(self) -> dict[str, Any]:
        # Shallow, by hand: `dataclasses.asdict` deep-copies and costs ~15 µs here,
        # on every realtime request. The dict is serialized at once, never kept.
        wire = {name: getattr(self, name) for name in _INVOCATION_FIELDS}
        wire["model"] = {name: getattr(self.model, name) for name in _MODEL_FIELDS}
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Invocation:
        fields = dict(data)
        fields["model"] = ModelRef(**fields["model"])
        return cls(**fields)


@dataclass(slots=True)
class Reply:
    """A realtime answer, pushed by the worker to the caller's reply list."""

    job_id: str
    ok: bool
    body: bytes = b""
    content_type: str = "application/json"
    error_kind: str | None = None
    detail: str | None = None
    model_ms: float = 0.0
    model_cache: str | None = None  # multi-model variants: "hit" or "miss" (a load)

    def to_wire(self) -> dict[str, Any]:
        wire = {name: getattr(self, name) for name in _REPLY_FIELDS}
        if self.model_cache is None:  # one-model variants: the reply as it always was
            del wire["model_cache"]
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Reply:
        return cls(**data)


_MODEL_FIELDS = tuple(f.name for f in fields(ModelRef))
_INVOCATION_FIELDS = tuple(f.name for f in fields(Invocation))
_REPLY_FIELDS = tuple(f.name for f in fields(Reply))


def pack(value: dict[str, Any]) -> bytes:
    """msgpack, bytes kept as bytes: the wire form of replies and worker records."""
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = msgpack.unpackb(data, raw=False)
    return result
