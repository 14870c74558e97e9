"""This host's capacity for component copies: CPU cores, memory, and GPUs (via nvidia-smi).

The local backend detects it once at start (`detect_host`); the settings
`host_cpu_cores` and `host_memory_mb` override the detected figures (a host
shared with other services reserves some for them). GPUs come from
`nvidia-smi --query-gpu=index,memory.total`; without nvidia-smi (or when it
fails) the host has none. Parsing is a pure function (`parse_nvidia_smi`).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess

from scheduler.scaling.placement import Gpu, Host

logger = logging.getLogger(__name__)

NVIDIA_SMI_QUERY = ["--query-gpu=index,memory.total", "--format=csv,noheader,nounits"]


def parse_nvidia_smi(output: str) -> tuple[Gpu, ...]:
    """`0, 143771\\n1, 143771` → (Gpu(0, 143771), Gpu(1, 143771)); bad lines are skipped."""
    gpus = []
    for line in output.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2:
            continue
        try:
            gpus.append(Gpu(index=int(parts[0]), memory_mb=int(float(parts[1]))))
        except ValueError:
            logger.warning("nvidia-smi line %r is not `index, memory MB`; skipped", line)
    return tuple(gpus)


def detect_gpus() -> tuple[Gpu, ...]:
    """The host's NVIDIA GPUs and their memory (MB); () without nvidia-smi."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return ()
    try:
        done = subprocess.run(
            [binary, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("nvidia-smi failed (%s); no GPUs for component copies", exc)
        return ()
    return parse_nvidia_smi(done.stdout)


def detect_cores() -> float:
    """Cores this process may run on (its CPU affinity), else every core."""
    try:
        return float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return float(os.cpu_count() or 1)


def detect_memory_mb() -> int:
    """Physical memory in MB (sysconf), or 1024 where it cannot be read."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))
    except (ValueError, OSError, AttributeError):
        return 1024


def detect_host(
    *, cpu_cores: float = 0.0, memory_mb: int = 0, gpus: tuple[Gpu, ...] | None = None
) -> Host:
    """This host's capacity; a non-zero `cpu_cores`/`memory_mb` (the settings) wins."""
    return Host(
        name=socket.gethostname(),
        cpu_cores=cpu_cores or detect_cores(),
        memory_mb=memory_mb or detect_memory_mb(),
        gpus=detect_gpus() if gpus is None else gpus,
    )
