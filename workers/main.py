"""`sluice worker`: one Celery worker process pinned to one device.

One process per device: `--device cuda:N` runs every model on GPU N, `--device
cpu` on the host. A CUDA device on a machine without one falls back to the CPU
and says so. The solo pool runs one request at a time in the consuming process,
so models load once and stay hot.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys

from core.config import get_settings

logger = logging.getLogger(__name__)


def resolve_device(requested: str) -> str:
    if not requested.startswith("cuda"):
        return "cpu"
    import torch

    index = int(requested.split(":", 1)[1]) if ":" in requested else 0
    if not torch.cuda.is_available():
        logger.warning("%s requested but no CUDA GPU is available; running on cpu", requested)
        return "cpu"
    if index >= torch.cuda.device_count():
        raise SystemExit(
            f"--device {requested}: this machine has {torch.cuda.device_count()} GPU(s)"
        )
    torch.cuda.set_device(index)
    fraction = get_settings().worker_gpu_memory_fraction
    if fraction > 0:
        # An inference component copy sharing the device: the caching allocator
        # refuses to grow past its share (an OOM error in this process, not its neighbours').
        torch.cuda.set_per_process_memory_fraction(fraction, index)
        logger.info(
            "cuda:%d: this worker may use %.1f%% of the GPU's memory", index, fraction * 100
        )
    return f"cuda:{index}"


def run_worker(*, device: str, variants: list[str], name: str | None) -> None:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    resolved = resolve_device(device)
    os.environ["SLUICEWAY_WORKER_DEVICE"] = resolved
    os.environ["SLUICEWAY_WORKER_VARIANTS"] = ",".join(variants)
    get_settings.cache_clear()
    threads = get_settings().compute_threads
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))

    # Import the frameworks now, not on the first request. The scaler names only
    # the one its variant's model needs, so a cold start skips torch (seconds of
    # a small machine's CPU) for an XGBoost or python-handler model.
    for framework in get_settings().preload_frameworks:
        importlib.import_module(framework)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)

    from core.broker import new_worker_id
    from workers.celery_app import app

    # The worker's id, and its lease's: unique even if two share a name and a host.
    hostname = new_worker_id(name or "worker", socket.gethostname())
    app.worker_main(
        [
            "worker",
            "--pool=solo",
            f"--hostname={hostname}",
            f"--queues={app.conf.task_default_queue}",
            f"--loglevel={settings.log_level}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
