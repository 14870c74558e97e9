"""Local process backend: starts, watches and stops `sluice worker` processes on this host.

A worker that exits unexpectedly (a crash, `kill -9`) is replaced on the next tick;
its unacknowledged message is redelivered by Redis after the visibility timeout.
Stopping sends SIGTERM, which Celery treats as a warm shutdown: the task in hand
finishes and is acknowledged first.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import IO

logger = logging.getLogger(__name__)

STOP_GRACE_S = 30.0


@dataclass
class WorkerProcess:
    slot: int
    device: str
    process: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)


class LocalWorkers:
    def __init__(self, *, devices: list[str], log_dir: str | None = None) -> None:
        self.devices = devices or ["cpu"]
        self.log_dir = log_dir
        self.workers: dict[int, WorkerProcess] = {}
        self.restarts = 0

    def _command(self, device: str, slot: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "cli.main",
            "worker",
            "--device",
            device,
            "--name",
            f"w{slot}",
        ]

    def _start(self, slot: int) -> WorkerProcess:
        # Round-robin over devices: slot 0 → device 0, slot 1 → device 1, ...
        device = self.devices[slot % len(self.devices)]
        output: int | IO[bytes] = subprocess.DEVNULL
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            output = open(os.path.join(self.log_dir, f"worker-{slot}.log"), "ab")  # noqa: SIM115
        process = subprocess.Popen(
            self._command(device, slot), stdout=output, stderr=subprocess.STDOUT
        )
        logger.info("started worker slot %d on %s (pid %d)", slot, device, process.pid)
        return WorkerProcess(slot=slot, device=device, process=process)

    def reconcile(self, desired: int) -> None:
        """Make exactly `desired` workers run: replace dead ones, add or stop the difference."""
        for slot, worker in list(self.workers.items()):
            code = worker.process.poll()
            if code is not None:
                logger.warning(
                    "worker slot %d (pid %d) exited with %s; replacing it",
                    slot,
                    worker.process.pid,
                    code,
                )
                del self.workers[slot]
                self.restarts += 1
        for slot in range(desired):
            if slot not in self.workers:
                self.workers[slot] = self._start(slot)
        for slot in sorted(self.workers):
            if slot >= desired:
                self._stop(self.workers.pop(slot))

    def _stop(self, worker: WorkerProcess) -> None:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
            try:
                worker.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("worker pid %d ignored SIGTERM; killing it", worker.process.pid)
                worker.process.kill()
                worker.process.wait()

    def stop_all(self) -> None:
        for worker in self.workers.values():
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in self.workers.values():
            try:
                worker.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        self.workers.clear()
