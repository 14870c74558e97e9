"""The shadow comparer: pairs each shadow copy's answer with the production answer it
shadows, off the hot path (a `scheduler.loop.ControlLoop`).

Workers push shadow answers to `shadow-replies`; API processes keep the production
answer under `shadow-prod:<copy id>` (api/realtime/shadow.py). Each tick takes up
to `BATCH` answers, looks their production answers up in one round trip, and
keeps each pair (core/shadow_compare.make_pair) on the shadow's capped list,
newest first (`KEEP` pairs). An answer whose production record is not there yet
waits up to `WAIT_S`; then it is dropped (the production caller timed out).
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from core.broker import get_redis, shadow_pairs_key, shadow_production_key, shadow_replies_key
from core.config import Settings
from core.protocol import pack, unpack
from core.shadow_compare import make_pair
from core.tables import public_variant_name
from scheduler.loop import start_loop

logger = logging.getLogger(__name__)

BATCH = 500
KEEP = 10_000
WAIT_S = 60.0
TICK_S = 0.5


class ShadowComparer:
    name = "shadow-comparer"

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.namespace = settings.namespace
        self.redis = client or get_redis()
        self.waiting: dict[str, tuple[float, dict[str, object]]] = {}

    def step(self) -> bool:
        raw: list[bytes] = self.redis.lpop(shadow_replies_key(self.namespace), BATCH) or []  # type: ignore[assignment]
        now = time.monotonic()
        for item in raw:
            reply = unpack(item)
            self.waiting.setdefault(str(reply["job_id"]), (now, reply))
        if not self.waiting:
            return False
        ids = list(self.waiting)
        records: list[bytes | None] = self.redis.mget(  # type: ignore[assignment]
            [shadow_production_key(self.namespace, i) for i in ids]
        )
        pipe = self.redis.pipeline(transaction=False)
        for copy_id, record in zip(ids, records, strict=True):
            seen_at, reply = self.waiting[copy_id]
            if record is None:
                if now - seen_at > WAIT_S:
                    del self.waiting[copy_id]
                continue
            del self.waiting[copy_id]
            production = unpack(record)
            key = shadow_pairs_key(
                self.namespace,
                str(production["endpoint"]),
                public_variant_name(str(production["shadow"])),
            )
            pipe.lpush(key, pack(make_pair(production, reply)))
            pipe.ltrim(key, 0, KEEP - 1)
            pipe.delete(shadow_production_key(self.namespace, copy_id))
        pipe.execute()
        return len(raw) >= BATCH

    def idle(self, stop: threading.Event) -> None:
        stop.wait(TICK_S)

    def close(self) -> None:
        pass


def start_shadow_comparer(settings: Settings, stop: threading.Event) -> threading.Thread:
    return start_loop(ShadowComparer(settings), stop)
