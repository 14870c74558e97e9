"""`sluice scheduler`: the control loop.

It supervises `SLUICEWAY_WORKERS` local worker processes (one per GPU on a
GPU machine, CPU workers elsewhere) and replaces any that die. Webhook delivery
runs beside it on its own thread (scheduler/notifier.py). Queue-depth scaling
and transform fan-out join this loop as their own components.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from core.config import get_settings
from scheduler.actuators.local import LocalWorkers
from scheduler.notifier import start_notifier
from scheduler.reconciler import start_reconciler

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

    workers = LocalWorkers(devices=detect_devices(), log_dir=str(settings.home / "logs"))
    logger.info("scheduler up: keeping %d worker(s) alive on %s", settings.workers, workers.devices)
    notifier = start_notifier(settings, stop)  # webhooks: its own thread, never blocks this loop
    start_reconciler(settings, stop)  # requeues jobs whose message was lost
    try:
        while not stop.is_set():
            workers.reconcile(settings.workers)
            stop.wait(settings.scheduler_interval_s)
    finally:
        stop.set()
        workers.stop_all()
        notifier.join(settings.webhook_timeout_s + 5)
        logger.info("scheduler stopped")
