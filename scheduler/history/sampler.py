"""The history sampler: every `history_interval_s`, one point per variant into Redis.

A `scheduler.loop.ControlLoop` on its own thread (`start_sampler`). Each step
reads every live variant's counters and gauges (scheduler/history/readings.py),
turns the last two readings into a point (scheduler/history/rates.py, pure) and
appends the points to capped Redis lists (core/history.py). The previous
reading lives in memory: after a restart the first step only reads, and the
plot has one gap of one interval. Variants that disappeared lose their history
on the next step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from core import history
from core.config import Settings
from scheduler.history import readings
from scheduler.history.rates import Reading, point
from scheduler.loop import start_loop

logger = logging.getLogger(__name__)


class Sampler:
    """The sampling loop (a `scheduler.loop.ControlLoop`)."""

    name = "history"

    def __init__(
        self,
        *,
        namespace: str,
        redis_client: redis.Redis,
        interval_s: float,
        retention_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace
        self.redis = redis_client
        self.interval_s = interval_s
        self.keep = history.max_points(interval_s=interval_s, retention_s=retention_s)
        self.clock = clock
        self.last: dict[str, Reading] = {}

    def step(self) -> bool:
        now = self.clock()
        current = readings.read_all(self.redis, self.namespace, now=now)
        points = {}
        for queue, reading in current.items():
            before = self.last.get(queue)
            sample = point(before, reading) if before is not None else None
            if sample is not None:
                points[queue] = sample
        if points:
            history.append(self.redis, self.namespace, points, keep=self.keep)
        gone = sorted(set(self.last) - set(current))
        history.forget(self.redis, self.namespace, gone)
        self.last = current
        return False

    def idle(self, stop: threading.Event) -> None:
        stop.wait(self.interval_s)

    def close(self) -> None:
        pass


def start_sampler(
    settings: Settings, redis_client: redis.Redis, stop: threading.Event
) -> threading.Thread:
    sampler = Sampler(
        namespace=settings.namespace,
        redis_client=redis_client,
        interval_s=settings.history_interval_s,
        retention_s=settings.history_retention_s,
    )
    logger.info(
        "history: a point per variant every %g s, %d kept", sampler.interval_s, sampler.keep
    )
    return start_loop(sampler, stop)
