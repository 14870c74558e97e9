"""Multi-model variants in one worker: load on demand, keep within a memory budget, never stale.

A multi-model variant serves every object under its S3 prefix (core/multi_model.py).
For each request `MultiModelCache.get(queue, ref)`:

1. checks the object's ETag (one HEAD per model per pull, all of a pull's
   models in parallel, remembered until the next pull): a missing object is a
   404; a replaced one (new ETag) is loaded fresh and the old copy dropped, so
   no request that arrives after a replacement is answered by the old model;
2. answers from memory when this worker holds that ETag (a hit);
3. otherwise loads it (a miss) — one load per model at a time in this worker
   however many requests ask for it at once (a per-model lock; the others wait
   and then hit). The artifact comes from the bounded disk cache or S3.

Memory: each model's `memory_bytes` is the framework's own measure where it
has one — an XGBoost booster's serialized trees (UBJ, what it holds in memory
give or take), a torch module's parameters and buffers — else the process's
resident memory growth across the load, at least the artifact's size (RSS
growth alone reads 0 when the allocator reuses freed pages, and counts other
threads' allocations too, so it is the fallback, not the rule). The variant's
`model_memory_mb` bounds their sum; the least recently used are closed to make
room (workers/model_budget.py). A worker's RSS therefore stays within the
budget plus its fixed overhead (interpreter, libraries, batch buffers).
A model bigger than the whole budget is a 422 naming both sizes; one that will not
load is a 422 with the loader's reason — and neither affects other models.

Disk: artifacts stay under `<model_cache_dir>/multi-model/<pid>/` within
SLUICEWAY_MODEL_DISK_MB, least recently used removed first; the folders of
processes that are gone are removed when a worker starts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import psutil

from core.broker.affinity import model_tag
from core.errors import InvalidInput, ModelError, NotFound, SluicewayError
from core.multi_model import key_of
from core.protocol import ModelRef
from core.storage import ObjectInfo, ObjectStore, S3Location
from workers.model_budget import ByteLru, TooLarge
from workers.runners import Runner, load_runner

logger = logging.getLogger(__name__)

MB = 1_048_576
DEFAULT_BUDGET_MB = 1024


def process_rss() -> int:
    """This process's resident memory in bytes."""
    return int(psutil.Process().memory_info().rss)


@dataclass
class LoadedModel:
    runner: Runner
    etag: str
    memory_bytes: int
    last_used_at: float  # epoch seconds
    tag: str = ""  # core/broker/affinity.py's model tag, computed once


class VariantModels:
    """One multi-model variant's models in this worker, and what happened to them."""

    def __init__(self, budget_bytes: int) -> None:
        self.memory = ByteLru(budget_bytes)
        self.loaded: dict[str, LoadedModel] = {}
        # loads, hits, misses, evictions, load_seconds_sum since last taken
        self.counters: defaultdict[str, float] = defaultdict(float)
        self.invocations: Counter[str] = Counter()  # model → requests since last published
        self.changed = True  # the loaded set changed since it was last published


class MultiModelCache:
    """Every multi-model variant's loaded models in this worker process."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        cache_dir: Path,
        device: str,
        disk_budget_bytes: int,
        rss: Callable[[], int] = process_rss,
    ) -> None:
        self.store = store
        self.device = device
        self.folder = cache_dir / "multi-model" / str(os.getpid())
        self.disk = ByteLru(disk_budget_bytes)
        self.rss = rss
        self.budgets: dict[str, int] = {}
        self.variants: dict[str, VariantModels] = {}
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._etags: dict[str, ObjectInfo] = {}  # this batch's HEADs, by object URI
        self._failed: dict[tuple[str, str], InvalidInput] = {}  # this pull's failed loads
        _remove_dead_folders(cache_dir / "multi-model")

    # --- settings and batches -------------------------------------------------

    def set_budget(self, queue: str, budget_mb: int | None) -> None:
        """The variant's `model_memory_mb` (re-read with its batching settings)."""
        budget = (budget_mb or DEFAULT_BUDGET_MB) * MB
        with self._lock:
            self.budgets[queue] = budget
            models = self.variants.get(queue)
            if models is not None and models.memory.budget_bytes != budget:
                models.memory.budget_bytes = budget
                self._evict(queue, models, models.memory.victims(0))

    def retain(self, queues: set[str]) -> None:
        """Close every model of variants no longer served (deleted, or moved elsewhere)."""
        with self._lock:
            for queue in [q for q in self.variants if q not in queues]:
                models = self.variants.pop(queue)
                for key in list(models.loaded):
                    self._drop(models, key)
                self.budgets.pop(queue, None)
                logger.info("closed the models of %s: the variant is no longer served", queue)
            for loading in [k for k in self._loading if k[0] not in queues]:
                del self._loading[loading]

    def new_batch(self) -> None:
        """Forget the ETags seen and the loads that failed: the next pull checks again."""
        self._etags = {}
        self._failed = {}

    def check_all(self, refs: Iterable[ModelRef], pool: Executor) -> None:
        """Check the ETags of a pull's models at once, on `pool` (one HEAD each, in parallel):
        a pull of 16 requests for 10 models then waits for one round trip, not ten."""
        todo = {ref.artifact_uri: ref for ref in refs if ref.artifact_uri not in self._etags}
        if len(todo) < 2:
            return  # one HEAD: `get` makes it inline
        futures = {uri: pool.submit(self._stat_or_none, ref) for uri, ref in todo.items()}
        for uri, future in futures.items():
            info = future.result()
            if info is not None:
                self._etags[uri] = info

    def _stat_or_none(self, ref: ModelRef) -> ObjectInfo | None:
        """The object's ETag and size, or None on any error (`get` raises it properly)."""
        try:
            return self.store.stat(S3Location.parse_object(ref.artifact_uri))
        except Exception:
            return None

    # --- the lookup ---------------------------------------------------------------

    def get(self, queue: str, ref: ModelRef) -> Runner:
        """The runner of model `ref` (of the variant whose queue is `queue`).

        NotFound (404) when no object has that key; InvalidInput (422) when it will
        not load or is bigger than the budget; StorageError (503) when S3 is down.
        """
        return self.lookup(queue, ref)[0]

    def needs_load(self, queue: str, ref: ModelRef) -> bool:
        """True when `ref` is not held with its current ETag (nor known to fail this pull):
        `lookup` would load it. False also when the object cannot be checked: `lookup` then
        raises the reason at once."""
        try:
            info = self._stat(ref)
        except SluicewayError:
            return False
        if (ref.artifact_uri, info.etag) in self._failed:
            return False
        with self._lock:
            models = self.variants.get(queue)
            entry = models.loaded.get(key_of(ref)) if models is not None else None
            return entry is None or entry.etag != info.etag

    def lookup(self, queue: str, ref: ModelRef) -> tuple[Runner, bool]:
        """As `get`, and whether it was a hit (False: this request waited for a load).

        A load that failed fails the pull's other requests for that object at once
        (remembered until the next pull) instead of being tried again for each.
        """
        info = self._stat(ref)
        failed = self._failed.get((ref.artifact_uri, info.etag))
        if failed is not None:
            raise failed
        try:
            return self._lookup(queue, ref, info)
        except InvalidInput as exc:
            self._failed[(ref.artifact_uri, info.etag)] = exc
            raise

    def _lookup(self, queue: str, ref: ModelRef, info: ObjectInfo) -> tuple[Runner, bool]:
        key = key_of(ref)
        with self._lock:
            models = self._models(queue)
            models.invocations[key] += 1
            runner = self._hit(models, key, info.etag)
            if runner is not None:
                return runner, True
            loading = self._loading.setdefault((queue, key), threading.Lock())
        with loading:  # one load per model at a time: the others wait, then hit
            with self._lock:
                runner = self._hit(models, key, info.etag)
                if runner is not None:  # loaded while this request waited for it
                    return runner, False
                models.counters["misses"] += 1
                stale = models.loaded.get(key)
                if stale is not None:  # replaced under the prefix: never serve the old one
                    self._drop(models, key)
                    logger.info("model %s of %s was replaced (new ETag); reloading", key, queue)
            return self._load(queue, models, ref, info), False

    def _hit(self, models: VariantModels, key: str, etag: str) -> Runner | None:
        entry = models.loaded.get(key)
        if entry is None or entry.etag != etag:
            return None
        models.memory.touch(key)
        entry.last_used_at = time.time()
        models.counters["hits"] += 1
        return entry.runner

    def _models(self, queue: str) -> VariantModels:
        models = self.variants.get(queue)
        if models is None:
            budget = self.budgets.get(queue, DEFAULT_BUDGET_MB * MB)
            models = self.variants[queue] = VariantModels(budget)
        return models

    def _stat(self, ref: ModelRef) -> ObjectInfo:
        info = self._etags.get(ref.artifact_uri)
        if info is None:
            try:
                info = self.store.stat(S3Location.parse_object(ref.artifact_uri))
            except (NotFound, InvalidInput) as exc:
                raise NotFound(
                    f"no model {ref.name!r}: there is no object {ref.artifact_uri}"
                ) from exc
            self._etags[ref.artifact_uri] = info
        return info

    # --- loading and evicting ----------------------------------------------------

    def _load(self, queue: str, models: VariantModels, ref: ModelRef, info: ObjectInfo) -> Runner:
        key = key_of(ref)
        budget = models.memory.budget_bytes
        if info.size > budget:
            raise InvalidInput(
                f"model {key!r} is {_mb(info.size)}, more than the variant's "
                f"model_memory_mb of {_mb(budget)}"
            )
        with self._lock:  # room for at least its artifact's size before loading
            self._evict(queue, models, models.memory.victims(info.size))
        path = self._download(ref, info)
        started, before = time.perf_counter(), self.rss()
        try:
            runner = load_runner(ref.framework, path, self.device)
        except (InvalidInput, ModelError) as exc:
            raise InvalidInput(f"model {key!r} will not load: {exc.detail}") from exc
        except Exception as exc:  # a loader's own error: this model fails, not the worker
            raise InvalidInput(f"model {key!r} will not load: {exc}") from exc
        seconds = time.perf_counter() - started
        memory = framework_bytes(runner) or max(self.rss() - before, info.size)
        with self._lock:
            try:
                victims = models.memory.victims(memory)
            except TooLarge as exc:
                runner.close()
                raise InvalidInput(
                    f"model {key!r} needs {_mb(memory)} loaded, more than the variant's "
                    f"model_memory_mb of {_mb(exc.budget_bytes)}"
                ) from exc
            self._evict(queue, models, victims)
            models.memory.add(key, memory)
            models.loaded[key] = LoadedModel(
                runner, info.etag, memory, time.time(), tag=model_tag(key)
            )
            models.counters["loads"] += 1
            models.counters["load_seconds_sum"] += seconds
            models.changed = True
        logger.info(
            "loaded model %s of %s in %.3f s (%s; %s of %s used)",
            key,
            queue,
            seconds,
            _mb(memory),
            _mb(models.memory.used_bytes),
            _mb(budget),
        )
        return runner

    def _evict(self, queue: str, models: VariantModels, victims: list[object]) -> None:
        for victim in victims:
            assert isinstance(victim, str)
            self._drop(models, victim)
            models.counters["evictions"] += 1
            logger.info("evicted model %s of %s (least recently used)", victim, queue)

    def _drop(self, models: VariantModels, key: str) -> None:
        entry = models.loaded.pop(key, None)
        models.memory.discard(key)
        models.changed = True
        if entry is not None:
            entry.runner.close()

    def _download(self, ref: ModelRef, info: ObjectInfo) -> Path:
        """The artifact on disk, from the disk cache or S3; keeps the cache in its budget."""
        digest = hashlib.sha256(f"{ref.artifact_uri}\n{info.etag}".encode()).hexdigest()[:24]
        path = self.folder / digest / (Path(ref.name).name or "artifact")
        with self._lock:
            if path in self.disk and path.exists():
                self.disk.touch(path)
                return path
            try:
                victims = self.disk.victims(info.size)
            except TooLarge as exc:
                raise InvalidInput(
                    f"model {ref.name!r} is {_mb(info.size)}, more than the disk cache of "
                    f"{_mb(exc.budget_bytes)} (SLUICEWAY_MODEL_DISK_MB)"
                ) from exc
            for victim in victims:
                assert isinstance(victim, Path)
                self.disk.discard(victim)
                shutil.rmtree(victim.parent, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        try:
            with partial.open("wb") as out:
                for chunk in self.store.iter_chunks(S3Location.parse_object(ref.artifact_uri)):
                    out.write(chunk)
        except NotFound as exc:
            partial.unlink(missing_ok=True)
            raise NotFound(f"no model {ref.name!r}: {ref.artifact_uri} is gone") from exc
        except SluicewayError:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(path)
        with self._lock:
            self.disk.add(path, info.size)
        return path

    # --- what the worker reports ------------------------------------------------

    def take_counters(self, queue: str) -> dict[str, float]:
        """The variant's counters since the last call, as `model_*` metric fields."""
        with self._lock:
            models = self.variants.get(queue)
            if models is None or not models.counters:
                return {}
            taken = {f"model_{name}": float(value) for name, value in models.counters.items()}
            models.counters.clear()
        return taken

    def is_multi_model(self, queue: str) -> bool:
        """True for the queue of a multi-model variant (its budget was set)."""
        return queue in self.budgets

    def held_tags(self, queue: str) -> list[str]:
        """The model tags (core/broker/affinity.py) of what this worker holds of `queue`."""
        with self._lock:
            models = self.variants.get(queue)
            return [entry.tag for entry in models.loaded.values()] if models is not None else []

    def has_changes(self, queue: str) -> bool:
        """True when the loaded set changed since it was last reported."""
        models = self.variants.get(queue)
        return models is not None and models.changed

    def take_report(self, queue: str) -> tuple[dict[str, tuple[int, float]], dict[str, int]] | None:
        """(model → (memory_bytes, last_used_at)) held now and invocations since the last
        report, or None when nothing changed."""
        with self._lock:
            models = self.variants.get(queue)
            if models is None or not (models.changed or models.invocations):
                return None
            loaded = {k: (m.memory_bytes, m.last_used_at) for k, m in models.loaded.items()}
            invocations = dict(models.invocations)
            models.invocations.clear()
            models.changed = False
        return loaded, invocations


def framework_bytes(runner: Runner) -> int | None:
    """What the framework says a loaded model holds, in bytes; None when it cannot say."""
    booster = getattr(runner, "booster", None)
    if booster is not None:  # XGBoost: its trees as UBJ, ~2 ms for a 100-tree model
        return len(booster.save_raw("ubj"))
    module = getattr(runner, "module", None)
    if module is not None and hasattr(module, "parameters"):
        tensors = [*module.parameters(), *module.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors) or None
    return None


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB"


def _remove_dead_folders(root: Path) -> None:
    """Remove the disk caches of worker processes that no longer run."""
    if not root.is_dir():
        return
    for folder in root.iterdir():
        if folder.name.isdigit() and not psutil.pid_exists(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
