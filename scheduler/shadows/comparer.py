"""The shadow comparer: pairs each shadow copy's answer with the production answer it
shadows, off the hot path (a `scheduler.loop.ControlLoop`).

Workers push shadow answers to `shadow-replies`; API processes keep the production
answer under `shadow-prod:<copy id>` (api/realtime/shadow.py). Each tick takes up
to `BATCH` answers, looks their production answers up in one round trip, and
keeps each pair (core/shadow_compare.make_pair) on the shadow's capped list,
newest first (`KEEP` pairs). An answer whose production record is not there yet
waits up to `WAIT_S`; then it is dropped (the production caller timed out). A copy
of an async job is compared with the job's output once the job has ended (read
from the object store), waiting up to `JOB_WAIT_S`; the job's run time stands for
production's latency.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from core.broker import get_redis, shadow_pairs_key, shadow_production_key, shadow_replies_key
from core.config import Settings
from core.db import session_scope
from core.protocol import pack, unpack
from core.shadow_compare import make_pair
from core.states import JOB_UNFINISHED, JobStatus
from core.storage import S3Location, get_store
from core.tables import Job, public_variant_name
from scheduler.loop import start_loop

logger = logging.getLogger(__name__)

BATCH = 500
KEEP = 10_000
WAIT_S = 60.0
JOB_WAIT_S = 600.0  # an async job's copy waits this long for the job to end
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
            production = unpack(record)
            if "job_id" in production:
                # An async job's copy: production's answer is the job's output, once it ends.
                answer = self._job_answer(str(production["job_id"]))
                if answer is None:
                    if now - seen_at > JOB_WAIT_S:
                        del self.waiting[copy_id]
                    continue
                production.update(answer)
            del self.waiting[copy_id]
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

    def _job_answer(self, job_id: str) -> dict[str, object] | None:
        """An async job's answer as a production record's fields; None while it runs."""
        with session_scope() as session:
            job = session.get(Job, job_id)
            if job is None or job.status in JOB_UNFINISHED:
                return None
            status, location = job.status, job.output_location
            content_type = job.output_content_type
            started, finished = job.started_at, job.finished_at
        took_ms = (finished - started).total_seconds() * 1000 if started and finished else 0.0
        if status != JobStatus.SUCCEEDED:
            return {"ok": False, "body": b"", "model_ms": took_ms}
        try:
            body = get_store().get_bytes(S3Location.parse_object(location))
        except Exception:
            logger.warning("job %s: output not readable for its shadow", job_id, exc_info=True)
            return {"ok": False, "body": b"", "model_ms": took_ms}
        return {"ok": True, "body": body, "content_type": content_type, "model_ms": took_ms}

    def idle(self, stop: threading.Event) -> None:
        stop.wait(TICK_S)

    def close(self) -> None:
        pass


def start_shadow_comparer(settings: Settings, stop: threading.Event) -> threading.Thread:
    return start_loop(ShadowComparer(settings), stop)
