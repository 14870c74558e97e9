"""`sluice transform` and `sluice transform-jobs`: batch transform over S3 prefixes.

`sluice transform ENDPOINT s3://in/ s3://out/` submits a job (or, with
`--model`, runs a registered model on the transform pool) and prints it; with
`--wait` it shows a live progress bar on stderr — records done of the total,
rate, time left — then a one-line summary, the final job as JSON on stdout,
and exits 0 only if the job succeeded. Submitting again with the same
`--name` resumes a stopped or failed job. The waiting and the bar are the
SDK's (`TransformJob.wait(progress=True)`). Errors follow cli/api_client.py:
one line on stderr, exit 1 (HTTP error or a job that did not succeed) or 2.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

from cli import api_client as http
from cli.api_client import ApiUrlOption
from core.states import TransformStatus

CSV, JSON_LINES = "text/csv", "application/jsonlines"


class SplitType(StrEnum):
    line = "line"
    none = "none"


class BatchStrategy(StrEnum):
    multi_record = "multi_record"
    single_record = "single_record"


class JoinSource(StrEnum):
    none = "none"
    input = "input"


def guess_content_type(input_prefix: str) -> str:
    """`s3://d/in/x.jsonl` (or .jsonlines, .ndjson) → JSON Lines; anything else → CSV."""
    lowered = input_prefix.lower().rstrip("/")
    return JSON_LINES if lowered.endswith((".jsonl", ".jsonlines", ".ndjson")) else CSV


def transform_spec(
    *,
    target: str,
    is_model: bool,
    model_version: int | None,
    input_prefix: str,
    output_prefix: str,
    name: str | None,
    content_type: str | None,
    split_type: SplitType,
    batch_strategy: BatchStrategy,
    max_payload_mb: float,
    join_source: JoinSource,
) -> dict[str, Any]:
    """The body of POST /v1/transform-jobs for the command's arguments."""
    for flag, uri in (("INPUT_PREFIX", input_prefix), ("OUTPUT_PREFIX", output_prefix)):
        if not uri.startswith("s3://"):
            raise typer.BadParameter(f"{flag} must be an s3:// URI, got {uri!r}")
    if model_version is not None and not is_model:
        raise typer.BadParameter("--model-version needs --model")
    spec: dict[str, Any] = {
        "input_prefix": input_prefix,
        "output_prefix": output_prefix,
        "content_type": content_type or guess_content_type(input_prefix),
        "split_type": split_type.value,
        "batch_strategy": batch_strategy.value,
        "max_payload_mb": max_payload_mb,
        "assemble_with": "line",
        "join_source": join_source.value,
    }
    spec["model" if is_model else "endpoint"] = target
    if model_version is not None:
        spec["model_version"] = model_version
    if name is not None:
        spec["name"] = name
    return spec


def summary(job: dict[str, Any], elapsed_s: float) -> str:
    """`job nightly succeeded: 1,000,000 records (3 failed), 20/20 objects in 41.2 s (24,272/s)`."""
    processed = int(job.get("processed_records") or 0)
    rate = f", {processed / elapsed_s:,.0f} records/s" if elapsed_s > 0 and processed else ""
    text = (
        f"job {job.get('name')} {job.get('status')}: {processed:,} records "
        f"({int(job.get('failed_records') or 0):,} failed), "
        f"{job.get('completed_objects')}/{job.get('input_objects')} objects "
        f"in {elapsed_s:.1f} s{rate}; output under {job.get('output_prefix')}"
    )
    if job.get("error"):
        text += f"; error: {job['error']}"
    return text


def transform(
    target: Annotated[str, typer.Argument(help="Endpoint name (with --model: a model name).")],
    input_prefix: Annotated[str, typer.Argument(help="s3://bucket/prefix/ to read.")],
    output_prefix: Annotated[str, typer.Argument(help="s3://bucket/prefix/ to write.")],
    is_model: Annotated[
        bool,
        typer.Option("--model", help="TARGET is a registered model, run on the transform pool."),
    ] = False,
    model_version: Annotated[
        int | None, typer.Option(min=1, help="With --model: the version (default latest).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Job name; the same name again resumes a stopped job.")
    ] = None,
    split_type: Annotated[
        SplitType, typer.Option(help="line: one record per line; none: each object whole.")
    ] = SplitType.line,
    batch_strategy: Annotated[
        BatchStrategy,
        typer.Option(help="multi_record: mini-batches; single_record: one record per call."),
    ] = BatchStrategy.multi_record,
    max_payload_mb: Annotated[
        float, typer.Option(min=0.0001, max=100, help="Largest mini-batch, in MB.")
    ] = 6.0,
    join_source: Annotated[
        JoinSource, typer.Option(help="input: write each input record beside its prediction.")
    ] = JoinSource.none,
    content_type: Annotated[
        str | None,
        typer.Option(
            help="text/csv or application/jsonlines (default: from the prefix, else CSV)."
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until the job ends.")] = False,
    wait_timeout_s: Annotated[
        float, typer.Option(min=0, help="With --wait: give up after this long (0: never).")
    ] = 0.0,
    api_url: ApiUrlOption = None,
) -> None:
    """Run a batch transform: one output object per input object, one line per record."""
    spec = transform_spec(
        target=target,
        is_model=is_model,
        model_version=model_version,
        input_prefix=input_prefix,
        output_prefix=output_prefix,
        name=name,
        content_type=content_type,
        split_type=split_type,
        batch_strategy=batch_strategy,
        max_payload_mb=max_payload_mb,
        join_source=join_source,
    )
    with http.session(api_url) as api:
        job = api.transform_jobs.submit(spec)
        if not wait:
            http.print_json(job.info.to_json())
            return
        started = time.monotonic()
        try:
            job.wait(wait_timeout_s or None, progress=True, console=Console(stderr=True))
        except KeyboardInterrupt:
            http.fail(
                f"stopped waiting; job {job.info.name} goes on "
                f"(stop it with `sluice transform-jobs stop {job.id}`)",
                code=130,
            )
        final = job.info.to_json()
        typer.echo(summary(final, time.monotonic() - started), err=True)
        http.print_json(final)
        if job.info.status != TransformStatus.SUCCEEDED:
            http.fail(f"transform job {job.info.name} {job.info.status}")


jobs_app = typer.Typer(help="Inspect and stop transform jobs.", no_args_is_help=True)


@jobs_app.command("get")
def jobs_get(
    job: Annotated[str, typer.Argument(help="Job id or name.")], api_url: ApiUrlOption = None
) -> None:
    """Show a transform job: status and progress."""
    with http.session(api_url) as api:
        http.print_json(api.transform_jobs.get(job).to_json())


@jobs_app.command("stop")
def jobs_stop(
    job: Annotated[str, typer.Argument(help="Job id or name.")], api_url: ApiUrlOption = None
) -> None:
    """Stop a transform job within seconds; `sluice transform` with its name resumes it."""
    with http.session(api_url) as api:
        http.print_json(api.transform_jobs.stop(job).to_json())


def register(app: typer.Typer) -> None:
    """Add `transform` and `transform-jobs` to the `sluice` app."""
    app.command("transform")(transform)
    app.add_typer(jobs_app, name="transform-jobs")
