"""A worker's side of its lease: register, renew every second, leave.

The worker's heartbeat thread (workers/heartbeat.py) calls `renew` every
`renew_every_s(lease_s)` (1 s for the default 10 s lease). Each renewal, one
atomic script, moves the lease's end to now + `lease_s`, rewrites the worker's
info (device, pid, host, queues: what the scaler and the API count), and
stamps every reservation the worker holds with the current time in kombu's
`unacked_index` — which is why a job running for an hour is never mistaken
for a dead worker's and redelivered.

If a renewal finds no lease (the worker was paused, or cut off from Redis,
for longer than its lease, and a sweep released its reservations), the worker
registers again under the same id with nothing held: the batch it may still
be running was put back and may run elsewhere, and its acknowledgements of
that batch do nothing (core/broker/scripts.py ACKNOWLEDGE).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from core.broker import scripts
from core.broker.keys import held_key, leases_key, unacked_index_key, workers_key
from core.broker.recovery import expire_worker, release_worker
from core.protocol import pack

logger = logging.getLogger(__name__)


class WorkerLease:
    """The lease of worker `worker_id`, `lease_s` long; `info()` describes the worker."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        *,
        worker_id: str,
        lease_s: float,
        info: Callable[[], dict[str, Any]],
    ) -> None:
        self.redis = client
        self.namespace = namespace
        self.worker_id = worker_id
        self.lease_s = lease_s
        self._info = info
        self._register = client.register_script(scripts.REGISTER)
        self._renew = client.register_script(scripts.RENEW)
        self._registered = False

    def register(self) -> None:
        """Take the lease (before reserving anything). Raises redis.RedisError."""
        self._register(
            keys=[leases_key(self.namespace), workers_key(self.namespace)],
            args=[self.worker_id, self.lease_s, pack(self._info())],
        )
        self._registered = True

    def renew(self) -> bool:
        """Extend the lease and the reserve time of everything held; False if the lease had
        been released (then it is taken again, empty-handed). Takes the first lease if
        `register` could not. Raises redis.RedisError."""
        renewed = self._renew(
            keys=[
                leases_key(self.namespace),
                workers_key(self.namespace),
                held_key(self.namespace, self.worker_id),
                unacked_index_key(self.namespace),
            ],
            args=[self.worker_id, self.lease_s, pack(self._info()), time.time()],
        )
        if renewed >= 0:
            return True
        if not self._registered:  # Redis was away at start-up: take the first lease now
            self.register()
            return True
        logger.warning(
            "worker %s: its lease had ended and its reservations were released (paused or cut "
            "off from Redis for over %.0f s); taking a new lease",
            self.worker_id,
            self.lease_s,
        )
        self.register()
        return False

    def leave(self) -> None:
        """End the lease at shutdown; anything still held goes back to its queue."""
        expire_worker(self.redis, self.namespace, self.worker_id)
        release_worker(self.redis, self.namespace, self.worker_id)
