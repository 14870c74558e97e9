"""What the scaler publishes in Redis for the API to show: desired workers and scaling events.

The scaler (scheduler/scaling/scaler.py) writes, once per tick, the worker
count it wants per variant queue (`desired_workers_key`) and, when a count
changes, an event at the head of that queue's capped list
(`scaling_events_key`). The API's endpoint views and /metrics read them here.
Queue state itself (backlogs, reservations, live workers) is core/broker's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis

from core.broker import desired_workers_key, scaling_events_key


@dataclass(frozen=True, slots=True)
class ScalingEvent:
    at: float  # epoch seconds
    from_workers: int
    to_workers: int
    reason: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"at": self.at, "from": self.from_workers, "to": self.to_workers, "reason": self.reason}
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> ScalingEvent:
        data: dict[str, Any] = orjson.loads(raw)
        return cls(
            at=float(data["at"]),
            from_workers=int(data["from"]),
            to_workers=int(data["to"]),
            reason=str(data["reason"]),
        )


def scaling_events(
    client: redis.Redis, namespace: str, queues: list[str], *, limit: int = 10
) -> dict[str, list[ScalingEvent]]:
    """The latest scaling events of each queue, newest first."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.lrange(scaling_events_key(namespace, queue), 0, limit - 1)
    return {
        queue: [ScalingEvent.from_json(raw) for raw in raws]
        for queue, raws in zip(queues, pipe.execute(), strict=True)
    }


def desired_workers(client: redis.Redis, namespace: str) -> dict[str, int]:
    """Workers the scaler wants per queue (absent: it has not decided yet)."""
    raw = client.hgetall(desired_workers_key(namespace))
    return {_text(k): int(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
