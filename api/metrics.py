"""Prometheus metrics of the API process, plus live queue gauges read at scrape time.

Per endpoint variant: invocations by mode and outcome, end-to-end latency, model
latency and overhead latency (end-to-end minus model time) of realtime calls,
backlog, reserved messages, live and desired workers, and the scaler's last event.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from core import scaling_state
from core.broker import get_redis, live_queues, metrics_key, queue_loads, workers_per_queue
from core.config import get_settings
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
BACKLOG = Gauge(
    "sluiceway_backlog",
    "Messages not yet done: queued, plus reserved by workers.",
    LABELS,
    registry=REGISTRY,
)
RESERVED = Gauge(
    "sluiceway_backlog_reserved",
    "Of the backlog, messages reserved by workers (waiting there or running).",
    LABELS,
    registry=REGISTRY,
)
WORKERS = Gauge(
    "sluiceway_workers", "Live workers consuming the variant's queue.", LABELS, registry=REGISTRY
)
WORKERS_DESIRED = Gauge(
    "sluiceway_workers_desired",
    "Workers the scaler wants for the variant.",
    LABELS,
    registry=REGISTRY,
)
LAST_SCALING_AT = Gauge(
    "sluiceway_scaling_last_event_timestamp_seconds",
    "When the scaler last changed the variant's worker count (Unix time).",
    LABELS,
    registry=REGISTRY,
)
LAST_SCALING_FROM = Gauge(
    "sluiceway_scaling_last_event_from_workers",
    "Worker count before the variant's last scaling event.",
    LABELS,
    registry=REGISTRY,
)
LAST_SCALING_TO = Gauge(
    "sluiceway_scaling_last_event_to_workers",
    "Worker count after the variant's last scaling event.",
    LABELS,
    registry=REGISTRY,
)
QUEUE_GAUGES = (
    BACKLOG,
    RESERVED,
    WORKERS,
    WORKERS_DESIRED,
    LAST_SCALING_AT,
    LAST_SCALING_FROM,
    LAST_SCALING_TO,
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


def _labels(queue: str) -> tuple[str, str]:
    # queue names are "<namespace>.<endpoint>.<variant>"; names cannot hold dots.
    _ns, endpoint, variant = queue.split(".", 2)
    return endpoint, variant


REGISTRY.register(WorkerMetrics())


def _refresh_queue_gauges() -> None:
    settings = get_settings()
    redis = get_redis()
    ns = settings.namespace
    queues = live_queues(redis, ns)
    loads = queue_loads(redis, ns, queues)
    workers = workers_per_queue(redis, ns)
    desired = scaling_state.desired_workers(redis, ns)
    events = scaling_state.scaling_events(redis, ns, queues, limit=1)
    for gauge in QUEUE_GAUGES:
        gauge.clear()
    for queue in queues:
        endpoint, variant = _labels(queue)
        BACKLOG.labels(endpoint, variant).set(loads[queue].backlog)
        RESERVED.labels(endpoint, variant).set(loads[queue].reserved)
        WORKERS.labels(endpoint, variant).set(workers.get(queue, 0))
        WORKERS_DESIRED.labels(endpoint, variant).set(desired.get(queue, workers.get(queue, 0)))
        if events.get(queue):
            last = events[queue][0]
            LAST_SCALING_AT.labels(endpoint, variant).set(last.at)
            LAST_SCALING_FROM.labels(endpoint, variant).set(last.from_workers)
            LAST_SCALING_TO.labels(endpoint, variant).set(last.to_workers)


def render() -> tuple[bytes, str]:
    _refresh_queue_gauges()
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
