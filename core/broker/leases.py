"""Worker leases: who is alive, and what happens to a dead worker's reservations (pure).

Every worker holds a lease in Redis that ends `lease_s` after its last
renewal (`SLUICEWAY_WORKER_LEASE_S`, 10 s by default) and renews it every
`renew_every_s(lease_s)` (1 s) from a thread of its own, so a model busy for an
hour still renews. Every message it reserves is recorded as held by it. When
a lease ends, a sweep (the scheduler's, every second, and every live
worker's, every few seconds) releases what the dead worker held:

- async and transform messages go back to the consuming end of the list they
  came from, and run next on another worker (their job rows guard against a
  second finish);
- a realtime call goes back too while its caller still waits and another live
  worker serves its variant; otherwise its caller is answered at once with a
  `worker_lost` failure (HTTP 503), instead of waiting out its timeout.

Worked example (defaults: lease 10 s, renewal 1 s, scheduler sweep 1 s): a
worker SIGKILLed at t=0 last renewed at t≥-1, so its lease ends by t=9..10,
and the next sweep releases its messages by t≈11. A realtime call with 60 s
left is retried on another worker then; one whose deadline was t=8 got its
504 from its API process at t=8, and the sweep's late 503 is ignored. Under the
local backend the scheduler sees its child exit and ends the lease at once:
the work is back within about a second.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Literal

import orjson

from core.broker.envelope import invocation_of, list_of, parse_reservation
from core.errors import WorkerLost, error_kind
from core.protocol import Reply, pack

# How long a realtime answer list lives after its last answer (the API process
# that owns it deletes it on exit; this frees it if that process died).
REPLY_TTL_S = 120


def new_worker_id(name: str, host: str) -> str:
    """A worker's identity for its whole life: `churn-a-3f9c1e@host1` for name `churn-a`.

    The random part keeps two workers apart even when they share a name and a
    host (a container restarted with the same hostname, two `--name gpu0`).
    """
    return f"{name}-{uuid.uuid4().hex[:6]}@{host}"


def renew_every_s(lease_s: float) -> float:
    """How often a worker renews a lease of `lease_s`: 1 s for 10 s; a fifth of shorter ones,
    so at least four renewals in a row must fail before a live worker is presumed dead."""
    return min(1.0, lease_s / 5)


@dataclass(frozen=True, slots=True)
class Held:
    """One reservation of a dead worker, as read before its release."""

    tag: str
    source: str  # the priority list the message was taken from
    reservation: bytes | None  # kombu's `[message, exchange, queue]`; None once acknowledged


@dataclass(frozen=True, slots=True)
class Release:
    """What to do with one reservation of a dead worker (see `plan_release`)."""

    tag: str
    digest: str  # SHA-1 of the reservation as read: moved only if still the same
    kind: Literal["queue", "reply", "drop"]
    target: str = ""  # the list to push to: the message's queue list, or a reply list
    payload: bytes = b""
    job_id: str = ""
    reason: str = ""


def plan_release(
    held: list[Held], *, worker_id: str, now_ms: int, served: set[str]
) -> list[Release]:
    """What to do with each reservation `worker_id` held when its lease ended.

    `served` are the queues at least one live worker serves. Async and transform
    messages always go back. A realtime call goes back if its deadline has not
    passed and `served` has its queue; else its caller gets a `worker_lost`
    reply: deadline 5 s away and another worker on the queue → "queue";
    deadline passed, or no other worker → "reply" with the reason.

    Messages going back are listed newest first: each is pushed to the end
    consumers pop from, so the oldest ends up next in line, as it was.
    """
    plan = []
    enqueued: dict[str, int] = {}
    for item in held:
        if item.reservation is None:
            plan.append(Release(tag=item.tag, digest="", kind="drop"))
            continue
        digest = hashlib.sha1(item.reservation).hexdigest()
        envelope, queue = parse_reservation(item.reservation)
        invocation = invocation_of(envelope)
        back = Release(
            tag=item.tag,
            digest=digest,
            kind="queue",
            target=item.source or list_of(envelope, queue),
            payload=orjson.dumps(envelope),
            job_id=invocation.job_id,
        )
        enqueued[item.tag] = invocation.enqueued_ms
        if invocation.mode != "realtime":
            plan.append(back)
            continue
        if invocation.deadline_ms is not None and now_ms >= invocation.deadline_ms:
            reason = "its deadline passed before another worker could take it"
        elif queue not in served:
            reason = (
                f"no other live worker serves variant {invocation.endpoint}/{invocation.variant}"
            )
        else:
            plan.append(back)
            continue
        if invocation.reply_to is None:
            plan.append(Release(tag=item.tag, digest=digest, kind="drop", job_id=back.job_id))
            continue
        error = WorkerLost(f"worker {worker_id} stopped while running this request, and {reason}")
        reply = Reply(
            job_id=invocation.job_id, ok=False, error_kind=error_kind(error), detail=error.detail
        )
        plan.append(
            Release(
                tag=item.tag,
                digest=digest,
                kind="reply",
                target=invocation.reply_to,
                payload=pack(reply.to_wire()),
                job_id=invocation.job_id,
                reason=reason,
            )
        )
    return sorted(plan, key=lambda r: -enqueued.get(r.tag, 0) if r.kind == "queue" else 0)
