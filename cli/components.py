"""`sluice endpoints components ...`: inference components of a live endpoint (docs/components.md).

Each command is one request through the SDK's raw layer; JSON goes to stdout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import api_client as http
from cli.api_client import ApiUrlOption
from sluiceway._plans import path

components_app = typer.Typer(
    help="Add, inspect, scale and remove inference components of an endpoint.",
    no_args_is_help=True,
)

COLLECTION = "/v1/endpoints/{}/components"
ITEM = "/v1/endpoints/{}/components/{}"


def component_patch(
    *,
    min_copies: int | None,
    max_copies: int | None,
    cpu_cores: float | None,
    memory_mb: int | None,
    gpus: int | None,
    gpu_memory_mb: int | None,
) -> dict[str, Any]:
    """The PATCH body for the options given: `--max-copies 3 --cpu-cores 1` →
    `{"copies": {"max": 3}, "compute": {"cpu_cores": 1}}`."""
    copies = {k: v for k, v in (("min", min_copies), ("max", max_copies)) if v is not None}
    compute = {
        k: v
        for k, v in (
            ("cpu_cores", cpu_cores),
            ("memory_mb", memory_mb),
            ("gpus", gpus),
            ("gpu_memory_mb", gpu_memory_mb),
        )
        if v is not None
    }
    body: dict[str, Any] = {}
    if copies:
        body["copies"] = copies
    if compute:
        body["compute"] = compute
    return body


@components_app.command("create")
def create(
    endpoint: str,
    file: Annotated[
        Path, typer.Option("--file", "-f", help="The component spec (JSON); '-' reads stdin.")
    ],
    api_url: ApiUrlOption = None,
) -> None:
    """Add a component to a live endpoint (fields: docs/api.md, Inference components)."""
    from cli.client import UsageProblem, _usage, read_spec

    try:
        spec = read_spec(file)
    except UsageProblem as problem:
        _usage(problem)
    with http.session(api_url) as api:
        http.print_json(api.request("POST", path(COLLECTION, endpoint), json=spec).json())


@components_app.command("list")
def list_(endpoint: str, api_url: ApiUrlOption = None) -> None:
    """Every component of the endpoint with its copies and placements."""
    with http.session(api_url) as api:
        http.print_json(api.get_json(path(COLLECTION, endpoint)))


@components_app.command("get")
def get(endpoint: str, component: str, api_url: ApiUrlOption = None) -> None:
    """One component: copies current/desired, where each runs, why any is pending."""
    with http.session(api_url) as api:
        http.print_json(api.get_json(path(ITEM, endpoint, component)))


@components_app.command("update")
def update(
    endpoint: str,
    component: str,
    min_copies: Annotated[int | None, typer.Option(min=0, help="copies.min")] = None,
    max_copies: Annotated[int | None, typer.Option(min=0, help="copies.max")] = None,
    cpu_cores: Annotated[float | None, typer.Option(help="compute.cpu_cores")] = None,
    memory_mb: Annotated[int | None, typer.Option(help="compute.memory_mb")] = None,
    gpus: Annotated[int | None, typer.Option(help="compute.gpus")] = None,
    gpu_memory_mb: Annotated[int | None, typer.Option(help="compute.gpu_memory_mb")] = None,
    body: Annotated[
        str | None, typer.Option(help="A whole PATCH body (JSON) instead of the options.")
    ] = None,
    api_url: ApiUrlOption = None,
) -> None:
    """Change copies or compute (or any PATCH field with --body)."""
    from cli.client import UsageProblem, _usage

    try:
        patch = (
            json.loads(body)
            if body is not None
            else component_patch(
                min_copies=min_copies,
                max_copies=max_copies,
                cpu_cores=cpu_cores,
                memory_mb=memory_mb,
                gpus=gpus,
                gpu_memory_mb=gpu_memory_mb,
            )
        )
        if not patch:
            raise UsageProblem("nothing to change: give an option or --body")
    except ValueError as exc:
        _usage(UsageProblem(f"--body is not valid JSON: {exc}"))
    with http.session(api_url) as api:
        http.print_json(api.request("PATCH", path(ITEM, endpoint, component), json=patch).json())


@components_app.command("delete")
def delete(endpoint: str, component: str, api_url: ApiUrlOption = None) -> None:
    """Refuse new calls, drain what is queued, then remove the component."""
    with http.session(api_url) as api:
        http.print_json(api.request("DELETE", path(ITEM, endpoint, component)).json())
    typer.echo(f"deleting component {component} of {endpoint} (drains first)", err=True)
