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
from typing import Any

import redis
import sqlalchemy.exc

from core import component_state
from core.broker import backlogs, desired_workers_key, scaling_events_key
from core.component_state import ComponentPlacements
from core.scaling_state import ScalingEvent
from scheduler.scaling.actuators.base import Actuator, WorkerTarget
from scheduler.scaling.components import (
    ComponentConfig,
    answered,
    read_components,
    remove_drained,
)
from scheduler.scaling.metrics import QueueSnapshot, read_queues, read_variants
from scheduler.scaling.placement import Host, HostFree, Placement, Want, place
from scheduler.scaling.policy import (
    Decision,
    Observation,
    Timings,
    VariantState,
    decide,
    invocation_rate,
)

logger = logging.getLogger(__name__)

EVENTS_KEPT = 20


# A variant at zero workers whose first message arrived is noticed this fast.
WAKE_POLL_S = 0.2

# A deleted component is removed once its queue is empty and nothing arrived for
# this long (an API process may route to it from its route cache for a second).
DRAIN_QUIET_S = 3.0

# The invocations target reads the answered rate over this window.
RATE_WINDOW_S = 60.0


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
        # Per component queue: (time, answered ever) samples for the invocations target.
        self._answered: dict[str, tuple[tuple[float, float], ...]] = {}
        # Per pending component: (wanted, placed) when its shortfall was last logged.
        self._pending: dict[str, tuple[int, int]] = {}

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
            components = read_components(self.namespace)
            snapshot = read_queues(
                self.redis,
                self.namespace,
                [v.queue for v in variants] + [c.queue for c in components],
            )
            counted = answered(
                self.redis,
                self.namespace,
                [c.queue for c in components if c.bounds.target_invocations_per_minute > 0],
            )
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
        component_targets, published, hosts, drained = self._components(
            components, snapshot, counted, decisions, now
        )
        targets.extend(component_targets)
        # Forget deleted variants: a re-created one starts afresh.
        gone = sorted(set(self.states) - set(decisions))
        self.states = {queue: d.state for queue, d in decisions.items()}
        self._answered = {q: s for q, s in self._answered.items() if q in decisions}
        self.targets = targets
        self.actuator.apply(targets)
        self._publish(decisions, gone, now, published, hosts)
        for config in drained:
            try:
                remove_drained(self.redis, self.namespace, config)
            except (redis.RedisError, sqlalchemy.exc.SQLAlchemyError) as exc:
                logger.warning("could not remove drained %s (%s); next tick", config.key, exc)
        return decisions

    def _components(
        self,
        components: list[ComponentConfig],
        snapshot: QueueSnapshot,
        counted: dict[str, float],
        decisions: dict[str, Decision],
        now: float,
    ) -> tuple[
        list[WorkerTarget],
        dict[str, ComponentPlacements],
        list[dict[str, Any]],
        list[ComponentConfig],
    ]:
        """Decide each component's copies, place them, and name the drained deleted ones.

        Adds each component's decision to `decisions`. Returns the component targets,
        what to publish per component queue and per host, and the components to remove.
        """
        wanted: list[tuple[ComponentConfig, Decision, int]] = []
        drained: list[ComponentConfig] = []
        for config in components:
            load = snapshot.loads[config.queue]
            quiet_s = now - snapshot.arrivals.get(config.queue, 0.0)
            if config.deleting and load.backlog == 0 and quiet_s >= DRAIN_QUIET_S:
                drained.append(config)
                continue
            samples = self._answered.get(config.queue, ())
            if config.queue in counted:
                window_start = now - RATE_WINDOW_S
                samples = (
                    *(x for x in samples if x[0] >= window_start),
                    (now, counted[config.queue]),
                )
                self._answered[config.queue] = samples
            current = snapshot.workers.get(config.queue, 0)
            in_flight = min(load.reserved, current)
            observation = Observation(
                backlog=load.backlog - in_flight,
                in_flight=in_flight,
                current=current,
                last_arrival_at=snapshot.arrivals.get(config.queue),
                invocations_per_minute=invocation_rate(samples),
            )
            decision = decide(
                observation,
                config.bounds,
                config.timings(self.timings),
                self.states.get(config.queue),
                now,
            )
            decisions[config.queue] = decision
            if decision.changed:
                logger.info(
                    "%s: %d → %d copies (%s)",
                    config.key,
                    decision.previous,
                    decision.desired,
                    decision.reason,
                )
            wanted.append((config, decision, load.backlog))

        view = self.actuator.placement_view()
        targets: list[WorkerTarget] = []
        published: dict[str, ComponentPlacements] = {}
        if view is None:  # the backend places (Kubernetes) or nothing runs copies
            for config, decision, waiting in wanted:
                targets.append(_component_target(config, decision.desired, waiting, ()))
                published[config.queue] = ComponentPlacements(desired=decision.desired)
            return targets, published, [], drained
        # Work waiting first: when hosts are short, an idle component yields.
        order = sorted(wanted, key=lambda item: item[2] == 0)
        outcome = place(
            view.hosts,
            [Want(c.key, c.compute, d.desired, c.priority) for c, d, _ in order],
            view.running,
            view.draining,
        )
        pending_now: dict[str, tuple[int, int]] = {}
        for config, decision, waiting in wanted:
            placements = tuple(outcome.placements.get(config.key, ()))
            targets.append(_component_target(config, len(placements), waiting, placements))
            reason = outcome.pending.get(config.key)
            short = (decision.desired, len(placements)) if reason else None
            if short is not None and short != self._pending.get(config.key):
                # Once per change of wanted/placed, not every tick the free room moves.
                logger.warning(
                    "%s: %d copies wanted, not placed: %s",
                    config.key,
                    decision.desired - len(placements),
                    reason,
                )
            if short is not None:
                pending_now[config.key] = short
            published[config.queue] = ComponentPlacements(
                desired=decision.desired,
                placements=[_placement_json(p) for p in placements],
                pending_reason=reason,
            )
        self._pending = pending_now
        hosts = [_host_json(host, outcome.free.get(host.name)) for host in view.hosts]
        return targets, published, hosts, drained

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

    def _publish(
        self,
        decisions: dict[str, Decision],
        gone: list[str],
        now: float,
        components: dict[str, ComponentPlacements] | None = None,
        hosts: list[dict[str, Any]] | None = None,
    ) -> None:
        pipe = self.redis.pipeline(transaction=True)
        component_state.publish(pipe, self.namespace, components or {}, hosts or [])
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


def _component_target(
    config: ComponentConfig, count: int, waiting: int, placements: tuple[Placement, ...]
) -> WorkerTarget:
    gpu = config.compute.gpus > 0 or config.compute.gpu_memory_mb > 0
    return WorkerTarget(
        endpoint=config.endpoint,
        variant=config.variant,
        accelerator="gpu" if gpu else "cpu",
        count=count,
        framework=config.framework,
        waiting=waiting,
        compute=config.compute,
        placements=placements,
    )


def _placement_json(placement: Placement) -> dict[str, Any]:
    return {
        "host": placement.host,
        "cpu_cores": placement.compute.cpu_cores,
        "memory_mb": placement.compute.memory_mb,
        "gpus": list(placement.gpus),
        "gpu_memory_mb": placement.compute.gpu_memory_mb,
    }


def _host_json(host: Host, free: HostFree | None) -> dict[str, Any]:
    return {
        "name": host.name,
        "cpu_cores": host.cpu_cores,
        "memory_mb": host.memory_mb,
        "gpus": [
            {
                "index": gpu.index,
                "memory_mb": gpu.memory_mb,
                "free_memory_mb": max(free.gpu_free_mb.get(gpu.index, 0), 0)
                if free is not None
                else gpu.memory_mb,
            }
            for gpu in host.gpus
        ],
        "free_cpu_cores": round(max(free.cpu_cores, 0.0), 3) if free else host.cpu_cores,
        "free_memory_mb": max(free.memory_mb, 0) if free else host.memory_mb,
    }
