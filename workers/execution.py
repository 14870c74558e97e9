"""What a worker does with a batch of invocations: prepare, run, complete.

The consumer (workers/consumer.py) hands over the messages it reserved; each
becomes an `InFlight` (workers/invocation.py) and goes through three phases.
What differs by mode lives in one handler per mode (workers/modes/), called
once per phase with that mode's invocations:

- prepare: the mode's bookkeeping (drop realtime calls whose caller gave up,
  start async jobs, claim transform chunks), then the payloads — inline ones
  read here (~10 µs each, no thread hop), stored ones fetched in parallel on
  the I/O pool — then the model (the worker's cache) and the rows or body.
  A multi-model variant's request for a model the worker does not hold
  starts its load on the loader pool and waits (`loading`); the consumer
  answers the pull's other requests first (workers/multi_model.py).
- run: invocations of one numeric model are merged row-wise into calls of at
  most `max_batch_size` rows, and a failing call is bisected so only the
  guilty ones fail (workers/merged.py). Python handlers run one invocation
  per call in the worker's handler host (workers/runners/host.py), stopped at
  the invocation's deadline.
- complete: the mode's outputs — realtime answers, async outputs, error
  documents and job rows, transform parts and chunk rows — then the data
  capture of what realtime and async invocations saw and said (buffered,
  workers/capture.py).

Errors of the input or the model fail only their invocation with a readable
reason. Errors of the infrastructure (S3, SQL down) mark it `transient`: it is
not acknowledged, so Redis delivers it again; after a few deliveries its job
fails for good (dead-lettered).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import redis

from core import codecs
from core.broker import PRIORITY, queue_name
from core.errors import InvocationTimeout, ModelError, SluicewayError, describe
from core.multi_model import is_multi_model
from core.protocol import Invocation, Mode
from core.storage import ObjectStore
from workers import capture
from workers.batching import BatchSettings
from workers.invocation import BatchStats, InFlight
from workers.merged import run_merged
from workers.model_cache import ModelCache
from workers.modes import ModeHandler, WorkerIO
from workers.modes.asynchronous import Asynchronous
from workers.modes.realtime import Realtime
from workers.modes.transform import Transform
from workers.multi_model import MultiModelCache
from workers.runners.base import NumericRunner, Runner

logger = logging.getLogger(__name__)

IO_THREADS = 8  # async inputs and outputs are independent objects: move them in parallel
LOAD_THREADS = 4  # multi-model loads at once (distinct models; one model loads once)


class Executor:
    def __init__(
        self,
        *,
        cache: ModelCache,
        store: ObjectStore,
        redis: redis.Redis,
        namespace: str,
        multi: MultiModelCache | None = None,
    ) -> None:
        self.cache = cache
        self.multi = multi
        self.namespace = namespace
        self._loaded_this_batch: set[tuple[str, str]] = set()  # multi-model loads
        io = WorkerIO(
            store=store,
            redis=redis,
            namespace=namespace,
            pool=ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="s3-io"),
        )
        self.modes: dict[Mode, ModeHandler] = {
            "realtime": Realtime(io),
            "async": Asynchronous(io),
            "transform": Transform(io),
        }
        self.pool = io.pool
        # Multi-model loads run here while the rest of their pull is answered.
        self.loader = ThreadPoolExecutor(max_workers=LOAD_THREADS, thread_name_prefix="model-load")
        self.capture = capture.recorder_for_worker(store)

    def prepare(self, taken: Sequence[tuple[Invocation, str | None]]) -> list[InFlight]:
        """Invocations ready to run (or already failed or skipped, saying why), in order."""
        now_ms = time.time() * 1000
        if self.multi is not None:
            self.multi.new_batch()
        items = [
            InFlight(inv=inv, tag=tag, queue_wait_s=max(now_ms - inv.enqueued_ms, 0) / 1000)
            for inv, tag in taken
        ]
        by_mode = self._by_mode(items)
        for handler, group in by_mode:
            handler.prepare(group)
        if self.multi is not None:  # multi-model ETag checks, in parallel
            refs = [i.inv.model for i in items if i.live and is_multi_model(i.inv.model)]
            if refs:
                self.multi.check_all(refs, self.pool)
        stored: dict[int, Future[bytes | None]] = {
            id(item): self.pool.submit(handler.read, item)
            for handler, group in by_mode
            if handler.reads_store
            for item in group
            if item.live
        }
        for handler, group in by_mode:
            for item in group:
                if not item.live:
                    continue
                future = stored.get(id(item))
                payload = future.result() if future is not None else handler.read(item)
                if payload is not None and item.live:
                    item.payload = payload
                    if not self._defer(handler, item):
                        self._parse(handler, item, payload)
        return items

    def run(self, items: list[InFlight], settings: BatchSettings) -> BatchStats:
        """Run the live invocations' models; fills each one's output or error."""
        stats = BatchStats()
        groups: dict[int, list[InFlight]] = defaultdict(list)
        for item in items:
            if item.live and item.runner is not None:
                groups[id(item.runner)].append(item)
        for group in groups.values():
            runner = group[0].runner
            if isinstance(runner, NumericRunner):
                self._run_merged(runner, group, settings, stats)
            else:
                for item in group:
                    self._run_handler(item, stats)
        return stats

    def complete(self, items: list[InFlight], *, model_ms: float) -> None:
        """Answer, store and record every invocation; realtime callers first."""
        self._loaded_this_batch.clear()
        for handler, group in self._by_mode(items):
            handler.complete(group, model_ms=model_ms)
        self.capture.record(items)  # buffered; written to S3 off this path

    # --- helpers ----------------------------------------------------------------

    def _by_mode(self, items: list[InFlight]) -> list[tuple[ModeHandler, list[InFlight]]]:
        """Each mode's handler with its invocations, realtime first."""
        if not items:
            return []
        first = items[0].inv.mode
        if all(item.inv.mode == first for item in items):  # the usual batch: one mode
            return [(self.modes[first], items)]
        groups: dict[Mode, list[InFlight]] = {}
        for item in items:
            groups.setdefault(item.inv.mode, []).append(item)
        return [
            (self.modes[mode], group)
            for mode, group in sorted(groups.items(), key=lambda pair: PRIORITY[pair[0]])
        ]

    def finish_loads(self, items: list[InFlight]) -> None:
        """Parse the invocations whose multi-model model was loading, once it has loaded (or
        failed to: they fail with its reason)."""
        for item in items:
            loading, item.loading = item.loading, None
            assert loading is not None and item.payload is not None
            self._parse(item.handler, item, item.payload, loading=loading)  # type: ignore[arg-type]

    def _defer(self, handler: ModeHandler, item: InFlight) -> bool:
        """Start loading a cold multi-model model on the loader pool, instead of making the
        pull's other requests wait for it; True when the invocation waits for that load.

        The consumer answers the rest of the pull first, then these (workers/consumer.py).
        """
        ref = item.inv.model
        if self.multi is None or not is_multi_model(ref):
            return False
        queue = queue_name(self.namespace, item.inv.endpoint, item.inv.variant)
        if not self.multi.needs_load(queue, ref):
            return False
        item.handler = handler
        item.loading = self.loader.submit(self.multi.lookup, queue, ref)
        return True

    def _parse(
        self,
        handler: ModeHandler,
        item: InFlight,
        payload: bytes,
        *,
        loading: Future[object] | None = None,
    ) -> None:
        try:
            if loading is not None:
                runner: Runner = loading.result()[0]  # type: ignore[index]
                item.model_cache = "miss"
            else:
                runner = self._runner(item)
            item.runner = runner
            handler.parse(item, runner, payload)
        except SluicewayError as exc:
            if exc.status >= 500 and not isinstance(exc, ModelError | InvocationTimeout):
                item.transient = True  # e.g. the artifact could not be downloaded
            else:
                item.error = exc
        except Exception as exc:
            # A loader or parser bug must fail this invocation, not the whole batch.
            logger.exception("job %s: unexpected error preparing it", item.inv.job_id)
            item.error = ModelError(f"cannot run the model: {describe(exc)}")

    def _runner(self, item: InFlight) -> Runner:
        """The invocation's model: a registered version, or one object under a prefix."""
        inv = item.inv
        if self.multi is not None and is_multi_model(inv.model):
            queue = queue_name(self.namespace, inv.endpoint, inv.variant)
            runner, hit = self.multi.lookup(queue, inv.model)
            # A request batched with the one whose model loaded waited for that load too.
            loaded_now = (queue, inv.model.artifact_uri)
            if not hit:
                self._loaded_this_batch.add(loaded_now)
            waited = not hit or loaded_now in self._loaded_this_batch
            item.model_cache = "miss" if waited else "hit"
            return runner
        return self.cache.get(inv.model)

    def _run_merged(
        self,
        runner: NumericRunner,
        group: list[InFlight],
        settings: BatchSettings,
        stats: BatchStats,
    ) -> None:
        merged = run_merged(runner.predict, group, settings.max_batch_size)
        stats.model_s += merged.model_s
        stats.calls += merged.calls
        stats.rows += merged.rows
        for item, outcome in zip(group, merged.outcomes, strict=True):
            if outcome.error is not None:
                item.error = _as_error(outcome.error)
                continue
            assert outcome.predictions is not None
            item.predictions = outcome.predictions
            if item.records:
                item.row_failures = {
                    row: _as_error(exc).detail for row, exc in outcome.row_errors.items()
                }
            else:
                accept = codecs.response_type(item.inv.content_type, item.inv.accept)
                item.output = codecs.encode_predictions(
                    item.predictions, accept, blank_lines=item.blank_lines
                )

    def _run_handler(self, item: InFlight, stats: BatchStats) -> None:
        runner: Runner | None = item.runner
        assert runner is not None and item.body is not None
        timeout_s = item.remaining_s(time.time())
        if timeout_s == 0:
            item.error = item.timed_out()
            return
        started = time.perf_counter()
        try:
            item.output = runner.invoke(
                item.body, item.inv.content_type, item.inv.accept, timeout_s=timeout_s
            )
        except InvocationTimeout as exc:
            logger.warning("job %s: %s", item.inv.job_id, exc.detail)
            item.error = item.timed_out() if item.deadline_s is not None else exc
        except SluicewayError as exc:
            item.error = exc
        except Exception as exc:
            item.error = ModelError(f"the handler raised {describe(exc)}")
        finally:
            stats.model_s += time.perf_counter() - started
            stats.calls += 1
            stats.rows += 1


def _as_error(exc: BaseException) -> SluicewayError:
    """The model's exception as the error its invocation (or record) fails with."""
    if isinstance(exc, SluicewayError):
        return exc
    return ModelError(f"the model raised {describe(exc)}")
