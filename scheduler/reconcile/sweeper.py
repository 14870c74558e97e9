"""The lease sweeper: every second, puts back what dead workers held (a `ControlLoop`).

A worker's lease ends `worker_lease_s` (10 s) after its last renewal; this
loop's pass (core/broker/recovery.py `sweep`) then returns the worker's
async and transform messages to their queues and either requeues or answers
its realtime calls. With the default settings a SIGKILLed worker's work is
back in its queue within about 11 s (lease 10 s + this loop's 1 s); under the
local backend the actuator ends the lease as soon as it sees the process exit,
so within about a second. Safe to run in several schedulers at once.
"""

from __future__ import annotations

import logging
import threading

import redis

from core.broker import SweepReport, get_redis, sweep
from core.config import Settings
from scheduler.loop import start_loop

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 1.0


class LeaseSweeper:
    """One `sweep` per pass, `interval_s` apart."""

    name = "lease-sweeper"

    def __init__(
        self, *, client: redis.Redis, namespace: str, interval_s: float = SWEEP_INTERVAL_S
    ) -> None:
        self.redis = client
        self.namespace = namespace
        self.interval_s = interval_s
        self.last = SweepReport()

    def step(self) -> bool:
        self.last = sweep(self.redis, self.namespace)
        if self.last.workers:
            logger.warning(
                "released %d dead worker(s) %s: %d message(s) requeued, %d realtime caller(s) "
                "answered",
                len(self.last.workers),
                ", ".join(self.last.workers),
                self.last.requeued,
                self.last.answered,
            )
        return False

    def idle(self, stop: threading.Event) -> None:
        stop.wait(self.interval_s)

    def close(self) -> None:
        pass


def start_sweeper(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Run the lease sweeper every second on its own thread until `stop` is set."""
    return start_loop(LeaseSweeper(client=get_redis(), namespace=settings.namespace), stop)
