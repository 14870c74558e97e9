"""Loaded models per worker: download from the object store once, keep the hottest loaded.

Artifacts land in `model_cache_dir` under a name derived from their URI, written
to a temporary file and renamed, so a crash never leaves a half file that looks
complete. Loaded runners are kept in least-recently-used order up to
`model_cache_size`; beyond it the coldest is dropped (and its memory with it,
in the handler host too for a python handler: workers/runners/host.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

from core import pipeline
from core.errors import InvalidInput, ModelError, NotFound, SluicewayError
from core.pipeline import PipelineStep
from core.protocol import ModelRef
from core.storage import ObjectStore, S3Location
from workers.runners import Runner, load_runner
from workers.runners.host import HandlerHost

logger = logging.getLogger(__name__)


class ModelCache:
    def __init__(
        self,
        *,
        store: ObjectStore,
        cache_dir: Path,
        device: str,
        capacity: int,
        handler_host: HandlerHost | None = None,
    ) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self.device = device
        self.capacity = capacity
        self.handler_host = handler_host
        self._loaded: OrderedDict[str, Runner] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ref: ModelRef) -> Runner:
        with self._lock:
            runner = self._loaded.get(ref.key)
            if runner is not None:
                self._loaded.move_to_end(ref.key)
                return runner
            runner = self._load(ref)
            self._loaded[ref.key] = runner
            while len(self._loaded) > self.capacity:
                evicted, old = self._loaded.popitem(last=False)
                old.close()
                logger.info("evicted model %s from the cache", evicted)
            return runner

    def _load(self, ref: ModelRef) -> Runner:
        path = self._download(ref)
        try:
            if ref.framework == pipeline.PIPELINE:
                return self._load_pipeline(path)
            return load_runner(ref.framework, path, self.device, handler_host=self.handler_host)
        except (InvalidInput, ModelError) as exc:
            raise ModelError(f"cannot load model {ref.key}: {exc.detail}") from exc

    def _load_pipeline(self, path: Path) -> Runner:
        """Every step of a pipeline, loaded apart from the cache's own entries: the
        pipeline is one entry, evicted (and its steps closed) as one."""
        from workers.runners.pipeline import PipelineRunner

        loaded: list[tuple[PipelineStep, Runner]] = []
        try:
            for step in pipeline.loads(path.read_bytes()):
                ref = ModelRef(step.model, step.version, step.framework, step.artifact_uri)
                try:
                    loaded.append((step, self._load(ref)))
                except ModelError as exc:
                    raise ModelError(f"step {step.name!r}: {exc.detail}") from exc
        except BaseException:
            for _step, runner in loaded:
                runner.close()
            raise
        return PipelineRunner(loaded)

    def _download(self, ref: ModelRef) -> Path:
        location = S3Location.parse(ref.artifact_uri)
        digest = hashlib.sha256(ref.artifact_uri.encode()).hexdigest()[:16]
        folder = self.cache_dir / f"{ref.name}-{digest}"
        path = folder / (Path(location.key).name or "artifact")
        if path.exists():
            return path
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + f".part-{os.getpid()}")
        try:
            with partial.open("wb") as out:
                for chunk in self.store.iter_chunks(location):
                    out.write(chunk)
        except NotFound as exc:
            raise ModelError(f"model {ref.key}: artifact {ref.artifact_uri} is gone") from exc
        except SluicewayError:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(path)
        logger.info("downloaded model %s from %s", ref.key, ref.artifact_uri)
        return path
