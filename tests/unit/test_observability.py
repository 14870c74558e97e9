"""compose.yaml's observability profile and its files: they parse, and they point at what exists.

`docker compose config` cannot run here (no Docker), so the file is read with
PyYAML and checked the way compose would resolve it: bind mounts name files of
the repository, named volumes are declared, the profile holds both services.
The PromQL metric names are checked against a real stack's /metrics in
tests/integration/test_console.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
OBSERVABILITY = REPO / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "sluiceway.json"
METRIC = re.compile(r"\b((?:sluiceway|process)_[a-z0-9_]+)\b")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    return data


def test_the_observability_profile_runs_prometheus_and_grafana_on_existing_files() -> None:
    spec = compose()
    services = spec["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is missing"
            else:
                assert source in spec["volumes"], f"{name} uses undeclared volume {source}"


def test_the_image_copies_every_package_the_project_installs() -> None:
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    dockerfile = (REPO / "Dockerfile").read_text()
    for pattern in include:
        package = pattern.rstrip("*")
        assert f"COPY {package} ./{package}" in dockerfile, f"the image lacks {package}/"


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alert_rules_cover_backlog_errors_and_dead_deliveries() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(rules) == {
        "SluicewayBacklogGrowing",
        "SluicewayErrorRateHigh",
        "SluicewayDeadDeliveries",
    }
    for rule in rules.values():
        assert rule["expr"].strip() and rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
    prometheus = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["api:8000"]


def make_dashboard() -> Any:
    spec = importlib.util.spec_from_file_location(
        "make_dashboard", OBSERVABILITY / "make_dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dashboard_json_is_what_its_script_writes() -> None:
    written = DASHBOARD.read_text()
    assert written == make_dashboard().render(), "run deploy/observability/make_dashboard.py"
    dashboard = json.loads(written)
    titles = [panel["title"] for panel in dashboard["panels"]]
    # The console endpoint page's four plots come first, in its order.
    assert titles[:4] == [
        "Requests/s",
        "Errors/s",
        "Model latency (p50, p99)",
        "Backlog and workers",
    ]
    assert all(panel["targets"] for panel in dashboard["panels"])


def promql_metric_names() -> set[str]:
    """Every metric name the alert rules and the dashboard query."""
    exprs = [rule["expr"] for rule in alert_rules()]
    dashboard = json.loads(
        (OBSERVABILITY / "grafana" / "dashboards" / "sluiceway.json").read_text()
    )
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs.append(dashboard["templating"]["list"][0]["query"])
    return {name for expr in exprs for name in METRIC.findall(expr)}


def test_promql_names_are_sluiceway_metrics() -> None:
    names = promql_metric_names()
    assert "sluiceway_webhook_deliveries_total" in names and "sluiceway_backlog" in names
