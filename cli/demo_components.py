"""The demo's inference-components step: two models as components of the demo endpoint.

Each component declares half a core per copy and keeps one copy; the scheduler
places both on this host next to the endpoint's variant workers. Each is then
called with X-Target-Component — the xgboost one over plain HTTP (checking
X-Invoked-Component), the torch one with the Python SDK's
`predict(rows, component=...)` — and both answers are compared with the models
called directly. The components are deleted (drained) at the end.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from cli import api_client as http
from cli.demo_models import DemoFailure, check_predictions, rounded
from cli.demo_tour import field_of, invocation_url

if TYPE_CHECKING:
    from cli.demo_tour import Tour

COMPONENTS = {"small-xgb": "xgboost", "small-torch": "torch"}  # component → framework
COMPUTE = {"cpu_cores": 0.5, "memory_mb": 256}
PLACED_TIMEOUT_S = 120.0


def component_spec(name: str, model: tuple[str, int]) -> dict[str, Any]:
    """A component body: `model` (name, version), half a core, one copy kept."""
    return {
        "name": name,
        "model": model[0],
        "model_version": model[1],
        "compute": dict(COMPUTE),
        "copies": {"min": 1, "max": 1},
    }


def _wait_running(tour: Tour, name: str) -> dict[str, Any]:
    """GET the component until one copy serves it; DemoFailure (with why not) on timeout."""
    path = http.path("/v1/endpoints/{}/components/{}", tour.endpoint, name)
    deadline = time.monotonic() + PLACED_TIMEOUT_S
    while True:
        body = dict(tour.api.get_json(path))
        if int(body.get("copies", {}).get("current") or 0) >= 1:
            return body
        if time.monotonic() > deadline:
            reason = body.get("pending_reason") or "no copy running yet"
            raise DemoFailure(f"component {name}: {reason} after {PLACED_TIMEOUT_S:g} s")
        time.sleep(0.5)


def step_components(tour: Tour) -> str:
    """Two components on the demo endpoint, each called with X-Target-Component."""
    for name, framework in COMPONENTS.items():
        tour.api.request(
            "POST",
            http.path("/v1/endpoints/{}/components", tour.endpoint),
            json=component_spec(name, tour.registered[framework]),
        )
    try:
        for name, framework in COMPONENTS.items():
            body = _wait_running(tour, name)
            hosts = [p.get("host") for p in body.get("placements", [])]
            tour.say(f"component {name} ({framework}, {COMPUTE['cpu_cores']} core) on {hosts}")

        rows = tour.rows(2)
        response = tour.api.request(
            "POST",
            invocation_url(tour, "invocations"),
            json={"instances": rows},
            headers={"X-Target-Component": "small-xgb"},
        )
        invoked = response.headers.get("X-Invoked-Component", "")
        if invoked != "small-xgb":
            raise DemoFailure(f"X-Invoked-Component is {invoked!r}, expected 'small-xgb'")
        predictions = field_of(response.json(), "predictions", what="a component call")
        check_predictions(predictions, tour.built().predict("xgboost", rows), what="small-xgb")
        tour.say(f"HTTP  X-Target-Component: small-xgb   → {rounded(predictions)}  matches")

        rows = tour.rows(2)
        sdk_predictions = tour.api.endpoint(tour.endpoint).predict(rows, component="small-torch")
        check_predictions(sdk_predictions, tour.built().predict("torch", rows), what="small-torch")
        tour.say(
            f"SDK   predict(rows, component='small-torch') → {rounded(sdk_predictions)}  matches"
        )
    finally:
        for name in COMPONENTS:
            tour.api.request(
                "DELETE", http.path("/v1/endpoints/{}/components/{}", tour.endpoint, name)
            )
    return "small-xgb and small-torch (0.5 core each) answered, one by HTTP, one by the SDK"
