"""What the scaler publishes about inference components: their placements and the hosts' room.

Once per tick the scaler (scheduler/scaling/scaler.py) writes, per component
queue, the copies it wants, where each placed copy runs and why the rest are
pending (`component_placements_key`), and per host its capacity and what is
free (`host_capacity_key`). The API (`GET /v1/endpoints/{name}`, the
component routes, `/metrics`) reads them here. Plain dicts in JSON, so the
API never imports the scheduler.

A placement: `{"host": "h1", "cpu_cores": 0.5, "memory_mb": 512, "gpus": [0],
"gpu_memory_mb": 2000}`. A host: `{"name", "cpu_cores", "memory_mb", "gpus":
[{"index", "memory_mb", "free_memory_mb"}], "free_cpu_cores", "free_memory_mb"}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from core.broker import component_placements_key, host_capacity_key


@dataclass(frozen=True, slots=True)
class ComponentPlacements:
    desired: int
    placements: list[dict[str, Any]] = field(default_factory=list)
    pending_reason: str | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "desired": self.desired,
                "placements": self.placements,
                "pending_reason": self.pending_reason,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> ComponentPlacements:
        data: dict[str, Any] = orjson.loads(raw)
        return cls(
            desired=int(data.get("desired", 0)),
            placements=list(data.get("placements") or []),
            pending_reason=data.get("pending_reason"),
        )


def publish(
    pipe: Any,
    namespace: str,
    placements: dict[str, ComponentPlacements],
    hosts: list[dict[str, Any]],
) -> None:
    """Replace both hashes in `pipe` (a redis pipeline; the caller executes it)."""
    pipe.delete(component_placements_key(namespace))
    if placements:
        pipe.hset(
            component_placements_key(namespace),
            mapping={queue: p.to_json() for queue, p in placements.items()},
        )
    pipe.delete(host_capacity_key(namespace))
    if hosts:
        pipe.hset(
            host_capacity_key(namespace),
            mapping={h["name"]: orjson.dumps(h) for h in hosts},
        )


def read_placements(client: redis.Redis, namespace: str) -> dict[str, ComponentPlacements]:
    """Per component queue, what the scaler last published (absent: not decided yet)."""
    raw = client.hgetall(component_placements_key(namespace))
    return {_text(k): ComponentPlacements.from_json(v) for k, v in raw.items()}


def read_hosts(client: redis.Redis, namespace: str) -> list[dict[str, Any]]:
    """Every host the scaler places copies on, by name."""
    raw = client.hgetall(host_capacity_key(namespace))
    return [orjson.loads(raw[k]) for k in sorted(raw)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
