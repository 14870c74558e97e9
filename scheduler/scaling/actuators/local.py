"""Local process backend: runs `sluice worker --variant ENDPOINT/VARIANT` processes on this host.

Each tick `apply` moves the processes towards the scaler's counts per variant:
- GPU variants get one process per GPU device, never two on one device:
  a free device is picked round-robin and the process sees only it
  (`CUDA_VISIBLE_DEVICES=N`, `--device cuda`). On a host without GPUs they
  run as CPU workers.
- CPU workers share `cpu_slots` (one per core by default). When the variants
  want more than the machine has, the slots go round-robin (`share_slots`).
- Scale-in sends SIGTERM: Celery's warm shutdown finishes the work in hand and
  hands back what it reserved but did not start. A stopping process still counts
  against its variant's count and the machine's slots until it has exited (or
  was killed after `stop_grace_s`), so neither `max_workers` nor the budget is
  exceeded while it drains.
- A process that exits on its own (a crash, `kill -9`) is replaced on the next
  tick; one that keeps dying within seconds of its start is restarted with a
  growing delay (2, 4, ... 60 s). Every exit is reported to `on_exit` with the
  process ids, which the scheduler wires to the broker: the dead worker's
  lease ends at once and what it held goes back to its queues within the tick,
  instead of after its lease (10 s).
- Inference component copies run where the scaler placed them
  (scheduler/scaling/placement.py): each copy is a worker process with
  `CUDA_VISIBLE_DEVICES` set to its GPUs (none: empty), a GPU memory fraction
  when it shares a device (`SLUICEWAY_WORKER_GPU_MEMORY_FRACTION`, which the
  worker applies with `torch.cuda.set_per_process_memory_fraction`) and as many
  compute threads as whole cores it reserved (`component_launch`). Variant
  workers and component copies share the host without over-committing it: a CPU
  variant worker holds one core and a GPU variant worker its whole device in
  `placement_view`, and component copies' cores (rounded up) and devices are
  taken from the variants' slots.
- A warm spare (`python -m workers.standby`, see there) waits with the worker
  modules imported and becomes the next worker started, whatever its variant
  and device: a cold start skips most of a process's boot. It takes no slot
  (it runs nothing); a new one boots `SPARE_DELAY_S` after the last start, so
  it never competes with a booting worker for the CPU.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from scheduler.scaling.actuators.base import PlacementView, WorkerTarget
from scheduler.scaling.host_capacity import detect_memory_mb
from scheduler.scaling.placement import Host, Placement
from scheduler.scaling.policy import share_slots

logger = logging.getLogger(__name__)

# Frameworks `sluice worker` can import at start (SLUICEWAY_WORKER_PRELOAD).
PRELOADABLE = ("torch", "xgboost")

# A new warm spare boots this long after the last worker start.
SPARE_DELAY_S = 5.0

# A worker that dies sooner than this after its start is crash-looping.
QUICK_CRASH_S = 10.0
MAX_RESTART_DELAY_S = 60.0

# (key, device argument, name) → argv; the default runs `sluice worker`.
CommandFactory = Callable[[str, str, str], list[str]]


def worker_command(key: str, device: str, name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cli.main",
        "worker",
        "--device",
        device,
        "--variant",
        key,
        "--name",
        name,
    ]


def component_launch(placement: Placement, host: Host) -> tuple[str, dict[str, str]]:
    """The `--device` argument and the environment of one component copy.

    A copy sharing GPU 1 (16,000 MB) with `gpu_memory_mb` 4,000 and 1.5 cores →
    `("cuda", {"CUDA_VISIBLE_DEVICES": "1", "SLUICEWAY_WORKER_GPU_MEMORY_FRACTION":
    "0.25", "SLUICEWAY_WORKER_THREADS": "1"})`; a CPU copy sees no GPU at all.
    """
    compute = placement.compute
    env = {"SLUICEWAY_WORKER_THREADS": str(max(1, math.floor(compute.cpu_cores + 1e-9)))}
    if not placement.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""  # never takes GPU memory
        return "cpu", env
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(index) for index in placement.gpus)
    if compute.gpus == 0 and compute.gpu_memory_mb > 0:
        total = next((g.memory_mb for g in host.gpus if g.index == placement.gpus[0]), 0)
        if total > 0:
            fraction = min(compute.gpu_memory_mb / total, 1.0)
            env["SLUICEWAY_WORKER_GPU_MEMORY_FRACTION"] = f"{fraction:.4f}"
    return "cuda", env


def _placement_id(placement: Placement) -> tuple[str, tuple[int, ...], object]:
    return (placement.host, placement.gpus, placement.compute)


def spare_command() -> list[str]:
    return [sys.executable, "-m", "workers.standby"]


def _die_with_parent() -> None:
    """`preexec_fn`: SIGTERM (a warm shutdown) when the scheduler dies, so a restarted
    scheduler never finds orphans it does not know about next to the workers it starts."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class WorkerProcess:
    key: str
    pool: str  # "cpu" or "gpu"
    device: str  # "cpu" or the physical "cuda:N"
    process: subprocess.Popen[bytes]
    started_at: float
    stop_deadline: float | None = None
    placement: Placement | None = None  # an inference component's copy

    @property
    def stopping(self) -> bool:
        return self.stop_deadline is not None


class LocalWorkers:
    """Worker processes of this host, per variant, within the host's devices and cores."""

    def __init__(
        self,
        *,
        gpus: list[str],
        cpu_slots: int,
        stop_grace_s: float = 60.0,
        log_dir: Path | None = None,
        command: CommandFactory = worker_command,
        spare: Callable[[], list[str]] | None = spare_command,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_exit: Callable[[set[int]], object] | None = None,
        host: Host | None = None,
    ) -> None:
        self.gpus = list(gpus)
        # Capacity for component copies (scheduler/main.py detects it at start).
        self.host = host or Host(
            name="localhost", cpu_cores=float(cpu_slots), memory_mb=detect_memory_mb()
        )
        self.cpu_slots = cpu_slots
        self.stop_grace_s = stop_grace_s
        self.log_dir = log_dir
        self.command = command
        self.spare_command = spare
        self.env = dict(os.environ if env is None else env)
        self.clock = clock
        self.on_exit = on_exit
        self.processes: list[WorkerProcess] = []
        self.restarts = 0
        self._next_gpu = 0
        self._crash_streak: dict[str, int] = {}
        self._hold_until: dict[str, float] = {}
        self._short: dict[str, int] = {}  # last logged budget shortfall per key
        self._spare: subprocess.Popen[bytes] | None = None
        self._cpu_fallback: set[str] = set()  # GPU variants already told they run on CPU
        self._last_start = -math.inf

    # --- the tick ----------------------------------------------------------------

    def apply(self, targets: list[WorkerTarget]) -> dict[str, int]:
        now = self.clock()
        self._reap(now)
        self._kill_overdue(now)
        components = [t for t in targets if t.compute is not None]
        targets = [t for t in targets if t.compute is None]
        # Components first: their placement counted the variant workers running now,
        # and the variants' slots below count the copies started here.
        self._apply_components(components, now)
        grants = self._grants(targets)
        for key in sorted({p.key for p in self.processes if p.placement is None}):
            running = self._running(key)
            surplus = len(running) - grants.get(key, 0)
            # The youngest go first: the oldest have their models loaded the longest.
            for worker in sorted(running, key=lambda p: p.started_at, reverse=True)[:surplus]:
                self._begin_stop(worker, now)
        for target in targets:
            pool = self._pool(target)
            while (
                self._live(target.key) < grants[target.key]
                and self._free(pool) > 0
                and self._hold_until.get(target.key, 0.0) <= now
            ):
                self._start(target, pool, now)
        self._keep_spare(now)
        return {t.key: len(self._running(t.key)) for t in [*targets, *components]}

    def placement_view(self) -> PlacementView:
        """This host's room for component copies (less its variant workers), the copies
        running per component (oldest first) and those still stopping."""
        variants = [p for p in self.processes if p.placement is None]
        cpu_workers = sum(1 for p in variants if p.pool == "cpu")
        gpu_devices = {p.device for p in variants if p.pool == "gpu"}
        host = Host(
            name=self.host.name,
            cpu_cores=max(self.host.cpu_cores - cpu_workers, 0.0),
            memory_mb=self.host.memory_mb,
            gpus=tuple(g for g in self.host.gpus if f"cuda:{g.index}" not in gpu_devices),
        )
        running: dict[str, list[Placement]] = {}
        draining: list[Placement] = []
        for worker in sorted(self.processes, key=lambda p: p.started_at):
            if worker.placement is None:
                continue
            if worker.stopping:
                draining.append(worker.placement)
            else:
                running.setdefault(worker.key, []).append(worker.placement)
        return PlacementView(hosts=[host], running=running, draining=draining)

    def _apply_components(self, targets: list[WorkerTarget], now: float) -> None:
        """Stop the copies no placement keeps (youngest first), start the placed ones missing."""
        wanted: dict[str, list[tuple[str, tuple[int, ...], object]]] = {
            t.key: [_placement_id(p) for p in t.placements if p.host == self.host.name]
            for t in targets
        }
        missing: dict[str, list[Placement]] = {
            t.key: [p for p in t.placements if p.host == self.host.name] for t in targets
        }
        copies = [p for p in self.processes if p.placement is not None and not p.stopping]
        for worker in sorted(copies, key=lambda p: p.started_at):
            assert worker.placement is not None
            ident = _placement_id(worker.placement)
            if ident in wanted.get(worker.key, []):
                wanted[worker.key].remove(ident)
                place_list = missing[worker.key]
                place_list.pop(
                    next(i for i, p in enumerate(place_list) if _placement_id(p) == ident)
                )
            else:
                self._begin_stop(worker, now)
        for target in targets:
            if self._hold_until.get(target.key, 0.0) > now:
                continue
            for placement in missing.get(target.key, []):
                self._start(target, "gpu" if placement.gpus else "cpu", now, placement=placement)

    def close(self) -> None:
        """Stop every worker (warm shutdown), waiting up to `stop_grace_s` in all."""
        now = self.clock()
        for worker in self.processes:
            if not worker.stopping:
                self._begin_stop(worker, now)
        if self._spare is not None:
            self._spare.terminate()  # it runs nothing yet
            self._spare.wait()
            self._spare = None
        deadline = time.monotonic() + self.stop_grace_s
        for worker in self.processes:
            try:
                worker.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                logger.warning("worker pid %d ignored SIGTERM; killing it", worker.process.pid)
                worker.process.kill()
                worker.process.wait()
        self.processes.clear()

    # --- budget ------------------------------------------------------------------

    def _pool(self, target: WorkerTarget) -> str:
        if target.accelerator != "gpu":
            return "cpu"
        if not self.gpus and target.key not in self._cpu_fallback:
            logger.warning("%s asks for a GPU; this host has none: CPU workers", target.key)
            self._cpu_fallback.add(target.key)
        return "gpu" if self.gpus else "cpu"

    def slots(self, pool: str) -> int:
        return len(self.gpus) if pool == "gpu" else self.cpu_slots

    def _grants(self, targets: list[WorkerTarget]) -> dict[str, int]:
        grants: dict[str, int] = {}
        for pool in ("gpu", "cpu"):
            # Variants with work waiting are served first: when slots are short, an
            # idle variant (kept warm until its idle period ends) yields its slot
            # to one whose queue holds jobs, instead of that queue waiting minutes.
            in_pool = sorted(
                (t for t in targets if self._pool(t) == pool), key=lambda t: t.waiting == 0
            )
            wants = {t.key: t.count for t in in_pool}
            granted = share_slots(wants, self.slots(pool))
            for key, want in wants.items():
                short = want - granted[key]
                if short != self._short.get(key, 0) and short > 0:
                    logger.warning(
                        "%s wants %d %s worker(s); this host's %d %s slot(s) allow %d",
                        key,
                        want,
                        pool,
                        self.slots(pool),
                        pool,
                        granted[key],
                    )
                self._short[key] = short
            grants.update(granted)
        return grants

    def _running(self, key: str) -> list[WorkerProcess]:
        return [p for p in self.processes if p.key == key and not p.stopping]

    def _live(self, key: str) -> int:
        """Running and stopping: a worker counts until its process has exited."""
        return sum(1 for p in self.processes if p.key == key)

    def _free(self, pool: str) -> int:
        variants = sum(1 for p in self.processes if p.pool == pool and p.placement is None)
        copies = [p.placement for p in self.processes if p.placement is not None]
        if pool == "gpu":
            held = len({index for c in copies for index in c.gpus})
        else:
            held = math.ceil(sum(c.compute.cpu_cores for c in copies) - 1e-9)
        return self.slots(pool) - variants - held

    def counts(self) -> dict[str, int]:
        """Running (not stopping) workers per variant key."""
        result: dict[str, int] = {}
        for worker in self.processes:
            if not worker.stopping:
                result[worker.key] = result.get(worker.key, 0) + 1
        return result

    # --- processes ---------------------------------------------------------------

    def _start(
        self, target: WorkerTarget, pool: str, now: float, *, placement: Placement | None = None
    ) -> None:
        env = dict(self.env)
        if target.framework:
            # Import at start only what this variant's model needs (see workers/main.py).
            env["SLUICEWAY_WORKER_PRELOAD"] = (
                target.framework if target.framework in PRELOADABLE else ""
            )
        if placement is not None:
            argument, launch = component_launch(placement, self.host)
            env.update(launch)
            device = f"cuda:{placement.gpus[0]}" if placement.gpus else "cpu"
            devices = env["CUDA_VISIBLE_DEVICES"]
            name = f"{target.endpoint}-{target.variant}" + (f"-gpu{devices}" if devices else "")
        elif pool == "gpu":
            device = self._free_gpu()
            # The process sees only its device, as its cuda:0.
            env["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
            argument = "cuda"
            name = f"{target.endpoint}-{target.variant}-gpu{env['CUDA_VISIBLE_DEVICES']}"
        else:
            device = argument = "cpu"
            env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker never takes GPU memory
            name = f"{target.endpoint}-{target.variant}"
        log_path = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.log_dir / f"worker-{target.endpoint}.{target.variant}.log"
        process = self._from_spare(target.key, argument, name, env, log_path)
        via = "the warm spare"
        if process is None:
            process = self._spawn(self.command(target.key, argument, name), env, log_path)
            via = "a new process"
        self._last_start = now
        self.processes.append(
            WorkerProcess(
                key=target.key,
                pool=pool,
                device=device,
                process=process,
                started_at=now,
                placement=placement,
            )
        )
        logger.info(
            "started a worker for %s on %s: %s (pid %d)", target.key, device, via, process.pid
        )

    def _spawn(
        self,
        argv: list[str],
        env: dict[str, str],
        log_path: Path | None,
        *,
        stdin: int = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        log = log_path.open("ab") if log_path is not None else None
        try:
            return subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=log.fileno() if log is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent,
            )
        finally:
            if log is not None:
                log.close()

    def _from_spare(
        self, key: str, device: str, name: str, env: dict[str, str], log_path: Path | None
    ) -> subprocess.Popen[bytes] | None:
        """Hand the warm spare its orders; None when there is no live spare."""
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None or spare.stdin is None:
            return None
        order = {
            "variant": key,
            "device": device,
            "name": name,
            "env": env,
            "log": str(log_path) if log_path is not None else None,
        }
        try:
            spare.stdin.write(json.dumps(order).encode() + b"\n")
            spare.stdin.close()
        except OSError:  # it died just now
            spare.kill()
            spare.wait()
            return None
        return spare

    def _keep_spare(self, now: float) -> None:
        if self.spare_command is None:
            return
        if self._spare is not None and self._spare.poll() is not None:
            logger.warning("the warm spare exited with %s", self._spare.returncode)
            self._spare = None
        if self._spare is None and now - self._last_start >= SPARE_DELAY_S:
            env = dict(self.env)
            env["CUDA_VISIBLE_DEVICES"] = ""  # set for real once it knows its device
            env["SLUICEWAY_WORKER_PRELOAD"] = ""
            log_path = self.log_dir / "worker-spare.log" if self.log_dir is not None else None
            if log_path is not None:
                log_path.parent.mkdir(parents=True, exist_ok=True)
            self._spare = self._spawn(self.spare_command(), env, log_path, stdin=subprocess.PIPE)
            logger.debug("warm spare booting (pid %d)", self._spare.pid)

    def _free_gpu(self) -> str:
        taken = {p.device for p in self.processes if p.pool == "gpu" and p.placement is None}
        taken |= {f"cuda:{i}" for p in self.processes if p.placement for i in p.placement.gpus}
        for offset in range(len(self.gpus)):
            index = (self._next_gpu + offset) % len(self.gpus)
            if self.gpus[index] not in taken:
                self._next_gpu = index + 1
                return self.gpus[index]
        raise RuntimeError("no free GPU; _free('gpu') should have said so")

    def _begin_stop(self, worker: WorkerProcess, now: float) -> None:
        worker.stop_deadline = now + self.stop_grace_s
        if worker.process.poll() is None:
            logger.info(
                "stopping a worker of %s (pid %d): warm shutdown", worker.key, worker.process.pid
            )
            worker.process.send_signal(signal.SIGTERM)

    def _kill_overdue(self, now: float) -> None:
        for worker in self.processes:
            overdue = worker.stop_deadline is not None and now > worker.stop_deadline
            if overdue and worker.process.poll() is None:
                logger.warning(
                    "worker pid %d of %s still running %.0f s after SIGTERM; killing it",
                    worker.process.pid,
                    worker.key,
                    self.stop_grace_s,
                )
                worker.process.kill()

    def _reap(self, now: float) -> None:
        exited = set()
        for worker in list(self.processes):
            code = worker.process.poll()
            if code is None:
                continue
            self.processes.remove(worker)
            exited.add(worker.process.pid)
            if worker.stopping:
                logger.info(
                    "worker pid %d of %s stopped (exit %s)", worker.process.pid, worker.key, code
                )
                continue
            self.restarts += 1
            lived = now - worker.started_at
            streak = self._crash_streak.get(worker.key, 0) + 1 if lived < QUICK_CRASH_S else 1
            self._crash_streak[worker.key] = streak
            delay = 0.0 if streak == 1 else min(2.0 ** (streak - 1), MAX_RESTART_DELAY_S)
            self._hold_until[worker.key] = now + delay
            logger.warning(
                "worker pid %d of %s exited with %s after %.0f s; replacing it%s",
                worker.process.pid,
                worker.key,
                code,
                lived,
                f" in {delay:.0f} s" if delay else "",
            )
        if exited and self.on_exit is not None:
            try:
                self.on_exit(exited)
            except Exception as exc:  # Redis away: their leases end by themselves
                logger.warning("could not release the work of exited workers %s: %s", exited, exc)
