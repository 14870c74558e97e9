"""Request and response schemas, named by role (`...Create`, `...Public`, `...Patch`).

These are the HTTP API that docs/api.md describes; ORM tables live in core/tables.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic import Strict as NoCoercion

from core.config import NAME_MAX_LENGTH, NAME_PATTERN
from core.errors import InvalidInput
from core.locations import S3Location
from core.states import (
    BaselineStatus,
    DeliveryStatus,
    ExecutionStatus,
    JobStatus,
    TransformStatus,
)
from core.tables import DEFAULT_TARGET_BACKLOG
from core.timeouts import DEFAULT_INVOCATION_TIMEOUT_S, MAX_INVOCATION_TIMEOUT_S

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=NAME_MAX_LENGTH, examples=["churn"])]
Framework = Literal["xgboost", "torch", "python"]


def _s3_location(value: str) -> str:
    """The one parser's verdict (core/locations.py): bucket rules, and a key S3 can hold."""
    try:
        S3Location.parse(value)
    except InvalidInput as exc:
        raise ValueError(exc.detail) from exc
    return value


# The pattern documents the shape in OpenAPI; the key after `bucket/` is any text
# (newlines included: `[\s\S]`), taken as written — `#` and `?` are part of it.
S3Uri = Annotated[
    str,
    Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[\s\S]*)?$"),
    AfterValidator(_s3_location),
]
S3ObjectUri = Annotated[
    str,
    Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[\s\S]*[^/]$"),
    AfterValidator(_s3_location),
]
# Bounded so every value fits the database's integer column and weights stay finite.
MAX_INT = 2_147_483_647


class Strict(BaseModel):
    """A request body: unknown fields are refused, and so are numbers sent as strings or
    booleans (`"sampling_percent": false` was accepted as 0) — use Float, Int, Bool."""

    model_config = ConfigDict(extra="forbid")


# JSON numbers and booleans as themselves: no coercion from bool or str (an int is a Float).
Float = Annotated[float, NoCoercion()]
Int = Annotated[int, NoCoercion()]
Bool = Annotated[bool, NoCoercion()]


# --- models -------------------------------------------------------------------


class ModelCreate(Strict):
    """JSON registration of an artifact already in the object store."""

    name: Name
    framework: Framework
    artifact_uri: S3ObjectUri


class PipelineStepCreate(Strict):
    """One step of a pipeline: a registered model (its latest version unless given)."""

    name: Name
    model: Name
    model_version: Int | None = Field(default=None, ge=1, le=MAX_INT)


class PipelineCreate(Strict):
    """JSON registration of a serial inference pipeline (2 to 15 steps, in order)."""

    name: Name
    framework: Literal["pipeline"]
    # Lengths are checked by the registry (core/pipeline.py) so the 422 names the count.
    steps: list[PipelineStepCreate]


class PipelineStepPublic(BaseModel):
    """A pipeline step as registered: the model version it resolved to."""

    name: str
    model: str
    version: int
    framework: str
    artifact_uri: str


class ModelVersionPublic(BaseModel):
    name: str
    version: int
    framework: str
    artifact_uri: str
    size_bytes: int | None = None
    sha256: str | None = None
    created_at: dt.datetime
    steps: list[PipelineStepPublic] | None = None  # a pipeline's steps, in order


class ModelPublic(BaseModel):
    name: str
    latest_version: int
    framework: str
    created_at: dt.datetime
    versions: list[ModelVersionPublic]
    steps: list[PipelineStepPublic] | None = None  # the latest version's, for a pipeline


# --- endpoints ----------------------------------------------------------------


class Batching(Strict):
    max_batch_size: Int = Field(default=1, ge=1, le=4096)
    max_delay_ms: Float = Field(default=0.0, ge=0, le=10_000)


class MultiModel(Strict):
    """A multi-model variant's models: every object under `prefix` (docs/multi-model.md)."""

    prefix: S3Uri = Field(examples=["s3://models/cities/"])
    framework: Literal["xgboost", "torch"]

    @model_validator(mode="after")
    def _folder(self) -> MultiModel:
        if not self.prefix.endswith("/"):
            self.prefix += "/"
        return self


DEFAULT_MODEL_MEMORY_MB = 1024


class VariantCreate(Strict):
    name: Name
    model: Name | None = Field(default=None, description="Required unless multi_model is given.")
    model_version: Int | None = Field(
        default=None, ge=1, le=MAX_INT, description="Default: latest."
    )
    multi_model: MultiModel | None = Field(
        default=None,
        description="Serve every model under an S3 prefix, chosen per request by X-Target-Model.",
    )
    model_memory_mb: Int | None = Field(
        default=None,
        ge=1,
        le=1_048_576,
        description="Multi-model only: the memory each worker keeps loaded models within "
        f"(default {DEFAULT_MODEL_MEMORY_MB}).",
    )
    weight: Float = Field(default=1.0, ge=0, le=1_000_000)
    accelerator: Literal["cpu", "gpu"] = "cpu"
    min_workers: Int = Field(default=0, ge=0, le=1024)
    max_workers: Int = Field(default=1, ge=0, le=1024)
    target_backlog_per_worker: Int = Field(
        default=DEFAULT_TARGET_BACKLOG,
        ge=1,
        le=1_000_000,
        description="The scaler runs one worker per this many waiting messages.",
    )
    batching: Batching = Field(default_factory=Batching)

    @model_validator(mode="after")
    def _bounds(self) -> VariantCreate:
        if (self.model is None) == (self.multi_model is None):
            raise ValueError(f"variant {self.name!r}: give exactly one of model or multi_model")
        if self.multi_model is not None:
            if self.model_version is not None:
                raise ValueError("model_version goes with model, not multi_model")
            if self.model_memory_mb is None:
                self.model_memory_mb = DEFAULT_MODEL_MEMORY_MB
        elif self.model_memory_mb is not None:
            raise ValueError("model_memory_mb goes with multi_model")
        if self.max_workers < self.min_workers:
            raise ValueError(
                f"max_workers {self.max_workers} is below min_workers {self.min_workers}"
            )
        return self


class AsyncConfig(Strict):
    """Async options (docs/api.md, The endpoint spec)."""

    output_prefix: S3Uri | None = None
    success_topic: Name | None = None
    error_topic: Name | None = None
    failure_prefix: S3Uri | None = Field(
        default=None,
        description="Every failed job's error document goes to "
        "`<failure_prefix><job_id>.error.json`. Default: none written.",
    )
    invocation_timeout_s: Int = Field(
        default=DEFAULT_INVOCATION_TIMEOUT_S,
        ge=1,
        le=MAX_INVOCATION_TIMEOUT_S,
        description="A job running longer fails with an error starting `timeout`; "
        "X-Invocation-Timeout-S overrides it per job.",
    )
    max_concurrent_invocations_per_worker: Int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Most async jobs one worker holds at once. Default: no cap but the "
        "variant's max_batch_size.",
    )


class ShadowVariantCreate(Strict):
    """A shadow variant: gets a sampled copy of requests; its answers never reach callers."""

    name: Name
    model: Name
    model_version: Int | None = Field(
        default=None, ge=1, le=MAX_INT, description="Default: latest."
    )
    sampling_percent: Float = Field(default=100.0, ge=0, le=100)
    accelerator: Literal["cpu", "gpu"] = "cpu"
    min_workers: Int = Field(default=0, ge=0, le=1024)
    max_workers: Int = Field(default=1, ge=0, le=1024)
    batching: Batching = Field(default_factory=Batching)

    @model_validator(mode="after")
    def _bounds(self) -> ShadowVariantCreate:
        if self.max_workers < self.min_workers:
            raise ValueError(
                f"max_workers {self.max_workers} is below min_workers {self.min_workers}"
            )
        return self


CaptureSide = Literal["input", "output"]
CAPTURE_SIDES: tuple[CaptureSide, ...] = ("input", "output")


class DataCapture(Strict):
    """What an endpoint's workers write to S3 about each request (docs/monitoring.md).

    Records are JSON Lines in SageMaker's capture format under
    `<destination><endpoint>/<variant>/yyyy/mm/dd/hh/`, written in batches every
    SLUICEWAY_CAPTURE_FLUSH_S seconds.
    """

    enabled: Bool = True
    sampling_percent: Float = Field(default=100, ge=0, le=100)
    destination: S3Uri | None = Field(
        default=None, examples=["s3://my-bucket/capture/"], description="Required when enabled."
    )
    capture: list[CaptureSide] = Field(
        default_factory=lambda: list(CAPTURE_SIDES), min_length=1, max_length=2
    )

    @model_validator(mode="after")
    def _folder(self) -> DataCapture:
        if self.destination is None:
            if self.enabled:
                raise ValueError("destination is required when capture is enabled")
        elif not self.destination.endswith("/"):
            self.destination += "/"
        self.capture = [side for side in CAPTURE_SIDES if side in self.capture]
        return self


class EndpointCreate(Strict):
    name: Name
    # Empty or absent: an endpoint of inference components only (added by POST .../components).
    variants: list[VariantCreate] = Field(default_factory=list, max_length=16)
    async_: AsyncConfig = Field(default_factory=AsyncConfig, alias="async")
    data_capture: DataCapture | None = None
    shadow_variants: list[ShadowVariantCreate] = Field(default_factory=list, max_length=4)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _unique_variants(self) -> EndpointCreate:
        names = [v.name for v in self.variants] + [s.name for s in self.shadow_variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"variant names must be unique, repeated: {duplicates}")
        if self.variants and sum(v.weight for v in self.variants) <= 0:
            raise ValueError("at least one variant needs a weight above 0")
        if self.shadow_variants and not self.variants:
            raise ValueError("shadow variants need a production variant to copy requests from")
        return self


class WorkersPublic(BaseModel):
    current: int = Field(description="Live workers consuming the variant's queue.")
    desired: int = Field(description="What the scaler wants now.")


class ScalingEventPublic(BaseModel):
    at: dt.datetime
    from_: int = Field(serialization_alias="from")
    to: int
    reason: str


class VariantPublic(BaseModel):
    name: str
    model: str | None = Field(description="None on a multi-model variant.")
    model_version: int | None
    framework: str
    multi_model: MultiModel | None = None
    model_memory_mb: int | None = None
    weight: float
    accelerator: str
    min_workers: int
    max_workers: int
    target_backlog_per_worker: int
    batching: Batching
    backlog: int = Field(
        description="Messages not yet done: queued, plus reserved by workers (`reserved`)."
    )
    reserved: int = Field(
        description="Of the backlog, messages reserved by workers, waiting there or running."
    )
    workers: WorkersPublic
    scaling_events: list[ScalingEventPublic] = Field(
        default_factory=list, description="The latest scaling events, newest first."
    )
    key: str | None = Field(
        default=None,
        description="Its queue key: the name, or `<name>~<config>` for a deployment's new variant.",
    )
    config_version: int = Field(default=1, description="The endpoint config it belongs to.")
    role: Literal["serving", "new", "draining"] = Field(
        default="serving",
        description="serving; new (a deployment's, taking traffic step by step); draining "
        "(replaced or rolled back: no traffic, removed once its queued work is done).",
    )
    traffic_percent: float = Field(
        default=0.0, description="Its share of the endpoint's traffic now (0-100)."
    )
    sampling_percent: float | None = Field(
        default=None, description="A shadow variant's share of requests copied to it."
    )


class AsyncPublic(BaseModel):
    output_prefix: str
    success_topic: str | None
    error_topic: str | None
    failure_prefix: str | None = None
    invocation_timeout_s: int = DEFAULT_INVOCATION_TIMEOUT_S
    max_concurrent_invocations_per_worker: int | None = None


class EndpointPublic(BaseModel):
    name: str
    status: str
    failure_reason: str | None = Field(
        default=None, description="While `failed`: which variants had no live worker in time."
    )
    config_version: int = Field(default=1, description="The config serving now.")
    deployment: DeploymentPublic | None = Field(
        default=None, description="The current or last deployment, or null."
    )
    variants: list[VariantPublic]
    shadow_variants: list[VariantPublic] = Field(default_factory=list)
    async_: AsyncPublic = Field(serialization_alias="async")
    data_capture: DataCapture | None = None
    components: list[ComponentPublic] = Field(
        default_factory=list, description="Inference components (docs/components.md)."
    )
    hosts: list[HostPublic] = Field(
        default_factory=list,
        description="Hosts the scaler places component copies on, and what is free on each.",
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class ModelLoadPublic(BaseModel):
    """One model under a multi-model variant's prefix, and where it is loaded."""

    model: str = Field(description="Its key under the prefix (the X-Target-Model value).")
    variant: str
    size_bytes: int = Field(description="The object's size.")
    memory_bytes: int | None = Field(
        default=None, description="Measured memory where it is loaded (the largest copy)."
    )
    loaded_on: list[str] = Field(default_factory=list, description="Worker ids holding it.")
    last_used_at: dt.datetime | None = None
    invocations: int = Field(default=0, description="Requests served (not batches).")


class WeightPatch(Strict):
    name: Name
    weight: Float = Field(ge=0, le=1_000_000)


class WeightsPatch(Strict):
    variants: list[WeightPatch] = Field(min_length=1)


class BatchingPatch(Strict):
    """Only the fields sent change; the others keep their values."""

    max_batch_size: Int | None = Field(default=None, ge=1, le=4096)
    max_delay_ms: Float | None = Field(default=None, ge=0, le=10_000)


class VariantPatch(Strict):
    batching: BatchingPatch | None = None
    min_workers: Int | None = Field(default=None, ge=0, le=1024)
    max_workers: Int | None = Field(default=None, ge=0, le=1024)
    target_backlog_per_worker: Int | None = Field(default=None, ge=1, le=1_000_000)


# --- jobs ---------------------------------------------------------------------


class AsyncAccepted(BaseModel):
    job_id: str
    status: str
    output_location: str
    inference_id: str
    failure_location: str | None = Field(
        default=None, description="Where its error document goes if it fails (failure_prefix)."
    )


class JobPublic(BaseModel):
    job_id: str
    endpoint: str
    variant: str
    status: JobStatus
    output_location: str
    failure_location: str | None = Field(
        default=None,
        description="`<failure_prefix><job_id>.error.json`: its error document, written if it "
        "fails; null when the endpoint has no failure_prefix.",
    )
    error: str | None = Field(
        description="Why it failed: `<title>: <detail>`; `timeout: ...` past its "
        "invocation_timeout_s, `expired: ...` not started within X-Request-Ttl-S."
    )
    inference_id: str | None = None
    attempts: int = Field(description="How many times a worker started it.")
    dead_letter: bool = False
    invocation_timeout_s: int = Field(description="How long it may run, in seconds.")
    expires_at: dt.datetime | None = Field(
        default=None, description="It fails `expired` unless started by then (X-Request-Ttl-S)."
    )
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class Problem(BaseModel):
    """RFC 9457 problem details: every error response has this shape."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


# --- notifications ------------------------------------------------------------


class TopicCreate(Strict):
    name: Name


class SubscriptionCreate(Strict):
    url: str = Field(
        min_length=1, max_length=2048, examples=["https://hooks.example.com/sluiceway"]
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        description="Key of the HMAC-SHA256 signature of every delivery. Omitted: one is "
        "generated and returned once, in this reply. Never returned afterwards.",
    )
    max_attempts: Int | None = Field(
        default=None, ge=1, le=1000, description="Default: SLUICEWAY_WEBHOOK_MAX_ATTEMPTS."
    )


class SubscriptionPublic(BaseModel):
    subscription_id: str
    topic: str
    url: str
    max_attempts: int | None
    created_at: dt.datetime


class SubscriptionCreated(SubscriptionPublic):
    secret: str | None = Field(
        default=None, description="Only when the server generated it: shown once, here."
    )


class TopicPublic(BaseModel):
    name: str
    created_at: dt.datetime
    subscriptions: list[SubscriptionPublic]


class DeliveryAttemptPublic(BaseModel):
    attempt: int
    started_at: dt.datetime
    status_code: int | None
    latency_ms: float
    error: str | None


class DeliveryPublic(BaseModel):
    delivery_id: str = Field(description="Sent as X-Sluiceway-Delivery, the same on every retry.")
    event_id: str
    type: str
    job_id: str
    topic: str | None = Field(description="None for a job's X-Callback-Url.")
    subscription_id: str | None
    url: str
    status: DeliveryStatus
    attempts: int
    max_attempts: int
    redrives: int
    next_attempt_at: dt.datetime | None = Field(description="Set while pending.")
    last_status_code: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class DeliveryDetail(DeliveryPublic):
    body: dict[str, Any] = Field(description="The event, exactly as each attempt sent it.")
    history: list[DeliveryAttemptPublic]


# --- batch transform ----------------------------------------------------------


class TransformJobCreate(Strict):
    """A transform over every object under `input_prefix` (docs/api.md, Batch transform).

    Every input object `<input_prefix>a/x.csv` gets `<output_prefix>a/x.csv.out`:
    one line per input line, in order; records that fail (they do not parse, the
    model rejects them, or a line is over `max_payload_mb`) keep an empty line
    (JSON Lines: `null`) and are listed as `LINE<TAB>REASON` in `a/x.csv.err`.
    CSV records are rows of decimal numbers; a JSON Lines record is an array of
    numbers or an object with a `"features"` array. `split_type=none` sends each
    object whole (an object over `max_payload_mb` fails as a whole). Once every
    output is written the job succeeds, unless more than `max_failed_records_percent`
    of its records failed (default 0: any). A missing output bucket is created.
    Resubmitting the name of a stopped or failed job resumes it, skipping the
    objects and chunks already done.
    """

    name: Name | None = Field(
        default=None,
        description="Resubmitting a stopped or failed job's name resumes it; default: generated.",
    )
    endpoint: Name | None = Field(default=None, description="Run on this endpoint's variants.")
    component: Name | None = Field(
        default=None,
        description="With endpoint: run on this inference component instead "
        "(or send X-Target-Component).",
    )
    model: Name | None = Field(
        default=None, description="Or run this registered model on the transform pool."
    )
    model_version: Int | None = Field(default=None, ge=1, description="With model; default latest.")
    target_model: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="With endpoint: the model its multi-model variants run (a key under "
        "their prefix, as X-Target-Model).",
    )
    input_prefix: S3Uri
    output_prefix: S3Uri
    content_type: Literal["text/csv", "application/jsonlines"] = "text/csv"
    split_type: Literal["line", "none"] = "line"
    batch_strategy: Literal["multi_record", "single_record"] = "multi_record"
    max_payload_mb: Float = Field(default=6.0, gt=0, le=100)
    assemble_with: Literal["line"] = "line"
    join_source: Literal["none", "input"] = "none"
    max_failed_records_percent: Float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="The job fails when more than this share of its records (0-100) failed; "
        "its outputs are written either way. 0 (the default, as SageMaker): any failed record "
        "fails the job; 100: failed records never do. May change when a job is resumed.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> TransformJobCreate:
        if (self.endpoint is None) == (self.model is None):
            raise ValueError("give exactly one of endpoint or model")
        if self.model_version is not None and self.model is None:
            raise ValueError("model_version goes with model, not endpoint")
        if self.component is not None and self.endpoint is None:
            raise ValueError("component goes with endpoint, not model")
        if self.target_model is not None and self.endpoint is None:
            raise ValueError("target_model goes with endpoint, not model")
        return self


class TransformJobPublic(BaseModel):
    job_id: str
    name: str
    status: TransformStatus
    endpoint: str | None
    component: str | None = None
    model: str | None
    model_version: int | None
    target_model: str | None = None
    input_prefix: str
    output_prefix: str
    content_type: str
    split_type: str
    batch_strategy: str
    max_payload_mb: float
    assemble_with: str
    join_source: str
    max_failed_records_percent: float
    total_records: int | None = Field(
        description="Known once every input object has been listed and split; null until then."
    )
    processed_records: int = Field(description="Records done, the failed ones included.")
    failed_records: int
    input_objects: int | None = Field(description="Null until the input prefix is listed.")
    completed_objects: int
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


# --- model monitoring -----------------------------------------------------------

ProblemType = Literal["binary_classification", "multiclass_classification", "regression"]
QUALITY_METRICS = ("accuracy", "precision", "recall", "f1", "auc", "mae", "rmse", "r2")


class BaselineCreate(Strict):
    """Compute statistics.json and constraints.json of a dataset (the scheduler does it)."""

    name: Name
    dataset: S3Uri = Field(
        description="One object, or a prefix ending in / (every object under it).",
        examples=["s3://data/churn/train.csv"],
    )
    content_type: Literal["text/csv", "application/jsonlines"] = "text/csv"
    header: Bool = Field(default=False, description="CSV: the first line names the features.")
    output_prefix: S3Uri | None = Field(
        default=None, description="Where the two files go; default s3://<bucket>/monitoring/…"
    )
    quality_thresholds: dict[str, float] | None = Field(
        default=None,
        description="Model-quality limits written into constraints.json, e.g. "
        '{"accuracy": 0.8, "rmse": 2.5}: a run whose accuracy (precision, recall, f1, auc, '
        "r2) falls below, or whose mae or rmse rises above, reports a model_quality violation.",
    )

    @model_validator(mode="after")
    def _known_metrics(self) -> BaselineCreate:
        unknown = sorted(set(self.quality_thresholds or {}) - set(QUALITY_METRICS))
        if unknown:
            raise ValueError(f"unknown quality metric(s) {unknown}; known: {list(QUALITY_METRICS)}")
        return self


class BaselinePublic(BaseModel):
    name: str
    dataset: str
    content_type: str
    header: bool
    status: BaselineStatus
    statistics_location: str
    constraints_location: str
    item_count: int | None = Field(description="Rows in the dataset, once computed.")
    quality_thresholds: dict[str, float] | None
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class ScheduleCreate(Strict):
    name: Name
    endpoint: Name
    baseline: Name
    interval_s: Int = Field(default=3600, ge=10, le=7 * 24 * 3600)
    alert_topic: Name | None = Field(
        default=None, description="Runs with violations publish MonitoringViolations here."
    )
    ground_truth_prefix: S3Uri | None = Field(
        default=None,
        description='JSON Lines {"inferenceId","groundTruthLabel"} under this prefix.',
    )
    problem_type: ProblemType | None = None
    output_prefix: S3Uri | None = Field(
        default=None, description="Where reports go; default s3://<bucket>/monitoring/…"
    )

    @model_validator(mode="after")
    def _quality_pair(self) -> ScheduleCreate:
        if (self.ground_truth_prefix is None) != (self.problem_type is None):
            raise ValueError("ground_truth_prefix and problem_type go together")
        return self


class Violation(BaseModel):
    feature: str
    check: Literal[
        "data_type",
        "completeness",
        "baseline_drift",
        "missing_column",
        "extra_column",
        "model_quality",
    ]
    description: str
    value: float | None
    threshold: float | None


class ExecutionPublic(BaseModel):
    execution_id: str
    schedule: str
    endpoint: str
    trigger: str = Field(description="schedule (its interval came round) or manual (POST …/run).")
    status: ExecutionStatus
    window_start: dt.datetime | None = Field(
        description="Capture objects written from this time on (null: from the first one)."
    )
    window_end: dt.datetime | None = Field(
        description="…and before this one: the second the run started (null until then)."
    )
    records_analyzed: int
    violations: list[Violation]
    quality: dict[str, Any] | None = Field(
        description="Model-quality metrics, with ground truth: the metrics and matched_records."
    )
    report_location: str | None
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class SchedulePublic(BaseModel):
    name: str
    endpoint: str
    baseline: str
    interval_s: int
    alert_topic: str | None
    ground_truth_prefix: str | None
    problem_type: str | None
    output_prefix: str
    next_run_at: dt.datetime
    created_at: dt.datetime
    last_execution: ExecutionPublic | None


# --- inference components (docs/components.md) -----------------------------------------


class ComputeSpec(Strict):
    """What ONE copy of a component needs; the scaler places copies where it is free."""

    cpu_cores: Float = Field(default=1.0, gt=0, le=1024)
    memory_mb: Int = Field(default=1024, ge=1, le=16_777_216)
    gpus: Int = Field(default=0, ge=0, le=64, description="Whole GPUs, shared with no copy.")
    gpu_memory_mb: Int = Field(
        default=0,
        ge=0,
        le=16_777_216,
        description="With gpus 0: a share of one GPU; copies share a GPU while their sum fits.",
    )


class ComputePatch(Strict):
    """Only the fields sent change; running copies are replaced by copies with the new figures."""

    cpu_cores: Float | None = Field(default=None, gt=0, le=1024)
    memory_mb: Int | None = Field(default=None, ge=1, le=16_777_216)
    gpus: Int | None = Field(default=None, ge=0, le=64)
    gpu_memory_mb: Int | None = Field(default=None, ge=0, le=16_777_216)


class CopiesSpec(Strict):
    min: Int = Field(default=0, ge=0, le=1024)
    max: Int = Field(default=1, ge=0, le=1024)

    @model_validator(mode="after")
    def _bounds(self) -> CopiesSpec:
        if self.max < self.min:
            raise ValueError(f"copies.max {self.max} is below copies.min {self.min}")
        return self


class CopiesPatch(Strict):
    min: Int | None = Field(default=None, ge=0, le=1024)
    max: Int | None = Field(default=None, ge=0, le=1024)


ScalingMetric = Literal["backlog_per_copy", "invocations_per_copy_per_minute"]


class ComponentScaling(Strict):
    """How the scaler sizes a component: one copy per `target` of `metric`."""

    metric: ScalingMetric = "backlog_per_copy"
    target: Float = Field(default=float(DEFAULT_TARGET_BACKLOG), gt=0, le=1_000_000)
    scale_in_cooldown_s: Float | None = Field(
        default=None, ge=0, le=86_400, description="Default: the scheduler's setting."
    )
    scale_to_zero_idle_s: Float | None = Field(
        default=None, ge=0, le=86_400, description="Default: the scheduler's setting."
    )


class ComponentScalingPatch(Strict):
    metric: ScalingMetric | None = None
    target: Float | None = Field(default=None, gt=0, le=1_000_000)
    scale_in_cooldown_s: Float | None = Field(default=None, ge=0, le=86_400)
    scale_to_zero_idle_s: Float | None = Field(default=None, ge=0, le=86_400)


class ComponentCreate(Strict):
    name: Name
    model: Name
    model_version: Int | None = Field(
        default=None, ge=1, le=MAX_INT, description="Default: latest."
    )
    compute: ComputeSpec = Field(default_factory=ComputeSpec)
    copies: CopiesSpec = Field(default_factory=CopiesSpec)
    scaling: ComponentScaling = Field(default_factory=ComponentScaling)
    batching: Batching = Field(default_factory=Batching)
    priority: Int = Field(
        default=0, ge=0, le=100, description="Higher is placed first when hosts are short."
    )


class ComponentPatch(Strict):
    compute: ComputePatch | None = None
    copies: CopiesPatch | None = None
    scaling: ComponentScalingPatch | None = None
    batching: BatchingPatch | None = None
    priority: Int | None = Field(default=None, ge=0, le=100)


class CopiesPublic(BaseModel):
    min: int
    max: int
    current: int = Field(description="Live copies (workers) serving the component's queue.")
    desired: int = Field(description="What the scaler wants now; above `current` while pending.")


class PlacementPublic(BaseModel):
    host: str
    cpu_cores: float
    memory_mb: int
    gpu: int | None = Field(default=None, description="The GPU it runs on (the first, if many).")
    gpus: list[int] = Field(default_factory=list)
    gpu_memory_mb: int = 0


class ComponentPublic(BaseModel):
    name: str
    endpoint: str
    model: str
    model_version: int
    framework: str
    status: str
    compute: ComputeSpec
    copies: CopiesPublic
    scaling: ComponentScaling
    batching: Batching
    priority: int
    placements: list[PlacementPublic] = Field(default_factory=list)
    pending_reason: str | None = Field(
        default=None, description="Why wanted copies are not placed: the shortfall."
    )
    backlog: int = 0
    reserved: int = 0
    scaling_events: list[ScalingEventPublic] = Field(default_factory=list)
    created_at: dt.datetime
    updated_at: dt.datetime


class GpuPublic(BaseModel):
    index: int
    memory_mb: int
    free_memory_mb: int


class HostPublic(BaseModel):
    name: str
    cpu_cores: float
    memory_mb: int
    gpus: list[GpuPublic] = Field(default_factory=list)
    free_cpu_cores: float
    free_memory_mb: int


# --- endpoint lifecycle: configs and deployments (docs/deployments.md) ------------


class RollbackOn(Strict):
    """Thresholds on the new config's own traffic in each step's window."""

    error_rate_percent: Float | None = Field(default=None, ge=0, le=100)
    p99_latency_ms: Float | None = Field(default=None, gt=0, le=3_600_000)
    min_requests: Int = Field(default=20, ge=1, le=1_000_000)


class DeploymentConfig(Strict):
    """How a PUT that is a deployment moves traffic from the old config to the new one."""

    strategy: Literal["all_at_once", "canary", "linear"] = "all_at_once"
    canary_percent: Float | None = Field(default=None, gt=0, le=100)
    linear_step_percent: Float | None = Field(default=None, gt=0, le=100)
    step_interval_s: Float = Field(default=60.0, ge=0, le=86_400)
    baking_s: Float = Field(default=0.0, ge=0, le=86_400)
    rollback_on: RollbackOn | None = None

    @model_validator(mode="after")
    def _percents(self) -> DeploymentConfig:
        if self.strategy == "canary" and self.canary_percent is None:
            raise ValueError("strategy canary needs canary_percent")
        if self.strategy == "linear" and self.linear_step_percent is None:
            raise ValueError("strategy linear needs linear_step_percent")
        return self


class EndpointUpdate(EndpointCreate):
    """`PUT /v1/endpoints/{name}`: a whole endpoint spec, plus how to deploy it."""

    deployment: DeploymentConfig | None = None


class DeploymentStep(BaseModel):
    percent: float
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    outcome: str = Field(description="in_progress, passed, rolled_back, failed or stopped.")
    requests: int | None = Field(default=None, description="New-config requests in its window.")
    errors: int | None = None
    p99_ms: float | None = Field(default=None, description="Model latency p99 (bucket bound).")


class DeploymentPublic(BaseModel):
    deployment_id: str
    endpoint: str
    strategy: str
    state: str
    from_config_version: int
    to_config_version: int
    new_traffic_percent: float
    steps: list[DeploymentStep]
    reason: str | None
    deployment: dict[str, Any] = Field(description="The deployment block as accepted.")
    created_at: dt.datetime
    finished_at: dt.datetime | None


class UpdateAccepted(BaseModel):
    applied: Literal["in_place", "deployment"]
    config_version: int = Field(description="The new config's version.")
    deployment_id: str | None
    deployment: DeploymentPublic | None
    endpoint: EndpointPublic


class EndpointConfigPublic(BaseModel):
    version: int
    serving: bool
    spec: dict[str, Any]
    created_at: dt.datetime


class ShadowComparison(BaseModel):
    name: str
    requests_compared: int
    agreement_rate: float | None = Field(
        description="Share of compared requests whose predictions all agree within tolerance."
    )
    mean_abs_diff: float | None = Field(description="Mean |production - shadow| per prediction.")
    errors: int = Field(description="Copies the shadow failed (its own errors).")
    production_p50_ms: float | None
    production_p99_ms: float | None
    shadow_p50_ms: float | None
    shadow_p99_ms: float | None


class ShadowReport(BaseModel):
    tolerance: float
    shadow_variants: list[ShadowComparison]
