"""The batching consumer: reads a variant's queue many messages per Redis round trip.

Plain Celery reads one message per round trip (~2.5 ms of worker CPU per task
here), which caps a worker near 400 requests/s however well the model batches.
This consumer, started inside the Celery worker by a bootstep, reads the same
kombu lists in bulk through the broker (core/broker/reservations.py):

- one atomic reserve pops up to N messages from a variant's priority lists,
  records each in kombu's unacknowledged hash/zset and as held by this worker.
  A worker killed at any point loses nothing: its lease (renewed every second
  by workers/heartbeat.py) ends, and a sweep puts back what it held.
- Messages are acknowledged only after their answers and outputs are stored;
  those that met a transient failure (S3 or SQL down) are let go, to be
  redelivered after the visibility timeout.
- Idle, the consumer blocks on the variants' bell lists, which producers ring
  with every message, so a lone request is picked up within a round trip.

- Batch transform runs as a three-stage pipeline, one chunk per stage. Before
  a batch of transform chunks only runs its model, the consumer takes the
  queue's next batch and prepares it (claims, reads and parses its chunks) on
  the prefetch thread; after the model, the batch is completed (output parts
  written, chunks recorded, then acknowledged) on the completion thread. So
  chunk N+1's ranged GET and parse and chunk N-1's rendering, uploads and
  transaction overlap chunk N's model call. At most one batch is in each
  stage (the next waits for it), so memory holds three chunks at most;
  nothing is acknowledged before it is stored; a prefetched batch is served
  before any other preparing starts (prepare runs on one thread at a time),
  and before the consumer stops. On an endpoint's queue, realtime and async
  messages that arrive meanwhile are served before the prefetched chunk (one
  LLEN pair tells). Realtime and async batches prefetch nothing and complete
  inline: their callers wait for exactly that.

The flush rule, how many messages of each priority a pull may take (one
transform chunk; async up to the endpoint's `max_concurrent_invocations_per_worker`)
and the packing of requests into model calls are pure decisions in
workers/batching.py; the priority order is the broker's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import redis

from core.broker import (
    PRIORITY,
    Reservations,
    WorkerLease,
    bell_key,
    live_workers,
    priority_list,
    pull_order,
    refresh_models,
    report_models,
)
from core.config import get_settings
from core.protocol import Invocation
from workers import metrics
from workers.batching import BatchSettings, flush_reason, pull_caps
from workers.execution import Executor
from workers.invocation import BatchStats, InFlight
from workers.multi_model import MultiModelCache

logger = logging.getLogger(__name__)

IDLE_WAIT_S = 0.5
MODELS_REPORT_S = 1.0  # multi-model variants: how often a worker republishes what it holds


@dataclass(frozen=True, slots=True)
class Prefetched:
    """A queue's next batch, taken and being prepared while the current one runs."""

    queue: str
    settings: BatchSettings
    first_taken: float  # time.monotonic() when it was taken
    future: Future[list[InFlight]]

    def result(self) -> list[InFlight]:
        return self.future.result()


class BatchingConsumer:
    def __init__(
        self,
        *,
        executor: Executor,
        client: redis.Redis,
        namespace: str,
        lease: WorkerLease,
        variants: Callable[[], dict[str, BatchSettings]],
        refresh_s: float,
    ) -> None:
        self.executor = executor
        self.redis = client
        self.namespace = namespace
        self.lease = lease
        self._variants = variants
        self.refresh_s = refresh_s
        self.queues: dict[str, BatchSettings] = {}
        self._reservations = Reservations(client, namespace, worker_id=lease.worker_id)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pulls = 0
        self._next_report: dict[str, float] = {}
        self._peers: list[str] = []  # the other live workers (multi-model variants)
        self._left_for_others = False
        settings = get_settings()
        self.affinity = settings.model_affinity
        self.steal_after_ms = settings.model_affinity_steal_ms
        # Transform batches complete here while the next one runs, and the next one is
        # prepared on the prefetcher meanwhile (see the module docstring).
        self._completer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-complete")
        self._completing: Future[None] | None = None
        self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-prefetch")
        self._prefetched: Prefetched | None = None

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="batching-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Warm stop: the batch in hand finishes and is acknowledged first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._drain()
        self._completer.shutdown(wait=True)
        self._prefetcher.shutdown(wait=True)

    def _run(self) -> None:
        next_refresh = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_refresh:
                    self.queues = self._variants()
                    self._refresh_peers()
                    next_refresh = time.monotonic() + self.refresh_s
                served = self._serve_prefetched(unless_in=self.queues)
                self._left_for_others = False
                for queue, settings in list(self.queues.items()):
                    served |= self.serve(queue, settings)
                if not served:
                    self._drain()  # idle: acknowledge what is stored without delay
                    wait_s = min(IDLE_WAIT_S, max(next_refresh - time.monotonic(), 0))
                    if self._left_for_others:  # look again when what we left may be stolen
                        wait_s = min(wait_s, max(self.steal_after_ms / 1000, 0.005))
                    self._wait_for_work(wait_s)
            except redis.RedisError as exc:
                logger.warning("Redis unavailable (%s); retrying in 1 s", exc)
                self._stop.wait(1.0)
            except Exception:
                logger.exception("batching consumer error; continuing in 1 s")
                self._stop.wait(1.0)
        self._serve_prefetched()  # what it took and prepared is answered before it stops
        self._drain()

    def _wait_for_work(self, timeout_s: float) -> None:
        if not self.queues:
            self._stop.wait(timeout_s)
            return
        bells = [bell_key(self.namespace, q) for q in self.queues]
        # BLPOP takes whole seconds or fractions; 0 would mean "forever".
        self.redis.blpop(bells, timeout=max(timeout_s, 0.01))

    # --- one batch ----------------------------------------------------------------

    def reserve(
        self, queue: str, limit: int, settings: BatchSettings, *, async_held: int = 0
    ) -> list[tuple[Invocation, str | None]]:
        order = pull_order(self._pulls)
        self._pulls += 1
        caps = pull_caps(order, limit=limit, settings=settings, async_held=async_held)
        steps, step_caps = [step for step, _ in caps], [cap for _, cap in caps]
        multi = self.executor.multi
        if multi is not None and self.affinity and multi.is_multi_model(queue):
            affine = self._reservations.take_affine(
                queue,
                limit=limit,
                steps=steps,
                caps=step_caps,
                mine=multi.held_tags(queue),
                others=self._peers,
                steal_after_ms=self.steal_after_ms,
            )
            taken, left = affine if affine is not None else (None, 0)
            self._left_for_others |= left > 0
        else:
            taken = self._reservations.take(queue, limit=limit, steps=steps, caps=step_caps)
        if taken is None:
            # Our lease ended (a long pause): renew it before taking anything more.
            self.lease.renew()
            return []
        return taken

    def serve(self, queue: str, settings: BatchSettings) -> bool:
        """Gather one batch from `queue`, run it, answer, acknowledge. False if it was empty."""
        prefetched = self._take_prefetched(queue)
        if prefetched is not None and self._urgent_waiting(queue):
            self._prefetched, prefetched = prefetched, None  # realtime and async go first
        if prefetched is not None:
            first_taken, requests, taken = prefetched.first_taken, prefetched.result(), []
        else:
            taken = self.reserve(queue, settings.max_batch_size, settings)
            if not taken:
                return False
            first_taken = time.monotonic()
            requests = self.executor.prepare(taken)
        while True:
            gathered = sum(r.instances for r in requests if r.live)
            reason = flush_reason(
                gathered_instances=gathered,
                first_taken_s=first_taken,
                now_s=time.monotonic(),
                last_pull_empty=not taken,
                settings=settings,
            )
            if reason:
                break
            held = sum(1 for r in requests if r.inv.mode == "async")
            taken = self.reserve(
                queue, max(settings.max_batch_size - gathered, 1), settings, async_held=held
            )
            requests += self.executor.prepare(taken)
        if self._prefetches(queue, requests):
            self._prefetch(queue, settings)
        stats = self.executor.run(requests, settings)
        # Multi-model: requests whose model is loading are answered after the rest.
        waiting = [r for r in requests if r.loading is not None]
        ready = [r for r in requests if r.loading is None] if waiting else requests
        self._finish(queue, ready, stats, reason)
        if waiting:
            self.executor.finish_loads(waiting)
            stats = self.executor.run(waiting, settings)
            self._finish(queue, waiting, stats, reason)
        return True

    def _finish(self, queue: str, requests: list[InFlight], stats: BatchStats, reason: str) -> None:
        """Store, record and acknowledge a batch: a transform batch on the completion thread
        (one in flight at most) while the next one is read and run; any other inline."""
        if not requests:
            return
        if all(r.inv.mode == "transform" for r in requests):
            self._drain()  # one completion in flight at most
            self._completing = self._completer.submit(
                self._complete, queue, requests, stats, reason
            )
        else:
            self._complete(queue, requests, stats, reason, inline=True)

    def _complete(
        self,
        queue: str,
        requests: list[InFlight],
        stats: BatchStats,
        reason: str,
        *,
        inline: bool = False,
    ) -> None:
        """Store and record the batch's outcomes, then acknowledge its messages.

        Off the consumer's thread (transform), an error is logged and the batch
        left unacknowledged: its messages come back after the visibility
        timeout, as when a worker dies mid-batch.
        """
        try:
            self.executor.complete(requests, model_ms=stats.model_s * 1000)
            self._acknowledge(queue, requests, stats, reason)
        except Exception:
            if inline:
                raise
            logger.exception("completing %d chunk(s) of %s failed", len(requests), queue)

    # --- transform prefetch ----------------------------------------------------------

    def _prefetches(self, queue: str, requests: list[InFlight]) -> bool:
        """Whether to prepare the queue's next batch while this one runs: for transform
        chunks only (not multi-model ones, whose loads the consumer schedules itself),
        one batch at a time, and not once the consumer is stopping."""
        if self._prefetched is not None or self._stop.is_set():
            return False
        multi = self.executor.multi
        if multi is not None and multi.is_multi_model(queue):
            return False
        return bool(requests) and all(r.inv.mode == "transform" for r in requests)

    def _prefetch(self, queue: str, settings: BatchSettings) -> None:
        """Take the queue's next batch now and prepare it on the prefetch thread."""
        taken = self.reserve(queue, settings.max_batch_size, settings)
        if taken:
            future = self._prefetcher.submit(self.executor.prepare, taken)
            self._prefetched = Prefetched(queue, settings, time.monotonic(), future)

    def _take_prefetched(self, queue: str) -> Prefetched | None:
        """The batch prepared for `queue`, if any. A batch prepared for another queue is
        waited for first, so the executor's prepare never runs on two threads at once."""
        prefetched = self._prefetched
        if prefetched is None:
            return None
        prefetched.future.exception()  # wait until it is prepared
        if prefetched.queue != queue:
            return None
        self._prefetched = None
        return prefetched

    def _urgent_waiting(self, queue: str) -> bool:
        """Whether realtime or async messages wait on `queue` (an endpoint's queue carries
        them beside its transform chunks): they must not wait behind a prefetched chunk."""
        pipe = self.redis.pipeline(transaction=False)
        for mode in ("realtime", "async"):
            pipe.llen(priority_list(queue, PRIORITY[mode]))
        return any(pipe.execute())

    def _serve_prefetched(self, unless_in: dict[str, BatchSettings] | None = None) -> bool:
        """Serve a prepared batch whose queue will not be served next (it left the worker's
        list, or the consumer is stopping): its messages are held by this worker."""
        prefetched = self._prefetched
        if prefetched is None or (unless_in is not None and prefetched.queue in unless_in):
            return False
        return self.serve(prefetched.queue, prefetched.settings)

    def _drain(self) -> None:
        """Wait for the transform completion in flight, if any."""
        completing, self._completing = self._completing, None
        if completing is not None:
            completing.result()

    def _refresh_peers(self) -> None:
        """The other live workers, for model-affine reserves; and keep this worker's own
        model reports from expiring while it holds models it has not served lately.

        Every live worker, not only those known to serve the variant: a worker's
        queue list lags a new endpoint by a renewal, and one that does not serve it
        simply has no report to consult.
        """
        multi = self.executor.multi
        multi_queues = [q for q in self.queues if multi is not None and multi.is_multi_model(q)]
        if multi is None or not multi_queues:
            self._peers = []
            return
        for queue in multi_queues:
            if multi.held_tags(queue):
                refresh_models(self.redis, self.namespace, queue, worker_id=self.lease.worker_id)
        if self.affinity:
            me = self.lease.worker_id
            self._peers = [w.id for w in live_workers(self.redis, self.namespace) if w.id != me]

    def _report_models(self, queue: str, multi: MultiModelCache) -> None:
        """Publish which models this worker holds of a multi-model variant: at once when that
        changed (other workers' reserves read it), else its request counts about once a second."""
        now = time.monotonic()
        if now < self._next_report.get(queue, 0.0) and not multi.has_changes(queue):
            return
        report = multi.take_report(queue)
        if report is None:
            return
        self._next_report[queue] = now + MODELS_REPORT_S
        held, invocations = report
        report_models(
            self.redis,
            self.namespace,
            queue,
            worker_id=self.lease.worker_id,
            held=held,
            invocations=invocations,
        )

    def _acknowledge(
        self, queue: str, requests: list[InFlight], stats: object, reason: str
    ) -> None:
        done = [r.tag for r in requests if r.tag and not r.transient]
        let_go = [r.tag for r in requests if r.tag and r.transient]
        counters = metrics.batch_increments(requests, stats, reason)
        multi = self.executor.multi
        if multi is not None:
            counters.update(multi.take_counters(queue))
        self._reservations.settle(queue, done=done, let_go=let_go, counters=counters)
        if multi is not None:
            self._report_models(queue, multi)
        if let_go:
            logger.warning(
                "%d message(s) of %s left for redelivery after the visibility timeout "
                "(transient failure)",
                len(let_go),
                queue,
            )
