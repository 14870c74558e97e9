"""Unit tests of the demo's feature steps' local parts (cli/demo_*.py).

The steps themselves run against a real stack under `make demo`; here their
pure helpers, and the steps that need only HTTP, run against an
httpx.MockTransport.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from cli import api_client as http
from cli import (
    demo,
    demo_capture,
    demo_components,
    demo_console,
    demo_deployments,
    demo_multi_model,
    demo_pipelines,
)
from cli.demo_models import DemoFailure

Handler = Callable[[httpx.Request], httpx.Response]


def mock_tour(handler: Handler) -> demo.Tour:
    transport = httpx.MockTransport(handler)
    api = http.Api(http_client=httpx.Client(base_url="http://api.test", transport=transport))
    return demo.Tour(api=api, console=Console(quiet=True), workdir=Path("."), endpoint="demo-x")


def test_the_tour_lists_every_capability_once() -> None:
    titles = [title for title, _ in demo.STEPS]
    assert len(titles) == len(set(titles))
    steps = {step for _, step in demo.STEPS}
    for step in (
        demo_capture.step_monitoring,
        demo_components.step_components,
        demo_console.step_console,
        demo_multi_model.step_multi_model,
        demo_deployments.step_deployments,
        demo_pipelines.step_pipeline,
    ):
        assert step in steps
    # Components come after the steps that call the demo endpoint's variants: their
    # copies need the cores the variants leave, and are deleted when done.
    order = [step for _, step in demo.STEPS]
    assert order.index(demo_components.step_components) > order.index(demo_capture.step_monitoring)


def test_shifted_moves_only_the_chosen_feature() -> None:
    rows = [[0.0, 1.0, 2.0, 3.0], [-1.0, -1.0, -1.0, -1.0]]
    assert demo_capture.shifted(rows, feature=2) == [[0.0, 1.0, 5.0, 3.0], [-1.0, -1.0, 2.0, -1.0]]
    assert rows[0][2] == 2.0  # the input is left alone


def test_drifted_features_reads_baseline_drift_only() -> None:
    violations = [
        {"feature": "_c2", "check": "baseline_drift", "value": 0.8},
        {"feature": "_c0", "check": "completeness", "value": 0.5},
        {"feature": "_c1", "check": "baseline_drift", "value": 0.2},
    ]
    assert demo_capture.drifted_features(violations) == ["_c1", "_c2"]
    assert demo_capture.drifted_features([]) == []


def test_component_spec_pins_the_version_and_keeps_one_copy() -> None:
    spec = demo_components.component_spec("small-xgb", ("demo-xgb", 3))
    assert spec == {
        "name": "small-xgb",
        "model": "demo-xgb",
        "model_version": 3,
        "compute": {"cpu_cores": 0.5, "memory_mb": 256},
        "copies": {"min": 1, "max": 1},
    }


def test_a_component_never_placed_fails_with_its_pending_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo_components, "PLACED_TIMEOUT_S", 0.0)
    body = {"copies": {"current": 0, "desired": 1}, "pending_reason": "box1: needs 1 core, 0 free"}
    tour = mock_tour(lambda _: httpx.Response(200, json=body))
    with pytest.raises(DemoFailure, match="box1: needs 1 core, 0 free"):
        demo_components._wait_running(tour, "small-xgb")


def test_console_step_prints_the_console_url() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, html="<html><h1>demo-x</h1></html>")

    assert demo_console.step_console(mock_tour(handler)) == "http://api.test/console"
    assert seen == ["/console", "/console/endpoints/demo-x"]


def test_console_step_wants_html() -> None:
    tour = mock_tour(lambda _: httpx.Response(200, json={"detail": "not a page"}))
    with pytest.raises(DemoFailure, match="not an HTML page"):
        demo_console.step_console(tour)


def test_the_multi_model_step_asks_for_two_distinct_keys() -> None:
    keys = list(demo_multi_model.TARGET_MODELS)
    assert len(keys) == 2 and all(not key.startswith("/") for key in keys)
    offsets = demo_multi_model.TARGET_MODELS.values()
    seeds = {demo_multi_model.tour_seed(offset) for offset in offsets}
    assert len(seeds) == 2  # two models, so their answers tell them apart


def test_the_failing_release_raises_on_every_call(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "fails.pt"
    demo_deployments.build_failing_torch(path)
    with pytest.raises(torch.jit.Error, match="fails every request"):
        demo_deployments._load(path)(torch.zeros(1, 4))


def test_the_canaries_watch_their_error_rate() -> None:
    for canary in (demo_deployments.CANARY, demo_deployments.FAILING_CANARY):
        assert canary["strategy"] == "canary"
        assert canary["rollback_on"]["error_rate_percent"] == 5
    # The failing release cannot run out its step before enough requests are judged.
    assert demo_deployments.FAILING_CANARY["step_interval_s"] >= 30
    spec = demo_deployments._spec("demo-deploy-x", "demo-torch-x", 2)
    assert spec["variants"] == [
        {"name": "a", "model": "demo-torch-x", "model_version": 2, "min_workers": 1}
    ]


def test_the_pipeline_handlers_bundled_are_the_steps_the_demo_checks_against(
    tmp_path: Path,
) -> None:
    """prep and post, as bundled for the workers, do what expected_answer does here."""
    import tarfile

    import numpy as np

    handlers = {}
    for name, source in (("prep", demo_pipelines.PREP), ("post", demo_pipelines.POST)):
        bundle = demo_pipelines.handler_bundle(tmp_path / f"{name}.tar.gz", source)
        with tarfile.open(bundle) as archive:
            member = archive.extractfile("handler.py")
            assert member is not None
            namespace: dict[str, object] = {}
            exec(member.read().decode(), namespace)  # the handler as a worker loads it
        handlers[name] = namespace["predict_fn"]
    rows = [[1.0, 1.0, 1.0, 1.0], [2.0, -1.0, 0.5, 4.0]]
    scaled = handlers["prep"](rows, None)
    np.testing.assert_allclose(scaled, np.asarray(rows) * np.asarray(demo_pipelines.SCALE))
    assert handlers["post"](np.asarray([0.2, 0.9]), None) == [[0.2, 0.0], [0.9, 1.0]]
