"""Which variant serves a request: a per-process cache of endpoint routes.

Invocations are the hot path, so an API process keeps each endpoint's routing
table (variants, weights, model refs) for `endpoint_cache_s` (default 1 s)
instead of querying SQL per request. A weight change made through this process
is visible at once; one made through another API process within that second.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from dataclasses import dataclass

import sqlalchemy.exc
from starlette.concurrency import run_in_threadpool

from api.services.endpoints import load_endpoint
from core.broker import queue_name
from core.config import get_settings
from core.db import session_scope
from core.errors import NotFound, NotReady
from core.pipeline import target_step
from core.protocol import ModelRef
from core.timeouts import DEFAULT_INVOCATION_TIMEOUT_S

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VariantRoute:
    name: str
    weight: float
    model: ModelRef
    queue: str
    # A pipeline's steps as (name, framework), in order; empty for any other model.
    steps: tuple[tuple[str, str], ...] = ()

    def input_framework(self, target: str | None) -> str:
        """The framework that reads the request body: the model's, a pipeline's first
        step's, or (direct mode, `X-Target-Container`) the targeted step's; NotFound (404)
        for a step the model does not have."""
        if target is not None:
            index = target_step([name for name, _ in self.steps], target, model=self.model.name)
            return self.steps[index][1]
        return self.steps[0][1] if self.steps else self.model.framework


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    name: str
    output_prefix: str
    variants: tuple[VariantRoute, ...]
    # Async options, for the jobs this process accepts.
    failure_prefix: str | None = None
    invocation_timeout_s: int = DEFAULT_INVOCATION_TIMEOUT_S

    def choose(self, pinned: str | None, rng: random.Random) -> VariantRoute:
        """The pinned variant (X-Target-Variant), else one drawn by weight."""
        if pinned:
            for variant in self.variants:
                if variant.name == pinned:
                    return variant
            known = [v.name for v in self.variants]
            raise NotFound(f"endpoint {self.name!r} has no variant {pinned!r}; it has {known}")
        weights = [v.weight for v in self.variants]
        if sum(weights) <= 0:
            raise NotReady(f"endpoint {self.name!r} has no variant with a weight above 0")
        return rng.choices(self.variants, weights=weights, k=1)[0]


def load_route(name: str) -> EndpointRoute:
    namespace = get_settings().namespace
    with session_scope() as session:
        endpoint = load_endpoint(session, name)
        variants = tuple(
            VariantRoute(
                name=v.name,
                weight=v.weight,
                model=ModelRef(
                    name=v.model_version.model.name,
                    version=v.model_version.version,
                    framework=v.model_version.framework,
                    artifact_uri=v.model_version.artifact_uri,
                ),
                queue=queue_name(namespace, endpoint.name, v.name),
                steps=tuple(
                    (step["name"], step["framework"]) for step in v.model_version.steps or ()
                ),
            )
            for v in endpoint.variants
        )
        return EndpointRoute(
            name=endpoint.name,
            output_prefix=endpoint.output_prefix,
            variants=variants,
            failure_prefix=endpoint.failure_prefix,
            invocation_timeout_s=endpoint.invocation_timeout_s,
        )


class RouteCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, EndpointRoute]] = {}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()

    async def route(self, name: str) -> EndpointRoute:
        """The endpoint's routing table, re-read at most every `ttl_s`.

        An expired entry is still served while ONE background task re-reads it:
        under load, every request arriving in the moment it expires would
        otherwise query SQL at once (seen as a p99 spike each second).
        """
        entry = self._entries.get(name)
        if entry is None:
            return await run_in_threadpool(self.load, name)
        if time.monotonic() - entry[0] >= self.ttl_s and name not in self._refreshing:
            self._refreshing.add(name)
            task = asyncio.create_task(self._refresh(name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return entry[1]

    async def _refresh(self, name: str) -> None:
        try:
            await run_in_threadpool(self.load, name)
        except NotFound:
            self.invalidate(name)  # deleted elsewhere: the next request gets its 404
        except Exception:
            logger.warning("re-reading endpoint %s failed; keeping its routes", name, exc_info=True)
        finally:
            self._refreshing.discard(name)

    def load(self, name: str) -> EndpointRoute:
        try:
            route = load_route(name)
        except sqlalchemy.exc.OperationalError:
            # The database blinked: keep routing with what we knew rather than
            # failing every realtime call (they need no database otherwise).
            stale = self._entries.get(name)
            if stale is None:
                raise
            logger.warning("database unavailable; routing %s with its cached config", name)
            return stale[1]
        with self._lock:
            self._entries[name] = (time.monotonic(), route)
        return route

    def invalidate(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)
