"""The one shape of every control loop in the scheduler: step, idle, repeat until stopped.

A loop is an object with three methods (the `ControlLoop` protocol):

- `step() -> bool` does one pass and says whether there is more to do at once
  (True: step again without pausing, e.g. a backlog of deliveries or a plan cut
  short by its time budget);
- `idle(stop)` waits for the next pass: a fixed interval, or until something
  wakes it (a Redis bell, a finished attempt), returning early once `stop` is set;
- `close()` releases what the loop holds (threads it started, clients) after the
  last step.

`run_loop` owns what every loop needs the same way: a failed step is logged
and retried after `error_pause_s` instead of killing the thread (a database
blip must not stop webhook delivery for good) — an outage of the database or
Redis in one line, anything else with its traceback — and `close` always
runs. `start_loop` runs a loop on a named daemon thread; the scheduler's main
thread runs the scaler with `run_loop` directly.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

import redis
import sqlalchemy.exc

logger = logging.getLogger(__name__)

ERROR_PAUSE_S = 1.0
# Failures of the parts a loop depends on, not of the loop: expected during an
# outage, said in one line each pass rather than as a traceback.
OUTAGES = (sqlalchemy.exc.OperationalError, redis.RedisError, ConnectionError)


class ControlLoop(Protocol):
    name: str

    def step(self) -> bool: ...

    def idle(self, stop: threading.Event) -> None: ...

    def close(self) -> None: ...


def run_loop(
    loop: ControlLoop, stop: threading.Event, *, error_pause_s: float = ERROR_PAUSE_S
) -> None:
    """Step `loop` until `stop` is set; a failing step is logged and retried after a pause."""
    logger.info("%s up", loop.name)
    try:
        while not stop.is_set():
            try:
                more = loop.step()
            except OUTAGES as exc:
                logger.warning("%s: %s; next try in %.1f s", loop.name, exc, error_pause_s)
                stop.wait(error_pause_s)
                continue
            except Exception:
                logger.exception("%s: step failed; next try in %.1f s", loop.name, error_pause_s)
                stop.wait(error_pause_s)
                continue
            if not more:
                loop.idle(stop)
    finally:
        try:
            loop.close()
        finally:
            logger.info("%s stopped", loop.name)


def start_loop(loop: ControlLoop, stop: threading.Event) -> threading.Thread:
    """Run `loop` on its own daemon thread (named after it); join the thread to wait for it."""
    thread = threading.Thread(target=run_loop, args=(loop, stop), name=loop.name, daemon=True)
    thread.start()
    return thread
