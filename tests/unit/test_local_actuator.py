"""The local backend with stand-in worker processes: budgets, GPU pinning, warm stops, restarts.

The processes are real (small Python scripts), so signals, exits and waiting are
real; only the `sluice worker` they stand in for is not (integration tests run it).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scheduler.scaling.actuators.base import WorkerTarget
from scheduler.scaling.actuators.local import LocalWorkers, component_launch
from scheduler.scaling.placement import Compute, Gpu, Host, Placement

FAKE_WORKER = """
import os, signal, sys, time
mode = os.environ.get("FAKE_MODE", "")
def on_term(*_):
    if mode != "ignore-term":
        time.sleep(float(os.environ.get("FAKE_STOP_S", "0")))
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
# Written once the handler is in place: a test may then rely on it.
visible = os.environ["CUDA_VISIBLE_DEVICES"]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(f"{os.getpid()} {sys.argv[1]} {sys.argv[2]} {visible!r}\\n")
if mode == "crash":
    sys.exit(3)
while True:
    time.sleep(0.02)
"""


def fake_command(key: str, device: str, name: str) -> list[str]:
    return [sys.executable, "-c", FAKE_WORKER, key, device, name]


# Stands in for `python -m workers.standby`: waits for its order, then becomes
# the fake worker for it.
FAKE_SPARE = """
import json, os, sys
order = json.loads(sys.stdin.readline())
os.environ.update(order["env"])
sys.argv = ["spare", order["variant"], order["device"], order["name"]]
exec(os.environ["FAKE_WORKER"])
"""


def fake_spare() -> list[str]:
    return [sys.executable, "-c", FAKE_SPARE]


@pytest.fixture
def make_workers(tmp_path: Path) -> Iterator[Callable[..., LocalWorkers]]:
    made: list[LocalWorkers] = []

    def make(
        *,
        gpus: list[str] | None = None,
        cpu_slots: int = 4,
        spare: Callable[[], list[str]] | None = None,
        **env: str,
    ) -> LocalWorkers:
        workers = LocalWorkers(
            gpus=gpus or [],
            cpu_slots=cpu_slots,
            stop_grace_s=float(env.pop("grace_s", "5")),
            command=fake_command,
            spare=spare,
            env={
                **os.environ,
                "FAKE_LOG": str(tmp_path / "started.log"),
                "FAKE_WORKER": FAKE_WORKER,
                **env,
            },
        )
        made.append(workers)
        return workers

    yield make
    for workers in made:
        workers.close()


def started(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "started.log"
    return [line.split(" ", 3) for line in path.read_text().splitlines()] if path.exists() else []


def wait_until(condition: Callable[[], object], *, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def cpu(variant: str, count: int) -> WorkerTarget:
    return WorkerTarget(endpoint="ep", variant=variant, accelerator="cpu", count=count)


def gpu(variant: str, count: int) -> WorkerTarget:
    return WorkerTarget(endpoint="ep", variant=variant, accelerator="gpu", count=count)


def alive(workers: LocalWorkers) -> int:
    return sum(1 for p in workers.processes if p.process.poll() is None)


def test_cpu_slots_are_shared_round_robin_and_never_exceeded(
    make_workers: Callable[..., LocalWorkers],
) -> None:
    workers = make_workers(cpu_slots=3)
    counts = workers.apply([cpu("a", 4), cpu("b", 1)])
    assert counts == {"ep/a": 2, "ep/b": 1}
    assert len(workers.processes) == 3
    # b goes away: its slot goes to a once b's process has exited, never before.
    for _ in range(50):
        counts = workers.apply([cpu("a", 4)])
        assert len(workers.processes) <= 3
        if counts["ep/a"] == 3:
            break
        time.sleep(0.05)
    assert counts == {"ep/a": 3}


def test_gpu_variants_get_one_process_per_device_pinned_by_cuda_visible_devices(
    make_workers: Callable[..., LocalWorkers], tmp_path: Path
) -> None:
    workers = make_workers(gpus=["cuda:0", "cuda:1"], cpu_slots=1)
    counts = workers.apply([gpu("g", 3), cpu("c", 1)])
    assert counts == {"ep/g": 2, "ep/c": 1}, "two devices: two GPU workers, the CPU slot apart"
    wait_until(lambda: len(started(tmp_path)) == 3)
    seen = {(key, device, visible) for _pid, key, device, visible in started(tmp_path)}
    assert seen == {("ep/g", "cuda", "'0'"), ("ep/g", "cuda", "'1'"), ("ep/c", "cpu", "''")}


def test_gpu_variants_run_on_cpu_where_there_is_no_gpu(
    make_workers: Callable[..., LocalWorkers], tmp_path: Path
) -> None:
    workers = make_workers(gpus=[], cpu_slots=2)
    assert workers.apply([gpu("g", 2)]) == {"ep/g": 2}
    wait_until(lambda: len(started(tmp_path)) == 2)
    assert {device for _p, _k, device, _v in started(tmp_path)} == {"cpu"}


def test_an_idle_variant_yields_its_slot_to_one_with_work_waiting(
    make_workers: Callable[..., LocalWorkers],
) -> None:
    """Regression: two idle variants (kept warm until their idle period ends) held both
    slots, and a third variant's queued job waited minutes for a worker."""
    workers = make_workers(cpu_slots=2)
    assert workers.apply([cpu("a", 1), cpu("b", 1)]) == {"ep/a": 1, "ep/b": 1}
    busy = WorkerTarget(endpoint="ep", variant="c", accelerator="cpu", count=1, waiting=3)
    for _ in range(100):
        counts = workers.apply([cpu("a", 1), cpu("b", 1), busy])
        assert len(workers.processes) <= 2
        if counts["ep/c"] == 1:
            break
        time.sleep(0.05)
    assert counts["ep/c"] == 1
    assert counts["ep/a"] + counts["ep/b"] == 1


def test_scale_in_is_a_warm_stop_and_the_stopping_worker_still_counts(
    make_workers: Callable[..., LocalWorkers], tmp_path: Path
) -> None:
    # Each worker takes 0.5 s to finish its work after SIGTERM.
    workers = make_workers(cpu_slots=4, FAKE_STOP_S="0.5")
    workers.apply([cpu("a", 2)])
    wait_until(lambda: len(started(tmp_path)) == 2)
    first_pids = {p.process.pid for p in workers.processes}
    assert workers.apply([cpu("a", 1)]) == {"ep/a": 1}
    stopping = [p for p in workers.processes if p.stopping]
    assert len(stopping) == 1
    # Back to 2 at once: no new process while the stopping one drains (max 2 alive).
    assert workers.apply([cpu("a", 2)]) == {"ep/a": 1}
    assert len(workers.processes) == 2
    wait_until(lambda: stopping[0].process.poll() is not None)
    assert stopping[0].process.returncode == 0, "it exited on its own (warm), not killed"
    assert workers.apply([cpu("a", 2)]) == {"ep/a": 2}
    assert len({p.process.pid for p in workers.processes} - first_pids) == 1
    assert workers.restarts == 0, "a worker asked to stop is not a crash"


def test_a_crashed_worker_is_replaced_and_reported(
    make_workers: Callable[..., LocalWorkers],
) -> None:
    """The exit is reported with the process id, so its lease ends at once (not in 10 s)."""
    workers = make_workers()
    exits: list[set[int]] = []
    workers.on_exit = exits.append
    workers.apply([cpu("a", 2)])
    victim = workers.processes[0].process
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert workers.apply([cpu("a", 2)]) == {"ep/a": 2}
    assert victim.pid not in {p.process.pid for p in workers.processes}
    assert workers.restarts == 1
    assert exits == [{victim.pid}]
    workers.apply([cpu("a", 2)])
    assert exits == [{victim.pid}]  # reported once, and only on an exit


def test_a_failing_exit_report_does_not_stop_the_tick(
    make_workers: Callable[..., LocalWorkers],
) -> None:
    def unreachable(pids: set[int]) -> None:
        raise ConnectionError("Redis is away")

    workers = make_workers()
    workers.on_exit = unreachable
    workers.apply([cpu("a", 1)])
    victim = workers.processes[0].process
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert workers.apply([cpu("a", 1)]) == {"ep/a": 1}


def test_a_crash_looping_worker_is_restarted_with_a_growing_delay(
    make_workers: Callable[..., LocalWorkers],
) -> None:
    workers = make_workers(FAKE_MODE="crash")
    workers.apply([cpu("a", 1)])
    wait_until(lambda: workers.processes[0].process.poll() is not None)
    workers.apply([cpu("a", 1)])  # first crash: replaced at once
    assert workers.restarts == 1 and len(workers.processes) == 1
    wait_until(lambda: workers.processes[0].process.poll() is not None)
    workers.apply([cpu("a", 1)])  # second quick crash: held back
    assert workers.restarts == 2 and workers.processes == []


def test_a_worker_ignoring_sigterm_is_killed_after_the_grace(
    make_workers: Callable[..., LocalWorkers], tmp_path: Path
) -> None:
    workers = make_workers(FAKE_MODE="ignore-term", grace_s="0.3")
    workers.apply([cpu("a", 1)])
    process = workers.processes[0].process
    wait_until(lambda: started(tmp_path))
    workers.apply([])
    assert process.poll() is None, "SIGTERM alone does not stop it"
    time.sleep(0.4)  # past the (real-time) grace; the next tick kills it
    workers.apply([])
    wait_until(lambda: process.poll() is not None)
    assert process.returncode == -signal.SIGKILL
    workers.apply([])
    assert workers.processes == []


def test_the_warm_spare_becomes_the_next_worker_and_a_new_one_boots_later(
    make_workers: Callable[..., LocalWorkers], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("scheduler.scaling.actuators.local.SPARE_DELAY_S", 0.3)
    workers = make_workers(gpus=["cuda:0", "cuda:1"], spare=fake_spare)
    workers.apply([])  # idle: only the spare boots
    spare = workers._spare
    assert spare is not None and workers.processes == []

    workers.apply([gpu("g", 1)])
    (worker,) = workers.processes
    assert worker.process is spare, "the spare became the worker"
    wait_until(lambda: started(tmp_path))
    (_pid, key, device, visible) = started(tmp_path)[0]
    assert (key, device, visible) == ("ep/g", "cuda", "'0'"), "pinned to its GPU by the order"
    assert workers._spare is None, "no new spare while the worker boots"

    time.sleep(0.4)
    workers.apply([gpu("g", 1)])
    assert workers._spare is not None and workers._spare is not spare
    # A second worker when the spare is not there: a fresh process, as before.
    workers._spare.kill()
    workers._spare.wait()
    workers.apply([gpu("g", 2)])
    assert len(workers.processes) == 2
    wait_until(lambda: len(started(tmp_path)) == 2)
    assert {visible for *_, visible in started(tmp_path)} == {"'0'", "'1'"}


# --- inference component copies -------------------------------------------------------

HOST = Host("box", cpu_cores=2.0, memory_mb=4096, gpus=(Gpu(0, 16000), Gpu(1, 16000)))


def copy_of(cores: float, *, gpus: tuple[int, ...] = (), **compute: int) -> Placement:
    return Placement("ep/ic.m", "box", Compute(cpu_cores=cores, memory_mb=256, **compute), gpus)


def component(name: str, *placements: Placement) -> WorkerTarget:
    return WorkerTarget(
        endpoint="ep",
        variant=f"ic.{name}",
        accelerator="cpu",
        count=len(placements),
        compute=placements[0].compute if placements else Compute(),
        placements=tuple(Placement(f"ep/ic.{name}", p.host, p.compute, p.gpus) for p in placements),
    )


@pytest.mark.parametrize(
    ("placement", "argument", "env"),
    [
        (copy_of(0.5), "cpu", {"CUDA_VISIBLE_DEVICES": "", "SLUICEWAY_WORKER_THREADS": "1"}),
        (copy_of(2.5), "cpu", {"CUDA_VISIBLE_DEVICES": "", "SLUICEWAY_WORKER_THREADS": "2"}),
        (
            copy_of(1.5, gpus=(1,), gpu_memory_mb=4000),
            "cuda",
            {
                "CUDA_VISIBLE_DEVICES": "1",
                "SLUICEWAY_WORKER_GPU_MEMORY_FRACTION": "0.2500",
                "SLUICEWAY_WORKER_THREADS": "1",
            },
        ),
        (
            Placement("ep/ic.m", "box", Compute(cpu_cores=1, gpus=2), (0, 1)),
            "cuda",
            {"CUDA_VISIBLE_DEVICES": "0,1", "SLUICEWAY_WORKER_THREADS": "1"},
        ),
    ],
    ids=["half-core", "cores-round-down", "shared-gpu", "whole-gpus"],
)
def test_component_launch_sets_devices_memory_fraction_and_threads(
    placement: Placement, argument: str, env: dict[str, str]
) -> None:
    assert component_launch(placement, HOST) == (argument, env)


def test_component_copies_start_where_placed_and_stop_when_no_longer_placed(
    make_workers: Callable[..., LocalWorkers], tmp_path: Path
) -> None:
    workers = make_workers(cpu_slots=2)
    workers.host = HOST
    shared = copy_of(0.5, gpus=(1,), gpu_memory_mb=8000)
    counts = workers.apply([component("a", copy_of(0.5), copy_of(0.5)), component("g", shared)])
    assert counts == {"ep/ic.a": 2, "ep/ic.g": 1}
    wait_until(lambda: len(started(tmp_path)) == 3)
    seen = sorted((key, device, visible) for _pid, key, device, visible in started(tmp_path))
    assert seen == [("ep/ic.a", "cpu", "''"), ("ep/ic.a", "cpu", "''"), ("ep/ic.g", "cuda", "'1'")]
    view = workers.placement_view()
    assert [len(view.running[k]) for k in ("ep/ic.a", "ep/ic.g")] == [2, 1]
    # 1.5 cores and device 1 are held by copies: the variants get the rest (one CPU slot).
    assert (
        workers.apply(
            [component("a", copy_of(0.5), copy_of(0.5)), component("g", shared), cpu("v", 2)]
        )["ep/v"]
        == 0
    ), "copies hold 1.5 cores: ceil → 2 slots"
    # One copy of a is no longer placed: the youngest stops, and drains as such.
    workers.apply([component("a", copy_of(0.5)), component("g", shared)])
    assert len(workers.placement_view().draining) == 1
    assert len(workers.placement_view().running["ep/ic.a"]) == 1


def test_variant_workers_reduce_the_room_for_copies(
    make_workers: Callable[..., LocalWorkers],
) -> None:
    workers = make_workers(gpus=["cuda:0"], cpu_slots=2)
    workers.host = HOST
    workers.apply([cpu("v", 1), gpu("g", 1)])
    (host,) = workers.placement_view().hosts
    assert host.cpu_cores == 1.0, "one CPU variant worker holds one of two cores"
    assert [g.index for g in host.gpus] == [1], "the GPU variant worker holds device 0"
