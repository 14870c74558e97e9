"""A worker's side of its messages: reserve many per round trip, settle a batch in one call.

`take` runs `RESERVE`: it pops up to `limit` messages from a queue's
priority lists in the order given, and records each as reserved in kombu's
format and as held by this worker — in one atomic step, so a worker killed at
any point loses nothing: its lease ends and a sweep puts back what it held.
`settle` runs `ACKNOWLEDGE` once the batch's answers and outputs are stored:
done messages are removed, transient failures are let go (left reserved, no
longer renewed: they come back after the visibility timeout), and the
variant's counters are added to.

Example: `take("sluiceway.churn.a", limit=32, steps=(0, 3, 6, 9),
caps=(32, 32, 1, 32))` with 5 realtime and 40 async messages waiting takes
the 5 realtime calls and 27 async jobs (transform chunks one per pull).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import redis

from core.broker import scripts
from core.broker.affinity import WINDOW
from core.broker.envelope import parse_message
from core.broker.keys import (
    held_key,
    leases_key,
    metrics_key,
    models_loaded_key,
    unacked_index_key,
    unacked_key,
)
from core.broker.priorities import priority_list
from core.protocol import Invocation


class Reservations:
    """The reserve and acknowledge calls of worker `worker_id`."""

    def __init__(self, client: redis.Redis, namespace: str, *, worker_id: str) -> None:
        self.namespace = namespace
        self.worker_id = worker_id
        self._reserve = client.register_script(scripts.RESERVE)
        self._reserve_affine = client.register_script(scripts.RESERVE_AFFINE)
        self._acknowledge = client.register_script(scripts.ACKNOWLEDGE)
        self._unacked = unacked_key(namespace)
        self._index = unacked_index_key(namespace)
        self._leases = leases_key(namespace)
        self._held = held_key(namespace, worker_id)

    def take(
        self, queue: str, *, limit: int, steps: Sequence[int], caps: Sequence[int]
    ) -> list[tuple[Invocation, str | None]] | None:
        """Up to `limit` invocations of `queue` with their delivery tags, reading the priority
        `steps` in order, at most `caps[i]` from step i. None when this worker's lease has
        ended: renew it before taking more. Raises redis.RedisError."""
        keys = [self._unacked, self._index, self._leases, self._held]
        keys += [priority_list(queue, step) for step in steps]
        raw = self._reserve(keys=keys, args=[limit, time.time(), queue, self.worker_id, *caps])
        if raw is None:
            return None
        return [parse_message(message) for message in raw]

    def take_affine(
        self,
        queue: str,
        *,
        limit: int,
        steps: Sequence[int],
        caps: Sequence[int],
        mine: Collection[str],
        others: Sequence[str],
        steal_after_ms: int,
        window: int = WINDOW,
    ) -> tuple[list[tuple[Invocation, str | None]], int] | None:
        """As `take`, for a multi-model variant: messages for models this worker holds
        (`mine`, model tags), for models no worker in `others` (live worker ids) holds, or
        that waited `steal_after_ms` (core/broker/affinity.py). Returns them with how many
        were left for other workers; None when this worker's lease has ended."""
        keys = [self._unacked, self._index, self._leases, self._held]
        keys += [priority_list(queue, step) for step in steps]
        keys += [models_loaded_key(self.namespace, queue, worker) for worker in others]
        now = time.time()
        args: list[Any] = [limit, now, queue, self.worker_id, len(steps)]
        args += [int(now * 1000), steal_after_ms, window, len(mine), *mine, *caps]
        raw = self._reserve_affine(keys=keys, args=args)
        if raw is None:
            return None
        left, *messages = raw
        return [parse_message(message) for message in messages], int(left)

    def settle(
        self,
        queue: str,
        *,
        done: Sequence[str],
        let_go: Sequence[str] = (),
        counters: Mapping[str, float] | None = None,
    ) -> int:
        """Acknowledge `done`, let `let_go` be redelivered after the visibility timeout, add
        `counters` to the variant's metrics; how many of `done` this worker still held."""
        pairs = [x for pair in (counters or {}).items() for x in pair]
        acked: int = self._acknowledge(
            keys=[self._unacked, self._index, metrics_key(self.namespace, queue), self._held],
            args=[len(done), *done, len(let_go), *let_go, *pairs],
        )
        return acked
