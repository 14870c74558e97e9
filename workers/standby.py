"""A warm spare: a worker process booted ahead of need, waiting to be told what to serve.

The local scaler keeps one (`python -m workers.standby`) so that a variant
woken from zero gets a worker in a fraction of a fresh process's boot: the
interpreter, SQLAlchemy, Celery, the object-store client and the task modules
are already imported. On a 2-core machine absorbing a burst, that boot was
most of the cold start.

The spare reads one JSON line on stdin — `{"variant", "device", "name", "env",
"log"}` — applies `env` (the device pinning `CUDA_VISIBLE_DEVICES`, the
frameworks to preload), sends its output to `log`, and becomes exactly what
`sluice worker --device D --variant V --name N` would be. End of input (the
scheduler stopped or retired it) exits quietly. No framework is imported
before the order: CUDA reads `CUDA_VISIBLE_DEVICES` only when torch first
initialises it.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import sys
from typing import Any


def _set_comm(name: str) -> None:
    """Name the process in /proc/PID/comm (`ps -o comm`): spare or assigned worker."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def _log_to(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main() -> int:
    _set_comm("sluice-spare")
    # The heavy part of a worker's boot, done while nobody waits.
    import workers.celery_app
    import workers.consumer
    import workers.heartbeat  # noqa: F401
    from workers.main import run_worker

    line = sys.stdin.readline()
    if not line.strip():
        return 0
    order: dict[str, Any] = json.loads(line)
    os.environ.update(order.get("env", {}))
    if order.get("log"):
        _log_to(order["log"])
    _set_comm("sluice-worker")
    logging.basicConfig(
        level=os.environ.get("SLUICEWAY_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    run_worker(device=order["device"], variants=[order["variant"]], name=order["name"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
