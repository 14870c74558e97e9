"""How the console words compute: a component's per-copy request, a copy's place, a host's room.

Pure functions over the API's own shapes (api/schemas.py), used as Jinja filters
by the components panel; memory is in MB as the API gives it, shown in MB or GB.
"""

from __future__ import annotations

from api.schemas import ComputeSpec, HostPublic, PlacementPublic


def memory(mb: int | float) -> str:
    """`512 MB`, `1.5 GB`, `16 GB` (1 GB = 1024 MB, as the hosts report it)."""
    if mb >= 1024:
        gb = mb / 1024
        return f"{gb:.0f} GB" if gb >= 10 or gb.is_integer() else f"{gb:.1f} GB"
    return f"{int(mb)} MB"


def size(n_bytes: int | None) -> str:
    """A size in bytes as read: `812 B`, `41.2 KB`, `3.5 MB`, `1.2 GB`; `-` for None."""
    if n_bytes is None:
        return "-"
    value = float(n_bytes)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def cores(value: float) -> str:
    """`1 core`, `0.5 cores`, `2 cores`."""
    text = f"{value:g}"
    return f"{text} core" if value == 1 else f"{text} cores"


def per_copy(compute: ComputeSpec) -> str:
    """What one copy asks for, e.g. `0.5 cores · 256 MB` or `1 core · 2 GB · 1 GPU`."""
    parts = [cores(compute.cpu_cores), memory(compute.memory_mb)]
    if compute.gpus:
        parts.append(f"{compute.gpus} GPU" + ("s" if compute.gpus > 1 else ""))
    elif compute.gpu_memory_mb:
        parts.append(f"{memory(compute.gpu_memory_mb)} of a GPU")
    return " · ".join(parts)


def placement(place: PlacementPublic) -> str:
    """Where one copy runs and what it holds there, e.g. `box1: 1 core, 512 MB, GPU 0`."""
    held = [cores(place.cpu_cores), memory(place.memory_mb)]
    gpus = place.gpus or ([place.gpu] if place.gpu is not None else [])
    if gpus:
        held.append("GPU " + ",".join(str(g) for g in gpus))
    if place.gpu_memory_mb and not place.gpus:
        held.append(f"{memory(place.gpu_memory_mb)} GPU memory")
    return f"{place.host}: {', '.join(held)}"


def host_gpus(host: HostPublic) -> str:
    """Each GPU's free memory of its total, e.g. `0: 30 GB free of 80 GB`; `-` with none."""
    if not host.gpus:
        return "-"
    return "; ".join(
        f"{g.index}: {memory(g.free_memory_mb)} free of {memory(g.memory_mb)}" for g in host.gpus
    )


FILTERS = {
    "memory": memory,
    "size": size,
    "cores": cores,
    "per_copy": per_copy,
    "placement": placement,
    "host_gpus": host_gpus,
}
