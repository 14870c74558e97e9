"""Unit tests of the `sluice` HTTP client commands and the demo's local parts.

No network: every HTTP exchange goes through an httpx.MockTransport that
stands in for the API, and the demo's models are built and called in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from cli import api_client as http
from cli import client, demo
from cli.demo_models import N_FEATURES, DemoFailure, DemoModels, build_models, check_predictions

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def app() -> typer.Typer:
    # A bare app rather than cli.main, so these tests do not depend on cli.ops.
    app = typer.Typer()
    client.register(app)
    demo.register(app)
    return app


@pytest.fixture
def requests_seen() -> list[httpx.Request]:
    return []


@pytest.fixture
def serve(
    monkeypatch: pytest.MonkeyPatch, requests_seen: list[httpx.Request]
) -> Callable[[Handler], None]:
    """serve(handler): route every request the CLI makes to `handler`, recording it."""

    def install(handler: Handler) -> None:
        def recording(request: httpx.Request) -> httpx.Response:
            request.read()
            requests_seen.append(request)
            return handler(request)

        def make_client(base_url: str) -> httpx.Client:
            return httpx.Client(base_url=base_url, transport=httpx.MockTransport(recording))

        monkeypatch.setattr(http, "make_client", make_client)

    return install


def run(app: typer.Typer, *args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, [*args, "--api-url", "http://api.test"], input=stdin)


def problem(status: int, title: str, detail: str) -> httpx.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


# --- pure helpers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rows.csv", "text/csv"),
        ("ROWS.CSV", "text/csv"),
        ("rows.json", "application/json"),
        ("rows.txt", "application/json"),
        ("-", "application/json"),
        ("s3://bucket/in/part-0.csv", "text/csv"),
    ],
)
def test_guess_content_type(name: str, expected: str) -> None:
    assert client.guess_content_type(name) == expected


def test_problem_json_renders_as_one_line() -> None:
    error = http.problem_from_response(
        problem(422, "Invalid input", "row 0 has 3 features,\n the model takes 4")
    )
    assert error.one_line() == "error: 422 Invalid input: row 0 has 3 features, the model takes 4"


def test_non_problem_error_body_still_renders_as_one_line() -> None:
    """A proxy in front of the API may answer with HTML; the CLI still prints one line."""
    response = httpx.Response(502, text="<html>\n<body>Bad gateway</body>\n</html>")
    assert http.problem_from_response(response).one_line() == (
        "error: 502 Bad Gateway: <html> <body>Bad gateway</body> </html>"
    )


def test_fastapi_validation_detail_list_is_kept_on_one_line() -> None:
    body = {"detail": [{"loc": ["body", "name"], "msg": "Field required"}]}
    error = http.problem_from_response(httpx.Response(422, json=body))
    assert error.title == "Unprocessable Entity"
    assert "\n" not in error.one_line()
    assert "Field required" in error.detail


def test_path_escapes_names() -> None:
    assert http.path("/v1/jobs/{}/output", "a/b c") == "/v1/jobs/a%2Fb%20c/output"


def test_resolve_payload_from_data_defaults_to_json() -> None:
    body, content_type = client.resolve_payload(
        data='{"instances": [[1, 2]]}', file=None, content_type=None, input_location=None
    )
    assert (body, content_type) == (b'{"instances": [[1, 2]]}', "application/json")


def test_resolve_payload_from_csv_file(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("1,2\n3,4\n")
    assert client.resolve_payload(data=None, file=rows, content_type=None, input_location=None) == (
        b"1,2\n3,4\n",
        "text/csv",
    )


def test_explicit_content_type_wins_over_the_extension(tmp_path: Path) -> None:
    rows = tmp_path / "rows.txt"
    rows.write_text("1,2\n")
    _, content_type = client.resolve_payload(
        data=None, file=rows, content_type="text/csv", input_location=None
    )
    assert content_type == "text/csv"


def test_input_location_sends_an_empty_body() -> None:
    assert client.resolve_payload(
        data=None, file=None, content_type=None, input_location="s3://in/x.csv"
    ) == (b"", "text/csv")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of --data or --file"),
        ({"data": "{}", "file": Path("x.json")}, "exactly one of --data or --file"),
        ({"data": "{}", "input_location": "s3://b/k"}, "drop --data"),
        ({"input_location": "/tmp/x.csv"}, "must be an s3:// URI, got '/tmp/x.csv'"),
        ({"file": Path("/nonexistent/rows.csv")}, "cannot read '/nonexistent/rows.csv'"),
    ],
)
def test_resolve_payload_rejects(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "data": None,
        "file": None,
        "content_type": None,
        "input_location": None,
    }
    with pytest.raises(client.UsageProblem, match=message):
        client.resolve_payload(**(arguments | kwargs))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"wait": True}, "--wait needs --async"),
        ({"callback_url": "http://hook"}, "--callback-url needs --async"),
        ({"idempotency_key": "k1"}, "--idempotency-key needs --async"),
        ({"is_async": True, "timeout_ms": 50}, "realtime calls only"),
    ],
)
def test_mode_flags_that_mean_nothing_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "is_async": False,
        "wait": False,
        "timeout_ms": None,
        "input_location": None,
        "idempotency_key": None,
        "callback_url": None,
    }
    with pytest.raises(client.UsageProblem, match=message):
        client.check_mode_flags(**(arguments | kwargs))


def test_invocation_headers_only_carry_given_options() -> None:
    headers = client.invocation_headers(
        content_type="text/csv",
        variant="b",
        timeout_ms=250,
        input_location=None,
        idempotency_key=None,
        callback_url=None,
    )
    assert headers == {"Content-Type": "text/csv", "X-Target-Variant": "b", "X-Timeout-Ms": "250"}


def test_parse_weights() -> None:
    assert client.parse_weights(["a=1", "b=2.5", "c=0"]) == [
        {"name": "a", "weight": 1},
        {"name": "b", "weight": 2.5},
        {"name": "c", "weight": 0},
    ]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("a", "expected VARIANT=WEIGHT"),
        ("=1", "expected VARIANT=WEIGHT"),
        ("a=x", "number"),
        ("a=-1", ">= 0"),
    ],
)
def test_parse_weights_rejects(item: str, message: str) -> None:
    with pytest.raises(client.UsageProblem, match=message):
        client.parse_weights([item])


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("model raised ValueError", "model raised ValueError"),
        ({"title": "Model error", "detail": "boom"}, "Model error: boom"),
        (None, "no error message recorded"),
    ],
)
def test_describe_job_error(error: Any, expected: str) -> None:
    assert http.describe_job_error(error) == expected


# --- commands over a mocked API ------------------------------------------------


def test_invoke_realtime_prints_the_body_and_the_variant(
    app: typer.Typer, serve: Callable[[Handler], None], requests_seen: list[httpx.Request]
) -> None:
    serve(
        lambda _: httpx.Response(
            200,
            json={"predictions": [0.25]},
            headers={"X-Invoked-Variant": "a", "X-Job-Id": "j1"},
        )
    )
    result = run(app, "invoke", "churn", "--data", '{"instances": [[1, 2]]}', "--variant", "a")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"predictions": [0.25]}
    assert result.stderr == "variant a, job j1\n"
    (request,) = requests_seen
    assert request.method == "POST"
    assert request.url == "http://api.test/v1/endpoints/churn/invocations"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-target-variant"] == "a"
    assert request.content == b'{"instances": [[1, 2]]}'


def test_invoke_csv_file_sends_text_csv_and_prints_csv(
    app: typer.Typer,
    serve: Callable[[Handler], None],
    requests_seen: list[httpx.Request],
    tmp_path: Path,
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("1,2\n3,4\n")
    serve(lambda _: httpx.Response(200, text="0.1\n0.9\n", headers={"content-type": "text/csv"}))
    result = run(app, "invoke", "churn", "--file", str(rows))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "0.1\n0.9\n"
    assert requests_seen[0].headers["content-type"] == "text/csv"
    assert requests_seen[0].content == b"1,2\n3,4\n"


def test_invoke_reads_stdin_for_dash(
    app: typer.Typer, serve: Callable[[Handler], None], requests_seen: list[httpx.Request]
) -> None:
    serve(lambda _: httpx.Response(200, json={"predictions": [1]}))
    result = run(app, "invoke", "churn", "--file", "-", stdin='{"instances": [[5]]}')
    assert result.exit_code == 0, result.stderr
    assert requests_seen[0].content == b'{"instances": [[5]]}'


def test_http_error_is_one_line_on_stderr_and_exit_1(
    app: typer.Typer, serve: Callable[[Handler], None]
) -> None:
    serve(lambda _: problem(404, "Not found", "no endpoint named 'nope'"))
    result = run(app, "invoke", "nope", "--data", "{}")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "error: 404 Not found: no endpoint named 'nope'\n"


def test_unreachable_api_is_one_line_and_exit_2(
    app: typer.Typer, serve: Callable[[Handler], None]
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    serve(refuse)
    result = run(app, "jobs", "get", "j1")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: cannot reach the Sluiceway API at http://api.test (is `sluice up` running?)\n"
    )


def test_usage_problem_is_one_line_and_exit_2(app: typer.Typer) -> None:
    result = run(app, "invoke", "churn", "--wait", "--data", "{}")
    assert result.exit_code == 2
    assert result.stderr == "error: --wait needs --async\n"


def test_invoke_async_prints_the_accepted_job(
    app: typer.Typer, serve: Callable[[Handler], None], requests_seen: list[httpx.Request]
) -> None:
    accepted = {"job_id": "j1", "status": "queued", "output_location": "s3://out/j1.out"}
    serve(lambda _: httpx.Response(202, json=accepted, headers={"Location": "/v1/jobs/j1"}))
    result = run(
        app, "invoke", "churn", "--async", "--input-location", "s3://in/x.csv",
        "--idempotency-key", "k1", "--callback-url", "http://hook.test/x",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == accepted
    (request,) = requests_seen
    assert request.url.path == "/v1/endpoints/churn/async-invocations"
    assert request.content == b""
    assert request.headers["x-input-location"] == "s3://in/x.csv"
    assert request.headers["idempotency-key"] == "k1"
    assert request.headers["x-callback-url"] == "http://hook.test/x"
    assert request.headers["content-type"] == "text/csv"


def async_api(final: dict[str, Any], output: httpx.Response) -> Handler:
    """A mocked API whose one job is already final when first polled."""
    routes = {
        ("POST", "/v1/endpoints/churn/async-invocations"): httpx.Response(
            202, json={"job_id": "j1", "status": "queued", "output_location": "s3://o/j1"}
        ),
        ("GET", "/v1/jobs/j1"): httpx.Response(200, json={"job_id": "j1", **final}),
        ("GET", "/v1/jobs/j1/output"): output,
    }
    return lambda request: routes[(request.method, request.url.path)]


def test_invoke_async_wait_prints_the_output(
    app: typer.Typer, serve: Callable[[Handler], None]
) -> None:
    serve(async_api({"status": "succeeded"}, httpx.Response(200, json={"predictions": [0.5]})))
    result = run(app, "invoke", "churn", "--async", "--wait", "--data", "{}")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"predictions": [0.5]}
    assert "job j1 queued, output to s3://o/j1" in result.stderr


def test_invoke_async_wait_on_a_failed_job_exits_1(
    app: typer.Typer, serve: Callable[[Handler], None]
) -> None:
    serve(
        async_api(
            {"status": "failed", "error": "row 0 has 3 features"}, problem(404, "Not found", "")
        )
    )
    result = run(app, "invoke", "churn", "--async", "--wait", "--data", "{}")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == "error: job j1 failed: row 0 has 3 features"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def polling_api(statuses: list[str], clock: FakeClock) -> http.Api:
    replies = iter(statuses)

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"job_id": "j1", "status": next(replies)})

    return http.Api(
        http_client=httpx.Client(
            base_url="http://api.test", transport=httpx.MockTransport(handler)
        ),
        clock=clock,
        sleep=clock.sleep,
    )


def test_wait_for_job_polls_until_final_with_growing_pauses() -> None:
    clock = FakeClock()
    api = polling_api(["queued", "running", "running", "succeeded"], clock)
    job = api.jobs.wait("j1", timeout=10)
    assert job.status == "succeeded"
    assert clock.sleeps == [0.05, 0.1, 0.2]


def test_wait_for_job_gives_up_at_the_deadline() -> None:
    clock = FakeClock()
    api = polling_api(["running"] * 100, clock)
    with pytest.raises(http.JobWaitTimeout, match="job j1 is still running after 2 s"):
        api.jobs.wait("j1", timeout=2)
    assert clock.now == pytest.approx(2.0)


def test_models_register_uploads_multipart(
    app: typer.Typer,
    serve: Callable[[Handler], None],
    requests_seen: list[httpx.Request],
    tmp_path: Path,
) -> None:
    artifact = tmp_path / "model.json"
    artifact.write_bytes(b"BOOSTER-BYTES")
    created = {
        "name": "churn",
        "version": 2,
        "framework": "xgboost",
        "artifact_uri": "s3://m/c",
        "created_at": "2026-11-29T21:16:51.837405Z",
    }
    serve(lambda _: httpx.Response(201, json=created))
    result = run(app, "models", "register", "churn", str(artifact), "--framework", "xgboost")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == created
    (request,) = requests_seen
    assert request.url.path == "/v1/models"
    assert request.headers["content-type"].startswith("multipart/form-data")
    for part in (b'name="name"', b"churn", b'name="framework"', b"xgboost", b"BOOSTER-BYTES"):
        assert part in request.content
    assert b'filename="model.json"' in request.content


def test_models_register_by_uri_sends_json(
    app: typer.Typer, serve: Callable[[Handler], None], requests_seen: list[httpx.Request]
) -> None:
    uri = "s3://models/m.pt"
    created = {"name": "m", "version": 1, "framework": "torch", "artifact_uri": uri}
    serve(lambda _: httpx.Response(201, json=created | {"created_at": "2026-11-29T21:16:51Z"}))
    result = run(app, "models", "register", "m", "--artifact-uri", uri, "--framework", "torch")
    assert result.exit_code == 0, result.stderr
    assert json.loads(requests_seen[0].content) == {
        "name": "m",
        "framework": "torch",
        "artifact_uri": uri,
    }


@pytest.mark.parametrize(
    "args",
    [
        ["models", "register", "m", "--framework", "torch"],
        ["models", "register", "m", "f.pt", "--artifact-uri", "s3://x/y", "--framework", "torch"],
        ["models", "register", "m", "f.pt", "--framework", "onnx"],
        ["models", "register", "m", "/nonexistent/f.pt", "--framework", "torch"],
    ],
)
def test_models_register_argument_errors_exit_2(
    app: typer.Typer, serve: Callable[[Handler], None], args: list[str]
) -> None:
    serve(lambda _: pytest.fail("no request should be sent"))
    assert run(app, *args).exit_code == 2


def test_endpoints_create_posts_the_spec(
    app: typer.Typer,
    serve: Callable[[Handler], None],
    requests_seen: list[httpx.Request],
    tmp_path: Path,
) -> None:
    spec = {"name": "churn", "variants": [{"name": "a", "model": "m", "weight": 1}]}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    serve(lambda _: httpx.Response(201, json=spec | {"status": "ready"}))
    result = run(app, "endpoints", "create", "--file", str(spec_file))
    assert result.exit_code == 0, result.stderr
    assert json.loads(requests_seen[0].content) == spec
    assert json.loads(result.stdout)["status"] == "ready"


def test_endpoints_create_with_bad_json_exits_2(app: typer.Typer, tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text("{not json")
    result = run(app, "endpoints", "create", "--file", str(spec_file))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: '{spec_file}' is not valid JSON")
    assert len(result.stderr.splitlines()) == 1


def test_endpoints_weights_patches(
    app: typer.Typer, serve: Callable[[Handler], None], requests_seen: list[httpx.Request]
) -> None:
    serve(lambda _: httpx.Response(200, json={"name": "churn", "status": "in_service"}))
    result = run(app, "endpoints", "weights", "churn", "a=1", "b=3")
    assert result.exit_code == 0, result.stderr
    (request,) = requests_seen
    assert (request.method, request.url.path) == ("PATCH", "/v1/endpoints/churn/weights")
    assert json.loads(request.content) == {
        "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}]
    }


@pytest.mark.parametrize(
    ("args", "method", "url_path"),
    [
        (["jobs", "get", "j1"], "GET", "/v1/jobs/j1"),
        (["models", "list"], "GET", "/v1/models"),
        (["models", "get", "churn"], "GET", "/v1/models/churn"),
        (["models", "delete", "churn"], "DELETE", "/v1/models/churn"),
        (["endpoints", "list"], "GET", "/v1/endpoints"),
        (["endpoints", "get", "churn"], "GET", "/v1/endpoints/churn"),
        (["endpoints", "delete", "churn"], "DELETE", "/v1/endpoints/churn"),
    ],
)
def test_simple_commands_hit_their_route(
    app: typer.Typer,
    serve: Callable[[Handler], None],
    requests_seen: list[httpx.Request],
    args: list[str],
    method: str,
    url_path: str,
) -> None:
    # The smallest body of each kind of answer that the typed results accept.
    bodies = {
        "jobs": {"job_id": "j1", "status": "queued"},
        "models": {
            "name": "churn",
            "latest_version": 1,
            "framework": "xgboost",
            "created_at": "2026-11-29T21:16:51Z",
        },
        "endpoints": {"name": "churn", "status": "in_service"},
    }
    kind = url_path.split("/")[2]

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(204)
        body = bodies[kind]
        return httpx.Response(200, json=[body] if url_path.count("/") == 2 else body)

    serve(answer)
    result = run(app, *args)
    assert result.exit_code == 0, result.stderr
    assert (requests_seen[0].method, requests_seen[0].url.path) == (method, url_path)


# --- the demo's local parts ----------------------------------------------------


@pytest.fixture(scope="module")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> DemoModels:
    pytest.importorskip("torch")
    pytest.importorskip("xgboost")
    return build_models(tmp_path_factory.mktemp("demo"))


ROWS = [[0.1, -0.2, 0.3, 1.5], [-1.0, 2.0, 0.0, 0.5], [1.9, 1.9, -1.9, 0.0]]


def test_demo_builds_both_artifacts(demo_models: DemoModels) -> None:
    assert demo_models.xgboost_path.suffix == ".json"
    assert json.loads(demo_models.xgboost_path.read_text())["learner"]  # a Booster JSON
    assert demo_models.torch_path.stat().st_size > 0
    assert demo_models.booster.num_boosted_rounds() == 10
    assert demo_models.booster.num_features() == N_FEATURES


def test_demo_predictions_called_directly(demo_models: DemoModels) -> None:
    probabilities = demo_models.predict("xgboost", ROWS)
    assert probabilities.shape == (3,)
    assert ((probabilities > 0) & (probabilities < 1)).all()
    # The trees learned x0 + x1/2 > x2: row 2 is clearly positive, row 0 clearly not.
    assert probabilities[2] > 0.5 > probabilities[0]
    assert demo_models.predict("torch", ROWS).shape == (3, 2)


def test_demo_models_are_reproducible(demo_models: DemoModels, tmp_path: Path) -> None:
    again = build_models(tmp_path)
    for framework in ("xgboost", "torch"):
        check_predictions(
            again.predict(framework, ROWS).tolist(),
            demo_models.predict(framework, ROWS),
            what=framework,
        )


def test_check_predictions_accepts_json_round_trip(demo_models: DemoModels) -> None:
    expected = demo_models.predict("torch", ROWS)
    check_predictions(json.loads(json.dumps(expected.tolist())), expected, what="b")


@pytest.mark.parametrize(
    ("got", "message"),
    [
        ([0.1, 0.2], r"shape \(2,\), the model called directly gives \(3,\)"),
        ([0.0, 0.0, 0.0], "differ from the model called directly"),
        (["x", "y", "z"], "are not numbers"),
    ],
)
def test_check_predictions_fails_loudly(demo_models: DemoModels, got: Any, message: str) -> None:
    with pytest.raises(DemoFailure, match=message):
        check_predictions(got, demo_models.predict("xgboost", ROWS), what="a")


def test_endpoint_spec_pins_the_registered_versions() -> None:
    spec = demo.endpoint_spec("demo-ab12", {"xgboost": ("x", 3), "torch": ("t", 1)})
    assert spec["name"] == "demo-ab12"
    assert [(v["name"], v["model"], v["model_version"]) for v in spec["variants"]] == [
        ("a", "x", 3),
        ("b", "t", 1),
    ]
    assert all(v["batching"] == {"max_batch_size": 8, "max_delay_ms": 2} for v in spec["variants"])


def mock_tour(handler: Handler) -> demo.Tour:
    transport = httpx.MockTransport(handler)
    api = http.Api(http_client=httpx.Client(base_url="http://api.test", transport=transport))
    return demo.Tour(api=api, console=Console(quiet=True), workdir=Path("."), endpoint="demo-x")


def test_bad_input_step_wants_a_422() -> None:
    tour = mock_tour(lambda _: problem(422, "Invalid input", "row 0 has 3 features, expected 4"))
    assert demo.step_bad_input(tour) == "3 features instead of 4 → 422 Invalid input"


@pytest.mark.parametrize(
    "response", [httpx.Response(200, json={"predictions": [0.5]}), problem(500, "Boom", "")]
)
def test_bad_input_step_fails_on_anything_else(response: httpx.Response) -> None:
    with pytest.raises(DemoFailure):
        demo.step_bad_input(mock_tour(lambda _: response))


def test_run_steps_stops_at_a_failure_and_sets_the_exit_code() -> None:
    def unreachable(_: demo.Tour) -> str:
        raise http.ApiUnreachable("cannot reach the Sluiceway API at http://api.test")

    steps: list[tuple[str, demo.Step]] = [
        ("first", lambda _: "fine"),
        ("second", unreachable),
        ("third", lambda _: pytest.fail("must not run after a failure")),
    ]
    outcomes = demo.run_steps(mock_tour(lambda _: httpx.Response(200)), steps)
    assert [(o.step, o.status) for o in outcomes] == [
        ("first", "ok"),
        ("second", "failed"),
        ("third", "not run"),
    ]
    assert demo.exit_code(outcomes) == 2
    Console(file=None, quiet=True).print(demo.summary_table(outcomes))


def test_ready_step_lists_the_checks() -> None:
    body = {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
    tour = mock_tour(lambda _: httpx.Response(200, json=body))
    assert demo.step_check_ready(tour) == "database ok, redis ok"


def test_cli_modules_do_not_import_the_model_libraries() -> None:
    """`sluice` must start fast and run where only the API extras are installed."""
    code = (
        "import sys; import cli.client, cli.demo, cli.api_client; "
        "print(sorted({'torch', 'xgboost', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_component_patch_sends_only_the_options_given() -> None:
    from cli.components import component_patch

    none: dict[str, Any] = dict.fromkeys(
        ("min_copies", "max_copies", "cpu_cores", "memory_mb", "gpus", "gpu_memory_mb")
    )
    assert component_patch(**{**none, "max_copies": 3, "cpu_cores": 1.0}) == {
        "copies": {"max": 3},
        "compute": {"cpu_cores": 1.0},
    }
    assert component_patch(**none) == {}


def test_invoke_with_a_component_sends_x_target_component() -> None:
    headers = client.invocation_headers(
        content_type="application/json",
        variant=None,
        timeout_ms=None,
        input_location=None,
        idempotency_key=None,
        callback_url=None,
        component="small",
    )
    assert headers == {"Content-Type": "application/json", "X-Target-Component": "small"}


def test_invoke_with_a_target_model_sends_it_percent_encoded(
    app: typer.Typer, serve: Callable[[Handler], None], requests_seen: list[httpx.Request]
) -> None:
    serve(
        lambda _: httpx.Response(
            200,
            json={"predictions": [1]},
            headers={"X-Invoked-Variant": "a", "X-Invoked-Model": "eu/donn%C3%A9es.json"},
        )
    )
    result = run(
        app,
        "invoke",
        "cities",
        "--data",
        '{"instances": [[1]]}',
        "--target-model",
        "eu/données.json",
    )
    assert result.exit_code == 0, result.stderr
    (request,) = requests_seen
    assert request.headers["X-Target-Model"] == "eu/donn%C3%A9es.json"
    assert "model eu/données.json" in result.stderr


def test_endpoints_models_follows_every_page(
    app: typer.Typer, serve: Callable[[Handler], None], requests_seen: list[httpx.Request]
) -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        entry = {"variant": "a", "size_bytes": 10, "loaded_on": [], "invocations": 0}
        if request.url.params.get("after") is None:
            return httpx.Response(
                200, json=[{**entry, "model": "a.json"}], headers={"X-Next-After": "a.json"}
            )
        return httpx.Response(200, json=[{**entry, "model": "b.json"}])

    serve(pages)
    result = run(app, "endpoints", "models", "cities")
    assert result.exit_code == 0, result.stderr
    assert [m["model"] for m in json.loads(result.stdout)] == ["a.json", "b.json"]
    assert [r.url.params.get("after") for r in requests_seen] == [None, "a.json"]
