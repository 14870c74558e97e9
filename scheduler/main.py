"""`sluice scheduler`: the control loops (scheduler/loop.py), the scaler on the main thread.

Every `scheduler_interval_s` (1 s by default), and at once when a variant at
zero workers gets a message (checked every 0.2 s), the scaler reads each
endpoint variant's backlog, decides its worker count and has the backend run
that many (`scaler_backend`: local `sluice worker` processes — one per GPU
device on a GPU machine, CPU workers within the core budget elsewhere — or
Kubernetes Deployments). Webhook delivery (scheduler/webhooks/notifier.py), the
lease sweeper (scheduler/reconcile/sweeper.py), the reconciler
(scheduler/reconcile/reconciler.py), the batch-transform coordinator
(scheduler/transform/coordinator.py), the history sampler (scheduler/history/sampler.py,
the console's plots), model monitoring (scheduler/monitoring/monitor.py) and the
deployments loop (scheduler/deployments/runner.py) run beside it on their own threads.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from types import FrameType

from core.broker import get_redis, release_worker_processes
from core.config import Settings, get_settings
from scheduler.deployments.runner import start_deployments
from scheduler.history.sampler import start_sampler
from scheduler.loop import run_loop
from scheduler.monitoring.monitor import start_monitoring
from scheduler.reconcile.reconciler import start_reconciler
from scheduler.reconcile.sweeper import start_sweeper
from scheduler.scaling.actuators.base import Actuator, PlacementView, WorkerTarget
from scheduler.scaling.host_capacity import detect_host
from scheduler.scaling.policy import Timings
from scheduler.scaling.scaler import Scaler
from scheduler.shadows.comparer import start_shadow_comparer
from scheduler.transform.coordinator import start_transform_coordinator
from scheduler.webhooks.notifier import start_notifier

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


class NoWorkers:
    """`scaler_backend=none`: decide and publish only; someone else runs the workers."""

    def apply(self, targets: list[WorkerTarget]) -> dict[str, int]:
        return {}

    def placement_view(self) -> PlacementView | None:
        return None

    def close(self) -> None:
        pass


def make_actuator(settings: Settings) -> Actuator:
    if settings.scaler_backend == "kubernetes":
        from scheduler.scaling.actuators.kubernetes import KubernetesDeployments, load_apps_api

        logger.info(
            "scaling Deployments %s in namespace %s",
            settings.kubernetes_deployment,
            settings.kubernetes_namespace,
        )
        return KubernetesDeployments(
            apps_api=load_apps_api(),
            namespace=settings.kubernetes_namespace,
            deployment=settings.kubernetes_deployment,
        )
    if settings.scaler_backend == "none":
        return NoWorkers()
    from scheduler.scaling.actuators.local import LocalWorkers, spare_command

    gpus = [d for d in detect_devices() if d.startswith("cuda")]
    logger.info(
        "local workers: %s, %d CPU slot(s)",
        f"one per GPU on {gpus}" if gpus else "no GPU",
        settings.cpu_slots,
    )
    host = socket.gethostname()

    def release(pids: set[int]) -> None:
        # A worker seen exiting: end its lease now, so its work is back within the
        # tick instead of after `worker_lease_s`.
        release_worker_processes(get_redis(), settings.namespace, host=host, pids=pids)

    capacity = detect_host(cpu_cores=settings.host_cpu_cores, memory_mb=settings.host_memory_mb)
    logger.info(
        "inference component copies on %s: %g cores, %d MB, GPUs %s",
        capacity.name,
        capacity.cpu_cores,
        capacity.memory_mb,
        [f"{g.index} ({g.memory_mb} MB)" for g in capacity.gpus] or "none",
    )
    return LocalWorkers(
        host=capacity,
        gpus=gpus,
        cpu_slots=settings.cpu_slots,
        stop_grace_s=settings.worker_stop_grace_s,
        log_dir=settings.home / "logs",
        spare=spare_command if settings.local_warm_spare else None,
        on_exit=release,
    )


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

    scaler = Scaler(
        namespace=settings.namespace,
        redis_client=get_redis(),
        actuator=make_actuator(settings),
        timings=Timings(
            scale_in_cooldown_s=settings.scale_in_cooldown_s,
            scale_in_window_s=settings.scale_in_window_s,
            scale_to_zero_idle_s=settings.scale_to_zero_idle_s,
        ),
        interval_s=settings.scheduler_interval_s,
    )
    logger.info("scheduler up: scaling every %.1f s", settings.scheduler_interval_s)
    notifier = start_notifier(settings, stop)  # webhooks: its own thread, never blocks this loop
    start_sweeper(settings, stop)  # puts back what dead workers held, every second
    start_reconciler(settings, stop)  # requeues jobs whose message was lost
    transform = start_transform_coordinator(settings, get_redis(), stop)
    start_sampler(settings, get_redis(), stop)  # the console's short history
    start_monitoring(settings, stop)  # baselines and monitoring runs
    start_deployments(settings, stop)  # deployment steps, drains, creations and deletions
    start_shadow_comparer(settings, stop)  # shadow answers paired with production's
    try:
        run_loop(scaler, stop)  # on this thread; closing it stops the workers it runs
    finally:
        stop.set()
        notifier.join(settings.webhook_timeout_s + 5)
        transform.join(timeout=30)
        logger.info("scheduler stopped")
