"""`sluice demo`: a guided tour of a running stack that checks everything it shows.

It builds two small models itself (an XGBoost classifier and a PyTorch MLP),
registers them, puts them behind one endpoint as variants a and b, and calls it
realtime, pinned to a variant, as an async job, and with a bad payload; then an
async job on an endpoint with a success topic whose signed webhook reaches a
tiny receiver the demo runs itself (cli/demo_receiver.py). Every
prediction that comes back is compared with the same artifact called directly
in this process, so "it worked" means the numbers are right, not merely that
the API answered. Each step is one function in STEPS; a step either returns a
one-line result or raises, and the summary table lists them all.

The platform's other capabilities have a step module each: the SageMaker API
with boto3 (demo_sagemaker.py), the web console (demo_console.py), data capture
and drift monitoring (demo_capture.py), inference components, one called with
the Python SDK (demo_components.py), a multi-model endpoint with two target
models (demo_multi_model.py), canary deployments that succeed and roll back
(demo_deployments.py), a 3-step serial inference pipeline (demo_pipelines.py).
The models and their in-process reference live in cli/demo_models.py, the Tour
the steps share in cli/demo_tour.py.
"""

from __future__ import annotations

import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli import api_client as http
from cli.api_client import ApiUrlOption
from cli.demo_capture import step_monitoring
from cli.demo_components import step_components
from cli.demo_console import step_console
from cli.demo_deployments import step_deployments
from cli.demo_models import (
    DemoFailure,
    build_models,
    check_predictions,
    rounded,
)
from cli.demo_multi_model import step_multi_model
from cli.demo_pipelines import step_pipeline
from cli.demo_receiver import LoopbackReceiver
from cli.demo_sagemaker import step_sagemaker
from cli.demo_tour import (
    BATCHING,
    VARIANTS,
    Tour,
    field_of,
    invocation_url,
    realtime_call,
    short_id,
)
from cli.demo_transform import step_transform
from core.webhooks import verify_signature
from sluiceway.errors import SluicewayError

REALTIME_CALLS = 6
PINNED_CALLS = 3
JOB_TIMEOUT_S = 120.0
WEBHOOK_TIMEOUT_S = 60.0


def endpoint_spec(name: str, models: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """The endpoint body: variant a → the xgboost model, b → the torch model, weights 1:1.

    `models` maps a framework to the (name, version) that registering it returned.
    """
    variants = []
    for variant, framework in VARIANTS.items():
        model, version = models[framework]
        variants.append(
            {
                "name": variant,
                "model": model,
                "model_version": version,
                "weight": 1,
                "batching": dict(BATCHING),
            }
        )
    return {"name": name, "variants": variants}


def step_check_ready(tour: Tour) -> str:
    # First, so a stack that is down fails in milliseconds, before the models are built.
    body = tour.api.get_json("/readyz")
    checks = body.get("checks", {}) if isinstance(body, dict) else {}
    return ", ".join(f"{part} {state}" for part, state in checks.items()) or "ready"


def step_build_models(tour: Tour) -> str:
    tour.models = build_models(tour.workdir)
    tour.say(f"xgboost → {tour.models.xgboost_path}")
    tour.say(f"torch   → {tour.models.torch_path}")
    return "xgboost 10 trees depth 3; torch MLP 4→16→2 (TorchScript)"


def _register(tour: Tour, framework: str) -> str:
    short = {"xgboost": "xgb", "torch": "torch"}[framework]
    name = f"demo-{short}-{tour.suffix}"
    artifact = tour.built().artifact(framework)
    with artifact.open("rb") as handle:
        body = tour.api.request(
            "POST",
            "/v1/models",
            data={"name": name, "framework": framework},
            files={"file": (artifact.name, handle, "application/octet-stream")},
        ).json()
    version = int(field_of(body, "version", what="POST /v1/models"))
    tour.registered[framework] = (name, version)
    location = body.get("artifact_uri", "?")
    tour.say(f"{name} version {version} stored at {location}")
    return f"{name} v{version}"


def step_register_xgboost(tour: Tour) -> str:
    return _register(tour, "xgboost")


def step_register_torch(tour: Tour) -> str:
    return _register(tour, "torch")


def step_create_endpoint(tour: Tour) -> str:
    spec = endpoint_spec(f"demo-{tour.suffix}", tour.registered)
    body = tour.api.request("POST", "/v1/endpoints", json=spec).json()
    tour.endpoint = str(field_of(body, "name", what="POST /v1/endpoints"))
    tour.say(f"endpoint {tour.endpoint}: a = xgboost, b = torch, weights 1:1, batching {BATCHING}")
    return f"{tour.endpoint} ({body.get('status', 'no status')})"


def step_realtime(tour: Tour) -> str:
    calls = [realtime_call(tour, tour.rows(2)) for _ in range(REALTIME_CALLS)]
    served = [variant for variant, _ in calls]
    mix = ", ".join(f"{variant}: {served.count(variant)}" for variant in VARIANTS)
    median_ms = statistics.median(ms for _, ms in calls)
    return f"{REALTIME_CALLS} calls ({mix}), median {median_ms:.1f} ms, all match"


def step_pinned_variant(tour: Tour) -> str:
    for _ in range(PINNED_CALLS):
        served, _ = realtime_call(tour, tour.rows(1), variant="b")
        if served != "b":
            raise DemoFailure(f"X-Target-Variant: b was served by variant {served!r}")
    return f"{PINNED_CALLS} calls with X-Target-Variant: b, all served by b"


def step_async_job(tour: Tour) -> str:
    rows = tour.rows(3)
    accepted = tour.api.request(
        "POST", invocation_url(tour, "async-invocations"), json={"instances": rows}
    ).json()
    job_id = str(field_of(accepted, "job_id", what="an async invocation"))
    tour.say(f"202 accepted: {json.dumps(accepted)}")
    job = tour.api.jobs.wait(job_id, timeout=JOB_TIMEOUT_S).to_json()
    if job["status"] != "succeeded":
        raise DemoFailure(f"job {job_id} failed: {http.describe_job_error(job.get('error'))}")
    variant = str(field_of(job, "variant", what=f"GET /v1/jobs/{job_id}"))
    output = tour.api.get_json(http.path("/v1/jobs/{}/output", job_id))
    predictions = field_of(output, "predictions", what=f"GET /v1/jobs/{job_id}/output")
    expected = tour.built().predict(VARIANTS.get(variant, "?"), rows)
    check_predictions(predictions, expected, what=f"job {job_id} on variant {variant}")
    tour.say(f"succeeded on variant {variant}: {rounded(predictions)}")
    tour.say(f"output object {job.get('output_location')}  matches the model called directly")
    return f"job {short_id(job_id)} succeeded on variant {variant}, output stored"


def step_webhook(tour: Tour) -> str:
    """An async job on an endpoint with a success topic; its signed event reaches us."""
    secret = secrets.token_hex(16)
    topic, endpoint = f"demo-done-{tour.suffix}", f"demo-hook-{tour.suffix}"
    model, version = tour.registered["xgboost"]
    with LoopbackReceiver() as receiver:
        tour.api.request("POST", "/v1/topics", json={"name": topic})
        tour.api.request(
            "POST",
            http.path("/v1/topics/{}/subscriptions", topic),
            json={"url": receiver.url, "secret": secret},
        )
        tour.api.request(
            "POST",
            "/v1/endpoints",
            json={
                "name": endpoint,
                "variants": [{"name": "a", "model": model, "model_version": version}],
                "async": {"success_topic": topic, "error_topic": topic},
            },
        )
        tour.say(f"topic {topic} → {receiver.url} (this process); endpoint {endpoint} uses it")
        accepted = tour.api.request(
            "POST",
            http.path("/v1/endpoints/{}/async-invocations", endpoint),
            json={"instances": tour.rows(1)},
        ).json()
        job_id = str(field_of(accepted, "job_id", what="an async invocation"))
        hook = receiver.wait(timeout_s=WEBHOOK_TIMEOUT_S)
    if hook is None:
        raise DemoFailure(
            f"no webhook for job {job_id} within {WEBHOOK_TIMEOUT_S:g} s: is the scheduler "
            f"running, and on this machine? See GET /v1/topics/{topic}/deliveries"
        )
    signature = hook.header("X-Sluiceway-Signature")
    if not verify_signature(secret, hook.body, signature):
        raise DemoFailure(f"the webhook's signature {signature!r} does not verify with the secret")
    event = json.loads(hook.body)
    if event.get("job_id") != job_id or event.get("type") != "InferenceSucceeded":
        raise DemoFailure(f"expected InferenceSucceeded for job {job_id}, got {event}")
    delivery = short_id(hook.header("X-Sluiceway-Delivery"))
    tour.say(f"POST {hook.path}  delivery {delivery}  {signature[:23]}…  verified")
    tour.say(f"body {hook.body.decode(errors='replace')}")
    return f"job {short_id(job_id)} → {event['type']} webhook, signature verified"


def step_bad_input(tour: Tour) -> str:
    # Pinned to the xgboost variant: the booster knows it takes 4 features, so a
    # 3-feature row must come back as a 422 problem, never a 500 or a 200.
    rows = [[0.1, 0.2, 0.3]]
    try:
        tour.api.request(
            "POST",
            invocation_url(tour, "invocations"),
            json={"instances": rows},
            headers={"X-Target-Variant": "a"},
        )
    except http.ApiError as exc:
        if exc.status != 422:
            raise DemoFailure(f"a 3-feature row should be a 422 problem, got {exc}") from exc
        tour.say(exc.one_line())
        return f"3 features instead of 4 → {exc.status} {exc.title}"
    raise DemoFailure("a 3-feature row was accepted by a 4-feature model")


Step = Callable[[Tour], str]
# To show a new capability, write one `step_...(tour) -> str` and list it here.
STEPS: list[tuple[str, Step]] = [
    ("check the stack is ready", step_check_ready),
    ("build the models", step_build_models),
    ("register the xgboost model", step_register_xgboost),
    ("register the torch model", step_register_torch),
    ("create the endpoint", step_create_endpoint),
    ("realtime calls", step_realtime),
    ("pin variant b", step_pinned_variant),
    ("async job", step_async_job),
    ("async job with a webhook", step_webhook),
    ("batch transform over S3", step_transform),
    ("bad input", step_bad_input),
    ("SageMaker API with boto3", step_sagemaker),
    ("web console", step_console),
    ("data capture and drift monitoring", step_monitoring),
    ("inference components", step_components),
    ("multi-model endpoint", step_multi_model),
    ("canary deployments and a rollback", step_deployments),
    ("serial inference pipeline", step_pipeline),
]

# What a step may fail with; anything else is a bug in the demo and keeps its traceback.
STEP_FAILURES = (DemoFailure, SluicewayError)


@dataclass
class Outcome:
    step: str
    status: str  # ok | failed | not run
    detail: str = ""
    elapsed_ms: float | None = None
    exit_code: int = 0


def run_steps(tour: Tour, steps: list[tuple[str, Step]]) -> list[Outcome]:
    """Run the steps in order; after a failure the rest are listed as not run (they build on it)."""
    outcomes: list[Outcome] = []
    for title, step in steps:
        if any(outcome.status == "failed" for outcome in outcomes):
            outcomes.append(Outcome(title, "not run"))
            continue
        tour.console.print(f"[bold cyan]▶ {escape(title)}[/]")
        started = time.perf_counter()
        try:
            detail, status, code = step(tour), "ok", 0
        except STEP_FAILURES as exc:
            detail, status = str(exc), "failed"
            code = 2 if isinstance(exc, http.ApiUnreachable) else 1
            tour.console.print(f"  [bold red]FAILED: {escape(detail)}[/]")
        elapsed_ms = (time.perf_counter() - started) * 1000
        outcomes.append(Outcome(title, status, detail, elapsed_ms, code))
    return outcomes


def summary_table(outcomes: list[Outcome]) -> Table:
    table = Table(title="sluice demo", title_justify="left")
    table.add_column("step")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    table.add_column("ms", justify="right")
    styles = {"ok": "green", "failed": "bold red", "not run": "dim"}
    for outcome in outcomes:
        elapsed = "" if outcome.elapsed_ms is None else f"{outcome.elapsed_ms:.0f}"
        table.add_row(
            escape(outcome.step),
            f"[{styles[outcome.status]}]{outcome.status}[/]",
            escape(outcome.detail),
            elapsed,
        )
    return table


def exit_code(outcomes: list[Outcome]) -> int:
    return max((outcome.exit_code for outcome in outcomes), default=0)


def demo(api_url: ApiUrlOption = None) -> None:
    """Tour a running stack: build two models, serve them, call them, check every answer."""
    console = Console()
    with (
        tempfile.TemporaryDirectory(prefix="sluiceway-demo-") as workdir,
        http.connect(api_url) as api,
    ):
        console.print(f"Sluiceway demo against {escape(api.base_url)}")
        tour = Tour(api=api, console=console, workdir=Path(workdir))
        outcomes = run_steps(tour, STEPS)
    console.print()
    console.print(summary_table(outcomes))
    code = exit_code(outcomes)
    if code == 0:
        example = '{"instances": [[0.5, -1.2, 0.3, 2.0]]}'
        console.print(
            f"Try it while this stack runs: sluice invoke {tour.endpoint} --data '{example}' "
            "(`make demo` stops its stack when done; `sluice up` and `sluice demo` keep one)",
            markup=False,
        )
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `sluice demo` to the `sluice` app."""
    app.command("demo")(demo)
