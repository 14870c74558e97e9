"""`sluice transform`: the request it sends, the progress wait and its exit codes (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from cli import api_client as http
from cli import transform

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    transform.register(app)
    return app


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[httpx.Request]]:
    requests: list[httpx.Request] = []
    monkeypatch.setattr(transform.time, "sleep", lambda _s: None)
    yield requests


def serve(monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request], handler: Handler) -> None:
    def recording(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return handler(request)

    monkeypatch.setattr(
        http,
        "make_client",
        lambda base_url: httpx.Client(base_url=base_url, transport=httpx.MockTransport(recording)),
    )


def job(status: str, processed: int, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": "j1",
        "name": "nightly",
        "status": status,
        "total_records": 100,
        "processed_records": processed,
        "failed_records": 1,
        "input_objects": 2,
        "completed_objects": 2 if status == "succeeded" else 0,
        "output_prefix": "s3://out/",
        "error": None,
        **extra,
    }


def run(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--api-url", "http://api.test"])


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("s3://d/in/", "text/csv"),
        ("s3://d/in/x.jsonl", "application/jsonlines"),
        ("s3://d/in/X.NDJSON", "application/jsonlines"),
    ],
)
def test_guess_content_type(prefix: str, expected: str) -> None:
    assert transform.guess_content_type(prefix) == expected


def test_submit_sends_the_spec_and_prints_the_job(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request]
) -> None:
    serve(monkeypatch, seen, lambda _r: httpx.Response(202, json=job("queued", 0)))
    result = run(
        app,
        "transform",
        "churn",
        "s3://in/",
        "s3://out/",
        "--split-type",
        "line",
        "--batch-strategy",
        "single_record",
        "--max-payload-mb",
        "2",
        "--join-source",
        "input",
        "--name",
        "nightly",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["job_id"] == "j1"
    assert json.loads(seen[0].content) == {
        "endpoint": "churn",
        "name": "nightly",
        "input_prefix": "s3://in/",
        "output_prefix": "s3://out/",
        "content_type": "text/csv",
        "split_type": "line",
        "batch_strategy": "single_record",
        "max_payload_mb": 2.0,
        "assemble_with": "line",
        "join_source": "input",
    }


def test_model_targets_the_transform_pool(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request]
) -> None:
    serve(monkeypatch, seen, lambda _r: httpx.Response(202, json=job("queued", 0)))
    result = run(
        app, "transform", "mlp", "s3://in/", "s3://out/", "--model", "--model-version", "3"
    )
    assert result.exit_code == 0, result.output
    body = json.loads(seen[0].content)
    assert (body["model"], body["model_version"]) == ("mlp", 3) and "endpoint" not in body


@pytest.mark.parametrize(("final", "code"), [("succeeded", 0), ("failed", 1), ("stopped", 1)])
def test_wait_polls_until_the_job_ends_and_exits_0_only_on_success(
    app: typer.Typer,
    monkeypatch: pytest.MonkeyPatch,
    seen: list[httpx.Request],
    final: str,
    code: int,
) -> None:
    states = iter([job("running", 10), job("running", 60), job(final, 100)])
    serve(
        monkeypatch,
        seen,
        lambda r: httpx.Response(202 if r.method == "POST" else 200, json=next(states)),
    )
    result = run(app, "transform", "churn", "s3://in/", "s3://out/", "--wait")
    assert result.exit_code == code, result.output
    assert [r.url.path for r in seen] == ["/v1/transform-jobs"] + ["/v1/transform-jobs/j1"] * 2
    assert f"job nightly {final}: 100 records (1 failed), " in result.stderr
    if code:
        assert f"error: transform job nightly {final}" in result.stderr


def test_an_api_error_is_one_line_and_exit_1(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request]
) -> None:
    problem = {"title": "Not found", "status": 404, "detail": "no objects under input_prefix"}
    serve(monkeypatch, seen, lambda _r: httpx.Response(404, json=problem))
    result = run(app, "transform", "churn", "s3://in/", "s3://out/")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: 404 Not found: no objects under input_prefix"


def test_a_prefix_that_is_not_s3_is_a_usage_error(app: typer.Typer) -> None:
    result = run(app, "transform", "churn", "/local/in", "s3://out/")
    assert result.exit_code == 2
    assert "must be an s3:// URI" in result.output


def test_stop_and_get(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, seen: list[httpx.Request]
) -> None:
    serve(monkeypatch, seen, lambda _r: httpx.Response(202, json=job("stopping", 5)))
    assert run(app, "transform-jobs", "stop", "nightly").exit_code == 0
    assert run(app, "transform-jobs", "get", "nightly").exit_code == 0
    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/v1/transform-jobs/nightly/stop"),
        ("GET", "/v1/transform-jobs/nightly"),
    ]


def test_summary_names_the_rate_and_error() -> None:
    text = transform.summary(job("failed", 50, error="endpoint 'x' was deleted"), 10.0)
    assert text == (
        "job nightly failed: 50 records (1 failed), 0/2 objects in 10.0 s, 5 records/s; "
        "output under s3://out/; error: endpoint 'x' was deleted"
    )
