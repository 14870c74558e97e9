"""`sluice monitor`: baselines, monitoring schedules and their runs (an HTTP client of api/).

    sluice monitor baseline NAME --dataset s3://data/train.csv [--header] [--wait]
    sluice monitor schedule NAME --endpoint E --baseline B [--interval-s 3600] [--alert-topic T]
    sluice monitor run SCHEDULE [--wait]
    sluice monitor executions SCHEDULE

Answers are printed as JSON on stdout; errors follow cli/api_client.py (one
line on stderr, exit 1 for an HTTP error, 2 when the API cannot be reached).
With `--wait`, `run` exits 3 when the run found violations, so a script can
alarm on it.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from cli import api_client as http
from cli.api_client import ApiUrlOption

monitor_app = typer.Typer(
    help="Data quality and model quality monitoring of captured traffic (docs/monitoring.md).",
    no_args_is_help=True,
)
FINISHED = ("completed", "completed_with_violations", "failed")
VIOLATIONS_EXIT = 3


def _wait(api: http.Api, url: str, *, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        item = api.get_json(url)
        if item["status"] in FINISHED:
            return item
        if time.monotonic() > deadline:
            http.fail(f"still {item['status']} after {timeout_s:.0f} s: {url}")
        time.sleep(0.5)


@monitor_app.command("baseline")
def baseline(
    name: str,
    dataset: Annotated[str, typer.Option(help="s3://bucket/key, or a prefix ending in /.")],
    content_type: Annotated[
        str, typer.Option(help="text/csv or application/jsonlines.")
    ] = "text/csv",
    header: Annotated[bool, typer.Option(help="CSV: the first line names the features.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait until it is computed.")] = False,
    timeout_s: Annotated[float, typer.Option(help="Longest wait with --wait.")] = 600,
    api_url: ApiUrlOption = None,
) -> None:
    """Compute a baseline (statistics.json, constraints.json) of a dataset."""
    spec = {"name": name, "dataset": dataset, "content_type": content_type, "header": header}
    with http.session(api_url) as api:
        created = api.request("POST", "/v1/monitoring/baselines", json=spec).json()
        if wait:
            created = _wait(
                api, http.path("/v1/monitoring/baselines/{}", name), timeout_s=timeout_s
            )
        http.print_json(created)
        if created["status"] == "failed":
            raise typer.Exit(1)


@monitor_app.command("schedule")
def schedule(
    name: str,
    endpoint: Annotated[str, typer.Option(help="An endpoint that captures data.")],
    baseline: Annotated[str, typer.Option(help="The baseline to check against.")],
    interval_s: Annotated[int, typer.Option(help="Seconds between runs.")] = 3600,
    alert_topic: Annotated[
        str | None, typer.Option(help="Topic for MonitoringViolations events.")
    ] = None,
    ground_truth_prefix: Annotated[
        str | None, typer.Option(help='s3:// prefix of {"inferenceId","groundTruthLabel"} lines.')
    ] = None,
    problem_type: Annotated[
        str | None,
        typer.Option(help="binary_classification, multiclass_classification or regression."),
    ] = None,
    api_url: ApiUrlOption = None,
) -> None:
    """Create a monitoring schedule."""
    spec = {
        "name": name,
        "endpoint": endpoint,
        "baseline": baseline,
        "interval_s": interval_s,
        "alert_topic": alert_topic,
        "ground_truth_prefix": ground_truth_prefix,
        "problem_type": problem_type,
    }
    with http.session(api_url) as api:
        http.print_json(api.request("POST", "/v1/monitoring/schedules", json=spec).json())


@monitor_app.command("run")
def run(
    schedule: str,
    wait: Annotated[bool, typer.Option(help="Wait for the run; exit 3 on violations.")] = False,
    timeout_s: Annotated[float, typer.Option(help="Longest wait with --wait.")] = 600,
    api_url: ApiUrlOption = None,
) -> None:
    """Run a schedule now, over the capture written since its previous run."""
    with http.session(api_url) as api:
        execution = api.request(
            "POST", http.path("/v1/monitoring/schedules/{}/run", schedule)
        ).json()
        if wait:
            url = http.path(
                "/v1/monitoring/schedules/{}/executions/{}", schedule, execution["execution_id"]
            )
            execution = _wait(api, url, timeout_s=timeout_s)
        http.print_json(execution)
    if execution["status"] == "failed":
        raise typer.Exit(1)
    if execution["violations"]:
        raise typer.Exit(VIOLATIONS_EXIT)


@monitor_app.command("executions")
def executions(
    schedule: str,
    limit: Annotated[int, typer.Option(help="Newest runs shown.")] = 20,
    api_url: ApiUrlOption = None,
) -> None:
    """A schedule's runs, newest first, with their violations."""
    with http.session(api_url) as api:
        url = http.path("/v1/monitoring/schedules/{}/executions", schedule)
        http.print_json(api.get_json(f"{url}?limit={limit}"))


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
