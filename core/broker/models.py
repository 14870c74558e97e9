"""Multi-model variants' state in Redis: which worker holds which model, and its requests.

Each worker rewrites its own hash of what it holds per variant
(`models_loaded_key`, model tag → "memory_bytes last_used_at model") whenever
that changes, with a TTL of a few leases so a dead worker's entry disappears by
itself; keyed by tag (core/broker/affinity.py) so the model-affine reserve can
ask "does another worker hold this model?" with one HEXISTS. Requests per model
add up in one hash per variant (`model_invocations_key`). The API's
`GET /v1/endpoints/{name}/models` reads both for the live workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

from core.broker.affinity import model_tag
from core.broker.keys import model_invocations_key, models_loaded_key

HELD_TTL_S = 60  # a worker that stopped reporting (dead) drops out within this


@dataclass(frozen=True, slots=True)
class HeldModel:
    """One model held by one worker."""

    worker_id: str
    memory_bytes: int
    last_used_at: float  # epoch seconds


def report_models(
    client: redis.Redis,
    namespace: str,
    queue: str,
    *,
    worker_id: str,
    held: Mapping[str, tuple[int, float]] | None,
    invocations: Mapping[str, int],
) -> None:
    """Replace what `worker_id` holds of `queue` (None: unchanged) and add its requests."""
    pipe = client.pipeline(transaction=True)
    if held is not None:
        key = models_loaded_key(namespace, queue, worker_id)
        pipe.delete(key)
        if held:
            pipe.hset(
                key,
                mapping={
                    model_tag(model): f"{mem} {used:.3f} {model}"
                    for model, (mem, used) in held.items()
                },
            )
            pipe.expire(key, HELD_TTL_S)
    else:
        pipe.expire(models_loaded_key(namespace, queue, worker_id), HELD_TTL_S)
    for model, count in invocations.items():
        pipe.hincrby(model_invocations_key(namespace, queue), model, count)
    pipe.execute()


def refresh_models(client: redis.Redis, namespace: str, queue: str, *, worker_id: str) -> None:
    """Keep `worker_id`'s report of `queue` from expiring (it still holds those models)."""
    client.expire(models_loaded_key(namespace, queue, worker_id), HELD_TTL_S)


def read_models(
    client: redis.Redis, namespace: str, queue: str, worker_ids: Iterable[str]
) -> tuple[dict[str, list[HeldModel]], dict[str, int]]:
    """(model → the live workers holding it) and (model → requests, ever) of one variant."""
    workers = list(worker_ids)
    pipe = client.pipeline(transaction=False)
    for worker_id in workers:
        pipe.hgetall(models_loaded_key(namespace, queue, worker_id))
    pipe.hgetall(model_invocations_key(namespace, queue))
    *held_maps, counts = pipe.execute()
    held: dict[str, list[HeldModel]] = {}
    for worker_id, entries in zip(workers, held_maps, strict=True):
        for raw in entries.values():
            mem, used, model = _text(raw).split(" ", 2)
            held.setdefault(model, []).append(
                HeldModel(worker_id=worker_id, memory_bytes=int(mem), last_used_at=float(used))
            )
    return held, {_text(k): int(v) for k, v in counts.items()}


def forget_models(client: redis.Redis, namespace: str, queue: str) -> None:
    """Drop a deleted variant's request counts (held entries expire by themselves)."""
    client.delete(model_invocations_key(namespace, queue))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
