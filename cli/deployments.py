"""`sluice endpoints update | deployments | rollback | shadow-report`: endpoint updates from
the command line.

`update` sends a whole spec with `PUT /v1/endpoints/{name}`; flags fill or
override its `deployment` block. With `--wait` it follows a deployment with a
live view on stderr, one line per change of step or counts:

    step 1/2  10% new  in_progress  41 requests  9 errors  p99 25 ms
    rolled_back: error rate 22.0% (9 of 41 requests) at 10% of traffic > ...

and exits 0 when it succeeded, 1 when it rolled back, failed or stopped. The
helpers below are pure (tested without a network); the commands are a few lines.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import api_client as http
from cli.api_client import ApiUrlOption

FINISHED = ("succeeded", "rolled_back", "stopped", "failed")


def deployment_block(
    current: dict[str, Any] | None,
    *,
    strategy: str | None = None,
    canary_percent: float | None = None,
    linear_step_percent: float | None = None,
    step_interval_s: float | None = None,
    baking_s: float | None = None,
    error_rate_percent: float | None = None,
    p99_latency_ms: float | None = None,
    min_requests: int | None = None,
) -> dict[str, Any] | None:
    """The spec's `deployment` block with the flags given laid over it (None: no block).

    `{"strategy": "linear"}` with `canary_percent=10, strategy="canary"` →
    `{"strategy": "canary", "canary_percent": 10}`.
    """
    block = dict(current or {})
    for field, value in (
        ("strategy", strategy),
        ("canary_percent", canary_percent),
        ("linear_step_percent", linear_step_percent),
        ("step_interval_s", step_interval_s),
        ("baking_s", baking_s),
    ):
        if value is not None:
            block[field] = value
    rules = dict(block.get("rollback_on") or {})
    for field, value in (
        ("error_rate_percent", error_rate_percent),
        ("p99_latency_ms", p99_latency_ms),
        ("min_requests", min_requests),
    ):
        if value is not None:
            rules[field] = value
    if rules:
        block["rollback_on"] = rules
    return block or None


def step_line(deployment: dict[str, Any]) -> str:
    """One line of the live view: the step, its share, the state and the step's counts."""
    steps = deployment.get("steps") or []
    if not steps:
        return f"starting the new workers  {deployment['state']}"
    current = steps[-1]
    parts = [
        f"step {len(steps)}",
        f"{deployment['new_traffic_percent']:g}% new",
        deployment["state"],
    ]
    if current.get("requests") is not None:
        parts.append(f"{current['requests']} requests")
        parts.append(f"{current['errors']} errors")
    if current.get("p99_ms") is not None:
        parts.append(f"p99 {current['p99_ms']:g} ms")
    return "  ".join(parts)


def register(endpoints_app: typer.Typer) -> None:
    """Add `update`, `deployments`, `rollback` and `shadow-report` to `sluice endpoints`."""
    endpoints_app.command("update")(endpoints_update)
    endpoints_app.command("deployments")(endpoints_deployments)
    endpoints_app.command("rollback")(endpoints_rollback)
    endpoints_app.command("shadow-report")(endpoints_shadow_report)


def endpoints_update(
    name: str,
    file: Annotated[
        Path, typer.Option("--file", "-f", help="The whole endpoint spec (JSON); '-' reads stdin.")
    ],
    strategy: Annotated[
        str | None, typer.Option(help="all_at_once, canary or linear (a deployment's).")
    ] = None,
    canary_percent: Annotated[float | None, typer.Option(help="The canary step's share.")] = None,
    linear_step_percent: Annotated[
        float | None, typer.Option(help="Each linear step's increase.")
    ] = None,
    step_interval_s: Annotated[float | None, typer.Option(help="Each step's watch.")] = None,
    baking_s: Annotated[float | None, typer.Option(help="The last step's watch.")] = None,
    rollback_error_rate: Annotated[
        float | None, typer.Option(help="Roll back above this error rate (%).")
    ] = None,
    rollback_p99_ms: Annotated[
        float | None, typer.Option(help="Roll back above this model p99 (ms).")
    ] = None,
    rollback_min_requests: Annotated[
        int | None, typer.Option(help="Judge only after this many requests in a step.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the deployment until it ends.")
    ] = False,
    api_url: ApiUrlOption = None,
) -> None:
    """Replace an endpoint's spec: in place, or a deployment (docs/deployments.md)."""
    from cli.client import UsageProblem, _usage, read_spec

    try:
        spec = read_spec(file)
    except UsageProblem as problem:
        _usage(problem)
    spec.setdefault("name", name)
    block = deployment_block(
        spec.get("deployment"),
        strategy=strategy,
        canary_percent=canary_percent,
        linear_step_percent=linear_step_percent,
        step_interval_s=step_interval_s,
        baking_s=baking_s,
        error_rate_percent=rollback_error_rate,
        p99_latency_ms=rollback_p99_ms,
        min_requests=rollback_min_requests,
    )
    if block is not None:
        spec["deployment"] = block
    with http.session(api_url) as api:
        answer = api.request("PUT", f"/v1/endpoints/{name}", json=spec).json()
        deployment_id = answer.get("deployment_id")
        if not wait or deployment_id is None:
            http.print_json(answer)
            return
        shown = ""
        while True:
            deployment = api.get_json(f"/v1/endpoints/{name}/deployments/{deployment_id}")
            line = step_line(deployment)
            if line != shown:
                typer.echo(line, err=True)
                shown = line
            if deployment["state"] in FINISHED:
                break
            time.sleep(1.0)
        http.print_json(deployment)
        if deployment["state"] != "succeeded":
            http.fail(f"deployment {deployment_id} {deployment['state']}: {deployment['reason']}")


def endpoints_deployments(name: str, api_url: ApiUrlOption = None) -> None:
    """List the endpoint's deployments, newest first, with their steps and reasons."""
    with http.session(api_url) as api:
        http.print_json(api.get_json(f"/v1/endpoints/{name}/deployments"))


def endpoints_rollback(
    name: str,
    deployment: Annotated[
        str | None, typer.Option(help="The deployment id (default: the one in progress).")
    ] = None,
    api_url: ApiUrlOption = None,
) -> None:
    """Roll the endpoint's deployment in progress back: all traffic to the old config."""
    with http.session(api_url) as api:
        if deployment is None:
            current = api.get_json(f"/v1/endpoints/{name}").get("deployment") or {}
            if current.get("state") not in ("in_progress", "baking"):
                http.fail(f"endpoint {name} has no deployment in progress")
            deployment = current["deployment_id"]
        http.print_json(
            api.request("POST", f"/v1/endpoints/{name}/deployments/{deployment}/rollback").json()
        )


def endpoints_shadow_report(
    name: str,
    tolerance: Annotated[
        float, typer.Option(help="Predictions agree when they differ by at most this.")
    ] = 1e-6,
    api_url: ApiUrlOption = None,
) -> None:
    """Each shadow variant against production: agreement, differences, errors, latencies."""
    with http.session(api_url) as api:
        http.print_json(api.get_json(f"/v1/endpoints/{name}/shadow-report?tolerance={tolerance!r}"))
