"""`sluice endpoints update | deployments | rollback` against a mock API (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from cli import api_client as http
from cli import client
from cli.deployments import deployment_block, step_line

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()
    client.register(root)
    return root


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    return []


def _serve(monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request], handler: Handler) -> None:
    def recording(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return handler(request)

    monkeypatch.setattr(
        http,
        "make_client",
        lambda base_url: httpx.Client(base_url=base_url, transport=httpx.MockTransport(recording)),
    )


def _run(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--api-url", "http://api.test"])


def _deployment(state: str, steps: list[dict[str, Any]], percent: float = 10) -> dict[str, Any]:
    return {
        "deployment_id": "d1",
        "state": state,
        "new_traffic_percent": percent,
        "steps": steps,
        "reason": "error rate 22.0% (9 of 41 requests) at 10% of traffic "
        "> rollback_on.error_rate_percent 5%"
        if state == "rolled_back"
        else None,
    }


def test_flags_lay_over_the_spec_block() -> None:
    block = deployment_block(
        {"strategy": "linear", "rollback_on": {"min_requests": 5}},
        strategy="canary",
        canary_percent=10,
        error_rate_percent=5,
    )
    assert block == {
        "strategy": "canary",
        "canary_percent": 10,
        "rollback_on": {"min_requests": 5, "error_rate_percent": 5},
    }
    assert deployment_block(None) is None


def test_step_line_shows_share_state_and_counts() -> None:
    assert step_line(_deployment("in_progress", [])) == "starting the new workers  in_progress"
    line = step_line(
        _deployment("rolled_back", [{"percent": 10, "requests": 41, "errors": 9, "p99_ms": 25.0}])
    )
    assert line == "step 1  10% new  rolled_back  41 requests  9 errors  p99 25 ms"


def test_update_sends_the_spec_with_the_flags(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request], tmp_path: Path
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"variants": [{"name": "a", "model": "m"}]}))
    _serve(
        monkeypatch,
        seen,
        lambda _: httpx.Response(200, json={"applied": "in_place", "deployment_id": None}),
    )
    result = _run(
        app,
        "endpoints",
        "update",
        "churn",
        "--file",
        str(spec),
        "--strategy",
        "canary",
        "--canary-percent",
        "10",
        "--wait",
    )
    assert result.exit_code == 0, result.output
    (request,) = seen
    assert (request.method, request.url.path) == ("PUT", "/v1/endpoints/churn")
    body = json.loads(request.content)
    assert body["name"] == "churn"
    assert body["deployment"] == {"strategy": "canary", "canary_percent": 10.0}


def test_update_wait_follows_the_steps_and_fails_on_a_rollback(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request], tmp_path: Path
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "churn", "variants": [{"name": "a", "model": "m"}]}))
    monkeypatch.setattr("cli.deployments.time.sleep", lambda _: None)
    answers = iter(
        [
            _deployment("in_progress", []),
            _deployment("in_progress", [{"percent": 10, "requests": None}]),
            _deployment("rolled_back", [{"percent": 10, "requests": 41, "errors": 9}]),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return httpx.Response(202, json={"applied": "deployment", "deployment_id": "d1"})
        return httpx.Response(200, json=next(answers))

    _serve(monkeypatch, seen, handler)
    result = _run(app, "endpoints", "update", "churn", "-f", str(spec), "--wait")
    assert result.exit_code == 1
    assert "step 1  10% new  rolled_back  41 requests  9 errors" in result.stderr
    assert "rollback_on.error_rate_percent 5%" in result.stderr.splitlines()[-1]


def test_rollback_finds_the_deployment_in_progress(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(
                200, json={"deployment": {"deployment_id": "d1", "state": "baking"}}
            )
        return httpx.Response(200, json=_deployment("rolled_back", []))

    _serve(monkeypatch, seen, handler)
    result = _run(app, "endpoints", "rollback", "churn")
    assert result.exit_code == 0, result.output
    assert seen[-1].url.path == "/v1/endpoints/churn/deployments/d1/rollback"


def test_rollback_without_a_deployment_in_progress_says_so(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request]
) -> None:
    _serve(monkeypatch, seen, lambda _: httpx.Response(200, json={"deployment": None}))
    result = _run(app, "endpoints", "rollback", "churn")
    assert result.exit_code == 1
    assert "no deployment in progress" in result.stderr


def test_shadow_report_passes_the_tolerance(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request]
) -> None:
    _serve(monkeypatch, seen, lambda _: httpx.Response(200, json={"shadow_variants": []}))
    result = _run(app, "endpoints", "shadow-report", "churn", "--tolerance", "0.001")
    assert result.exit_code == 0, result.output
    assert seen[0].url.path == "/v1/endpoints/churn/shadow-report"
    assert seen[0].url.params["tolerance"] == "0.001"
