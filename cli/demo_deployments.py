"""The demo's deployment step: a canary to a new model version, and one that rolls back.

A fresh endpoint serves the demo's torch model (version 1). A `PUT` with a new
version (an MLP from another seed) starts a canary deployment: half the traffic
to the new config, then all of it; every answer is checked against the model of
the config that gave it (`X-Config-Version`) until the deployment succeeds.
Then a `PUT` with a version that fails every request starts another canary,
which rolls back by itself (its error rate is above `rollback_on`), and the
endpoint answers from the good version again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli import api_client as http
from cli.demo_models import SEED, DemoFailure, build_torch, check_predictions
from cli.demo_tour import short_id

if TYPE_CHECKING:
    import torch

    from cli.demo_tour import Tour

CANARY: dict[str, Any] = {
    "strategy": "canary",
    "canary_percent": 50,
    "step_interval_s": 3,
    "baking_s": 2,
    "rollback_on": {"error_rate_percent": 5, "min_requests": 5},
}
# The failing release's canary step is long: it must end by rolling back (as soon as
# 5 requests were judged), never by running out its step with too few requests seen.
FAILING_CANARY: dict[str, Any] = {**CANARY, "step_interval_s": 60}
DEPLOY_TIMEOUT_S = 120.0
FINAL = ("succeeded", "rolled_back", "failed", "stopped")


def build_failing_torch(path: Path) -> None:
    """A TorchScript model that raises on every call: a release that must never ship."""
    import torch

    class AlwaysFails(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] >= 0:
                raise RuntimeError("this model version fails every request")
            return x

    from cli.demo_models import _torchscript_allowed

    with _torchscript_allowed():
        torch.jit.script(AlwaysFails()).save(str(path))


def _load(path: Path) -> torch.jit.ScriptModule:
    import torch

    from cli.demo_models import _torchscript_allowed

    with _torchscript_allowed():
        return torch.jit.load(str(path)).eval()


def _register(tour: Tour, name: str, artifact: Path) -> int:
    with artifact.open("rb") as handle:
        body = tour.api.request(
            "POST",
            "/v1/models",
            data={"name": name, "framework": "torch"},
            files={"file": (artifact.name, handle, "application/octet-stream")},
        ).json()
    return int(body["version"])


def _spec(endpoint: str, model: str, version: int) -> dict[str, Any]:
    variant = {"name": "a", "model": model, "model_version": version, "min_workers": 1}
    return {"name": endpoint, "variants": [variant]}


def _deploy(
    tour: Tour,
    endpoint: str,
    spec: dict[str, Any],
    references: dict[str, Any],
    canary: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, int]]:
    """PUT `spec` with the `canary` deployment; call the endpoint until it ends.

    Every 200 answer is checked against `references[X-Config-Version]`; other
    answers are counted by status. → (the finished deployment, answers per config
    version or status).
    """
    import numpy as np
    import torch

    answer = tour.api.request(
        "PUT", http.path("/v1/endpoints/{}", endpoint), json={**spec, "deployment": canary}
    ).json()
    deployment_id = str(answer["deployment_id"])
    path = http.path("/v1/endpoints/{}/deployments/{}", endpoint, deployment_id)
    seen: dict[str, int] = {}
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    while True:
        rows = tour.rows(1)
        response = tour.api.http.post(
            http.path("/v1/endpoints/{}/invocations", endpoint), json={"instances": rows}
        )
        if response.status_code == 200:
            config = response.headers.get("X-Config-Version", "?")
            if config not in references:
                raise DemoFailure(f"an answer from config {config!r}, expected {list(references)}")
            with torch.inference_mode():
                expected = references[config](torch.tensor(rows, dtype=torch.float32))
            check_predictions(
                response.json()["predictions"],
                np.asarray(expected, dtype=np.float64),
                what=f"config {config}",
            )
            seen[f"config {config}"] = seen.get(f"config {config}", 0) + 1
        else:
            seen[f"HTTP {response.status_code}"] = seen.get(f"HTTP {response.status_code}", 0) + 1
        deployment = dict(tour.api.get_json(path))
        if deployment["state"] in FINAL:
            return deployment, seen
        if time.monotonic() > deadline:
            raise DemoFailure(f"deployment {deployment_id} still {deployment['state']}")
        time.sleep(0.1)


def step_deployments(tour: Tour) -> str:
    """A canary to version 2 that succeeds; a canary to a failing version 3 rolls back."""
    model, v1 = tour.registered["torch"]
    v2_path, v3_path = tour.workdir / "demo-mlp-v2.pt", tour.workdir / "demo-fails.pt"
    build_torch(v2_path, seed=SEED + 1)
    build_failing_torch(v3_path)
    v2 = _register(tour, model, v2_path)
    v3 = _register(tour, model, v3_path)
    endpoint = f"demo-deploy-{tour.suffix}"
    tour.api.request("POST", "/v1/endpoints", json=_spec(endpoint, model, v1))
    tour.say(f"endpoint {endpoint} on {model} v{v1}; registered v{v2} (new MLP), v{v3} (fails)")
    one, two = tour.built().module, _load(v2_path)

    good = _spec(endpoint, model, v2)
    done, seen = _deploy(tour, endpoint, good, {"1": one, "2": two}, CANARY)
    first = short_id(done["deployment_id"])
    if done["state"] != "succeeded":
        raise DemoFailure(f"the canary to v{v2} ended {done['state']}: {done.get('reason')}")
    steps = [f"{s['percent']:g}%" for s in done.get("steps", [])]
    tour.say(f"canary → v{v2}: steps {steps}, {seen}, every answer its config's model")

    bad = _spec(endpoint, model, v3)
    done, seen = _deploy(tour, endpoint, bad, {"2": two}, FAILING_CANARY)
    if done["state"] != "rolled_back":
        raise DemoFailure(f"the canary to failing v{v3} ended {done['state']} ({seen})")
    tour.say(f"canary → v{v3}: {seen}; rolled back: {done.get('reason')}")
    current = tour.api.get_json(http.path("/v1/endpoints/{}", endpoint))
    if current.get("config_version") != 2:
        raise DemoFailure(f"after the rollback config {current.get('config_version')} serves")
    return (
        f"v{v1}→v{v2} canary {first} succeeded; canary {short_id(done['deployment_id'])} "
        f"to failing v{v3} rolled back by itself, config 2 serves"
    )
