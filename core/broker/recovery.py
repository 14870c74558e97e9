"""Putting reserved messages back: a dead worker's (sweep), and ones nobody renews (stale).

`sweep` is what brings work back when a worker dies. It asks Redis which
leases have ended, reads what each dead worker held, decides per message
(`leases.plan_release`: back on its queue, or a `worker_lost` answer to a
waiting realtime caller), and has `RELEASE` carry that out atomically —
only if the lease is still ended and each reservation is unchanged. Run it
from as many processes as you like: the scheduler runs it every second,
every worker every few seconds; whoever comes second finds nothing to do.
A worker killed at t=0 is back in its queue by about t=11 (lease 10 s).

`release_worker_processes` is the prompt path: a process supervisor (the local
actuator) that sees its child exit ends that worker's lease at once and
releases it, instead of waiting out the lease.

`restore_stale_reservations` is the last resort for reservations that no
lease covers (a transient failure let go for retry, a consumer that never
took a lease), older than the visibility timeout: the same move as kombu's
own periodic restore, done from outside, for when kombu's does not run (no
worker alive, or its restore lock left held by a worker or a Redis that
stopped mid-restore).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import orjson
import redis

from core.broker import scripts
from core.broker.envelope import list_of, parse_reservation
from core.broker.keys import (
    bell_key,
    held_key,
    leases_key,
    requeue_claim_key,
    unacked_index_key,
    unacked_key,
    workers_key,
)
from core.broker.leases import REPLY_TTL_S, Held, Release, plan_release
from core.broker.priorities import queue_of
from core.broker.producer import BELL_DEPTH
from core.broker.reads import live_workers

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 100  # dead workers released per pass; the rest go next pass


@dataclass
class SweepReport:
    """What one sweep did: workers released, messages requeued, realtime callers answered."""

    workers: list[str] = field(default_factory=list)
    requeued: int = 0
    answered: int = 0

    def add(self, worker_id: str, plan: list[Release]) -> None:
        self.workers.append(worker_id)
        self.requeued += sum(1 for r in plan if r.kind == "queue")
        self.answered += sum(1 for r in plan if r.kind == "reply")


def sweep(client: redis.Redis, namespace: str, *, limit: int = SWEEP_LIMIT) -> SweepReport:
    """Release the reservations of every worker whose lease has ended; what it did."""
    report = SweepReport()
    dead = client.register_script(scripts.EXPIRED)(keys=[leases_key(namespace)], args=[limit])
    if not dead:
        return report
    served = _served(client, namespace)
    for raw in dead:
        worker_id = raw.decode() if isinstance(raw, bytes) else raw
        plan = release_worker(client, namespace, worker_id, served=served)
        if plan is not None:
            report.add(worker_id, plan)
    return report


def release_worker(
    client: redis.Redis, namespace: str, worker_id: str, *, served: set[str] | None = None
) -> list[Release] | None:
    """Release what `worker_id` holds, if its lease has ended; the plan carried out, or None.

    None means nothing was done: another sweeper released it first, or it
    renewed its lease meanwhile (alive after all), or it took a reservation the
    plan missed (the next sweep covers it).
    """
    held = {
        _text(tag): _text(source)
        for tag, source in client.hgetall(held_key(namespace, worker_id)).items()
    }
    tags = list(held)
    reservations: list[bytes | None] = client.hmget(unacked_key(namespace), tags) if tags else []  # type: ignore[assignment]
    plan = plan_release(
        [Held(tag, held[tag], r) for tag, r in zip(tags, reservations, strict=True)],
        worker_id=worker_id,
        now_ms=int(time.time() * 1000),
        served=_served(client, namespace) if served is None else served,
    )
    args: list[str | bytes | int] = [worker_id]
    for item in plan:
        extra: str | int = ""
        if item.kind == "queue":
            extra = bell_key(namespace, queue_of(item.target))
        elif item.kind == "reply":
            extra = REPLY_TTL_S
        args += [item.tag, item.digest, item.kind, item.target, item.payload, extra]
    keys = [
        leases_key(namespace),
        workers_key(namespace),
        held_key(namespace, worker_id),
        unacked_key(namespace),
        unacked_index_key(namespace),
    ]
    moved = client.register_script(scripts.release_script(BELL_DEPTH))(keys=keys, args=args)
    if moved < 0:
        return None
    for item in plan:
        if item.kind == "queue":
            logger.warning(
                "job %s: its worker %s stopped; put back on %r", item.job_id, worker_id, item.target
            )
        elif item.kind == "reply":
            logger.warning(
                "job %s: its worker %s stopped; caller answered 503 (%s)",
                item.job_id,
                worker_id,
                item.reason,
            )
    logger.info("worker %s: lease ended; %d reservation(s) released", worker_id, moved)
    return plan


def expire_worker(client: redis.Redis, namespace: str, worker_id: str) -> None:
    """End `worker_id`'s lease now (it is known to be gone); the next sweep releases it."""
    client.zadd(leases_key(namespace), {worker_id: 0}, xx=True)


def release_worker_processes(
    client: redis.Redis, namespace: str, *, host: str, pids: set[int]
) -> list[str]:
    """End the leases of the workers of `pids` on `host` (processes seen exiting) and
    release what they held at once; their ids."""
    gone = [w.id for w in live_workers(client, namespace) if w.host == host and w.pid in pids]
    served = None
    for worker_id in gone:
        expire_worker(client, namespace, worker_id)
    if gone:
        served = _served(client, namespace)
    for worker_id in gone:
        release_worker(client, namespace, worker_id, served=served)
    return gone


def restore_stale_reservations(
    client: redis.Redis, namespace: str, *, older_than_s: float, limit: int = 500
) -> int:
    """Put messages reserved more than `older_than_s` ago back on their queues; how many.

    A live worker's reservations are renewed every second, so they are never
    this old; what is: a transient failure's let-go message waiting out its
    retry delay, or a reservation of a consumer that never took a lease.
    """
    unacked, index = unacked_key(namespace), unacked_index_key(namespace)
    cutoff = time.time() - older_than_s
    tags: list[bytes] = client.zrangebyscore(index, "-inf", cutoff, start=0, num=limit)  # type: ignore[assignment]
    if not tags:
        return 0
    restore = client.register_script(scripts.RESTORE)
    restored = 0
    reservations: list[bytes | None] = client.hmget(unacked, tags)  # type: ignore[assignment]
    for tag, reservation in zip(tags, reservations, strict=True):
        if reservation is None:
            continue  # acknowledged between the two reads
        envelope, queue = parse_reservation(reservation)
        restored += int(
            restore(
                keys=[unacked, index, list_of(envelope, queue)],
                args=[tag, reservation, orjson.dumps(envelope)],
            )
        )
    return restored


def claim_requeue(client: redis.Redis, namespace: str, job_id: str, *, ttl_s: float) -> bool:
    """Whether this process may requeue lost job `job_id`: the first to ask within `ttl_s`
    wins, so several schedulers reconciling at once send one message, not one each."""
    return bool(client.set(requeue_claim_key(namespace, job_id), 1, nx=True, px=int(ttl_s * 1000)))


def _served(client: redis.Redis, namespace: str) -> set[str]:
    return {queue for worker in live_workers(client, namespace) for queue in worker.queues}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
