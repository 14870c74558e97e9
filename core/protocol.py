"""The job/queue protocol: queue and key names, the task message, the realtime reply.

Every invocation, whatever its mode, is one Celery task named `TASK_NAME` on the
Redis queue of its endpoint variant. Messages are msgpack (bytes travel as bytes).
Priorities use Celery's Redis priority lists: a lower number is taken first, so a
realtime call overtakes queued async jobs, which overtake batch-transform work.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, fields
from typing import Any, Literal

TASK_NAME = "sluiceway.invoke"

Mode = Literal["realtime", "async", "transform"]

PRIORITY: dict[str, int] = {"realtime": 0, "async": 3, "transform": 6}


def queue_name(namespace: str, endpoint: str, variant: str) -> str:
    """The Redis queue of one endpoint variant, e.g. `sluiceway.churn.a`."""
    return f"{namespace}.{endpoint}.{variant}"


def variants_key(namespace: str) -> str:
    """Redis set of every live variant queue; workers subscribe to what it lists."""
    return f"{namespace}:variant-queues"


def reply_key(namespace: str, api_instance: str) -> str:
    """Redis list where workers push realtime answers for one API process."""
    return f"{namespace}:reply:{api_instance}"


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

    def to_wire(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _REPLY_FIELDS}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Reply:
        return cls(**data)


_MODEL_FIELDS = tuple(f.name for f in fields(ModelRef))
_INVOCATION_FIELDS = tuple(f.name for f in fields(Invocation))
_REPLY_FIELDS = tuple(f.name for f in fields(Reply))


# Kombu's Redis transport keeps one list per priority step: the step-0 list is
# the queue's own name, others are "<queue>\x06\x16<step>".
PRIORITY_SEP = "\x06\x16"


PRIORITY_STEPS = (0, 3, 6, 9)


def priority_lists(queue: str) -> list[str]:
    """Every Redis list holding messages of `queue`, highest priority first."""
    return [priority_list(queue, step) for step in PRIORITY_STEPS]


def priority_list(queue: str, priority: int) -> str:
    """The Redis list holding `queue`'s messages of `priority`, rounded down to a step as
    kombu rounds it."""
    step = PRIORITY_STEPS[bisect.bisect_right(PRIORITY_STEPS, max(priority, 0)) - 1]
    return queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}"


def bell_key(namespace: str, queue: str) -> str:
    """A list idle workers block on; producers push a token with each message."""
    return f"{namespace}:bell:{queue}"


def unacked_keys(namespace: str) -> tuple[str, str]:
    """kombu's bookkeeping of reserved messages: hash tag → message, zset tag → time."""
    return unacked_key(namespace), unacked_index_key(namespace)


def metrics_key(namespace: str, queue: str) -> str:
    """Hash of counters workers add to per variant (batch sizes, latencies, errors)."""
    return f"{namespace}:metrics:{queue}"


def worker_key(namespace: str, hostname: str) -> str:
    """A worker's heartbeat: which queues it consumes on which device (expires)."""
    return f"{namespace}:worker:{hostname}"


def desired_workers_key(namespace: str) -> str:
    """Hash queue → worker count the scheduler wants for it."""
    return f"{namespace}:desired-workers"


def scaling_events_key(namespace: str, queue: str) -> str:
    """Redis list of a variant queue's latest scaling events, newest first (capped)."""
    return f"{namespace}:scaling-events:{queue}"


def delivery_outcomes_key(namespace: str) -> str:
    """Hash outcome (`delivered`, `dead`) → webhook deliveries that ended so, ever (the notifier
    adds; /metrics renders it as sluiceway_webhook_deliveries_total)."""
    return f"{namespace}:delivery-outcomes"


def arrivals_key(namespace: str) -> str:
    """Hash queue → epoch ms of the last message a producer put on it (about once a second)."""
    return f"{namespace}:last-arrival"


def unacked_key(namespace: str) -> str:
    """kombu's hash of reserved, unacknowledged messages: tag → JSON [message, exchange, queue]."""
    return f"{namespace}:unacked"


def unacked_index_key(namespace: str) -> str:
    """kombu's zset of unacknowledged delivery tags, scored by reserve time."""
    return f"{namespace}:unacked_index"


def unacked_mutex_key(namespace: str) -> str:
    return f"{namespace}:unacked_mutex"


# Transform jobs for a model (not an endpoint) run on a per-model-version queue
# that every generic worker serves. "_" cannot start an endpoint name, so these
# queues never collide with an endpoint's.
TRANSFORM_POOL = "_transform"


def transform_pool_queue(namespace: str, model: str, version: int) -> str:
    """The transform-pool queue of one model version, e.g. `sluiceway._transform.churn-v3`."""
    return queue_name(namespace, TRANSFORM_POOL, transform_pool_variant(model, version))


def transform_pool_variant(model: str, version: int) -> str:
    return f"{model}-v{version}"


def transform_done_key(namespace: str) -> str:
    """Redis list workers ring when a transform chunk is done, waking the coordinator."""
    return f"{namespace}:transform-done"
