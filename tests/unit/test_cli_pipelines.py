"""`sluice models register NAME --pipeline ...` / `--spec FILE` and the SDK's step syntax.

No network: the CLI's HTTP exchanges go through an httpx.MockTransport that
answers as the API does, so what is checked is the request the CLI builds
and how it reports usage errors (the API side runs in
tests/integration/test_pipelines.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from cli import api_client as http
from cli import client
from sluiceway._plans import pipeline_steps

VERSION = {
    "name": "churn",
    "version": 1,
    "framework": "pipeline",
    "artifact_uri": "s3://sluiceway/models/churn/abc/pipeline.json",
    "created_at": "2026-11-30T01:00:00Z",
    "steps": [],
}


def test_step_syntax() -> None:
    assert pipeline_steps("prep:1, xgb ,post") == [
        {"name": "prep", "model": "prep", "model_version": 1},
        {"name": "xgb", "model": "xgb"},
        {"name": "post", "model": "post"},
    ]
    assert pipeline_steps(["scale=churn-prep:2", {"name": "m", "model": "x"}]) == [
        {"name": "scale", "model": "churn-prep", "model_version": 2},
        {"name": "m", "model": "x"},
    ]
    with pytest.raises(ValueError, match="'xgb:latest' is not"):
        pipeline_steps("prep,xgb:latest")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.read()))
        return httpx.Response(201, json=VERSION)

    monkeypatch.setattr(
        http,
        "make_client",
        lambda base_url: httpx.Client(base_url=base_url, transport=httpx.MockTransport(answer)),
    )
    return bodies


def run(*args: str) -> Any:
    app = typer.Typer()
    client.register(app)
    return CliRunner().invoke(app, ["models", "register", *args, "--api-url", "http://api.test"])


def test_pipeline_option_sends_the_steps(sent: list[dict[str, Any]]) -> None:
    result = run("churn", "--pipeline", "prep:1,xgb,post")
    assert result.exit_code == 0, result.output
    assert sent == [
        {
            "name": "churn",
            "framework": "pipeline",
            "steps": [
                {"name": "prep", "model": "prep", "model_version": 1},
                {"name": "xgb", "model": "xgb"},
                {"name": "post", "model": "post"},
            ],
        }
    ]
    assert json.loads(result.stdout)["framework"] == "pipeline"


def test_a_spec_file_sends_its_steps(sent: list[dict[str, Any]], tmp_path: Path) -> None:
    steps = [
        {"name": "prep", "model": "churn-prep", "model_version": 1},
        {"name": "x", "model": "y"},
    ]
    spec = tmp_path / "churn.json"
    spec.write_text(json.dumps({"steps": steps}))
    result = run("churn", "--spec", str(spec))
    assert result.exit_code == 0, result.output
    assert sent[0]["steps"] == steps


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["churn", "--pipeline", "a,b:x"], "is not [STEP=]MODEL[:VERSION]"),
        (["churn", "--pipeline", "a,b", "--framework", "xgboost"], "a pipeline takes no FILE"),
        (["churn", "--pipeline", "a,b", "--spec", "s.json"], "one of --pipeline or --spec"),
        (["churn", "--spec", "/nonexistent/s.json"], "cannot read"),
        (["churn"], "give --framework"),
    ],
)
def test_usage_errors_are_one_line_and_send_nothing(
    sent: list[dict[str, Any]], args: list[str], message: str
) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert sent == []
