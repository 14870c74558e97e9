"""The worker's heartbeat: a thread that renews its lease every second and sweeps dead workers.

It runs apart from the thread that computes, so a model busy for an hour (or a
handler sleeping) still renews: the GIL is released by torch, XGBoost and
sleeps, and handed over every few milliseconds by pure-Python code. Each
renewal also refreshes the reserve time of every message the worker holds
(core/broker/liveness.py), so a long job is never redelivered while its worker
lives.

Every `SWEEP_EVERY_S` it also runs the broker's sweep of dead workers — a
fallback for stacks without a scheduler (which sweeps every second): with
workers alone, a dead worker's messages are back within lease + 3 s.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from core.broker import WorkerLease, renew_every_s, sweep

logger = logging.getLogger(__name__)

SWEEP_EVERY_S = 3.0


class Heartbeat:
    """Renews `lease` every `renew_every_s(lease.lease_s)` on a daemon thread until stopped."""

    def __init__(self, lease: WorkerLease, *, sweep_every_s: float = SWEEP_EVERY_S) -> None:
        self.lease = lease
        self.interval_s = renew_every_s(lease.lease_s)
        self.sweep_every_s = sweep_every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_sweep = 0.0
        self._failing = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()

    def beat(self) -> None:
        """One renewal (and a sweep when one is due); Redis trouble is logged once per outage."""
        try:
            self.lease.renew()
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self.sweep_every_s
                sweep(self.lease.redis, self.lease.namespace)
        except redis.RedisError as exc:
            if not self._failing:
                logger.warning("cannot renew the worker's lease (%s); retrying every second", exc)
            self._failing = True
            return
        except Exception:
            logger.exception("heartbeat failed; retrying")
            return
        if self._failing:
            logger.info("lease renewed again")
            self._failing = False
