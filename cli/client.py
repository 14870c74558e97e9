"""`sluice invoke | jobs | models | endpoints`: the CLI as an HTTP client of the API.

Each command is a few lines: turn the arguments into one request (the pure
helpers below do the argument rules, so they are tested without a network),
send it through the SDK's client (sluiceway/) in a `cli.api_client.session()`,
print the answer. JSON goes to stdout
pretty-printed so it pipes into `jq`; side notes (the invoked variant, the job
id) go to stderr. Errors follow `cli.api_client`: one line on stderr, exit 1 for an
HTTP error, 2 when the API cannot be reached or the arguments are wrong.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import typer

from cli import api_client as http
from cli.api_client import ApiUrlOption
from core.codecs import CSV, JSON
from core.states import JobStatus

USAGE_ERROR = 2  # the exit code click uses for bad arguments; ours match it


class Framework(StrEnum):
    xgboost = "xgboost"
    torch = "torch"
    python = "python"


class UsageProblem(ValueError):
    """Arguments that cannot make a request; the message names the offending value."""


def guess_content_type(name: str) -> str:
    """`x.csv` → text/csv; anything else (x.json, x.txt, stdin) → application/json."""
    return CSV if name.lower().endswith(".csv") else JSON


def read_input(file: Path) -> bytes:
    """The bytes of `file`, or of stdin for '-'."""
    if str(file) == "-":
        return sys.stdin.buffer.read()
    try:
        return file.read_bytes()
    except OSError as exc:
        raise UsageProblem(f"cannot read {str(file)!r}: {exc.strerror}") from exc


def resolve_payload(
    *,
    data: str | None,
    file: Path | None,
    content_type: str | None,
    input_location: str | None,
) -> tuple[bytes, str]:
    """The request body and its content type from --data / --file / --input-location."""
    given = [flag for flag, value in (("--data", data), ("--file", file)) if value is not None]
    if input_location is not None:
        if given:
            raise UsageProblem(f"--input-location sends an empty body; drop {given[0]}")
        if not input_location.startswith("s3://"):
            raise UsageProblem(f"--input-location must be an s3:// URI, got {input_location!r}")
        return b"", content_type or guess_content_type(input_location)
    if len(given) != 1:
        raise UsageProblem("give exactly one of --data or --file")
    if data is not None:
        return data.encode(), content_type or JSON
    assert file is not None
    return read_input(file), content_type or guess_content_type(str(file))


def check_mode_flags(
    *,
    is_async: bool,
    wait: bool,
    timeout_ms: int | None,
    input_location: str | None,
    idempotency_key: str | None,
    callback_url: str | None,
) -> None:
    """Reject flags that mean nothing in the chosen mode, rather than ignore them silently."""
    async_only = {
        "--wait": wait,
        "--input-location": input_location is not None,
        "--idempotency-key": idempotency_key is not None,
        "--callback-url": callback_url is not None,
    }
    if not is_async:
        for flag, used in async_only.items():
            if used:
                raise UsageProblem(f"{flag} needs --async")
    elif timeout_ms is not None:
        raise UsageProblem("--timeout-ms applies to realtime calls only; drop it or --async")


def invocation_headers(
    *,
    content_type: str,
    variant: str | None,
    timeout_ms: int | None,
    input_location: str | None,
    idempotency_key: str | None,
    callback_url: str | None,
    component: str | None = None,
    target_model: str | None = None,
) -> dict[str, str]:
    """The API's invocation headers for the options that were given (docs/api.md, Invocations).

    A target model key is percent-encoded, so any key reaches the API as written."""
    optional = {
        "X-Target-Variant": variant,
        "X-Target-Component": component,
        "X-Target-Model": None if target_model is None else quote(target_model, safe="/"),
        "X-Timeout-Ms": None if timeout_ms is None else str(timeout_ms),
        "X-Input-Location": input_location,
        "Idempotency-Key": idempotency_key,
        "X-Callback-Url": callback_url,
    }
    headers = {"Content-Type": content_type}
    headers.update({name: value for name, value in optional.items() if value is not None})
    return headers


def parse_weights(assignments: list[str]) -> list[dict[str, Any]]:
    """`["a=1", "b=2.5"]` → `[{"name": "a", "weight": 1}, {"name": "b", "weight": 2.5}]`."""
    variants: list[dict[str, Any]] = []
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise UsageProblem(f"expected VARIANT=WEIGHT, got {item!r}")
        try:
            weight = float(raw)
        except ValueError:
            raise UsageProblem(f"weight of {name!r} must be a number, got {raw!r}") from None
        if weight < 0:
            raise UsageProblem(f"weight of {name!r} must be >= 0, got {raw!r}")
        variants.append({"name": name, "weight": int(weight) if weight.is_integer() else weight})
    return variants


def _usage(problem: UsageProblem) -> NoReturn:
    http.fail(str(problem), code=USAGE_ERROR)


# --- invoke ----------------------------------------------------------------


def invoke(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    data: Annotated[str | None, typer.Option("--data", "-d", help="The payload text.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A payload file; '-' reads stdin.")
    ] = None,
    content_type: Annotated[
        str | None,
        typer.Option(
            help="application/json or text/csv (default: from the file's extension, else JSON)."
        ),
    ] = None,
    variant: Annotated[
        str | None, typer.Option(help="Pin the call to one variant (X-Target-Variant).")
    ] = None,
    component: Annotated[
        str | None,
        typer.Option(help="Call this inference component (X-Target-Component)."),
    ] = None,
    target_model: Annotated[
        str | None,
        typer.Option(
            help="On a multi-model endpoint: the model to run, its key under the prefix "
            "(X-Target-Model), e.g. chicago.json."
        ),
    ] = None,
    timeout_ms: Annotated[
        int | None, typer.Option(min=1, help="Realtime: give up after this long (X-Timeout-Ms).")
    ] = None,
    is_async: Annotated[
        bool, typer.Option("--async", help="Queue an async job instead of waiting inline.")
    ] = False,
    input_location: Annotated[
        str | None, typer.Option(help="Async: read the payload from this s3:// object.")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Async: a retry with the same key returns the first job.")
    ] = None,
    callback_url: Annotated[
        str | None, typer.Option(help="Async: a webhook for this job alone.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Async: wait for the job and print its output.")
    ] = False,
    wait_timeout_s: Annotated[
        float, typer.Option(min=0, help="With --wait: give up after this many seconds.")
    ] = 600.0,
    api_url: ApiUrlOption = None,
) -> None:
    """Call an endpoint: realtime by default, or as an async job with --async."""
    try:
        check_mode_flags(
            is_async=is_async,
            wait=wait,
            timeout_ms=timeout_ms,
            input_location=input_location,
            idempotency_key=idempotency_key,
            callback_url=callback_url,
        )
        body, resolved_type = resolve_payload(
            data=data, file=file, content_type=content_type, input_location=input_location
        )
    except UsageProblem as problem:
        _usage(problem)
    headers = invocation_headers(
        content_type=resolved_type,
        variant=variant,
        timeout_ms=timeout_ms,
        input_location=input_location,
        idempotency_key=idempotency_key,
        callback_url=callback_url,
        component=component,
        target_model=target_model,
    )
    with http.session(api_url) as api:
        target = api.endpoint(endpoint)
        if not is_async:
            answer = target.invoke(body, headers=headers)
            served = f"component {component}" if component else f"variant {answer.variant or '?'}"
            if answer.model:
                served += f", model {answer.model}"
            typer.echo(f"{served}, job {answer.job_id or '?'}", err=True)
            http.print_body(answer.body, answer.content_type)
            return
        job = target.invoke_async(body, headers=headers)
        assert job.info is not None
        if not wait:
            http.print_json(job.info.to_json())
            return
        typer.echo(
            f"job {job.id} {job.info.status}, output to {job.info.output_location}", err=True
        )
        if job.wait(wait_timeout_s).status == JobStatus.FAILED:
            assert job.info is not None
            http.fail(f"job {job.id} failed: {http.describe_job_error(job.info.error)}")
        output = job.output()
        http.print_body(output.body, output.content_type)


# --- jobs ------------------------------------------------------------------

jobs_app = typer.Typer(help="Inspect jobs.", no_args_is_help=True)


@jobs_app.command("get")
def jobs_get(job_id: str, api_url: ApiUrlOption = None) -> None:
    """Show a job: status, variant, output location, error and times."""
    with http.session(api_url) as api:
        http.print_json(api.jobs.get(job_id).to_json())


# --- models ----------------------------------------------------------------

models_app = typer.Typer(help="Register and inspect models.", no_args_is_help=True)


@models_app.command("register")
def models_register(
    name: Annotated[str, typer.Argument(help="Model name; registering it again adds a version.")],
    framework: Annotated[Framework, typer.Option(help="How workers load the artifact.")],
    file: Annotated[Path | None, typer.Argument(help="The artifact to upload.")] = None,
    artifact_uri: Annotated[
        str | None, typer.Option(help="Register an s3:// object instead of uploading FILE.")
    ] = None,
    api_url: ApiUrlOption = None,
) -> None:
    """Register a model version from a local FILE (uploaded) or an --artifact-uri."""
    if (file is None) == (artifact_uri is None):
        http.fail("give exactly one of FILE or --artifact-uri", code=USAGE_ERROR)
    with http.session(api_url) as api:
        if artifact_uri is not None:
            version = api.models.register(
                name, framework=framework.value, artifact_uri=artifact_uri
            )
        else:
            assert file is not None
            try:
                handle = file.open("rb")
            except OSError as exc:
                http.fail(f"cannot read {str(file)!r}: {exc.strerror}", code=USAGE_ERROR)
            with handle:
                version = api.models.register(
                    name, framework=framework.value, file=handle, filename=file.name
                )
        http.print_json(version.to_json())


@models_app.command("list")
def models_list(api_url: ApiUrlOption = None) -> None:
    """List registered models."""
    with http.session(api_url) as api:
        http.print_json([model.to_json() for model in api.models.list()])


@models_app.command("get")
def models_get(name: str, api_url: ApiUrlOption = None) -> None:
    """Show a model and its versions."""
    with http.session(api_url) as api:
        http.print_json(api.models.get(name).to_json())


@models_app.command("delete")
def models_delete(name: str, api_url: ApiUrlOption = None) -> None:
    """Delete a model and all its versions."""
    with http.session(api_url) as api:
        api.models.delete(name)
    typer.echo(f"deleted model {name}", err=True)


# --- endpoints -------------------------------------------------------------

endpoints_app = typer.Typer(
    help="Create, inspect, re-weight and update endpoints.", no_args_is_help=True
)


def read_spec(file: Path) -> dict[str, Any]:
    """An endpoint spec (a JSON object) from a file or stdin."""
    raw = read_input(file)
    try:
        spec = json.loads(raw)
    except ValueError as exc:
        raise UsageProblem(f"{str(file)!r} is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise UsageProblem(f"{str(file)!r} must hold a JSON object, got {type(spec).__name__}")
    return spec


@endpoints_app.command("create")
def endpoints_create(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="The endpoint spec (JSON); '-' reads stdin.")
    ],
    api_url: ApiUrlOption = None,
) -> None:
    """Create an endpoint from a JSON spec (fields: docs/api.md, The endpoint spec)."""
    try:
        spec = read_spec(file)
    except UsageProblem as problem:
        _usage(problem)
    with http.session(api_url) as api:
        # No waiting: the command has always printed the endpoint as created.
        http.print_json(api.endpoints.create(spec, wait=False).to_json())


@endpoints_app.command("list")
def endpoints_list(api_url: ApiUrlOption = None) -> None:
    """List endpoints with their status."""
    with http.session(api_url) as api:
        http.print_json([endpoint.to_json() for endpoint in api.endpoints.list()])


@endpoints_app.command("get")
def endpoints_get(name: str, api_url: ApiUrlOption = None) -> None:
    """Show an endpoint: variants, weights, backlog and workers; its inference components
    (copies current/desired, placements, pending reasons) and the hosts' free room."""
    with http.session(api_url) as api:
        http.print_json(api.endpoints.get(name).to_json())


@endpoints_app.command("models")
def endpoints_models(
    name: str,
    variant: Annotated[str | None, typer.Option(help="Only this multi-model variant.")] = None,
    api_url: ApiUrlOption = None,
) -> None:
    """List a multi-model endpoint's models: size, memory, where loaded, last use, requests."""
    with http.session(api_url) as api:
        models = api.endpoint(name).models(variant=variant)
    http.print_json([model.to_json() for model in models])


@endpoints_app.command("delete")
def endpoints_delete(name: str, api_url: ApiUrlOption = None) -> None:
    """Delete an endpoint."""
    with http.session(api_url) as api:
        api.endpoints.delete(name, wait=False)
    typer.echo(f"deleted endpoint {name}", err=True)


@endpoints_app.command("weights")
def endpoints_weights(
    name: str,
    assignments: Annotated[list[str], typer.Argument(help="VARIANT=WEIGHT pairs, e.g. a=1 b=3.")],
    api_url: ApiUrlOption = None,
) -> None:
    """Shift traffic between variants; new requests follow at once."""
    try:
        variants = parse_weights(assignments)
    except UsageProblem as problem:
        _usage(problem)
    with http.session(api_url) as api:
        weights = {variant["name"]: variant["weight"] for variant in variants}
        http.print_json(api.endpoints.set_weights(name, weights).to_json())


def register(app: typer.Typer) -> None:
    """Add the client commands to the `sluice` app."""
    from cli.components import components_app

    endpoints_app.add_typer(components_app, name="components")
    app.command("invoke")(invoke)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(models_app, name="models")
    from cli import deployments

    deployments.register(endpoints_app)
    app.add_typer(endpoints_app, name="endpoints")
