"""The scaler: each tick, read every variant's backlog, decide its worker count, actuate, publish.

Reads come from scheduler/scaling/metrics.py, decisions from scheduler/scaling/policy.py, side
effects from an actuator. What it decided is published in Redis for the API
(`GET /v1/endpoints/{name}`, `/metrics`): the desired count per queue in
`desired_workers_key` and the latest scaling events per queue, newest first, in
`scaling_events_key` (the last `EVENTS_KEPT`).

Redis sees `queued` (in the lists) and `reserved` (unacknowledged, which with late
acks includes what is running) but cannot tell a running message from one a
worker holds unstarted. Each worker runs one message or batch at a time, so the
observation counts `min(reserved, workers)` as in flight and the rest as backlog;
the policy scales on their sum, so that split never changes a decision.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
import sqlalchemy.exc

from core.broker import backlogs, desired_workers_key, scaling_events_key
from core.scaling_state import ScalingEvent
from scheduler.scaling.actuators.base import Actuator, WorkerTarget
from scheduler.scaling.metrics import read_queues, read_variants
from scheduler.scaling.policy import Decision, Observation, Timings, VariantState, decide

logger = logging.getLogger(__name__)

EVENTS_KEPT = 20


# A variant at zero workers whose first message arrived is noticed this fast.
WAKE_POLL_S = 0.2


class Scaler:
    """The scaling loop (a `scheduler.loop.ControlLoop`).

    A full `tick` every `interval_s`, and at once when a variant at zero
    workers gets its first message (checked every `WAKE_POLL_S`).
    """

    name = "scaler"

    def __init__(
        self,
        *,
        namespace: str,
        redis_client: redis.Redis,
        actuator: Actuator,
        timings: Timings,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.interval_s = interval_s
        self._next_tick = 0.0
        self.namespace = namespace
        self.redis = redis_client
        self.actuator = actuator
        self.timings = timings
        self.clock = clock
        self.states: dict[str, VariantState] = {}
        self.targets: list[WorkerTarget] = []

    def step(self) -> bool:
        if time.monotonic() >= self._next_tick or self.wake_pending():
            self._next_tick = time.monotonic() + self.interval_s
            self.tick()
        return False

    def idle(self, stop: threading.Event) -> None:
        stop.wait(min(WAKE_POLL_S, self.interval_s))

    def tick(self) -> dict[str, Decision]:
        """One round: decisions per queue (empty when the reads failed)."""
        try:
            variants = read_variants(self.namespace)
            snapshot = read_queues(self.redis, self.namespace, [v.queue for v in variants])
        except (redis.RedisError, sqlalchemy.exc.SQLAlchemyError) as exc:
            # Keep the workers we have (and keep replacing crashed ones) until
            # the state can be read again.
            logger.warning("scaler cannot read the queue state (%s); holding the counts", exc)
            self.actuator.apply(self.targets)
            return {}
        now = self.clock()
        decisions: dict[str, Decision] = {}
        targets = []
        for variant in variants:
            load = snapshot.loads[variant.queue]
            current = snapshot.workers.get(variant.queue, 0)
            in_flight = min(load.reserved, current)
            observation = Observation(
                backlog=load.backlog - in_flight,
                in_flight=in_flight,
                current=current,
                last_arrival_at=snapshot.arrivals.get(variant.queue),
            )
            decision = decide(
                observation, variant.bounds, self.timings, self.states.get(variant.queue), now
            )
            decisions[variant.queue] = decision
            if decision.changed:
                logger.info(
                    "%s/%s: %d → %d workers (%s)",
                    variant.endpoint,
                    variant.variant,
                    decision.previous,
                    decision.desired,
                    decision.reason,
                )
            targets.append(
                WorkerTarget(
                    endpoint=variant.endpoint,
                    variant=variant.variant,
                    accelerator=variant.accelerator,
                    count=decision.desired,
                    framework=variant.framework,
                    waiting=load.backlog,
                )
            )
        # Forget deleted variants: a re-created one starts afresh.
        gone = sorted(set(self.states) - set(decisions))
        self.states = {queue: d.state for queue, d in decisions.items()}
        self.targets = targets
        self.actuator.apply(targets)
        self._publish(decisions, gone, now)
        return decisions

    def wake_pending(self) -> bool:
        """Whether a variant at zero workers has a message waiting (then tick now).

        One LLEN pipeline: cheap enough to ask several times a second, so a
        cold start does not wait up to a whole interval for the next tick.
        """
        sleeping = [queue for queue, state in self.states.items() if state.desired == 0]
        if not sleeping:
            return False
        try:
            return any(backlogs(self.redis, sleeping).values())
        except redis.RedisError:
            return False

    def _publish(self, decisions: dict[str, Decision], gone: list[str], now: float) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for queue in gone:
            pipe.delete(scaling_events_key(self.namespace, queue))
        key = desired_workers_key(self.namespace)
        pipe.delete(key)
        if decisions:
            pipe.hset(key, mapping={q: d.desired for q, d in decisions.items()})
        for queue, decision in decisions.items():
            if decision.changed:
                event = ScalingEvent(
                    at=now,
                    from_workers=decision.previous,
                    to_workers=decision.desired,
                    reason=decision.reason,
                )
                events = scaling_events_key(self.namespace, queue)
                pipe.lpush(events, event.to_json())
                pipe.ltrim(events, 0, EVENTS_KEPT - 1)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            logger.warning("could not publish the scaler's decisions: %s", exc)

    def close(self) -> None:
        self.actuator.close()
