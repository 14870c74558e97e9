"""Where inference component copies run: a pure bin-packing of declared compute onto hosts.

Each component declares what ONE copy needs (`Compute`: cpu_cores, memory_mb,
gpus, gpu_memory_mb) and how many copies the scaler wants. `place` takes the
hosts' capacities, the copies running now and the copies still draining, and
returns where every wanted copy runs, or why it cannot run yet. No I/O, no
clock: the scaler calls it each tick, the actuators only carry it out.

The rules, in order:
1. Never over-commit. A copy is placed only where its cores, memory and GPUs
   are free after everything placed, running or still draining (a copy asked
   to stop keeps its share until its process has exited).
2. Running copies stay where they are (moving one would cost a cold start).
   A component that shrinks gives up its newest copies first; a copy whose
   component's compute was patched is replaced (it runs with the old figures).
   A copy given up still holds its share in this decision (its process is only
   now asked to stop), and in later ones while it drains (`draining`).
3. New copies go by priority: every copy a higher priority wants is placed
   before any of a lower one. Within one priority, in the order given (the
   scaler sorts "work waiting first"), one copy per component per round, so
   that every component gets its first copy before any gets a second.
4. Best fit: of the hosts a copy fits, the one left with the fewest free cores
   (then memory), so small copies fill a host's gaps and a big one still finds
   a whole empty host ("fragmentation"). Worked example, a 2-core host and a
   4-core host holding nothing, copies of 0.5 + 0.5 + 1 cores: all three go to
   the 2-core host, and the 4-core host stays free for a 4-core copy.
5. GPUs: `gpus: N` takes N whole devices no other copy uses; `gpu_memory_mb`
   alone (with `gpus: 0`) shares one device with other such copies while their
   sums fit its memory (best fit again). A copy that asks for neither runs on CPU.
6. A copy that fits nowhere stays wanted but unplaced, with a reason naming
   the shortfall on the host that came closest: "needs 4 cores, 1.5 free".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Floating-point cores: 0.1 + 0.2 must fit in 0.3.
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Compute:
    """What one copy of a component needs."""

    cpu_cores: float = 1.0
    memory_mb: int = 1024
    gpus: int = 0  # whole devices, used by no other copy
    gpu_memory_mb: int = 0  # with gpus 0: a share of one device


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int  # as the host numbers it (CUDA_VISIBLE_DEVICES)
    memory_mb: int


@dataclass(frozen=True, slots=True)
class Host:
    """One machine's capacity for component copies."""

    name: str
    cpu_cores: float
    memory_mb: int
    gpus: tuple[Gpu, ...] = ()


@dataclass(frozen=True, slots=True)
class Placement:
    """One copy of one component on one host (and which GPUs it uses)."""

    component: str  # the component's key (ENDPOINT/ic.NAME)
    host: str
    compute: Compute
    gpus: tuple[int, ...] = ()  # device indices: its own (gpus > 0) or the one it shares


@dataclass(frozen=True, slots=True)
class Want:
    """How many copies of one component the scaler wants."""

    component: str
    compute: Compute
    copies: int
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where each component's copies run, and why the rest do not."""

    placements: dict[str, list[Placement]]  # per component: kept first, then new
    pending: dict[str, str] = field(default_factory=dict)  # component → the shortfall
    free: dict[str, HostFree] = field(default_factory=dict)  # per host, after placing


@dataclass(slots=True)
class HostFree:
    """What is left of one host: cores, memory, and each GPU's free memory (None: whole free)."""

    cpu_cores: float
    memory_mb: int
    gpu_free_mb: dict[int, int]
    gpu_whole: dict[int, bool]  # True while no copy uses the device at all

    @classmethod
    def of(cls, host: Host) -> HostFree:
        return cls(
            cpu_cores=host.cpu_cores,
            memory_mb=host.memory_mb,
            gpu_free_mb={g.index: g.memory_mb for g in host.gpus},
            gpu_whole={g.index: True for g in host.gpus},
        )

    def take(self, placement: Placement) -> None:
        compute = placement.compute
        self.cpu_cores -= compute.cpu_cores
        self.memory_mb -= compute.memory_mb
        for index in placement.gpus:
            if index not in self.gpu_free_mb:
                continue  # the device went away; the copy still holds its cores
            self.gpu_whole[index] = False
            if compute.gpus > 0:
                self.gpu_free_mb[index] = 0
            else:
                self.gpu_free_mb[index] -= compute.gpu_memory_mb


def place(
    hosts: Sequence[Host],
    wants: Sequence[Want],
    running: Mapping[str, Sequence[Placement]],
    draining: Iterable[Placement] = (),
) -> Outcome:
    """Where every wanted copy runs (see the module docstring for the rules).

    `running`: the copies live now per component, oldest first; `draining`: copies
    asked to stop that still hold their share. Components not in `wants` get none.
    """
    free = {h.name: HostFree.of(h) for h in hosts}
    for placement in draining:
        if placement.host in free:
            free[placement.host].take(placement)
    placed: dict[str, list[Placement]] = {}
    copies_wanted = {w.component: max(w.copies, 0) for w in wants}
    compute_wanted = {w.component: w.compute for w in wants}
    for component, copies in running.items():
        kept = placed.setdefault(component, []) if component in copies_wanted else []
        for placement in copies:
            if placement.host not in free:
                continue
            # A copy given up now (shrink, new compute, component gone) is stopped
            # now and holds its share until its process has exited: taken either way.
            free[placement.host].take(placement)
            if (
                placement.compute == compute_wanted.get(component)
                and len(kept) < copies_wanted[component]
            ):
                kept.append(placement)
    for want in wants:
        placed.setdefault(want.component, [])

    pending: dict[str, str] = {}
    for priority in sorted({w.priority for w in wants}, reverse=True):
        tier = [w for w in wants if w.priority == priority]  # ties keep their order
        grew = True
        while grew:  # one copy per component per round
            grew = False
            for want in tier:
                if want.component in pending or len(placed[want.component]) >= want.copies:
                    continue
                spot = _best_fit(hosts, free, want)
                if isinstance(spot, str):
                    pending[want.component] = spot
                    continue
                free[spot.host].take(spot)
                placed[want.component].append(spot)
                grew = True
    return Outcome(placements=placed, pending=pending, free=free)


def _best_fit(hosts: Sequence[Host], free: dict[str, HostFree], want: Want) -> Placement | str:
    """The tightest host (and GPUs) one copy fits, or the shortfall on the closest one."""
    best: tuple[tuple[float, int], Placement] | None = None
    shortfalls: list[tuple[float, str]] = []
    for host in hosts:
        room = free[host.name]
        gpus_or_reason = _gpus_for(room, want.compute)
        reason = _shortfall(room, want.compute) or (
            gpus_or_reason if isinstance(gpus_or_reason, str) else ""
        )
        if reason:
            shortfalls.append((_closeness(room, want.compute), f"{host.name}: {reason}"))
            continue
        assert not isinstance(gpus_or_reason, str)
        left = (room.cpu_cores - want.compute.cpu_cores, room.memory_mb - want.compute.memory_mb)
        if best is None or left < best[0]:
            best = (left, Placement(want.component, host.name, want.compute, gpus_or_reason))
    if best is not None:
        return best[1]
    if not hosts:
        return "no host is known to place copies on"
    shortfalls.sort(key=lambda item: item[0])
    return shortfalls[0][1] if len(hosts) == 1 else f"no host fits; closest {shortfalls[0][1]}"


def _shortfall(room: HostFree, compute: Compute) -> str:
    if compute.cpu_cores > room.cpu_cores + EPSILON:
        return f"needs {_num(compute.cpu_cores)} cores, {_num(max(room.cpu_cores, 0))} free"
    if compute.memory_mb > room.memory_mb:
        return f"needs {compute.memory_mb} MB memory, {max(room.memory_mb, 0)} MB free"
    return ""


def _gpus_for(room: HostFree, compute: Compute) -> tuple[int, ...] | str:
    """Device indices for one copy, or why there are none."""
    if compute.gpus > 0:
        whole = [
            i for i, untouched in room.gpu_whole.items() if untouched and room.gpu_free_mb[i] > 0
        ]
        if len(whole) < compute.gpus:
            return f"needs {compute.gpus} whole GPU(s), {len(whole)} free"
        return tuple(sorted(whole)[: compute.gpus])
    if compute.gpu_memory_mb > 0:
        # Shared devices only (a device a whole-GPU copy holds shows 0 free).
        fits = [(mb, i) for i, mb in room.gpu_free_mb.items() if mb >= compute.gpu_memory_mb]
        if not fits:
            most = max(room.gpu_free_mb.values(), default=0)
            return f"needs {compute.gpu_memory_mb} MB of one GPU, {max(most, 0)} MB free"
        return (min(fits)[1],)  # best fit: the device left with the least
    return ()


def _closeness(room: HostFree, compute: Compute) -> float:
    """How far a host is from fitting (smaller is closer), to name the best shortfall."""
    return (
        max(compute.cpu_cores - room.cpu_cores, 0)
        + max(compute.memory_mb - room.memory_mb, 0) / 1024
    )


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def used_by(placements: Iterable[Placement]) -> Compute:
    """The sum of what `placements` hold (for reports)."""
    items = list(placements)
    return Compute(
        cpu_cores=sum(p.compute.cpu_cores for p in items),
        memory_mb=sum(p.compute.memory_mb for p in items),
        gpus=sum(p.compute.gpus for p in items),
        gpu_memory_mb=sum(p.compute.gpu_memory_mb for p in items),
    )
