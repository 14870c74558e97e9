"""`sluice scheduler`: the control loop.

Today it supervises `SLUICEWAY_WORKERS` local worker processes (one per GPU on a
GPU machine, CPU workers elsewhere) and replaces any that die, and runs the
transform coordinator (scheduler/transform.py) on its own thread. Queue-depth
scaling and webhook delivery join this loop as their own components.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from core.config import get_settings
from core.queue import get_redis
from scheduler.actuators.local import LocalWorkers
from scheduler.transform import start_transform_coordinator

logger = logging.getLogger(__name__)


def detect_devices() -> list[str]:
    """`cuda:0..N-1` when NVIDIA GPUs are visible, else `["cpu"]` (no torch import needed)."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            indexes = [line.strip() for line in out.splitlines() if line.strip()]
            if indexes:
                return [f"cuda:{i}" for i in indexes]
        except (subprocess.SubprocessError, OSError):
            logger.warning("nvidia-smi failed; using CPU workers", exc_info=True)
    return ["cpu"]


def run_scheduler() -> None:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    transform = start_transform_coordinator(settings, get_redis(), stop)
    workers = LocalWorkers(devices=detect_devices(), log_dir=str(settings.home / "logs"))
    logger.info("scheduler up: keeping %d worker(s) alive on %s", settings.workers, workers.devices)
    try:
        while not stop.is_set():
            workers.reconcile(settings.workers)
            stop.wait(settings.scheduler_interval_s)
    finally:
        transform.join(timeout=30)
        workers.stop_all()
        logger.info("scheduler stopped")
