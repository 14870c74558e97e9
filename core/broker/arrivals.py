"""When each variant queue last got a message: noted in-process by producers, flushed to Redis.

The scaler must tell an idle variant from a busy one whose jobs are so quick that
the queue looks empty whenever it samples it (a 20 ms job every few seconds never
shows in LLEN). Producers (the API, the scheduler) note each enqueue in a dict —
no I/O on the request path — and a daemon thread writes the latest times to
`arrivals_key` about once a second, in one round trip. A time lost at exit only
makes the scaler's idle clock start up to a second early.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from core.broker.keys import arrivals_key

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0


class ArrivalLog:
    """Latest enqueue time per queue of one stack (Redis URL + namespace)."""

    def __init__(self, redis_url: str, namespace: str, *, interval_s: float = FLUSH_INTERVAL_S):
        self.key = arrivals_key(namespace)
        self.interval_s = interval_s
        self._redis_url = redis_url
        self._client: redis.Redis | None = None
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def note(self, queue: str) -> None:
        with self._lock:
            self._pending[queue] = int(time.time() * 1000)
            if self._thread is None or not self._thread.is_alive():
                # Lazily, and again after a fork (threads do not survive one).
                self._thread = threading.Thread(target=self._run, name="arrival-log", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        """Write the pending times in one HSET; keep them for the next try if Redis is away."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            if self._client is None:
                self._client = redis.Redis.from_url(self._redis_url)
            self._client.hset(self.key, mapping=pending)  # type: ignore[arg-type]
        except redis.RedisError:
            logger.debug("could not record arrivals; retrying", exc_info=True)
            with self._lock:
                for queue, at_ms in pending.items():
                    self._pending[queue] = max(at_ms, self._pending.get(queue, 0))

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            self.flush()


_logs: dict[tuple[str, str], ArrivalLog] = {}
_logs_lock = threading.Lock()


def arrival_log(redis_url: str, namespace: str) -> ArrivalLog:
    log = _logs.get((redis_url, namespace))
    if log is None:
        with _logs_lock:
            log = _logs.setdefault((redis_url, namespace), ArrivalLog(redis_url, namespace))
    return log


def note_arrival(redis_url: str, namespace: str, queue: str) -> None:
    """Record that a message was just put on `queue` (cheap; flushed in the background)."""
    arrival_log(redis_url, namespace).note(queue)
