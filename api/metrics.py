"""Prometheus metrics of the API process, plus live queue gauges read at scrape time.

Per endpoint variant: invocations by mode and outcome, end-to-end latency, model
latency and overhead latency (end-to-end minus model time) of realtime calls,
backlog, reserved messages, live and desired workers, and the scaler's last event.
Per worker: CPU seconds, resident memory, and its GPU's utilisation and memory
where it has one (from its heartbeat); for the API's host: CPU, load, memory;
for this process: prometheus_client's standard process_* metrics.
Per endpoint and check: the violations of the latest monitoring runs. Per inference
component: its copies by state, and each placement host's room (api/component_metrics.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from api.component_metrics import ComponentMetrics
from core import process_stats, scaling_state
from core.broker import (
    delivery_outcomes_key,
    get_redis,
    live_queues,
    live_workers,
    metrics_key,
    queue_loads,
    read_models,
    workers_per_queue,
)
from core.config import get_settings
from core.db import session_scope
from core.worker_metrics import BATCH_SIZE_BUCKETS, SECONDS_BUCKETS, cumulative_buckets

REGISTRY = CollectorRegistry()
LABELS = ("endpoint", "variant")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

INVOCATIONS = Counter(
    "sluiceway_invocations_total",
    "Invocations accepted or answered, by mode and outcome.",
    (*LABELS, "mode", "outcome"),
    registry=REGISTRY,
)
REQUEST_LATENCY = Histogram(
    "sluiceway_realtime_latency_seconds",
    "End-to-end realtime latency seen by the API.",
    LABELS,
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
MODEL_LATENCY = Histogram(
    "sluiceway_model_latency_seconds",
    "Time the worker spent in the model for a realtime call.",
    LABELS,
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
OVERHEAD_LATENCY = Histogram(
    "sluiceway_overhead_latency_seconds",
    "Realtime end-to-end latency minus model time: the platform's own cost.",
    LABELS,
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)


def observe_realtime(
    *, endpoint: str, variant: str, outcome: str, total_s: float, model_s: float
) -> None:
    INVOCATIONS.labels(endpoint, variant, "realtime", outcome).inc()
    REQUEST_LATENCY.labels(endpoint, variant).observe(total_s)
    if outcome == "ok":
        MODEL_LATENCY.labels(endpoint, variant).observe(model_s)
        OVERHEAD_LATENCY.labels(endpoint, variant).observe(max(total_s - model_s, 0.0))


def count_async(*, endpoint: str, variant: str, outcome: str) -> None:
    INVOCATIONS.labels(endpoint, variant, "async", outcome).inc()


class WorkerMetrics(Collector):
    """Renders the counters workers add to per-variant Redis hashes (workers/metrics.py)."""

    def collect(self) -> Iterator[Metric]:
        settings = get_settings()
        redis = get_redis()
        queues = live_queues(redis, settings.namespace)
        pipe = redis.pipeline(transaction=False)
        for queue in queues:
            pipe.hgetall(metrics_key(settings.namespace, queue))
        hashes = pipe.execute() if queues else []
        batch = HistogramMetricFamily(
            "sluiceway_batch_size", "Instances per dynamic batch.", labels=LABELS
        )
        model = HistogramMetricFamily(
            "sluiceway_batch_model_seconds", "Model time per batch (all its calls).", labels=LABELS
        )
        wait = HistogramMetricFamily(
            "sluiceway_queue_wait_seconds",
            "Time from enqueue to being taken by a worker.",
            labels=LABELS,
        )
        counters = {
            name: CounterMetricFamily(f"sluiceway_worker_{name}", doc, labels=LABELS)
            for name, doc in (
                ("requests", "Requests run by workers."),
                ("errors", "Requests that failed (input or model errors)."),
                ("dropped", "Realtime requests dropped because their caller had timed out."),
                ("batches", "Batches run."),
            )
        }
        for queue, raw in zip(queues, hashes, strict=True):
            values = {k.decode(): float(v) for k, v in raw.items()}
            labels = list(_labels(queue))
            batch.add_metric(
                labels,
                cumulative_buckets(values, "batch_rows", BATCH_SIZE_BUCKETS),
                values.get("batch_rows_sum", 0.0),
            )
            model.add_metric(
                labels,
                cumulative_buckets(values, "model_seconds", SECONDS_BUCKETS),
                values.get("model_seconds_sum", 0.0),
            )
            wait.add_metric(
                labels,
                cumulative_buckets(values, "queue_wait_seconds", SECONDS_BUCKETS),
                values.get("queue_wait_seconds_sum", 0.0),
            )
            for name, family in counters.items():
                family.add_metric(labels, values.get(name, 0.0))
        yield from (batch, model, wait, *counters.values())
        yield from _model_cache_metrics(redis, settings.namespace, queues, hashes)


MODEL_COUNTERS = (
    ("loads", "Models loaded by workers of a multi-model variant."),
    ("cache_hits", "Requests whose model a worker already held."),
    ("cache_misses", "Requests whose model a worker had to load (or reload: replaced)."),
    ("evictions", "Models dropped to stay within model_memory_mb."),
)


def _model_cache_metrics(
    redis: Any, namespace: str, queues: list[str], hashes: list[dict[bytes, bytes]]
) -> Iterator[Metric]:
    """Multi-model variants' cache counters (workers/multi_model.py) and models held now."""
    multi = [
        (queue, {k.decode(): float(v) for k, v in raw.items()})
        for queue, raw in zip(queues, hashes, strict=True)
        if any(k.startswith(b"model_") for k in raw)
    ]
    if not multi:
        return
    families = {
        name: CounterMetricFamily(f"sluiceway_model_{name}", doc, labels=LABELS)
        for name, doc in MODEL_COUNTERS
    }
    seconds = SummaryMetricFamily(
        "sluiceway_model_load_seconds", "Time to load a model (download excluded).", labels=LABELS
    )
    loaded = GaugeMetricFamily(
        "sluiceway_models_loaded", "Models held now, counting each worker's copy.", labels=LABELS
    )
    workers = [w.id for w in live_workers(redis, namespace)]
    for queue, values in multi:
        labels = list(_labels(queue))
        families["loads"].add_metric(labels, values.get("model_loads", 0.0))
        families["cache_hits"].add_metric(labels, values.get("model_hits", 0.0))
        families["cache_misses"].add_metric(labels, values.get("model_misses", 0.0))
        families["evictions"].add_metric(labels, values.get("model_evictions", 0.0))
        seconds.add_metric(
            labels, int(values.get("model_loads", 0)), values.get("model_load_seconds_sum", 0.0)
        )
        held, _ = read_models(redis, namespace, queue, workers)
        loaded.add_metric(labels, float(sum(len(holders) for holders in held.values())))
    yield from (*families.values(), seconds, loaded)


def _labels(queue: str) -> tuple[str, str]:
    # queue names are "<namespace>.<endpoint>.<variant>"; names cannot hold dots.
    _ns, endpoint, variant = queue.split(".", 2)
    return endpoint, variant


class QueueMetrics(Collector):
    """Backlog, live and desired workers and the last scaling event of each variant, read from
    Redis at scrape time (core/broker, core/scaling_state.py): the same in every API process."""

    def collect(self) -> Iterator[Metric]:
        settings = get_settings()
        redis = get_redis()
        ns = settings.namespace
        queues = live_queues(redis, ns)
        loads = queue_loads(redis, ns, queues)
        workers = workers_per_queue(redis, ns)
        desired = scaling_state.desired_workers(redis, ns)
        events = scaling_state.scaling_events(redis, ns, queues, limit=1)
        families = {
            name: GaugeMetricFamily(f"sluiceway_{name}", doc, labels=LABELS)
            for name, doc in (
                ("backlog", "Messages not yet done: queued, plus reserved by workers."),
                ("backlog_reserved", "Of the backlog, messages reserved by workers."),
                ("workers", "Live workers consuming the variant's queue."),
                ("workers_desired", "Workers the scaler wants for the variant."),
                (
                    "scaling_last_event_timestamp_seconds",
                    "When the scaler last changed the variant's worker count (Unix time).",
                ),
                (
                    "scaling_last_event_from_workers",
                    "Worker count before the variant's last scaling event.",
                ),
                (
                    "scaling_last_event_to_workers",
                    "Worker count after the variant's last scaling event.",
                ),
            )
        }
        for queue in queues:
            labels = list(_labels(queue))
            live = workers.get(queue, 0)
            families["backlog"].add_metric(labels, loads[queue].backlog)
            families["backlog_reserved"].add_metric(labels, loads[queue].reserved)
            families["workers"].add_metric(labels, live)
            families["workers_desired"].add_metric(labels, desired.get(queue, live))
            if events.get(queue):
                last = events[queue][0]
                families["scaling_last_event_timestamp_seconds"].add_metric(labels, last.at)
                families["scaling_last_event_from_workers"].add_metric(labels, last.from_workers)
                families["scaling_last_event_to_workers"].add_metric(labels, last.to_workers)
        yield from families.values()


class DeliveryMetrics(Collector):
    """Webhook deliveries that ended, by outcome (the notifier counts them in Redis)."""

    def collect(self) -> Iterator[Metric]:
        raw = get_redis().hgetall(delivery_outcomes_key(get_settings().namespace))
        counts = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}
        family = CounterMetricFamily(
            "sluiceway_webhook_deliveries",
            "Webhook deliveries that ended: delivered (a 2xx) or dead (attempts used up).",
            labels=("outcome",),
        )
        for outcome in ("delivered", "dead"):
            family.add_metric([outcome], counts.get(outcome, 0.0))
        yield family


class ProcessMetrics(Collector):
    """Every live worker's CPU, memory and GPU figures (from its heartbeat, core/process_stats.py)
    and this API host's CPU and memory. Labels: `worker` (its id), `device`."""

    def collect(self) -> Iterator[Metric]:
        settings = get_settings()
        workers = live_workers(get_redis(), settings.namespace)
        labels = ("worker", "device")
        cpu = CounterMetricFamily(
            "sluiceway_worker_cpu_seconds", "CPU time (user + system) of a worker.", labels=labels
        )
        gauges = {
            key: GaugeMetricFamily(f"sluiceway_worker_{name}", doc, labels=labels)
            for key, name, doc in (
                ("rss_bytes", "resident_memory_bytes", "Resident memory of a worker."),
                ("gpu_utilization", "gpu_utilization_ratio", "Its GPU's utilisation, 0..1."),
                ("gpu_memory_used_bytes", "gpu_memory_used_bytes", "Its GPU's memory in use."),
                ("gpu_memory_total_bytes", "gpu_memory_total_bytes", "Its GPU's memory."),
            )
        }
        for worker in workers:
            values = [worker.id, worker.device]
            if "cpu_seconds" in worker.stats:
                cpu.add_metric(values, worker.stats["cpu_seconds"])
            for key, family in gauges.items():
                if key in worker.stats:  # GPU figures only where a GPU exists
                    family.add_metric(values, worker.stats[key])
        yield cpu
        yield from gauges.values()
        host = process_stats.host()
        for key, doc in (
            ("cpu_utilization_ratio", "CPU use of the API's host since the last scrape, 0..1."),
            ("load1", "One-minute load average of the API's host."),
            ("memory_used_bytes", "Memory in use on the API's host."),
            ("memory_total_bytes", "Memory of the API's host."),
            ("cpus", "CPUs of the API's host."),
        ):
            gauge = GaugeMetricFamily(f"sluiceway_host_{key}", doc)
            gauge.add_metric([], host[key])
            yield gauge


class MonitoringMetrics(Collector):
    """`sluiceway_monitoring_violations{endpoint,check}`, read from SQL at scrape time."""

    def collect(self) -> Iterator[Metric]:
        from api.services.monitoring import violation_counts

        family = GaugeMetricFamily(
            "sluiceway_monitoring_violations",
            "Violations found by the latest finished monitoring run of each schedule, "
            "per endpoint and check (0 when clean).",
            labels=("endpoint", "check"),
        )
        with session_scope() as session:
            counts = violation_counts(session)
        for (endpoint, check), count in sorted(counts.items()):
            family.add_metric([endpoint, check], count)
        yield family


# Read from Redis, SQL (or the host) at scrape time: shared by every API process, so never
# multiplied by the multi-process aggregation below.
SHARED_COLLECTORS: tuple[Collector, ...] = (
    WorkerMetrics(),
    QueueMetrics(),
    DeliveryMetrics(),
    ProcessMetrics(),
    MonitoringMetrics(),
    ComponentMetrics(),
)
for _collector in SHARED_COLLECTORS:
    REGISTRY.register(_collector)
# This API process's own CPU, memory and file descriptors (process_* , the names operators expect).
ProcessCollector(registry=REGISTRY)


def render() -> tuple[bytes, str]:
    """The Prometheus text of /metrics.

    One API process: its registry. Several on one host (`sluice api --processes N`
    sets PROMETHEUS_MULTIPROC_DIR): the in-process counters and histograms
    (invocations, realtime latencies) of every process are summed from their
    shared files by prometheus_client's multi-process mode, so any process
    answers the scrape with the host's totals; the Redis-backed families are
    added once. Across hosts, Prometheus scrapes each API and sums.
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    for collector in SHARED_COLLECTORS:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST
