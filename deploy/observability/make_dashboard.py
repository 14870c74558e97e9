"""Writes grafana/dashboards/sluiceway.json: the console endpoint page's panels, for Grafana.

Run `python deploy/observability/make_dashboard.py` after changing a panel; a unit
test fails when the JSON and this script disagree. The queries are the ones the
console's plots compute from the same counters (scheduler/history/rates.py):
rates over the workers' request and error counters, quantiles of the batch
model-time histogram, and the queue gauges.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "grafana" / "dashboards" / "sluiceway.json"
SELECT = '{endpoint=~"$endpoint"}'
BY = "sum by (endpoint, variant)"

# (title, unit, [(legend, PromQL)])
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Requests/s",
        "reqps",
        [("{{endpoint}}/{{variant}}", f"{BY} (rate(sluiceway_worker_requests_total{SELECT}[1m]))")],
    ),
    (
        "Errors/s",
        "reqps",
        [("{{endpoint}}/{{variant}}", f"{BY} (rate(sluiceway_worker_errors_total{SELECT}[1m]))")],
    ),
    (
        "Model latency (p50, p99)",
        "ms",
        [
            (
                f"{{{{endpoint}}}}/{{{{variant}}}} {name}",
                f"1000 * histogram_quantile({q}, sum by (le, endpoint, variant) "
                f"(rate(sluiceway_batch_model_seconds_bucket{SELECT}[1m])))",
            )
            for name, q in (("p50", "0.5"), ("p99", "0.99"))
        ],
    ),
    (
        "Backlog and workers",
        "short",
        [
            ("{{endpoint}}/{{variant}} backlog", f"sluiceway_backlog{SELECT}"),
            ("{{endpoint}}/{{variant}} workers", f"sluiceway_workers{SELECT}"),
            ("{{endpoint}}/{{variant}} desired", f"sluiceway_workers_desired{SELECT}"),
        ],
    ),
    (
        "Worker CPU (cores) and resident memory",
        "short",
        [
            ("{{worker}} CPU", "rate(sluiceway_worker_cpu_seconds_total[1m])"),
            ("{{worker}} RSS GiB", "sluiceway_worker_resident_memory_bytes / 2^30"),
        ],
    ),
    (
        "GPU utilisation and memory (workers with a GPU)",
        "percentunit",
        [
            ("{{worker}} {{device}} busy", "sluiceway_worker_gpu_utilization_ratio"),
            (
                "{{worker}} {{device}} memory",
                "sluiceway_worker_gpu_memory_used_bytes / sluiceway_worker_gpu_memory_total_bytes",
            ),
        ],
    ),
    (
        "Webhook deliveries ended per minute",
        "short",
        [("{{outcome}}", "sum by (outcome) (increase(sluiceway_webhook_deliveries_total[1m]))")],
    ),
    (
        "API host: CPU and load",
        "short",
        [
            ("CPU used (0..1)", "sluiceway_host_cpu_utilization_ratio"),
            ("load / CPUs", "sluiceway_host_load1 / sluiceway_host_cpus"),
        ],
    ),
]


def panel(index: int, title: str, unit: str, queries: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "sluiceway-prometheus"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (legend, expr) in enumerate(queries)
        ],
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": "sluiceway",
        "title": "Sluiceway",
        "tags": ["sluiceway"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "endpoint",
                    "label": "endpoint",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "sluiceway-prometheus"},
                    "query": "label_values(sluiceway_backlog, endpoint)",
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                }
            ]
        },
        "panels": [panel(i, *spec) for i, spec in enumerate(PANELS)],
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
