"""SQLAlchemy 2 ORM tables: models, model versions, endpoints, variants, inference components, jobs,
the notification tables (topics, subscriptions, the events outbox, deliveries),
batch transforms, API keys, model monitoring (baselines, schedules, executions), and the
SageMaker wire API's resource documents.

The schema itself is created only by the Alembic migrations in migrations/.
Jobs keep endpoint and variant *names*, not foreign keys: a job's record must
outlive a deleted endpoint. Events likewise keep the job id and topic name.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.states import (
    BaselineStatus,
    ChunkStatus,
    ComponentStatus,
    DeliveryStatus,
    DeploymentState,
    EndpointStatus,
    ExecutionStatus,
    JobStatus,
    ObjectStatus,
    TransformStatus,
)
from core.timeouts import DEFAULT_INVOCATION_TIMEOUT_S

# A batch or two per worker: enough to keep a worker busy between scaler ticks,
# small enough that a burst of 2,000 jobs asks for every worker it may have.
DEFAULT_TARGET_BACKLOG = 10


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Every stored time: UTC in, UTC (zone-aware) out, on PostgreSQL and SQLite alike.

    PostgreSQL's `timestamptz` keeps the zone; SQLite stores text and hands back
    naive datetimes. Without this type the same row read back on SQLite lost its
    zone (`"2026-11-29T21:16:07.644613"` instead of `...Z` in the API).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        # A naive value can only be UTC here (every time is made by utcnow()).
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=dt.UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class Model(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model",
        order_by="ModelVersion.version",
        cascade="all, delete-orphan",
    )


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    framework: Mapped[str] = mapped_column(String(16))
    artifact_uri: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A pipeline's resolved steps (core/pipeline.py, migration 0013); NULL for other models.
    steps: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)

    model: Mapped[Model] = relationship(back_populates="versions")


class Endpoint(Base):
    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=EndpointStatus.IN_SERVICE)
    output_prefix: Mapped[str] = mapped_column(Text)
    success_topic: Mapped[str | None] = mapped_column(String(63), nullable=True)
    error_topic: Mapped[str | None] = mapped_column(String(63), nullable=True)
    # `{"enabled","sampling_percent","destination","capture"}` or NULL (migration 0008);
    # workers re-read it every few seconds (workers/capture.py).
    data_capture: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Async options (migration 0006): where failed jobs' error documents go, how
    # long one job may run, how many async jobs one worker holds at once (None: no cap).
    failure_prefix: Mapped[str | None] = mapped_column(Text, nullable=True)
    invocation_timeout_s: Mapped[int] = mapped_column(
        Integer,
        default=DEFAULT_INVOCATION_TIMEOUT_S,
        server_default=str(DEFAULT_INVOCATION_TIMEOUT_S),
    )
    max_concurrent_invocations_per_worker: Mapped[int | None] = mapped_column(
        Integer, nullable=True
    )
    # Lifecycle (migration 0012): the config serving now; during a deployment the
    # config traffic is moving to and its share (0-100), and the deployment itself
    # (set only while one runs: the guard that makes a second one a 409).
    config_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    next_config_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_traffic_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    deployment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # Why the endpoint is `failed` (migration 0014): which variants had no live worker
    # within the provision timeout. Kept when it recovers; shown only while failed.
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set by DELETE: the endpoint is `deleting` until its queued jobs are done.
    delete_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    variants: Mapped[list[Variant]] = relationship(
        back_populates="endpoint",
        order_by="Variant.id",
        cascade="all, delete-orphan",
    )
    components: Mapped[list[InferenceComponent]] = relationship(
        back_populates="endpoint",
        order_by="InferenceComponent.id",
        cascade="all, delete-orphan",
    )


class Variant(Base):
    """One production variant of one endpoint config.

    `name` is the variant's *key*: unique in its endpoint and the last part of
    its Redis queue. For the variants an endpoint was created with it is their
    public name ("a"); a deployment's new variants are keyed `<name>~<version>`
    ("a~2", `~` is never in a public name) so old and new run side by side on
    queues of their own. `public_name` is then the name users see ("a").
    """

    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("endpoint_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    # The endpoint config this variant belongs to (migration 0012).
    config_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    public_name: Mapped[str | None] = mapped_column(String(63), nullable=True)
    # A shadow variant (never answers callers): the share of requests copied to it.
    shadow_sampling_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    # NULL on a multi-model variant, which serves every object under
    # `multi_model_prefix` instead (migration 0011, docs/multi-model.md).
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id"), nullable=True
    )
    multi_model_prefix: Mapped[str | None] = mapped_column(Text, nullable=True)
    multi_model_framework: Mapped[str | None] = mapped_column(String(16), nullable=True)
    model_memory_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    accelerator: Mapped[str] = mapped_column(String(8), default="cpu")
    min_workers: Mapped[int] = mapped_column(Integer, default=0)
    max_workers: Mapped[int] = mapped_column(Integer, default=1)
    # The scaler wants one worker per this many waiting messages (migration 0003).
    target_backlog_per_worker: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_TARGET_BACKLOG, server_default=str(DEFAULT_TARGET_BACKLOG)
    )
    max_batch_size: Mapped[int] = mapped_column(Integer, default=1)
    max_delay_ms: Mapped[float] = mapped_column(Float, default=0.0)

    endpoint: Mapped[Endpoint] = relationship(back_populates="variants")
    model_version: Mapped[ModelVersion | None] = relationship()

    @property
    def framework(self) -> str:
        """The variant's framework: its model version's, or its multi-model prefix's."""
        if self.model_version is not None:
            return self.model_version.framework
        assert self.multi_model_framework is not None
        return self.multi_model_framework

    @property
    def is_shadow(self) -> bool:
        return self.shadow_sampling_percent is not None

    @property
    def display_name(self) -> str:
        """The name users see: `public_name`, or the key itself for a first config's variant."""
        return self.public_name or self.name


class InferenceComponent(Base):
    """One model on an endpoint with its own compute per copy and its own copies (migration 0010).

    Its queue is a variant queue with the label `ic.<name>` (core/broker/keys.py:
    `component_variant`), so workers, the reconciler and the metrics treat it as one.
    `status` is `in_service`, or `deleting` while its queue drains before the row goes.
    """

    __tablename__ = "inference_components"
    __table_args__ = (UniqueConstraint("endpoint_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    status: Mapped[str] = mapped_column(String(16), default=ComponentStatus.IN_SERVICE)
    # What ONE copy needs (scheduler/scaling/placement.py places copies by these).
    cpu_cores: Mapped[float] = mapped_column(Float, default=1.0)
    memory_mb: Mapped[int] = mapped_column(Integer, default=1024)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    gpu_memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    min_copies: Mapped[int] = mapped_column(Integer, default=0)
    max_copies: Mapped[int] = mapped_column(Integer, default=1)
    # `backlog_per_copy` (waiting messages per copy) or `invocations_per_copy_per_minute`.
    scaling_metric: Mapped[str] = mapped_column(String(40), default="backlog_per_copy")
    scaling_target: Mapped[float] = mapped_column(Float, default=float(DEFAULT_TARGET_BACKLOG))
    # None: the scheduler's global settings.
    scale_in_cooldown_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    scale_to_zero_idle_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    max_batch_size: Mapped[int] = mapped_column(Integer, default=1)
    max_delay_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    endpoint: Mapped[Endpoint] = relationship(back_populates="components")
    model_version: Mapped[ModelVersion] = relationship()


VARIANT_KEY_SEPARATOR = "~"


def public_variant_name(key: str) -> str:
    """A variant key's public name: `a~2` → `a`, `a` → `a` (jobs keep the key)."""
    return key.split(VARIANT_KEY_SEPARATOR, 1)[0]


class EndpointConfig(Base):
    """One immutable endpoint config: the whole spec as accepted (POST or PUT), by version."""

    __tablename__ = "endpoint_configs"
    __table_args__ = (UniqueConstraint("endpoint_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Deployment(Base):
    """A blue/green move of an endpoint's traffic from config `from_version` to `to_version`.

    `params` holds the accepted `deployment` block (strategy, percents, intervals,
    rollback_on). The scheduler drives it: `step_index` -1 while the new variants'
    workers start, then 0.. over the planned percents; `baseline` is the new
    variants' counters when the current step began (its window starts there);
    `steps` is the public history (percent, times, outcome, counts).
    """

    __tablename__ = "deployments"
    __table_args__ = (
        Index("ix_deployments_state", "state"),
        Index("ix_deployments_endpoint", "endpoint_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(String(63))
    from_version: Mapped[int] = mapped_column(Integer)
    to_version: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=DeploymentState.IN_PROGRESS)
    step_index: Mapped[int] = mapped_column(Integer, default=-1)
    step_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    baseline: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    new_traffic_percent: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Job(Base):
    """An async invocation. Realtime calls never touch this table (hot path)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("endpoint", "idempotency_key"),
        Index("ix_jobs_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    endpoint: Mapped[str] = mapped_column(String(63))
    variant: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    input_location: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(128))
    accept: Mapped[str | None] = mapped_column(String(128), nullable=True)
    output_location: Mapped[str] = mapped_column(Text)
    output_content_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    inference_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # On a multi-model variant: the model's key under its prefix (X-Target-Model), so
    # a requeued job runs the same model (migration 0011).
    target_model: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Failed because every delivery failed (the worker died or the infrastructure
    # broke each time): a poison job, kept apart for a person to look at and retry.
    dead_letter: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The job's own limits (migration 0006), fixed when it is accepted: how long it
    # may run (the endpoint's invocation_timeout_s or X-Invocation-Timeout-S), and
    # when it expires unless a worker has started it (X-Request-Ttl-S; None: never).
    invocation_timeout_s: Mapped[int] = mapped_column(
        Integer,
        default=DEFAULT_INVOCATION_TIMEOUT_S,
        server_default=str(DEFAULT_INVOCATION_TIMEOUT_S),
    )
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The accepting endpoint's created_at, as stored (migration 0012; NULL before): a
    # worker starts the job only on that endpoint, never on one re-created under its name.
    endpoint_created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # `<failure_prefix><job_id>.error.json`: where its error document goes if it fails.
    failure_location: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Direct mode (X-Target-Container, migration 0013): the one pipeline step it runs.
    target_container: Mapped[str | None] = mapped_column(String(63), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# --- notifications (migration 0002) ---------------------------------------------


class Topic(Base):
    """An SNS-like topic: endpoints publish job outcomes to it, subscriptions receive them."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="topic", order_by="Subscription.created_at", cascade="all, delete-orphan"
    )


class Subscription(Base):
    """A webhook on a topic. `secret` signs each delivery; the API never returns it."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    max_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    topic: Mapped[Topic] = relationship(back_populates="subscriptions")


class Event(Base):
    """The outbox: one row per finished job, written in the transaction that finishes it.

    `payload` is the exact JSON body every delivery sends (and signs).
    `fanned_out_at` is set when the notifier has expanded the event into deliveries.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_fanned_out_at", "fanned_out_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(32))
    # Not unique: a failed job retried by a person finishes, and publishes, again.
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    topic: Mapped[str | None] = mapped_column(String(63), nullable=True)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    fanned_out_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Delivery(Base):
    """One event to one subscription (or, without one, to a job's X-Callback-Url).

    The row id is the `X-Sluiceway-Delivery` header: the same on every retry.
    A notifier owns a pending row while `lease_until` is in the future.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "subscription_id"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[str | None] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=True, index=True
    )
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    redrives: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    event: Mapped[Event] = relationship()


class DeliveryAttempt(Base):
    """One HTTP attempt of a delivery: when, the answer's status (if any), latency, error."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    scope: Mapped[str] = mapped_column(String(16))
    # Comma-separated endpoint names the key may use; NULL means every endpoint.
    endpoints: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    # The secret itself, Fernet-encrypted with SLUICEWAY_KEY_ENCRYPTION_KEY (migration 0009):
    # verifying a SigV4 signature needs it. NULL for keys made without that setting.
    signing_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# --- the SageMaker wire API (migration 0009) -----------------------------------------


class SageMakerResource(Base):
    """A SageMaker resource as its boto3 caller wrote it (api/sagemaker/store.py).

    `kind` is `model`, `endpoint-config`, `endpoint` or `transform-job`; `document`
    is the Create request (plus what the translation chose, e.g. the model version
    it registered), so Describe answers with the caller's own fields. The serving
    state itself lives in the native tables; endpoint configs exist only here.
    """

    __tablename__ = "sagemaker_resources"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


# --- batch transform ----------------------------------------------------------------


class TransformJob(Base):
    """A batch transform over an S3 prefix. A resubmission with the same name resumes it."""

    __tablename__ = "transform_jobs"
    __table_args__ = (Index("ix_transform_jobs_status", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    endpoint: Mapped[str | None] = mapped_column(String(63), nullable=True)
    # With endpoint: run on this inference component (migration 0010) instead of the variants.
    component: Mapped[str | None] = mapped_column(String(63), nullable=True)
    model: Mapped[str | None] = mapped_column(String(63), nullable=True)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # On an endpoint's multi-model variants: the model every record runs (migration 0011).
    target_model: Mapped[str | None] = mapped_column(Text, nullable=True)
    input_prefix: Mapped[str] = mapped_column(Text)
    output_prefix: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(64))
    split_type: Mapped[str] = mapped_column(String(8))
    batch_strategy: Mapped[str] = mapped_column(String(16))
    max_payload_mb: Mapped[float] = mapped_column(Float)
    assemble_with: Mapped[str] = mapped_column(String(8))
    join_source: Mapped[str] = mapped_column(String(8))
    # More failed records than this share of all (0-100) fails the job once its
    # outputs are written (scheduler/transform/outcome.py).
    max_failed_records_percent: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16), default=TransformStatus.QUEUED)
    total_records: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    processed_records: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_records: Mapped[int] = mapped_column(BigInteger, default=0)
    input_objects: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completed_objects: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class TransformObject(Base):
    """One input object of a transform job: listed, then planned into chunks, then assembled."""

    __tablename__ = "transform_objects"
    __table_args__ = (
        UniqueConstraint("job_id", "key"),
        Index("ix_transform_objects_job_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("transform_jobs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=ObjectStatus.LISTED)
    records: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    chunks: Mapped[int | None] = mapped_column(Integer, nullable=True)


class TransformChunk(Base):
    """Whole lines [start_byte, end_byte) of one object: the unit a worker processes.

    `token` names the message last sent for it; a worker only takes a message
    whose token still matches, so a stale copy (after a stop and resume, or a
    re-send) is skipped. `status` moves pending → done once, in the transaction
    that adds the chunk's counts to its job; or pending → failed when the chunk
    cannot be processed at all (its job then fails).
    """

    __tablename__ = "transform_chunks"
    __table_args__ = (
        UniqueConstraint("object_id", "seq"),
        Index("ix_transform_chunks_job_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("transform_jobs.id", ondelete="CASCADE"))
    object_id: Mapped[int] = mapped_column(ForeignKey("transform_objects.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    start_byte: Mapped[int] = mapped_column(BigInteger)
    end_byte: Mapped[int] = mapped_column(BigInteger)
    first_line: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(BigInteger)
    records: Mapped[int] = mapped_column(BigInteger)
    oversized: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=ChunkStatus.PENDING)
    token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    part_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_part_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why the chunk failed its job
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# --- model monitoring (migration 0008) -----------------------------------------------


class MonitoringBaseline(Base):
    """Statistics and constraints of a dataset, computed by the scheduler into S3."""

    __tablename__ = "monitoring_baselines"
    __table_args__ = (Index("ix_monitoring_baselines_status", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    dataset: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(64))
    header: Mapped[bool] = mapped_column(Boolean)
    output_prefix: Mapped[str] = mapped_column(Text)
    quality_thresholds: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=BaselineStatus.PENDING)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    item_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # A scheduler computing it holds it until then; a dead one's baseline is taken again.
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @property
    def statistics_location(self) -> str:
        return f"{self.output_prefix}statistics.json"

    @property
    def constraints_location(self) -> str:
        return f"{self.output_prefix}constraints.json"


class MonitoringSchedule(Base):
    """Check an endpoint's captured data against a baseline every `interval_s`.

    Each run analyzes the capture objects written since the previous run's
    `window_end` (S3 LastModified), so every object is analyzed once.
    """

    __tablename__ = "monitoring_schedules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    endpoint: Mapped[str] = mapped_column(String(63))
    baseline: Mapped[str] = mapped_column(String(63))
    interval_s: Mapped[int] = mapped_column(Integer)
    alert_topic: Mapped[str | None] = mapped_column(String(63), nullable=True)
    ground_truth_prefix: Mapped[str | None] = mapped_column(Text, nullable=True)
    problem_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    output_prefix: Mapped[str] = mapped_column(Text)
    next_run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # The end of the newest run's window: the next run starts there (NULL: from the start).
    window_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MonitoringExecution(Base):
    """One monitoring run of a schedule: its window, what it found, where its report is."""

    __tablename__ = "monitoring_executions"
    __table_args__ = (
        Index("ix_monitoring_executions_schedule", "schedule_id", "created_at"),
        Index("ix_monitoring_executions_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    schedule_id: Mapped[str] = mapped_column(
        ForeignKey("monitoring_schedules.id", ondelete="CASCADE")
    )
    trigger: Mapped[str] = mapped_column(String(16))  # "schedule" or "manual"
    status: Mapped[str] = mapped_column(String(32), default=ExecutionStatus.PENDING)
    window_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Set when the run starts: [window_start, window_end) of capture objects' LastModified.
    window_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    records_analyzed: Mapped[int] = mapped_column(BigInteger, default=0)
    violations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    report_location: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
