"""The endpoint page's plots: the sampled history (core/history.py) shaped for uPlot.

uPlot takes one array of x values and one array per series, aligned: for two
variants sampled at t=100 and t=105, requests/s is `[[100, 105], [3.0, 4.0],
[0.5, null]]` (a variant without a point at a time gets null, a gap). Each
chart has one series per variant (two for latency: p50 and p99; three for
the queue: backlog, workers, desired).
"""

from __future__ import annotations

from typing import Any

from api.schemas import EndpointPublic
from core import history
from core.broker import get_redis, queue_name
from core.config import get_settings
from core.history import Point

# (chart id, title, unit, [(series label suffix, Point field)])
CHARTS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("rps", "Requests/s", "req/s", (("", "rps"),)),
    ("eps", "Errors/s", "err/s", (("", "eps"),)),
    ("latency", "Model latency", "ms", ((" p50", "p50_ms"), (" p99", "p99_ms"))),
    (
        "queue",
        "Backlog and workers",
        "count",
        ((" backlog", "backlog"), (" workers", "workers"), (" desired", "desired")),
    ),
)


def read_points(endpoint: EndpointPublic, *, since: float) -> dict[str, list[Point]]:
    """Each variant's points newer than `since` (epoch seconds), oldest first."""
    ns = get_settings().namespace
    queues = {v.name: queue_name(ns, endpoint.name, v.name) for v in endpoint.variants}
    points = history.read(get_redis(), ns, list(queues.values()), since=since)
    return {variant: points.get(queue, []) for variant, queue in queues.items()}


def charts(per_variant: dict[str, list[Point]]) -> list[dict[str, Any]]:
    """Every chart as `{"id", "title", "unit", "series": [labels], "data": [xs, ys...]}`."""
    xs = sorted({p.t for points in per_variant.values() for p in points})
    at = {variant: {p.t: p for p in points} for variant, points in per_variant.items()}
    result = []
    for chart_id, title, unit, fields in CHARTS:
        labels, columns = [], []
        for variant in per_variant:
            for suffix, field in fields:
                labels.append(f"{variant}{suffix}")
                by_time = at[variant]
                columns.append([getattr(by_time[t], field) if t in by_time else None for t in xs])
        result.append(
            {"id": chart_id, "title": title, "unit": unit, "series": labels, "data": [xs, *columns]}
        )
    return result


def last_time(per_variant: dict[str, list[Point]], since: float) -> float:
    return max((p.t for points in per_variant.values() for p in points), default=since)
