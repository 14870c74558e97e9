"""Which variant serves a request: a per-process cache of endpoint routes.

Invocations are the hot path, so an API process keeps each endpoint's routing
table (variants, weights, model refs) for `endpoint_cache_s` (default 1 s)
instead of querying SQL per request. A weight change made through this process
is visible at once; one made through another API process within that second.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import threading
import time
from dataclasses import dataclass

import sqlalchemy.exc
from starlette.concurrency import run_in_threadpool

from api.services.endpoints import load_endpoint
from core.broker import component_variant, queue_name
from core.config import get_settings
from core.db import session_scope
from core.errors import BadRequest, NotFound, NotReady
from core.multi_model import check_target_model, target_ref
from core.protocol import ModelRef
from core.rollouts import traffic_shares
from core.states import ComponentStatus
from core.tables import Variant
from core.timeouts import DEFAULT_INVOCATION_TIMEOUT_S

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VariantRoute:
    """One variant a request may go to. `name` is its key (`a`, or `a~2` for a
    deployment's new variant: jobs and queues carry it), `public` the name callers
    see and pin with X-Target-Variant; `weight` is its effective share of traffic."""

    name: str
    weight: float
    model: ModelRef  # of a multi-model variant: the prefix as its artifact_uri, version 0
    queue: str
    component: str | None = None  # set for an inference component (name: its `ic.` label)
    multi_model_prefix: str | None = None  # serves every object under it (X-Target-Model)

    def target(self, header: str | None) -> ModelRef:
        """The model this request runs: the variant's own, or the one X-Target-Model names.

        BadRequest (400) on a multi-model variant without a valid X-Target-Model; the
        header is ignored on a one-model variant.
        """
        if self.multi_model_prefix is None:
            return self.model
        key = check_target_model(header, prefix=self.multi_model_prefix)
        return target_ref(prefix=self.multi_model_prefix, framework=self.model.framework, key=key)

    public: str = ""
    config_version: int = 1

    @property
    def shown(self) -> str:
        return self.public or self.name


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    name: str
    output_prefix: str
    variants: tuple[VariantRoute, ...]
    # Async options, for the jobs this process accepts.
    failure_prefix: str | None = None
    invocation_timeout_s: int = DEFAULT_INVOCATION_TIMEOUT_S
    components: tuple[VariantRoute, ...] = ()  # in service (not deleting)
    # When the endpoint was created (as stored): names this endpoint, not a re-created one.
    created_at: dt.datetime | None = None
    # Shadow variants of the serving config, each with its sampling share (0-100).
    shadows: tuple[tuple[VariantRoute, float], ...] = ()

    def choose(
        self, pinned: str | None, rng: random.Random, component: str | None = None
    ) -> VariantRoute:
        """The component named (X-Target-Component), else the pinned variant
        (X-Target-Variant), else one drawn by weight.

        NotFound for an unknown component or variant; BadRequest on an endpoint of
        components only without X-Target-Component.
        """
        if component:
            for route in self.components:
                if route.component == component:
                    return route
            names = [c.component for c in self.components]
            raise NotFound(
                f"endpoint {self.name!r} has no inference component {component!r}; it has {names}"
            )
        if not self.variants and not pinned:
            components = [c.component for c in self.components]
            raise BadRequest(
                f"endpoint {self.name!r} holds inference components only: "
                f"name one in X-Target-Component (one of {components})"
            )
        if pinned:
            matches = [v for v in self.variants if v.shown == pinned]
            if len(matches) == 1:
                return matches[0]
            if matches:
                # Mid-deployment the old and the new "a" both exist: split as traffic is.
                if sum(v.weight for v in matches) > 0:
                    return rng.choices(matches, weights=[v.weight for v in matches], k=1)[0]
                return matches[0]
            known = sorted({v.shown for v in self.variants})
            raise NotFound(f"endpoint {self.name!r} has no variant {pinned!r}; it has {known}")
        weights = [v.weight for v in self.variants]
        if sum(weights) <= 0:
            raise NotReady(f"endpoint {self.name!r} has no variant with a weight above 0")
        return rng.choices(self.variants, weights=weights, k=1)[0]


def load_route(name: str) -> EndpointRoute:
    namespace = get_settings().namespace
    with session_scope() as session:
        endpoint = load_endpoint(session, name)
        if endpoint.delete_requested_at is not None:
            raise NotFound(f"endpoint {name!r} is being deleted")
        shares = traffic_shares(endpoint)
        # Each config's share split by its variants' weights: a 10 % canary of a
        # config with weights a=1, b=3 gives a~2 2.5 % and b~2 7.5 %. Variants of a
        # replaced config (draining) get none.
        totals: dict[int, float] = {}
        for v in endpoint.variants:
            totals[v.config_version] = totals.get(v.config_version, 0.0) + v.weight
        shadows = tuple(
            (
                VariantRoute(
                    name=v.name,
                    public=v.display_name,
                    config_version=v.config_version,
                    weight=0.0,
                    model=variant_model(v),
                    queue=queue_name(namespace, endpoint.name, v.name),
                ),
                v.shadow_sampling_percent or 0.0,
            )
            for v in endpoint.variants
            if v.is_shadow and v.config_version == endpoint.config_version
        )
        variants = tuple(
            VariantRoute(
                name=v.name,
                public=v.display_name,
                config_version=v.config_version,
                weight=(
                    v.weight / totals[v.config_version] * shares[v.config_version] * 100.0
                    if totals[v.config_version] > 0
                    else 0.0
                ),
                model=variant_model(v),
                queue=queue_name(namespace, endpoint.name, v.name),
                multi_model_prefix=v.multi_model_prefix,
            )
            for v in endpoint.variants
            if v.config_version in shares and not v.is_shadow
        )
        components = tuple(
            VariantRoute(
                name=component_variant(c.name),
                weight=0.0,
                model=ModelRef(
                    name=c.model_version.model.name,
                    version=c.model_version.version,
                    framework=c.model_version.framework,
                    artifact_uri=c.model_version.artifact_uri,
                ),
                queue=queue_name(namespace, endpoint.name, component_variant(c.name)),
                component=c.name,
            )
            for c in endpoint.components
            if c.status == ComponentStatus.IN_SERVICE
        )
        return EndpointRoute(
            name=endpoint.name,
            output_prefix=endpoint.output_prefix,
            variants=variants,
            failure_prefix=endpoint.failure_prefix,
            invocation_timeout_s=endpoint.invocation_timeout_s,
            components=components,
            shadows=shadows,
            created_at=endpoint.created_at,
        )


def variant_model(variant: Variant) -> ModelRef:
    """The model a variant serves; of a multi-model variant, its prefix (version 0)."""
    version = variant.model_version
    if version is None:
        assert variant.multi_model_prefix is not None
        return target_ref(prefix=variant.multi_model_prefix, framework=variant.framework, key="")
    return ModelRef(
        name=version.model.name,
        version=version.version,
        framework=version.framework,
        artifact_uri=version.artifact_uri,
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
