"""What a process says about itself in /metrics: CPU time, resident memory, its GPU's load.

Workers add `sample(device)` to their heartbeat (every `queue_refresh_s`, 2 s),
so the API's /metrics shows every worker's CPU and memory however many hosts
they run on; the API reads its host's figures at scrape time (`host()`).
GPU figures come from NVML (`nvidia-ml-py`) for a `cuda:N` worker and are
simply absent where there is no GPU, no driver or no library.

A worker pinned by CUDA_VISIBLE_DEVICES=3 sees its GPU as cuda:0; NVML counts
physical devices, so index 0 of the visible list (3) is the one asked about.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import psutil

logger = logging.getLogger(__name__)


@functools.cache
def _me() -> psutil.Process:
    return psutil.Process()


def physical_gpu(device: str, visible: str | None) -> int | None:
    """The NVML index of `cuda:N` under CUDA_VISIBLE_DEVICES=`visible`; None for a CPU device.

    `cuda:1` with visible "4,6" → 6; `cuda` → index 0 → 4; `cuda:1` with nothing set → 1.
    """
    if not device.startswith("cuda"):
        return None
    _, _, rest = device.partition(":")
    index = int(rest) if rest.isdigit() else 0
    if visible:
        ids = [part.strip() for part in visible.split(",") if part.strip()]
        if index < len(ids) and ids[index].isdigit():
            return int(ids[index])
    return index


@functools.cache
def _nvml() -> Any:
    """The pynvml module, initialised once; None where NVML cannot start (no GPU or driver)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception as exc:  # the library, the driver or the device is missing
        logger.info("no GPU figures: NVML unavailable (%s)", exc)
        return None


def gpu(index: int) -> dict[str, float]:
    """Utilisation (0..1) and memory of one GPU; {} when NVML cannot say."""
    nvml = _nvml()
    if nvml is None:
        return {}
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        rates = nvml.nvmlDeviceGetUtilizationRates(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    except Exception as exc:
        logger.debug("NVML could not read GPU %d: %s", index, exc)
        return {}
    return {
        "gpu_utilization": rates.gpu / 100,
        "gpu_memory_used_bytes": float(memory.used),
        "gpu_memory_total_bytes": float(memory.total),
    }


def sample(device: str) -> dict[str, float]:
    """This process's CPU seconds (user + system) and resident bytes, plus its GPU's figures."""
    me = _me()
    times = me.cpu_times()
    stats = {"cpu_seconds": times.user + times.system, "rss_bytes": float(me.memory_info().rss)}
    index = physical_gpu(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if index is not None:
        stats.update(gpu(index))
    return stats


def host() -> dict[str, float]:
    """This host's CPU use (0..1 since the last call), load average and memory."""
    memory = psutil.virtual_memory()
    return {
        "cpu_utilization_ratio": psutil.cpu_percent(interval=None) / 100,
        "load1": os.getloadavg()[0],
        "memory_used_bytes": float(memory.total - memory.available),
        "memory_total_bytes": float(memory.total),
        "cpus": float(psutil.cpu_count() or 1),
    }
