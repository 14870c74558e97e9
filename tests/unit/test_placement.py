"""Placement of component copies by declared compute: packing, fragmentation, priorities,
GPU sharing, never over-committing, and one component growing while another shrinks."""

from __future__ import annotations

import pytest

from scheduler.scaling.host_capacity import parse_nvidia_smi
from scheduler.scaling.placement import (
    Compute,
    Gpu,
    Host,
    Outcome,
    Placement,
    Want,
    place,
    used_by,
)

SMALL = Compute(cpu_cores=0.5, memory_mb=256)
ONE = Compute(cpu_cores=1, memory_mb=512)
FOUR = Compute(cpu_cores=4, memory_mb=1024)
TWO_CORES = Host("h2", cpu_cores=2, memory_mb=4096)


def assert_never_overcommitted(hosts: list[Host], outcome: Outcome) -> None:
    every = [p for copies in outcome.placements.values() for p in copies]
    for host in hosts:
        on_host = [p for p in every if p.host == host.name]
        used = used_by(on_host)
        assert used.cpu_cores <= host.cpu_cores + 1e-9
        assert used.memory_mb <= host.memory_mb
        for gpu in host.gpus:
            on_gpu = [p for p in on_host if gpu.index in p.gpus]
            if any(p.compute.gpus for p in on_gpu):
                assert len(on_gpu) == 1, f"a whole GPU {gpu.index} is shared: {on_gpu}"
            assert sum(p.compute.gpu_memory_mb for p in on_gpu) <= gpu.memory_mb


def test_three_models_share_a_two_core_host() -> None:
    """The docs' example: 0.5 + 0.5 + 1 cores fill a 2-core host exactly."""
    wants = [Want("a", SMALL, 1), Want("b", SMALL, 1), Want("c", ONE, 1)]
    outcome = place([TWO_CORES], wants, {})
    assert {k: len(v) for k, v in outcome.placements.items()} == {"a": 1, "b": 1, "c": 1}
    assert outcome.pending == {}
    assert outcome.free["h2"].cpu_cores == pytest.approx(0)


def test_scaling_out_past_the_host_is_pending_with_the_shortfall() -> None:
    wants = [Want("a", SMALL, 1), Want("b", SMALL, 1), Want("c", ONE, 2)]
    outcome = place([TWO_CORES], wants, {})
    assert len(outcome.placements["c"]) == 1
    assert outcome.pending == {"c": "h2: needs 1 cores, 0 free"}
    assert_never_overcommitted([TWO_CORES], outcome)


def test_a_copy_no_host_can_hold_names_the_shortfall() -> None:
    outcome = place([Host("h", 1.5, 8192)], [Want("big", FOUR, 1)], {})
    assert outcome.placements["big"] == []
    assert outcome.pending["big"] == "h: needs 4 cores, 1.5 free"


def test_memory_is_a_limit_too() -> None:
    outcome = place([Host("h", 8, 1000)], [Want("m", Compute(1, 600), 2)], {})
    assert len(outcome.placements["m"]) == 1
    assert outcome.pending["m"] == "h: needs 600 MB memory, 400 MB free"


def test_best_fit_keeps_a_big_host_whole_for_a_big_copy() -> None:
    """Fragmentation: small copies fill the small host; the 4-core copy still finds room."""
    hosts = [Host("big", 4, 8192), TWO_CORES]
    wants = [Want("a", SMALL, 1), Want("b", SMALL, 1), Want("c", ONE, 1), Want("d", FOUR, 1)]
    outcome = place(hosts, wants, {})
    assert {p.host for k in "abc" for p in outcome.placements[k]} == {"h2"}
    assert [p.host for p in outcome.placements["d"]] == ["big"]
    assert outcome.pending == {}
    assert_never_overcommitted(hosts, outcome)


def test_priority_wins_the_last_room() -> None:
    wants = [Want("low", ONE, 2, priority=0), Want("high", ONE, 2, priority=5)]
    outcome = place([TWO_CORES], wants, {})
    assert len(outcome.placements["high"]) == 2
    assert outcome.placements["low"] == []
    assert "needs 1 cores, 0 free" in outcome.pending["low"]


def test_every_component_gets_a_first_copy_before_any_gets_a_second() -> None:
    wants = [Want("a", ONE, 3), Want("b", ONE, 3)]
    outcome = place([TWO_CORES], wants, {})
    assert [len(outcome.placements[k]) for k in "ab"] == [1, 1]


def test_running_copies_stay_and_are_not_evicted_for_a_higher_priority() -> None:
    running = {"low": [Placement("low", "h2", ONE), Placement("low", "h2", ONE)]}
    wants = [Want("low", ONE, 2), Want("high", ONE, 1, priority=9)]
    outcome = place([TWO_CORES], wants, running)
    assert outcome.placements["low"] == running["low"]
    assert outcome.placements["high"] == []
    assert "high" in outcome.pending


def test_one_grows_while_another_shrinks() -> None:
    """A gives back a copy; B takes its room only once A's stopping copy has exited.

    Regression: B was placed in the very decision that gave A's copy up, and its
    process started while A's still ran (2.5 of 2 cores for seconds)."""
    a_copies = [Placement("a", "h2", ONE), Placement("a", "h2", ONE)]
    wants = [Want("a", ONE, 1), Want("b", ONE, 1)]
    outcome = place([TWO_CORES], wants, {"a": a_copies})
    assert outcome.placements["a"] == a_copies[:1]  # the oldest stays
    assert outcome.placements["b"] == []
    assert outcome.pending["b"] == "h2: needs 1 cores, 0 free"
    # The actuator asked the second copy of a to stop; while it drains, b waits.
    draining = place([TWO_CORES], wants, {"a": a_copies[:1]}, draining=a_copies[1:])
    assert draining.placements["b"] == []
    # Once it has exited, b gets the core.
    exited = place([TWO_CORES], wants, {"a": a_copies[:1]})
    assert len(exited.placements["b"]) == 1


def test_a_deleted_component_holds_its_room_until_its_copies_stop() -> None:
    running = {"gone": [Placement("gone", "h2", ONE), Placement("gone", "h2", ONE)]}
    outcome = place([TWO_CORES], [Want("new", ONE, 1)], running)
    assert outcome.placements == {"new": []}
    assert "needs 1 cores, 0 free" in outcome.pending["new"]


def test_patched_compute_replaces_the_copies() -> None:
    running = {"a": [Placement("a", "h2", SMALL)]}
    outcome = place([TWO_CORES], [Want("a", ONE, 1)], running)
    assert [p.compute for p in outcome.placements["a"]] == [ONE]
    assert outcome.free["h2"].cpu_cores == pytest.approx(0.5), "the old copy still counts"


def test_shared_gpu_while_memory_sums_fit() -> None:
    host = Host("g", 16, 65536, gpus=(Gpu(0, 16000), Gpu(1, 16000)))
    share = Compute(cpu_cores=1, memory_mb=1024, gpu_memory_mb=6000)
    outcome = place([host], [Want("a", share, 2), Want("b", share, 2), Want("c", share, 2)], {})
    devices = [p.gpus for k in "abc" for p in outcome.placements[k]]
    assert sorted(d[0] for d in devices) == [0, 0, 1, 1]  # two per device: 12 of 16 GB each
    assert "needs 6000 MB of one GPU, 4000 MB free" in outcome.pending["c"]
    assert_never_overcommitted([host], outcome)


def test_whole_gpus_are_never_shared() -> None:
    host = Host("g", 16, 65536, gpus=(Gpu(0, 16000), Gpu(1, 16000)))
    whole = Compute(cpu_cores=1, memory_mb=1024, gpus=1)
    share = Compute(cpu_cores=1, memory_mb=1024, gpu_memory_mb=1000)
    outcome = place([host], [Want("s", share, 1), Want("w", whole, 2)], {})
    assert [p.gpus for p in outcome.placements["s"]] == [(0,)]
    assert [p.gpus for p in outcome.placements["w"]] == [(1,)]
    assert outcome.pending["w"] == "g: needs 1 whole GPU(s), 0 free"
    assert_never_overcommitted([host], outcome)


def test_gpu_copies_on_a_host_without_gpus_are_pending() -> None:
    gpu = Compute(cpu_cores=0.5, memory_mb=256, gpu_memory_mb=2000)
    outcome = place([TWO_CORES], [Want("g", gpu, 1)], {})
    assert outcome.pending["g"] == "h2: needs 2000 MB of one GPU, 0 MB free"


def test_no_hosts() -> None:
    outcome = place([], [Want("a", ONE, 1)], {})
    assert outcome.pending["a"] == "no host is known to place copies on"


def test_several_hosts_name_the_closest() -> None:
    hosts = [Host("x", 1, 4096), Host("y", 3, 4096)]
    outcome = place(hosts, [Want("big", FOUR, 1)], {})
    assert outcome.pending["big"] == "no host fits; closest y: needs 4 cores, 3 free"


@pytest.mark.parametrize("seed", range(20))
def test_random_demands_never_overcommit(seed: int) -> None:
    import random

    rng = random.Random(seed)
    hosts = [
        Host(f"h{i}", rng.choice([1, 2, 4]), rng.choice([1024, 4096]), gpus=(Gpu(0, 8000),))
        for i in range(3)
    ]
    wants = [
        Want(
            f"c{i}",
            Compute(
                cpu_cores=rng.choice([0.25, 0.5, 1, 2]),
                memory_mb=rng.choice([128, 512, 1024]),
                gpus=rng.choice([0, 0, 0, 1]),
                gpu_memory_mb=rng.choice([0, 0, 3000]),
            ),
            rng.randint(0, 4),
            priority=rng.randint(0, 2),
        )
        for i in range(6)
    ]
    first = place(hosts, wants, {})
    assert_never_overcommitted(hosts, first)
    # Again, from what now runs, with new wants: still within every host.
    rewants = [Want(w.component, w.compute, rng.randint(0, 4)) for w in wants]
    assert_never_overcommitted(hosts, place(hosts, rewants, first.placements))


def test_parse_nvidia_smi() -> None:
    assert parse_nvidia_smi("0, 143771\n1, 81559\n\nnot a gpu\n") == (
        Gpu(0, 143771),
        Gpu(1, 81559),
    )
