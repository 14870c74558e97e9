"""Prometheus gauges of inference components and the hosts their copies are placed on.

Read from Redis at scrape time (core/component_state.py, core/broker), the same
in every API process:
- `sluiceway_component_copies{endpoint,component,state}`: `current` (live copies
  serving its queue), `desired` (what the scaler wants), `placed` (copies it
  placed on a host) and `pending` (desired but placed nowhere: no room).
- `sluiceway_placement_host_cpu_cores{host,kind}`, `..._memory_bytes{host,kind}`
  and `..._gpu_memory_bytes{host,gpu,kind}` with `kind` `capacity` or `free`:
  each host's room for component copies, and what is left of it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core import component_state
from core.broker import COMPONENT_LABEL, get_redis, live_queues, workers_per_queue
from core.config import get_settings

MB = 1024 * 1024


class ComponentMetrics(Collector):
    def collect(self) -> Iterator[Metric]:
        settings = get_settings()
        redis = get_redis()
        ns = settings.namespace
        placements = component_state.read_placements(redis, ns)
        workers = workers_per_queue(redis, ns)
        copies = GaugeMetricFamily(
            "sluiceway_component_copies",
            "Copies of an inference component: current (live), desired (the scaler's), "
            "placed (on a host), pending (desired, placed nowhere).",
            labels=("endpoint", "component", "state"),
        )
        for queue in live_queues(redis, ns):
            _ns, endpoint, variant = queue.split(".", 2)
            if not variant.startswith(COMPONENT_LABEL):
                continue
            name = variant[len(COMPONENT_LABEL) :]
            state = placements.get(queue)
            live = workers.get(queue, 0)
            desired = state.desired if state is not None else live
            placed = len(state.placements) if state is not None else live
            for label, value in (
                ("current", live),
                ("desired", desired),
                ("placed", placed),
                ("pending", max(desired - placed, 0)),
            ):
                copies.add_metric([endpoint, name, label], value)
        yield copies

        cores = GaugeMetricFamily(
            "sluiceway_placement_host_cpu_cores",
            "Cores of a host for component copies: capacity, and free after placing.",
            labels=("host", "kind"),
        )
        memory = GaugeMetricFamily(
            "sluiceway_placement_host_memory_bytes",
            "Memory of a host for component copies: capacity, and free after placing.",
            labels=("host", "kind"),
        )
        gpu_memory = GaugeMetricFamily(
            "sluiceway_placement_host_gpu_memory_bytes",
            "Memory of each GPU of a host for component copies: capacity, and free.",
            labels=("host", "gpu", "kind"),
        )
        for host in component_state.read_hosts(redis, ns):
            name = host["name"]
            cores.add_metric([name, "capacity"], host["cpu_cores"])
            cores.add_metric([name, "free"], host["free_cpu_cores"])
            memory.add_metric([name, "capacity"], host["memory_mb"] * MB)
            memory.add_metric([name, "free"], host["free_memory_mb"] * MB)
            for gpu in host.get("gpus", []):
                index = str(gpu["index"])
                gpu_memory.add_metric([name, index, "capacity"], gpu["memory_mb"] * MB)
                gpu_memory.add_metric([name, index, "free"], gpu["free_memory_mb"] * MB)
        yield from (cores, memory, gpu_memory)
