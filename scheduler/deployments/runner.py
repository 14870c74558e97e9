"""The deployments loop: drives every deployment a step at a time, drains what was replaced,
and finishes endpoint creations and deletions (a `scheduler.loop.ControlLoop`).

Each tick (`deployment_interval_s`, 0.5 s by default):

1. every active deployment: read the new variants' counters (counters.py) and
   live workers, ask decisions.decide, and make the transition it names
   (store.py) — so a tripped threshold moves all traffic back within one tick;
2. variants of a replaced or rolled-back config, or removed by hand: deleted once
   nothing of theirs is queued, reserved or unfinished (their workers then stop);
   their jobs no worker started within `endpoint_drain_timeout_s` (at once if
   the variant may have no worker) fail with "variant removed";
3. endpoints `creating`: `in_service` once each variant with `min_workers` ≥ 1
   has a live worker;
4. endpoints `deleting`: removed once their queued work is done; jobs no worker
   started within `endpoint_drain_timeout_s` (at once if no variant may have a
   worker) fail with "endpoint deleted", error document and InferenceFailed
   event first, and the queues are emptied so a re-created endpoint of the same
   name never sees an old message.

Everything it knows lives in SQL and Redis: a SIGKILL between two ticks loses
nothing, and the next scheduler resumes the step it finds (its window starts
from the baseline stored when the step began).
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from core.broker import get_redis, priority_lists, queue_loads, variants_key, workers_per_queue
from core.config import Settings
from core.errors import Conflict, job_error
from core.failures import write_failure_document
from core.states import DeploymentState, EndpointStatus
from core.storage import ObjectStore, get_store
from core.tables import utcnow
from core.worker_metrics import SECONDS_BUCKETS
from scheduler.deployments import counters, store
from scheduler.deployments.decisions import (
    Plan,
    Progress,
    RollbackOn,
    Window,
    decide,
    plan_percents,
    window_between,
)
from scheduler.loop import start_loop

logger = logging.getLogger(__name__)

ENDPOINT_DELETED = "endpoint deleted"
VARIANT_REMOVED = "variant removed"
ROUTE_GRACE_S = 0.5  # beyond the API's route cache: a routed request is queued within ms


def plan_of(params: dict[str, object], provision_timeout_s: float) -> Plan:
    """The stored deployment parameters as a decisions.Plan."""
    rules = params.get("rollback_on")
    rollback_on = None
    if isinstance(rules, dict):
        rollback_on = RollbackOn(
            error_rate_percent=rules.get("error_rate_percent"),
            p99_latency_ms=rules.get("p99_latency_ms"),
            min_requests=int(rules.get("min_requests") or 20),
        )
    percents = plan_percents(
        params.get("strategy") or "all_at_once",  # type: ignore[arg-type]
        canary_percent=params.get("canary_percent"),  # type: ignore[arg-type]
        linear_step_percent=params.get("linear_step_percent"),  # type: ignore[arg-type]
    )
    return Plan(
        percents=percents,
        step_interval_s=float(params.get("step_interval_s") or 0.0),  # type: ignore[arg-type]
        baking_s=float(params.get("baking_s") or 0.0),  # type: ignore[arg-type]
        rollback_on=rollback_on,
        provision_timeout_s=provision_timeout_s,
    )


class DeploymentRunner:
    name = "deployments"

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self.redis = client or get_redis()
        self._store: ObjectStore | None = None
        self._draining_since: dict[str, float] = {}

    @property
    def object_store(self) -> ObjectStore:
        if self._store is None:
            self._store = get_store()
        return self._store

    def step(self) -> bool:
        self.drive_deployments()
        self.drain_replaced()
        self.finish_creations()
        self.finish_deletions()
        return False

    def idle(self, stop: threading.Event) -> None:
        stop.wait(self.settings.deployment_interval_s)

    def close(self) -> None:
        pass

    # --- 1. deployments ---------------------------------------------------------

    def drive_deployments(self) -> None:
        active = store.active_deployments(self.namespace)
        if not active:
            return
        workers = workers_per_queue(self.redis, self.namespace)
        for deployment in active:
            queues = [v.queue for v in deployment.new_variants]
            now_counters = counters.snapshot(self.redis, self.namespace, queues)
            window: Window | None = None
            if deployment.step_index >= 0:
                window = window_between(deployment.baseline, now_counters, SECONDS_BUCKETS)
            provisioned = all(
                workers.get(v.queue, 0) >= 1 for v in deployment.new_variants if v.min_workers >= 1
            )
            plan = plan_of(deployment.params, self.settings.deployment_provision_timeout_s)
            progress = Progress(
                step_index=deployment.step_index,
                step_started_at=deployment.step_started_at.timestamp(),
                provisioned=provisioned,
                window=window or Window(),
            )
            decision = decide(plan, progress, time.time())
            if decision.action == "advance" and decision.next_index is not None:
                percent = plan.percents[decision.next_index]
                if store.advance(
                    deployment.id,
                    step_index=deployment.step_index,
                    next_index=decision.next_index,
                    percent=percent,
                    last=decision.next_index == len(plan.percents) - 1,
                    baseline=now_counters,
                    window=window,
                ):
                    logger.info(
                        "deployment %s of %s: step %d, %g%% of traffic on the new config",
                        deployment.id,
                        deployment.endpoint,
                        decision.next_index + 1,
                        percent,
                    )
            elif decision.action == "succeed":
                if store.succeed(deployment.id, step_index=deployment.step_index, window=window):
                    logger.info("deployment %s of %s succeeded", deployment.id, deployment.endpoint)
            elif decision.action in ("rollback", "fail"):
                state = (
                    DeploymentState.ROLLED_BACK
                    if decision.action == "rollback"
                    else DeploymentState.FAILED
                )
                if store.roll_back(
                    deployment.id,
                    step_index=deployment.step_index,
                    state=state,
                    reason=decision.reason or str(state),
                    window=window,
                ):
                    logger.warning(
                        "deployment %s of %s: %s: %s",
                        deployment.id,
                        deployment.endpoint,
                        state,
                        decision.reason,
                    )

    # --- 2. replaced variants ---------------------------------------------------

    def drain_replaced(self) -> None:
        draining = store.draining_variants(self.namespace)
        now = time.monotonic()
        # When this scheduler first saw each draining (a restart starts the clock again:
        # the timeout is then later, never sooner).
        self._draining_since = {d.queue: self._draining_since.get(d.queue, now) for d in draining}
        if draining:
            for variant in draining:
                waited = now - self._draining_since[variant.queue]
                if not variant.runnable or waited >= self.settings.endpoint_drain_timeout_s:
                    # Nothing will run its queued work: fail it with the reason, empty it.
                    self._fail_queued(variant.endpoint, [variant.key], VARIANT_REMOVED)
                    self.redis.delete(*priority_lists(variant.queue))
            loads = queue_loads(self.redis, self.namespace, [d.queue for d in draining])
            # API processes route by a cached config for up to SLUICEWAY_ENDPOINT_CACHE_S:
            # until that has passed, a request may still be queued for the variant, and
            # one queued after its removal would wait for a worker that never comes.
            grace_s = self.settings.endpoint_cache_s + ROUTE_GRACE_S
            for variant in draining:
                if now - self._draining_since[variant.queue] < grace_s:
                    continue
                if loads[variant.queue].backlog:
                    continue
                if store.unfinished_jobs(variant.endpoint, [variant.key]):
                    continue
                if store.remove_variant(variant.endpoint, variant.key):
                    self.redis.srem(variants_key(self.namespace), variant.queue)
                    logger.info("variant %s/%s drained and removed", variant.endpoint, variant.key)
        for name in store.settle_rolled_back():
            logger.info("endpoint %s is in service again after its rollback", name)

    # --- 3. creations -----------------------------------------------------------

    def finish_creations(self) -> None:
        """`creating` → `in_service` once every variant with `min_workers` ≥ 1 has a live
        worker; → `failed` (with the variants that had none) if that takes longer than
        the provision timeout, as a deployment's new variants. A `failed` endpoint still
        queues requests and turns `in_service` when the workers come (or its variants'
        `min_workers` are lowered): the usual cause, no room for a worker, passes."""
        creating = store.creating_endpoints(self.namespace)
        if not creating:
            return
        workers = workers_per_queue(self.redis, self.namespace)
        timeout_s = self.settings.deployment_provision_timeout_s
        for name, creation in creating.items():
            waiting = [
                creation.names[v.queue]
                for v in creation.variants
                if v.min_workers >= 1 and workers.get(v.queue, 0) < 1
            ]
            if not waiting:
                store.mark_in_service(name)
                logger.info("endpoint %s is in service", name)
                continue
            waited_s = (utcnow() - creation.created_at).total_seconds()
            if creation.status == EndpointStatus.CREATING and waited_s >= timeout_s:
                reason = (
                    f"variant(s) {sorted(waiting)} had no live worker after {timeout_s:g} s "
                    "(SLUICEWAY_DEPLOYMENT_PROVISION_TIMEOUT_S); requests wait in the queue, "
                    "and the endpoint turns in_service when the workers come"
                )
                if store.mark_failed(name, reason):
                    logger.warning("endpoint %s failed: %s", name, reason)

    # --- 4. deletions -----------------------------------------------------------

    def finish_deletions(self) -> None:
        deleting = store.deleting_endpoints(self.namespace)
        for endpoint in deleting:
            waited = (utcnow() - endpoint.requested_at).total_seconds()
            if not endpoint.runnable or waited >= self.settings.endpoint_drain_timeout_s:
                self._fail_queued(endpoint.name, None, ENDPOINT_DELETED)
                if endpoint.queues:
                    self.redis.delete(*[lst for q in endpoint.queues for lst in priority_lists(q)])
            loads = queue_loads(self.redis, self.namespace, list(endpoint.queues))
            if any(load.backlog for load in loads.values()):
                continue
            if store.unfinished_jobs(endpoint.name):
                continue
            if store.remove_endpoint(endpoint.name):
                if endpoint.queues:
                    self.redis.srem(variants_key(self.namespace), *endpoint.queues)
                logger.info("endpoint %s: drained and deleted", endpoint.name)

    def _fail_queued(self, endpoint: str, keys: list[str] | None, what: str) -> None:
        error = job_error(Conflict(f"{what} before a worker started the job"))
        for job_id, failure_location in store.queued_job_ids(endpoint, keys):
            finished_at = utcnow()
            if not write_failure_document(
                self.object_store,
                failure_location,
                job_id=job_id,
                error=error,
                finished_at=finished_at,
            ):
                continue  # the store is down: the next tick tries again
            if store.fail_queued_job(job_id, error=error, finished_at=finished_at):
                logger.warning("job %s: failed: %s", job_id, error)


def start_deployments(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Run the deployments loop on its own thread until `stop` is set."""
    return start_loop(DeploymentRunner(settings), stop)
